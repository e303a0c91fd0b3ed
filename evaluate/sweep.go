package evaluate

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"slices"
	"time"

	"github.com/t5zoo/t5zoo/evaluate/task"
)

// DefaultBatch is how many examples a cell hands the engine at once when Sweep.Batch is 0.
const DefaultBatch = 32

// ModelSource resolves the models of a sweep by name and opens them.
type ModelSource interface {
	// Resolve locates the model (pulling it if need be) and identifies it. It is called
	// before any cell of the model runs, so a rerun can skip finished cells without
	// loading the weights.
	Resolve(ctx context.Context, name string) (ModelInfo, error)
	// Open loads the model for evaluation; the returned func releases it.
	Open(ctx context.Context, info ModelInfo) (Engine, func(), error)
}

// Sweep evaluates models × tasks × modes, one cell at a time, writing each cell's results
// to Store as it finishes. A rerun with the same arguments skips the cells whose results
// exist for the same model digest, task version, limit and input length, so a sweep killed
// at any point loses at most the cell in flight; shards split the cells so that n processes
// with Shard 0..n-1 write together exactly what one process writes.
type Sweep struct {
	Models []string
	Tasks  []*task.Task
	// Modes defaults to predict alone. A task that cannot be ranked (free text, SQuAD)
	// runs in predict mode only; asking it for rank mode is logged and skipped.
	Modes []Mode
	// Data is the folder of the tasks' official files.
	Data   string
	Store  Store
	Source ModelSource
	// Shard and Shards select shard Shard of Shards (0 ≤ Shard < Shards); Shards 0 or 1
	// runs every cell.
	Shard, Shards int
	// Limit, when positive, evaluates a deterministic subset of about Limit examples of
	// each task (whole groups; task.Limit).
	Limit int
	// Batch is how many examples go to the engine at once; 0 means DefaultBatch.
	Batch int
	// MaxInputTokens is recorded in each cell and is part of its identity: the engine's
	// trimming of inputs (EngineOptions.MaxInputTokens) must match it.
	MaxInputTokens int
	// Version is the t5zoo version recorded in each cell; "" means BuildVersion.
	Version string
	// Progress, when set, is called as cells start, advance and end (from the goroutine
	// running the sweep).
	Progress func(Progress)
	Logger   *slog.Logger
}

// Progress reports a sweep's advance.
type Progress struct {
	Cell Cell
	// CellIndex counts this shard's cells from 0; Cells is their number.
	CellIndex, Cells int
	// Done of Total examples of the cell are predicted.
	Done, Total int
	// State is "skipped", "loading", "running", "done" or "failed".
	State   string
	Err     error
	Elapsed time.Duration
	// Result is the cell's results when State is skipped, done or failed.
	Result *CellResult
}

// Summary counts the cells of a run and holds their results (skipped cells' too), in cell
// order.
type Summary struct {
	Done, Skipped, Failed int
	Results               []*CellResult
}

type plannedCell struct {
	Cell
	task *task.Task
}

// plan lists every cell of the sweep in canonical order (models as given, tasks as given,
// modes as given), without shards.
func (s *Sweep) plan() []plannedCell {
	modes := s.Modes
	if len(modes) == 0 {
		modes = []Mode{Predict}
	}
	var out []plannedCell
	for _, m := range s.Models {
		for _, t := range s.Tasks {
			for _, mode := range modes {
				if !runsIn(t, mode) {
					continue
				}
				out = append(out, plannedCell{Cell{Model: m, Task: t.Name(), Mode: mode}, t})
			}
		}
	}
	return out
}

// runsIn reports whether task t runs in mode: rank only when it can be ranked, and a
// spec task only in the modes it names.
func runsIn(t *task.Task, mode Mode) bool {
	return slices.Contains(t.Modes(), string(mode)) && (mode != Rank || t.Rankable())
}

// NotRun returns "task (mode)" for each task and asked mode that the task does not run in
// (rank mode of a free-text task), so a caller can say that those cells are left out.
func (s *Sweep) NotRun() []string {
	var out []string
	for _, t := range s.Tasks {
		for _, m := range s.Modes {
			if !runsIn(t, m) {
				out = append(out, fmt.Sprintf("%s (%s)", t.Name(), m))
			}
		}
	}
	return out
}

