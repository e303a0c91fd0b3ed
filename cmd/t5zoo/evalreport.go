package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/report"
)

// evalReportFlags are the eval report verb's options.
type evalReportFlags struct {
	csv, json, markdown bool
	plots               string
	noPlots             bool
	bench               []string
	metrics             []string
	mode                string
}

// newEvalReportCmd builds "eval report"; open turns its argument into the results store
// (a folder or an s3:// prefix), as eval's --out does.
func newEvalReportCmd(open func(ctx context.Context, arg string) (evaluate.Store, error)) *cobra.Command {
	var f evalReportFlags
	cmd := &cobra.Command{
		Use:   "report DIR|s3://BUCKET/PREFIX",
		Short: "Print the models × tasks table of an eval sweep and draw its Pareto plots",
		Long: `Report reads every cell an eval sweep wrote (DIR or an s3:// prefix, as eval's --out)
and prints one models × tasks table per mode: models by parameter count, tasks in T5's
GLUE then SuperGLUE order then the others, each task with the metrics T5 reports for it
(MRPC f1/acc, STS-B pearson/spearman, CB f1/acc, MultiRC f1/em, ReCoRD f1/em), the GLUE and
SuperGLUE averages by T5's grouping (marked * when some groups are missing: the footnote
lists them), and "failed" for a cell that failed (the footnotes give the errors). Files that
are not readable results are listed as warnings on stderr and skipped.

It also draws Pareto plots, as SVG and PNG: each benchmark average (and each --metric)
against parameters, FLOPs per token and, when bench results are present, measured decode
ms/token at batch 1, with the frontier (the best quality at each cost) marked. Bench
results are "t5zoo bench --json" lines in bench*.jsonl or bench*.json files at the top of
the store, or files given with --bench; a model matches them by shape and dtype. Plots go
to --plots, by default DIR/plots (./plots for an s3:// store). docs/eval-report.md
describes every output.`,
		Example: `  t5zoo eval report sweep/
  t5zoo eval report sweep/ --markdown --mode predict > RESULTS.md
  t5zoo eval report sweep/ --csv > sweep.csv
  t5zoo bench --shape t5-efficient-tiny,t5-efficient-mini --json > sweep/bench.jsonl
  t5zoo eval report sweep/ --metric glue/sst2 --metric glue/mrpc/accuracy --plots figures/
  t5zoo eval report s3://models/evals --json --plots ./plots`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEvalReport(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), open, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.csv, "csv", false, "write CSV: one column per task metric, full precision")
	fl.BoolVar(&f.json, "json", false, "write JSON (schema "+report.TableSchema+")")
	fl.BoolVar(&f.markdown, "markdown", false, "write Markdown tables")
	fl.StringVar(&f.plots, "plots", "", "folder for the Pareto plots (default DIR/plots; ./plots for an s3:// store)")
	fl.BoolVar(&f.noPlots, "no-plots", false, "print the tables only")
	fl.StringArrayVar(&f.bench, "bench", nil, "bench results file (t5zoo bench --json output); repeatable")
	fl.StringArrayVar(&f.metrics, "metric", nil, "also plot a task's metric: TASK (its first reported metric) or TASK/KEY; repeatable")
	fl.StringVar(&f.mode, "mode", "", "report one mode: predict or rank (default: a table per mode present)")
	cmd.MarkFlagsMutuallyExclusive("csv", "json", "markdown")
	cmd.MarkFlagsMutuallyExclusive("plots", "no-plots")
	return cmd
}

func runEvalReport(ctx context.Context, stdout, stderr io.Writer, open func(context.Context, string) (evaluate.Store, error), arg string, f evalReportFlags) error {
	var mode evaluate.Mode
	if f.mode != "" {
		m, err := evaluate.ParseMode(f.mode)
		if err != nil {
			return fmt.Errorf("--mode: %w", err)
		}
		mode = m
	}
	// A folder store is created when opened (for eval's --out); a report of a mistyped
	// folder must not leave an empty one behind.
	if !strings.Contains(arg, "://") {
		if _, err := os.Stat(arg); err != nil {
			return fmt.Errorf("eval report: results folder: %w", err)
		}
	}
	store, err := open(ctx, arg)
	if err != nil {
		return fmt.Errorf("eval report: %w", err)
	}
	r, err := report.Load(ctx, store)
	if err != nil {
		return err
	}
	warn := func(ws []report.Warning) {
		for _, w := range ws {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	warn(r.Warnings)
	if len(r.Cells) == 0 {
		return fmt.Errorf("eval report: no results in %s", store)
	}
	tables, err := r.Tables(report.TableOptions{Mode: mode})
	if err != nil {
		return err
	}

	// Bench files named on the command line must parse; the store's are warnings, like
	// its results files.
	bench, bwarns, err := report.LoadBench(ctx, store)
	if err != nil {
		return err
	}
	warn(bwarns)
	for _, name := range f.bench {
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("--bench: %w", err)
		}
		rows, err := report.ParseBench(data)
		if err != nil {
			return fmt.Errorf("--bench %s: %w", name, err)
		}
		bench = append(bench, rows...)
	}
	// Charts before any output: a bad --metric fails before the table is printed.
	var charts []*report.Chart
	var cwarns []report.Warning
	if !f.noPlots {
		if charts, cwarns, err = report.Charts(tables, report.ChartOptions{Metrics: f.metrics, Bench: bench}); err != nil {
			return err
		}
	}

	switch {
	case f.csv:
		err = report.WriteCSV(stdout, tables)
	case f.json:
		err = report.WriteJSON(stdout, r.Store, tables, r.Warnings)
	case f.markdown:
		err = report.WriteMarkdown(stdout, tables)
	default:
		err = report.WriteText(stdout, tables)
	}
	if err != nil {
		return fmt.Errorf("eval report: write: %w", err)
	}
	if f.noPlots {
		return nil
	}
	// The same reason (a model without a bench row) recurs in every plot of a measure:
	// say it once.
	said := map[string]int{}
	var order []string
	for _, w := range cwarns {
		msg := w.Err.Error()
		if said[msg] == 0 {
			order = append(order, msg)
		}
		said[msg]++
	}
	for _, msg := range order {
		fmt.Fprintf(stderr, "warning: %s (%d plots)\n", msg, said[msg])
	}
	if len(charts) == 0 {
		fmt.Fprintln(stderr, "eval report: nothing to plot (no benchmark average; add --metric TASK)")
		return nil
	}
	dir := f.plots
	if dir == "" {
		if ds, ok := store.(interface{ Root() string }); ok {
			dir = filepath.Join(ds.Root(), "plots")
		} else {
			dir = "plots"
			fmt.Fprintf(stderr, "eval report: %s is not a folder: plots go to ./plots (choose with --plots DIR)\n", store)
		}
	}
	files, err := report.WritePlots(ctx, dir, charts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "eval report: wrote %d plots (%d files, SVG and PNG) to %s\n", len(charts), len(files), dir)
	return nil
}
