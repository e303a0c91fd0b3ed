package report

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/t5zoo/t5zoo/evaluate"
)

// Warning is a store file the report could not use, and why. Bad files never stop a
// report: a sweep's store collects files from many runs and the table shows what is usable.
type Warning struct {
	Key string `json:"key"`
	Err error  `json:"-"`
}

func (w Warning) String() string { return w.Key + ": " + w.Err.Error() }

// Report holds every usable cell of a store.
type Report struct {
	// Store says where the cells came from (the store's String).
	Store string
	// Cells has one result per (model name, task, mode), sorted by model, task and mode.
	Cells []*evaluate.CellResult
	// Warnings lists the results files that were skipped, in key order.
	Warnings []Warning
}

type cellKey struct {
	model, task string
	mode        evaluate.Mode
}

// Load reads every results JSON in store (evaluate.ResultKeys; the bench files at its top
// level are not results). A file that cannot be read or parsed, or that names no model,
// task or mode, becomes a warning. When two files hold the same (model, task, mode), which
// only a copied or renamed file can cause, the one finished later is kept, with a warning.
func Load(ctx context.Context, store evaluate.Store) (*Report, error) {
	keys, err := evaluate.ResultKeys(ctx, store)
	if err != nil {
		return nil, fmt.Errorf("report: list results in %s: %w", store, err)
	}
	r := &Report{Store: store.String()}
	type kept struct {
		idx int
		key string
	}
	seen := map[cellKey]kept{}
	for _, k := range keys {
		if isBenchKey(k) {
			continue
		}
		data, err := store.Get(ctx, k)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, fmt.Errorf("report: read %s: %w", k, cerr)
			}
			r.Warnings = append(r.Warnings, Warning{Key: k, Err: err})
			continue
		}
		res, err := evaluate.ParseResult(data)
		if err == nil {
			err = checkResult(res)
		}
		if err != nil {
			r.Warnings = append(r.Warnings, Warning{Key: k, Err: err})
			continue
		}
		ck := cellKey{res.Model.Name, res.Task, res.Mode}
		if prev, ok := seen[ck]; ok {
			old := r.Cells[prev.idx]
			keep, drop := prev.key, k
			if res.Finished.After(old.Finished) {
				r.Cells[prev.idx] = res
				seen[ck] = kept{prev.idx, k}
				keep, drop = k, prev.key
			}
			r.Warnings = append(r.Warnings, Warning{Key: drop,
				Err: fmt.Errorf("report: same cell (%s × %s, %s) as %s, which finished later and is kept", ck.model, ck.task, ck.mode, keep)})
			continue
		}
		seen[ck] = kept{len(r.Cells), k}
		r.Cells = append(r.Cells, res)
	}
	slices.SortFunc(r.Cells, func(a, b *evaluate.CellResult) int {
		return cmp.Or(strings.Compare(a.Model.Name, b.Model.Name), compareTasks(a.Task, b.Task), compareModes(a.Mode, b.Mode))
	})
	r.Warnings = append(r.Warnings, mixedWeights(r.Cells)...)
	return r, nil
}

// mixedWeights warns about a model name whose cells were computed from different weights
// (a model re-pulled or a directory changed between runs): its row mixes them.
func mixedWeights(cells []*evaluate.CellResult) []Warning {
	digests := map[string][]string{}
	var names []string
	for _, c := range cells {
		d := c.Model.Digest
		if d == "" {
			continue
		}
		if _, ok := digests[c.Model.Name]; !ok {
			names = append(names, c.Model.Name)
		}
		if !slices.Contains(digests[c.Model.Name], d) {
			digests[c.Model.Name] = append(digests[c.Model.Name], d)
		}
	}
	var ws []Warning
	for _, n := range names {
		if ds := digests[n]; len(ds) > 1 {
			slices.Sort(ds)
			ws = append(ws, Warning{Key: n, Err: fmt.Errorf("report: model %s: its cells come from different weights (%s); rerun the stale ones", n, strings.Join(ds, ", "))})
		}
	}
	return ws
}

// checkResult refuses a parsed result the table cannot place.
func checkResult(res *evaluate.CellResult) error {
	switch {
	case res.Model.Name == "":
		return fmt.Errorf("report: result names no model")
	case res.Task == "":
		return fmt.Errorf("report: result names no task")
	}
	if _, err := evaluate.ParseMode(string(res.Mode)); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	switch res.Status {
	case evaluate.StatusOK, evaluate.StatusFailed:
		return nil
	}
	return fmt.Errorf("report: result status %q: want ok or failed", res.Status)
}

// isBenchKey says whether a store key is a bench results file (bench*.json or bench*.jsonl
// at the top level) rather than a cell.
func isBenchKey(key string) bool {
	if strings.Contains(key, "/") || !strings.HasPrefix(key, "bench") {
		return false
	}
	ext := path.Ext(key)
	return ext == ".json" || ext == ".jsonl"
}

// Modes returns the modes the report has cells for: predict before rank.
func (r *Report) Modes() []evaluate.Mode {
	var modes []evaluate.Mode
	for _, c := range r.Cells {
		if !slices.Contains(modes, c.Mode) {
			modes = append(modes, c.Mode)
		}
	}
	slices.SortFunc(modes, compareModes)
	return modes
}

func compareModes(a, b evaluate.Mode) int {
	rank := func(m evaluate.Mode) int {
		switch m {
		case evaluate.Predict:
			return 0
		case evaluate.Rank:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(string(a), string(b)))
}