// shardCells is this shard's part of plan: a contiguous run, so that a shard loads as few
// models as it can.
func (s *Sweep) shardCells() ([]plannedCell, error) {
	all := s.plan()
	n := s.Shards
	if n <= 1 {
		if s.Shard != 0 {
			return nil, fmt.Errorf("evaluate: shard %d of %d", s.Shard, n)
		}
		return all, nil
	}
	if s.Shard < 0 || s.Shard >= n {
		return nil, fmt.Errorf("evaluate: shard %d of %d: want 0 ≤ i < n", s.Shard, n)
	}
	lo, hi := s.Shard*len(all)/n, (s.Shard+1)*len(all)/n
	return all[lo:hi], nil
}

// Cells returns this shard's cells in the order Run takes them.
func (s *Sweep) Cells() []Cell {
	pcs, err := s.shardCells()
	if err != nil {
		return nil
	}
	out := make([]Cell, len(pcs))
	for i, pc := range pcs {
		out[i] = pc.Cell
	}
	return out
}

func (s *Sweep) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Sweep) report(p Progress) {
	if s.Progress != nil {
		s.Progress(p)
	}
}

// Run evaluates this shard's cells. A model that cannot be resolved or opened, a task
// whose data is missing and a cell whose engine call fails mark their cells failed (written
// to the store with the error) and the sweep goes on; Run returns an error only when the
// store cannot be written or ctx ends, and then the cell in flight is not written.
func (s *Sweep) Run(ctx context.Context) (Summary, error) {
	var sum Summary
	if s.Store == nil || s.Source == nil {
		return sum, errors.New("evaluate: sweep needs a Store and a ModelSource")
	}
	cells, err := s.shardCells()
	if err != nil {
		return sum, err
	}
	data := map[string]*taskData{} // task name → its files and examples, shared by the models
	for i := 0; i < len(cells); {
		j := i
		for j < len(cells) && cells[j].Model == cells[i].Model {
			j++
		}
		if err := s.runModel(ctx, cells[i:j], i, len(cells), data, &sum); err != nil {
			return sum, err
		}
		i = j
	}
	return sum, nil
}

// taskData is a task's data files and their digest, found and hashed once per run, and its
// examples, parsed only when a cell of the task runs (a rerun that skips every cell parses
// nothing).
type taskData struct {
	paths  []string
	digest string
	err    error // finding or hashing the files

	loaded   bool
	examples []task.Example
	loadErr  error
}

// loadTask finds a task's files and hashes them.
func (s *Sweep) loadTask(ctx context.Context, t *task.Task) *taskData {
	paths, err := t.Paths(s.Data)
	if err != nil {
		return &taskData{err: err}
	}
	digest, err := fileDigest(ctx, paths)
	if err != nil {
		return &taskData{err: fmt.Errorf("%s: %w", t.Name(), err)}
	}
	return &taskData{paths: paths, digest: digest}
}

// examplesOf parses the task's examples the first time a cell needs them.
func (s *Sweep) examplesOf(ctx context.Context, t *task.Task, td *taskData) ([]task.Example, error) {
	if !td.loaded {
		td.examples, td.loadErr = t.Load(ctx, s.Data)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		td.loaded = true
	}
	return td.examples, td.loadErr
}

