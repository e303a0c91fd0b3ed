package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
)

// TableSchema names the format of the --json report; it changes when a field changes
// meaning.
const TableSchema = "t5zoo.eval.report/1"

// AveragesFunc computes one model's benchmark averages from its task metrics (task name →
// metric key → value), over the groups present. Tables use task.Averages (T5's
// compute_avg_glue grouping) unless TableOptions says otherwise.
type AveragesFunc func(metrics map[string]map[string]float64) []task.Average

// TableOptions selects and computes what Tables shows. The zero value shows every mode
// with T5's averages.
type TableOptions struct {
	// Mode keeps one mode's table ("": one table per mode present).
	Mode evaluate.Mode
	// Averages computes the benchmark averages (nil: task.Averages).
	Averages AveragesFunc
}

// Table is one mode's models × tasks table: what every output format writes.
type Table struct {
	Mode evaluate.Mode `json:"mode"`
	// Tasks are the columns: GLUE tasks in T5's order, then SuperGLUE's, then others by name.
	Tasks []Column `json:"tasks"`
	// Benchmarks are the average columns ("glue", "super_glue"), present when some row
	// has an average over at least one of the benchmark's groups.
	Benchmarks []string `json:"benchmarks,omitempty"`
	// Rows are the models, by parameter count (unknown last), then name.
	Rows []Row `json:"rows"`
}

// Column is one task of a table.
type Column struct {
	Task      string `json:"task"`
	Benchmark string `json:"benchmark,omitempty"`
	// Metrics are every metric key some cell of the column has: the ones T5 reports
	// first, in T5's order (MRPC f1, accuracy), then the rest by key.
	Metrics []string `json:"metrics"`
	// Display are the keys the text and Markdown tables show ("f1/acc"): the ones T5
	// reports, or all of Metrics for a task T5 has no list for.
	Display []string `json:"display"`
}

// Row is one model of a table.
type Row struct {
	Model string `json:"model"`
	// Shape is the model's catalog shape, when it has one.
	Shape         string  `json:"shape,omitempty"`
	Digest        string  `json:"digest,omitempty"`
	DType         string  `json:"dtype,omitempty"`
	Params        int64   `json:"params"`
	FLOPsPerToken float64 `json:"flops_per_token"`
	// Cells are the model's results by task name; a task it has no cell for is absent.
	Cells map[string]Cell `json:"cells"`
	// Averages are the benchmark averages by benchmark name, over the groups present.
	Averages map[string]Average `json:"averages,omitempty"`
}

// Label is how plots name the model: its shape, or its name.
func (r Row) Label() string { return cmp.Or(r.Shape, r.Model) }

// Cell is one (model, task) of a table.
type Cell struct {
	Status evaluate.Status `json:"status"`
	// Error is why a failed cell failed.
	Error   string           `json:"error,omitempty"`
	Metrics evaluate.Metrics `json:"metrics,omitempty"`
	// Examples scored, of which Invalid the postprocessor could not parse.
	Examples int `json:"examples"`
	Invalid  int `json:"invalid"`
	// Limit is the --limit the cell ran with (0: the whole split); a limited cell is
	// marked in the text tables, since its numbers are not the published split's.
	Limit       int    `json:"limit,omitempty"`
	TaskVersion string `json:"task_version"`
}

// Average is a benchmark average of one model.
type Average struct {
	Value Number `json:"value"`
	// Groups are T5's metric groups present ("CoLA", "MRPC", ...), Missing the others.
	Groups  []string `json:"groups"`
	Missing []string `json:"missing,omitempty"`
}

// Partial says whether some of the benchmark's groups are missing.
func (a Average) Partial() bool { return len(a.Missing) > 0 }

// Number is a float that is null in JSON when it is NaN or infinite.
type Number float64

// MarshalJSON writes NaN and ±Inf as null.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads null as NaN.
func (n *Number) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	*n = Number(f)
	return nil
}

