package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/zoo"
)

// evalFlags are the eval verb's options.
type evalFlags struct {
	tasks, modes   []string
	data, out      string
	shard          string
	limit, batch   int
	maxInput       int
	threads        int
	dtype          string
	jsonOut, quiet bool
}

func newEvalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval MODEL... --task TASK...",
		Short: "Score models on downstream tasks exactly as the T5 codebase does",
		Long: `Eval runs every MODEL on every --task in every --mode, one cell at a time, and writes
each cell to --out as it finishes: <model>/<task>/<mode>.json (metrics, counts, the model's
digest, the task's version, timing) and <mode>.examples.jsonl (each example's input, target,
prediction, and in rank mode the score of every choice).

Models are registry names (pulled on first use; a published catalog shape the registry
lacks is imported from the Hub first, as run does) or model directories. Tasks are built-in
names (glue/sst2, super_glue/cb, squad; "glue" and "super_glue" for whole benchmarks; list
them with "t5zoo eval tasks") or task spec files (.json, .yaml; docs/eval-spec.md).
The tasks read their official files (GLUE TSV, SuperGLUE JSONL, SQuAD JSON) from --data
or T5ZOO_DATA: <data>/glue/SST-2/dev.tsv, <data>/superglue/BoolQ/val.jsonl,
<data>/squad/dev-v1.1.json, ...

Modes: predict generates greedily, postprocesses the text as T5 does and scores it with
T5's metrics (what T5 reports; unparseable answers count as T5 counts them). rank scores
log p(label | input) for each label string and takes the best (no invalid answers); one
encoder pass serves all the labels of an example.

A rerun skips the cells whose results exist for the same model digest, task version,
data files, --limit and --max-input-tokens, so an interrupted sweep resumes where it stopped. --shard
i/n runs the i-th of n parts of the cells (0-based): n processes with the same arguments
write together exactly what one writes (deploy/eval-job.yaml runs them as a Kubernetes
Indexed Job). A model or task that fails marks its cells failed and the sweep goes on;
eval exits with an error when any cell failed.

Read the results with "t5zoo eval report OUT".`,
		Example: `  t5zoo eval t5-efficient-tiny --task glue/sst2 --data ~/glue-data
  t5zoo eval t5-efficient-tiny t5-efficient-mini --task glue --task super_glue --mode rank --out sweep/
  t5zoo eval ./my-model --task squad --limit 200 --data ~/data
  t5zoo eval t5-efficient-small --task mytask.yaml --out s3://models/evals
  t5zoo eval t5-efficient-base t5-efficient-base-nl36 --task glue --shard 0/4 --out s3://models/evals
  t5zoo eval report sweep/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEval(cmd, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.tasks, "task", nil, "task name, benchmark (glue, super_glue) or spec file; repeat or comma-separate")
	fl.StringSliceVar(&f.modes, "mode", []string{"predict"}, "predict, rank, or both (predict,rank)")
	fl.StringVar(&f.data, "data", "", "folder of the tasks' official files (default $T5ZOO_DATA)")
	fl.StringVar(&f.out, "out", "t5zoo-eval", "results folder or s3://BUCKET/PREFIX (endpoint and credentials as for an s3:// registry)")
	fl.StringVar(&f.shard, "shard", "", "run part i of n of the cells, as i/n (0 ≤ i < n)")
	fl.IntVar(&f.limit, "limit", 0, "evaluate a deterministic subset of about N examples per task (whole groups); 0: all")
	fl.IntVar(&f.batch, "batch", evaluate.DefaultBatch, "examples per engine call")
	fl.IntVar(&f.maxInput, "max-input-tokens", 512, "trim inputs to this many tokens, </s> kept (T5's 512); 0: no trimming")
	fl.IntVar(&f.threads, "threads", 0, "engine threads (0: GOMAXPROCS)")
	fl.StringVar(&f.dtype, "dtype", "", loadDTypeUsage)
	fl.BoolVar(&f.jsonOut, "json", false, "print each cell's results JSON on a line instead of a summary")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress output")
	_ = cmd.MarkFlagRequired("task")
	cmd.AddCommand(newEvalTasksCmd(), newEvalMetricsCmd(), newEvalReportCmd(openEvalStore))
	return cmd
}

// openEvalStore opens --out: a folder, or s3://BUCKET[/PREFIX] with the environment's S3
// endpoint and credentials.
func openEvalStore(ctx context.Context, arg string) (evaluate.Store, error) {
	if strings.HasPrefix(arg, "s3://") {
		opts, err := s3Options(arg)
		if err != nil {
			return nil, err
		}
		return zoo.NewS3Objects(opts)
	}
	if strings.Contains(arg, "://") {
		return nil, fmt.Errorf("results store %s: want a folder or s3://BUCKET[/PREFIX]", arg)
	}
	return evaluate.NewDirStore(arg)
}

// parseShard reads --shard i/n.
func parseShard(s string) (i, n int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	if ok {
		i, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			n, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want i/n with 0 ≤ i < n, e.g. 0/4", s)
	}
	return i, n, nil
}

func runEval(cmd *cobra.Command, models []string, f evalFlags) error {
	ctx := cmd.Context()
	if len(f.tasks) == 0 {
		return errors.New("eval: name at least one --task")
	}
	tasks, err := task.Resolve(f.tasks)
	if err != nil {
		return err
	}
	var modes []evaluate.Mode
	for _, m := range f.modes {
		mode, err := evaluate.ParseMode(strings.TrimSpace(m))
		if err != nil {
			return fmt.Errorf("--mode: %w", err)
		}
		modes = append(modes, mode)
	}
	shard, shards, err := parseShard(f.shard)
	if err != nil {
		return err
	}
	if f.limit < 0 || f.batch < 1 || f.maxInput < 0 || f.maxInput == 1 || f.threads < 0 {
		return errors.New("eval: --limit and --max-input-tokens must be 0 or more (and --max-input-tokens not 1), --batch positive, --threads 0 or more")
	}
	dt, err := parseLoadDType(f.dtype)
	if err != nil {
		return err
	}
	data := f.data
	if data == "" {
		data = getenv("T5ZOO_DATA")
	}
	store, err := openEvalStore(ctx, f.out)
	if err != nil {
		return err
	}
	errOut := cmd.ErrOrStderr()
	ui := newEvalUI(errOut, f.quiet)
	defer ui.close()
	var fetcher *fetch.Fetcher
	src := &evaluate.DirSource{
		Load:   infer.LoadOptions{Threads: f.threads, DType: dt},
		Engine: evaluate.EngineOptions{MaxInputTokens: f.maxInput},
		Locate: func(ctx context.Context, name string) (evaluate.Located, error) {
			if fetch.LooksLikePath(name) {
				if err := fetch.CheckDir(name, fetch.CheckOptions{Tokenizer: true}); err != nil {
					return evaluate.Located{}, err
				}
				return evaluate.Located{Dir: name}, nil
			}
			ref, err := zoo.ParseRef(name)
			if err != nil {
				return evaluate.Located{}, fmt.Errorf("%q is neither a model directory nor a registry name: %w", name, err)
			}
			if fetcher == nil {
				if fetcher, err = newFetcher(); err != nil {
					return evaluate.Located{}, err
				}
			}
			lm, err := fetchModel(ctx, fetcher, errOut, ui.writer(), ref, true)
			if err != nil {
				return evaluate.Located{}, err
			}
			return evaluate.Located{Dir: lm.Dir, Digest: string(lm.Digest), DigestOf: "manifest"}, nil
		},
	}
	sw := &evaluate.Sweep{
		Models: models, Tasks: tasks, Modes: modes,
		Data: data, Store: store, Source: src,
		Shard: shard, Shards: shards,
		Limit: f.limit, Batch: f.batch, MaxInputTokens: f.maxInput,
		Progress: ui.progress,
		Logger:   ui.logger(),
	}
	for _, name := range sw.NotRun() {
		fmt.Fprintf(errOut, "%s: the task does not run in this mode (rank needs label choices): cells left out\n", name)
	}
	if shards > 1 {
		fmt.Fprintf(errOut, "shard %d/%d: %d of the sweep's cells\n", shard, shards, len(sw.Cells()))
	}
	sum, err := sw.Run(ctx)
	ui.close()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.jsonOut {
		enc := json.NewEncoder(out)
		for _, r := range sum.Results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		writeEvalSummary(out, sum)
		fmt.Fprintf(out, "%d cells: %d run, %d already done, %d failed; results in %s (t5zoo eval report %s)\n",
			sum.Done+sum.Skipped+sum.Failed, sum.Done, sum.Skipped, sum.Failed, store, f.out)
	}
	if sum.Failed > 0 {
		return fmt.Errorf("eval: %d of %d cells failed (see their errors above and in the results)", sum.Failed, sum.Done+sum.Skipped+sum.Failed)
	}
	return nil
}

// writeEvalSummary prints a line per cell: its metrics, or its error.
func writeEvalSummary(w io.Writer, sum evaluate.Summary) {
	for _, r := range sum.Results {
		c := evaluate.Cell{Model: r.Model.Name, Task: r.Task, Mode: r.Mode}
		if r.Status != evaluate.StatusOK {
			fmt.Fprintf(w, "%s: failed: %s\n", c, r.Error)
			continue
		}
		fmt.Fprintf(w, "%s: %s (%d examples, %d invalid, %.1f examples/s)\n", c, formatMetrics(r.Metrics), r.Examples, r.Invalid, r.ExamplesPerSecond)
	}
}

// formatMetrics writes metrics sorted by key, two decimals.
func formatMetrics(m evaluate.Metrics) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.2f", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// evalUI shows a sweep's progress: on a terminal, a bar for the running cell with
// examples/s and ETA (its own mpb container, ended before the cell's line is printed), and a
// line per cell as it ends; elsewhere only the lines.
type evalUI struct {
	w        io.Writer
	terminal bool
	quiet    bool

	mu   sync.Mutex
	bars *mpb.Progress // the running cell's, on a terminal
	bar  *mpb.Bar
	cell evaluate.Cell
	last time.Time
}

func newEvalUI(w io.Writer, quiet bool) *evalUI {
	u := &evalUI{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		u.terminal = true
	}
	return u
}

// writer is where other output (a pull's progress) goes: a line printed while a bar is
// shown would be overwritten, so the bar ends first.
func (u *evalUI) writer() io.Writer {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.endBarLocked()
	return u.w
}

func (u *evalUI) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{u}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// lockedWriter writes a log line with the bar ended.
type lockedWriter struct{ u *evalUI }

func (lw lockedWriter) Write(p []byte) (int, error) {
	lw.u.mu.Lock()
	defer lw.u.mu.Unlock()
	lw.u.endBarLocked()
	return lw.u.w.Write(p)
}

// endBarLocked removes the running cell's bar, if any.
func (u *evalUI) endBarLocked() {
	if u.bars == nil {
		return
	}
	u.bar.Abort(true)
	u.bars.Wait()
	u.bars, u.bar = nil, nil
}

func (u *evalUI) progress(p evaluate.Progress) {
	if u.quiet {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	name := fmt.Sprintf("[%d/%d] %s", p.CellIndex+1, p.Cells, p.Cell)
	switch p.State {
	case "loading":
		u.endBarLocked()
		fmt.Fprintf(u.w, "%s: loading %s\n", name, p.Cell.Model)
	case "running":
		if !u.terminal {
			return
		}
		if u.bars != nil && u.cell != p.Cell {
			u.endBarLocked()
		}
		if u.bars == nil {
			u.cell, u.last = p.Cell, time.Now()
			u.bars = mpb.New(mpb.WithOutput(u.w), mpb.WithWidth(32))
			u.bar = u.bars.AddBar(int64(p.Total),
				mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace}),
					decor.CountersNoUnit("%d / %d", decor.WC{W: 12})),
				mpb.AppendDecorators(decor.EwmaSpeed(0, "% .1f ex/s", 30, decor.WC{W: 14}),
					decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WC{W: 10})),
			)
		}
		u.bar.EwmaSetCurrent(int64(p.Done), time.Since(u.last))
		u.last = time.Now()
	case "done", "skipped", "failed":
		u.endBarLocked()
		switch p.State {
		case "failed":
			fmt.Fprintf(u.w, "%s: failed: %v\n", name, p.Err)
		case "skipped":
			fmt.Fprintf(u.w, "%s: already done (%s)\n", name, formatMetrics(p.Result.Metrics))
		default:
			fmt.Fprintf(u.w, "%s: %s (%d examples in %.1f s, %.1f examples/s)\n", name, formatMetrics(p.Result.Metrics), p.Result.Examples, p.Result.WallSeconds, p.Result.ExamplesPerSecond)
		}
	}
}

func (u *evalUI) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.endBarLocked()
}