// fileDigest is "sha256:" and the hex sha256 over the files' contents, in order, each
// preceded by its size.
func fileDigest(ctx context.Context, paths []string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		st, err := f.Stat()
		if err == nil {
			fmt.Fprintf(h, "%d\x00", st.Size())
			_, err = io.Copy(h, f)
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", p, err)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// runModel runs the cells of one model (consecutive in the plan), loading it only if some
// cell is not finished yet.
func (s *Sweep) runModel(ctx context.Context, cells []plannedCell, base, total int, data map[string]*taskData, sum *Summary) error {
	log := s.logger().With("model", cells[0].Model)
	info, rerr := s.Source.Resolve(ctx, cells[0].Model)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rerr != nil {
		log.Info("resolve model failed; its cells fail", "err", rerr)
		info = ModelInfo{Name: cells[0].Model}
	}
	var pending []int
	for k, pc := range cells {
		if rerr != nil {
			if err := s.fail(ctx, pc, info, base+k, total, fmt.Errorf("model %s: %w", pc.Model, rerr), sum); err != nil {
				return err
			}
			continue
		}
		if r := s.finished(ctx, pc, info, s.taskData(ctx, pc.task, data)); r != nil {
			sum.Skipped++
			sum.Results = append(sum.Results, r)
			s.report(Progress{Cell: pc.Cell, CellIndex: base + k, Cells: total, Done: r.Examples, Total: r.Examples, State: "skipped", Result: r})
			continue
		}
		pending = append(pending, k)
	}
	if len(pending) == 0 {
		return nil
	}
	s.report(Progress{Cell: cells[pending[0]].Cell, CellIndex: base + pending[0], Cells: total, State: "loading"})
	engine, release, oerr := s.Source.Open(ctx, info)
	if ctx.Err() != nil {
		if oerr == nil {
			release()
		}
		return ctx.Err()
	}
	if oerr != nil {
		log.Info("open model failed; its cells fail", "err", oerr)
		for _, k := range pending {
			if err := s.fail(ctx, cells[k], info, base+k, total, fmt.Errorf("load model %s: %w", cells[k].Model, oerr), sum); err != nil {
				return err
			}
		}
		return nil
	}
	defer release()
	if dt := engine.DType(); dt != info.DType {
		// The source's promise is part of the cells' identity; say when the engine broke it.
		log.Warn("the engine runs another weight type than the source resolved", "resolved", info.DType, "engine", dt)
		info.DType = dt
	}
	for _, k := range pending {
		pc := cells[k]
		td := s.taskData(ctx, pc.task, data)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := td.err
		var exs []task.Example
		if err == nil {
			exs, err = s.examplesOf(ctx, pc.task, td)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if err != nil {
			if err := s.fail(ctx, pc, info, base+k, total, err, sum); err != nil {
				return err
			}
			continue
		}
		r, recs, err := s.runCell(ctx, pc, info, engine, exs, td.digest, base+k, total)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			log.Info("cell failed", "task", pc.Task, "mode", pc.Mode, "err", err)
			if err := s.fail(ctx, pc, info, base+k, total, err, sum); err != nil {
				return err
			}
			continue
		}
		if err := s.write(ctx, pc.Cell, r, recs); err != nil {
			return err
		}
		sum.Done++
		sum.Results = append(sum.Results, r)
		s.report(Progress{Cell: pc.Cell, CellIndex: base + k, Cells: total, Done: r.Examples, Total: r.Examples, State: "done", Elapsed: time.Duration(r.WallSeconds * float64(time.Second)), Result: r})
	}
	return nil
}

// taskData loads a task once per run (the models of a sweep share its examples).
func (s *Sweep) taskData(ctx context.Context, t *task.Task, cache map[string]*taskData) *taskData {
	td, ok := cache[t.Name()]
	if !ok {
		td = s.loadTask(ctx, t)
		if ctx.Err() == nil {
			cache[t.Name()] = td
		}
	}
	return td
}

// finished returns the stored results of a cell when they can be reused: status ok, same
// model digest and weight type, task version, data, limit and input length.
func (s *Sweep) finished(ctx context.Context, pc plannedCell, info ModelInfo, td *taskData) *CellResult {
	if td.err != nil {
		return nil
	}
	data, err := s.Store.Get(ctx, pc.ResultKey())
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger().Warn("read cell results; running the cell again", "cell", pc.Cell.String(), "err", err)
		}
		return nil
	}
	r, err := ParseResult(data)
	if err != nil {
		s.logger().Warn("unreadable cell results; running the cell again", "cell", pc.Cell.String(), "err", err)
		return nil
	}
	if r.Status != StatusOK || r.Model.Digest != info.Digest || r.Model.DType != info.DType ||
		r.TaskVersion != pc.task.Version() || r.DataDigest != td.digest ||
		r.Limit != max(s.Limit, 0) || r.MaxInputTokens != s.MaxInputTokens || r.Mode != pc.Mode {
		return nil
	}
	return r
}

func (s *Sweep) newResult(pc plannedCell, info ModelInfo) *CellResult {
	return &CellResult{
		Schema:         ResultSchema,
		Model:          info,
		Task:           pc.Task,
		TaskVersion:    pc.task.Version(),
		Benchmark:      pc.task.Benchmark(),
		Mode:           pc.Mode,
		Limit:          max(s.Limit, 0),
		MaxInputTokens: s.MaxInputTokens,
		Version:        cmp.Or(s.Version, BuildVersion()),
	}
}

// fail records a failed cell; a rerun runs it again.
func (s *Sweep) fail(ctx context.Context, pc plannedCell, info ModelInfo, idx, total int, cause error, sum *Summary) error {
	r := s.newResult(pc, info)
	r.Status = StatusFailed
	r.Error = cause.Error()
	r.Started = time.Now().UTC()
	r.Finished = r.Started
	if err := s.write(ctx, pc.Cell, r, nil); err != nil {
		return err
	}
	sum.Failed++
	sum.Results = append(sum.Results, r)
	s.report(Progress{Cell: pc.Cell, CellIndex: idx, Cells: total, State: "failed", Err: cause, Result: r})
	return nil
}