// Tables builds one table per mode (predict before rank), or the one mode asked for.
func (r *Report) Tables(opts TableOptions) ([]*Table, error) {
	avg := opts.Averages
	if avg == nil {
		avg = task.Averages
	}
	modes := r.Modes()
	if opts.Mode != "" {
		if !slices.Contains(modes, opts.Mode) {
			return nil, fmt.Errorf("report: no %s cells in %s (modes present: %s)", opts.Mode, r.Store, joinModes(modes))
		}
		modes = []evaluate.Mode{opts.Mode}
	}
	var tables []*Table
	for _, m := range modes {
		tables = append(tables, r.table(m, avg))
	}
	return tables, nil
}

func joinModes(ms []evaluate.Mode) string {
	if len(ms) == 0 {
		return "none"
	}
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

func (r *Report) table(mode evaluate.Mode, avg AveragesFunc) *Table {
	t := &Table{Mode: mode}
	rows := map[string]*Row{}
	latest := map[string]*evaluate.CellResult{} // the cell a row's model facts come from
	colKeys := map[string][]string{}
	colBench := map[string]string{}
	for _, c := range r.Cells {
		if c.Mode != mode {
			continue
		}
		row := rows[c.Model.Name]
		if row == nil {
			row = &Row{Model: c.Model.Name, Cells: map[string]Cell{}}
			rows[c.Model.Name] = row
		}
		// Model facts come from its latest OK cell (a failed cell may have failed before
		// the model was identified), else its latest cell.
		if l := latest[c.Model.Name]; l == nil || betterSource(c, l) {
			latest[c.Model.Name] = c
		}
		row.Cells[c.Task] = Cell{
			Status: c.Status, Error: c.Error, Metrics: c.Metrics, Examples: c.Examples,
			Invalid: c.Invalid, Limit: c.Limit, TaskVersion: c.TaskVersion,
		}
		if _, ok := colKeys[c.Task]; !ok {
			colKeys[c.Task] = nil
		}
		for k := range c.Metrics {
			if !slices.Contains(colKeys[c.Task], k) {
				colKeys[c.Task] = append(colKeys[c.Task], k)
			}
		}
		if colBench[c.Task] == "" {
			colBench[c.Task] = cmp.Or(c.Benchmark, benchmarkOf(c.Task))
		}
	}
	for task, keys := range colKeys {
		all, display := reportedMetrics(task, keys)
		t.Tasks = append(t.Tasks, Column{Task: task, Benchmark: colBench[task], Metrics: all, Display: display})
	}
	slices.SortFunc(t.Tasks, func(a, b Column) int { return compareTasks(a.Task, b.Task) })

	benches := map[string]bool{}
	for name, row := range rows {
		m := latest[name].Model
		row.Shape, row.Digest, row.DType, row.Params, row.FLOPsPerToken = m.Shape, m.Digest, m.DType, m.Params, m.FLOPsPerToken
		metrics := map[string]map[string]float64{}
		for task, c := range row.Cells {
			if c.Status == evaluate.StatusOK && len(c.Metrics) > 0 {
				metrics[task] = c.Metrics
			}
		}
		if len(metrics) == 0 {
			continue
		}
		for _, a := range avg(metrics) {
			if len(a.Groups) == 0 {
				continue
			}
			if row.Averages == nil {
				row.Averages = map[string]Average{}
			}
			row.Averages[a.Benchmark] = Average{Value: Number(a.Value), Groups: a.Groups, Missing: a.Missing}
			benches[a.Benchmark] = true
		}
	}
	for b := range benches {
		t.Benchmarks = append(t.Benchmarks, b)
	}
	slices.SortFunc(t.Benchmarks, compareBenchmarks)

	for _, row := range rows {
		t.Rows = append(t.Rows, *row)
	}
	slices.SortFunc(t.Rows, func(a, b Row) int {
		// Unknown parameter counts (0) sort last.
		if (a.Params == 0) != (b.Params == 0) {
			if a.Params == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Params, b.Params), strings.Compare(a.Model, b.Model))
	})
	return t
}

// betterSource says whether cell c describes its model better than cell l: an OK cell
// beats a failed one, then the later finished wins.
func betterSource(c, l *evaluate.CellResult) bool {
	cok, lok := c.Status == evaluate.StatusOK, l.Status == evaluate.StatusOK
	if cok != lok {
		return cok
	}
	return c.Finished.After(l.Finished)
}

func compareBenchmarks(a, b string) int {
	rank := func(s string) int {
		switch s {
		case GLUE:
			return 0
		case SuperGLUE:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
}
