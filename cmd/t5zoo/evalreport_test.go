package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/report"
)

// reportCell is a finished cell of a synthetic sweep.
func reportCell(model, shape string, params int64, task string, mode evaluate.Mode, metrics evaluate.Metrics) *evaluate.CellResult {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	bench := ""
	if b, _, ok := strings.Cut(task, "/"); ok {
		bench = b
	}
	return &evaluate.CellResult{
		Schema: evaluate.ResultSchema, Status: evaluate.StatusOK,
		Model: evaluate.ModelInfo{Name: model, Digest: "sha256:" + strings.Repeat("c", 64), DigestOf: "manifest",
			Shape: shape, Params: params, FLOPsPerToken: 2 * float64(params), DType: "f32"},
		Task: task, TaskVersion: "v002.1", Benchmark: bench, Mode: mode, Examples: 872, Metrics: metrics,
		Started: t0, Finished: t0.Add(time.Minute), Version: "test",
	}
}

// reportSweep writes a sweep of three shapes on SST-2, MRPC and CB (small's CB failed),
// tiny and mini also in rank mode, a bench file, and a broken results file.
func reportSweep(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := evaluate.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, r := evaluate.Predict, evaluate.Rank
	type m struct {
		name   string
		params int64
	}
	tiny, mini, small := m{"t5-efficient-tiny", 15_570_688}, m{"t5-efficient-mini", 31_232_512}, m{"t5-efficient-small", 60_506_624}
	cells := []*evaluate.CellResult{
		reportCell(tiny.name, tiny.name, tiny.params, "glue/sst2", p, evaluate.Metrics{"accuracy": 82.5}),
		reportCell(tiny.name, tiny.name, tiny.params, "glue/mrpc", p, evaluate.Metrics{"f1": 80.1, "accuracy": 71.3}),
		reportCell(tiny.name, tiny.name, tiny.params, "super_glue/cb", p, evaluate.Metrics{"mean_3class_f1": 40.0, "accuracy": 60.7}),
		reportCell(mini.name, mini.name, mini.params, "glue/sst2", p, evaluate.Metrics{"accuracy": 86.0}),
		reportCell(mini.name, mini.name, mini.params, "glue/mrpc", p, evaluate.Metrics{"f1": 83.3, "accuracy": 75.0}),
		reportCell(mini.name, mini.name, mini.params, "super_glue/cb", p, evaluate.Metrics{"mean_3class_f1": 55.5, "accuracy": 71.4}),
		reportCell(small.name, small.name, small.params, "glue/sst2", p, evaluate.Metrics{"accuracy": 89.9}),
		reportCell(small.name, small.name, small.params, "glue/mrpc", p, evaluate.Metrics{"f1": 86.0, "accuracy": 80.4}),
		reportCell(tiny.name, tiny.name, tiny.params, "glue/sst2", r, evaluate.Metrics{"accuracy": 83.0}),
		reportCell(mini.name, mini.name, mini.params, "glue/sst2", r, evaluate.Metrics{"accuracy": 87.1}),
	}
	fail := reportCell(small.name, small.name, small.params, "super_glue/cb", p, nil)
	fail.Status, fail.Error = evaluate.StatusFailed, "read data: open cb/val.jsonl: no such file or directory"
	cells = append(cells, fail)
	for _, c := range cells {
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(t.Context(), evaluate.Cell{Model: c.Model.Name, Task: c.Task, Mode: c.Mode}.ResultKey(), data); err != nil {
			t.Fatal(err)
		}
	}
	bench := `{"shape":"t5-efficient-tiny","dtype":"f32","batch":1,"decode_ms_per_token":2.4}
{"shape":"t5-efficient-mini","dtype":"f32","batch":1,"decode_ms_per_token":3.9}
{"shape":"t5-efficient-small","dtype":"f32","batch":1,"decode_ms_per_token":7.7}
`
	if err := s.Put(t.Context(), "bench.jsonl", []byte(bench)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "junk/glue_sst2/predict.json", []byte(`{"schema":`)); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openDirStore(_ context.Context, arg string) (evaluate.Store, error) {
	return evaluate.NewDirStore(arg)
}

func runReport(t *testing.T, open func(context.Context, string) (evaluate.Store, error), args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newEvalReportCmd(open)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func TestEvalReportText(t *testing.T) {
	dir := reportSweep(t)
	out, errOut, err := runReport(t, openDirStore, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, want := range []string{
		"mode: predict\n",
		"MODEL               PARAMS  GLUE   glue/sst2  glue/mrpc  SuperGLUE  super_glue/cb\n",
		"t5-efficient-tiny   15.6M   79.1*  82.5       80.1/71.3  50.4*      40.0/60.7\n",
		"t5-efficient-small  60.5M   86.6*  89.9       86.0/80.4  -          failed\n",
		"* GLUE average over the groups present; missing CoLA, STSB, QQP, MNLI, QNLI, GLUE RTE: t5-efficient-tiny, t5-efficient-mini, t5-efficient-small\n",
		"  t5-efficient-small × super_glue/cb: read data: open cb/val.jsonl: no such file or directory\n",
		"\nmode: rank\n",
		"t5-efficient-mini  31.2M   87.1*  87.1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "warning: junk/glue_sst2/predict.json: ") {
		t.Errorf("no warning for the broken file:\n%s", errOut)
	}
	plots := filepath.Join(dir, "plots")
	// predict: GLUE and SuperGLUE × params, FLOPs, decode; rank: GLUE × the same three.
	if !strings.Contains(errOut, "wrote 9 plots (18 files, SVG and PNG) to "+plots) {
		t.Errorf("stderr:\n%s", errOut)
	}
	entries, err := os.ReadDir(plots)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, want := range []string{"predict-glue-params.png", "predict-glue-decode-ms.svg", "predict-super_glue-flops.png", "rank-glue-decode-ms.png"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s in %v", want, names)
		}
	}
	f, err := os.Open(filepath.Join(plots, "predict-glue-decode-ms.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != 1200 || cfg.Height != 825 {
		t.Errorf("PNG %+v %v, want 1200×825", cfg, err)
	}
	// A rerun reads the same store with its plots folder in it: the plots are not results.
	_, errOut, err = runReport(t, openDirStore, dir, "--no-plots")
	if err != nil || strings.Count(errOut, "warning:") != 1 {
		t.Errorf("rerun: %v\n%s", err, errOut)
	}
}

func TestEvalReportFormats(t *testing.T) {
	dir := reportSweep(t)
	out, _, err := runReport(t, openDirStore, dir, "--csv", "--mode", "predict", "--no-plots")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || recs[0][0] != "mode" || recs[1][1] != "t5-efficient-tiny" || !slices.Contains(recs[0], "glue/mrpc:f1") {
		t.Errorf("CSV %q", recs)
	}
	if i := slices.Index(recs[0], "super_glue/cb:accuracy"); recs[3][i] != "failed" {
		t.Errorf("small CB = %q, want failed", recs[3][i])
	}

	out, _, err = runReport(t, openDirStore, dir, "--json", "--no-plots")
	if err != nil {
		t.Fatal(err)
	}
	var js report.JSONReport
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatal(err)
	}
	if js.Schema != report.TableSchema || len(js.Tables) != 2 || len(js.Warnings) != 1 || js.Tables[1].Mode != evaluate.Rank {
		t.Errorf("JSON %+v", js)
	}

	out, _, err = runReport(t, openDirStore, dir, "--markdown", "--mode", "rank", "--no-plots")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "### rank\n\n| model | params | GLUE avg | glue/sst2 acc |\n| --- | ---: | ---: | ---: |\n") {
		t.Errorf("markdown:\n%s", out)
	}
}

func TestEvalReportPlotOptions(t *testing.T) {
	dir := reportSweep(t)
	bench := filepath.Join(t.TempDir(), "more.jsonl")
	// A second run of small's bench: the plots take the median of batch-1 rows.
	if err := os.WriteFile(bench, []byte(`{"shape":"t5-efficient-small","dtype":"f32","batch":1,"decode_ms_per_token":8.1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plots := filepath.Join(t.TempDir(), "figs")
	_, errOut, err := runReport(t, openDirStore, dir, "--mode", "predict", "--metric", "glue/mrpc/accuracy", "--metric", "sst2", "--bench", bench, "--plots", plots)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "wrote 12 plots (24 files, SVG and PNG) to "+plots) {
		t.Errorf("stderr:\n%s", errOut)
	}
	for _, f := range []string{"predict-glue_mrpc.accuracy-decode-ms.svg", "predict-glue_sst2.accuracy-params.png"} {
		if _, err := os.Stat(filepath.Join(plots, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "plots")); err == nil {
		t.Errorf("plots written to the store although --plots was given")
	}
}

// hiddenRoot is a store that is not a folder (as an s3:// one).
type hiddenRoot struct{ evaluate.Store }

func TestEvalReportRemoteStorePlotsHere(t *testing.T) {
	dir := reportSweep(t)
	here := t.TempDir()
	t.Chdir(here)
	open := func(ctx context.Context, arg string) (evaluate.Store, error) {
		s, err := evaluate.NewDirStore(dir)
		return hiddenRoot{s}, err
	}
	_, errOut, err := runReport(t, open, "s3://bucket/evals")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, "is not a folder: plots go to ./plots") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(here, "plots", "predict-glue-params.svg")); err != nil {
		t.Error(err)
	}
}

func TestEvalReportErrors(t *testing.T) {
	dir := reportSweep(t)
	empty := t.TempDir()
	badBench := filepath.Join(t.TempDir(), "bench.jsonl")
	if err := os.WriteFile(badBench, []byte("{\"shape\":\"x\",\"batch\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{empty}, "no results in " + empty},
		{[]string{filepath.Join(empty, "typo")}, "results folder: stat " + filepath.Join(empty, "typo") + ": no such file or directory"},
		{[]string{dir, "--mode", "beam"}, `--mode: mode "beam": want predict or rank`},
		{[]string{dir, "--mode", "rank", "--metric", "glue/mrpc"}, "--metric glue/mrpc: no such task in the results (tasks: glue/sst2)"},
		{[]string{dir, "--metric", "glue/mrpc/mcc"}, `glue/mrpc has no metric "mcc"`},
		{[]string{dir, "--bench", badBench}, "--bench " + badBench + ": bench results: line 1: x: decode_ms_per_token 0"},
		{[]string{dir, "--bench", filepath.Join(empty, "none.jsonl")}, "--bench: open"},
		{[]string{dir, "--csv", "--json"}, "none of the others can be"},
		{[]string{dir, "--plots", "x", "--no-plots"}, "none of the others can be"},
		{[]string{}, "accepts 1 arg(s)"},
	} {
		out, _, err := runReport(t, openDirStore, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want %q", c.args, err, c.err)
		}
		if out != "" && !strings.Contains(out, "Usage:") {
			t.Errorf("%q printed a table before failing:\n%s", c.args, out)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "typo")); err == nil {
		t.Errorf("reporting a missing folder created it")
	}
}