// write stores a cell: the per-example JSONL first, then the results JSON that names it,
// so results never point at examples that are not there.
func (s *Sweep) write(ctx context.Context, c Cell, r *CellResult, recs []ExampleRecord) error {
	if recs != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for i := range recs {
			if err := enc.Encode(&recs[i]); err != nil {
				return fmt.Errorf("evaluate: encode %s example %d: %w", c, i, err)
			}
		}
		if err := s.Store.Put(ctx, c.ExamplesKey(), buf.Bytes()); err != nil {
			return fmt.Errorf("evaluate: write %s: %w", c, err)
		}
		r.ExamplesFile = c.ExamplesKey()
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("evaluate: encode %s: %w", c, err)
	}
	if err := s.Store.Put(ctx, c.ResultKey(), append(data, '\n')); err != nil {
		return fmt.Errorf("evaluate: write %s: %w", c, err)
	}
	return nil
}

// runCell predicts every example of the cell, in batches, and scores the predictions.
func (s *Sweep) runCell(ctx context.Context, pc plannedCell, info ModelInfo, engine Engine, all []task.Example, dataDigest string, idx, total int) (*CellResult, []ExampleRecord, error) {
	r := s.newResult(pc, info)
	r.DataDigest = dataDigest
	r.Kernels = engine.Kernels()
	r.Started = time.Now().UTC()
	start := time.Now()
	exs := task.Limit(pc.task, all, s.Limit)
	if len(exs) == 0 {
		return nil, nil, fmt.Errorf("task %s has no examples", pc.Task)
	}
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	preds := make([]string, len(exs))
	recs := make([]ExampleRecord, len(exs))
	for lo := 0; lo < len(exs); lo += batch {
		hi := min(len(exs), lo+batch)
		part := exs[lo:hi]
		inputs := make([]string, len(part))
		for i, ex := range part {
			inputs[i] = ex.Input
		}
		switch pc.Mode {
		case Predict:
			texts, err := engine.Generate(ctx, inputs, pc.task.DecodeLength())
			if err != nil {
				return nil, nil, fmt.Errorf("generate (examples %d–%d): %w", lo, hi-1, err)
			}
			copy(preds[lo:hi], texts)
		case Rank:
			choices := make([][]string, len(part))
			for i, ex := range part {
				if len(ex.Choices) == 0 {
					return nil, nil, fmt.Errorf("example %s has no choices to rank", ex.ID)
				}
				choices[i] = ex.Choices
			}
			scores, err := engine.Rank(ctx, inputs, choices)
			if err != nil {
				return nil, nil, fmt.Errorf("rank (examples %d–%d): %w", lo, hi-1, err)
			}
			for i, sc := range scores {
				best := 0
				for j, v := range sc {
					if v > sc[best] || math.IsNaN(sc[best]) {
						best = j
					}
				}
				preds[lo+i] = choices[i][best]
				recs[lo+i].Choices = choices[i]
				recs[lo+i].Scores = sc
			}
		default:
			return nil, nil, fmt.Errorf("mode %q", pc.Mode)
		}
		s.report(Progress{Cell: pc.Cell, CellIndex: idx, Cells: total, Done: hi, Total: len(exs), State: "running", Elapsed: time.Since(start)})
	}
	scored, err := pc.task.Evaluate(exs, preds)
	if err != nil {
		return nil, nil, fmt.Errorf("score: %w", err)
	}
	for i, ex := range exs {
		recs[i].ID, recs[i].Input, recs[i].Target, recs[i].Prediction = ex.ID, ex.Input, ex.Target, preds[i]
		if i < len(scored.Outcomes) {
			recs[i].Value, recs[i].Invalid = jsonValue(scored.Outcomes[i].Value), scored.Outcomes[i].Invalid
		}
	}
	wall := time.Since(start)
	r.Status = StatusOK
	r.Examples = len(exs)
	r.Invalid = scored.Invalid
	r.Metrics = Metrics(scored.Metrics)
	r.Finished = time.Now().UTC()
	r.WallSeconds = wall.Seconds()
	r.ExamplesPerSecond = float64(len(exs)) / wall.Seconds()
	return r, recs, nil
}

// jsonValue makes a postprocessed value encodable: JSON has no NaN or ±Inf (a prediction
// "nan" parses to one), so those become their text.
func jsonValue(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Sprint(f)
	}
	return v
}
