package main

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
)

var (
	goldenRelu  = filepath.Join("..", "..", "testdata", "golden", "tiny-relu", "checkpoint")
	goldenGated = filepath.Join("..", "..", "testdata", "golden", "tiny-gated", "checkpoint")
	evalData    = filepath.Join("..", "..", "testdata", "eval")
)

// buildBinary builds the t5zoo binary into a temporary folder of t (without the race
// detector, whose shadow memory some tests' limits do not hold).
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "t5zoo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// evalCells reads a results folder: each results JSON without its timing, and each
// per-example file.
func evalCells(t *testing.T, dir string) map[string]string {
	t.Helper()
	s, err := evaluate.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		data, err := s.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(k, ".json") {
			r, err := evaluate.ParseResult(data)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			r.WallSeconds, r.ExamplesPerSecond, r.Started, r.Finished = 0, 0, time.Time{}, time.Time{}
			b, _ := json.Marshal(r)
			data = b
		}
		out[k] = string(data)
	}
	return out
}

// TestEvalSurvivesKill9 runs a sweep of 2 models × 3 tasks × 2 modes as a real process,
// kills it with SIGKILL as soon as some cells are written, again later, then lets a rerun
// finish: the results equal those of a sweep that was never interrupted.
func TestEvalSurvivesKill9(t *testing.T) {
	bin := buildBinary(t)
	args := func(out string) []string {
		return []string{"eval", goldenRelu, goldenGated, "--task", "glue/sst2,glue/rte,super_glue/boolq",
			"--mode", "predict,rank", "--data", evalData, "--out", out, "--batch", "1", "--quiet"}
	}
	whole := t.TempDir()
	if out, err := exec.Command(bin, args(whole)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted sweep: %v\n%s", err, out)
	}
	want := evalCells(t, whole)
	if len(want) != 24 {
		t.Fatalf("uninterrupted sweep wrote %d files, want 24", len(want))
	}

	out := t.TempDir()
	kills := 0
	for _, atLeast := range []int{1, 5, 9} {
		cmd := exec.Command(bin, args(out)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		killed := false
	poll:
		for {
			select {
			case <-exited:
				break poll
			case <-time.After(time.Millisecond):
			}
			matches, _ := filepath.Glob(filepath.Join(out, "*", "*", "*.json"))
			if len(matches) >= atLeast*2 && len(matches) < 24 {
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				killed = true
				break
			}
		}
		if killed {
			kills++
		}
	}
	if kills == 0 {
		t.Fatal("the sweep always finished before it could be killed")
	}
	final, err := exec.Command(bin, args(out)...).CombinedOutput()
	if err != nil {
		t.Fatalf("resumed sweep: %v\n%s", err, final)
	}
	got := evalCells(t, out)
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("after %d kills the cells are %v\nwant %v", kills, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after %d kills %s differs:\n%s\nwant\n%s", kills, k, got[k], v)
		}
	}
}

func TestEvalCLI(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, err := runCLI(t, "", "eval", goldenRelu, "--task", "glue/sst2,squad", "--mode", "predict,rank",
		"--data", evalData, "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"× glue/sst2 (predict): accuracy", "× glue/sst2 (rank): accuracy", "× squad (predict): em", "3 cells: 3 run, 0 already done, 0 failed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "squad (rank): the task does not run in this mode") {
		t.Errorf("stderr does not say squad is not ranked:\n%s", stderr)
	}
	// A rerun skips everything; --json prints the cells.
	stdout, _, err = runCLI(t, "", "eval", goldenRelu, "--task", "glue/sst2", "--mode", "rank", "--data", evalData, "--out", out, "--json", "-q")
	if err != nil {
		t.Fatal(err)
	}
	var r evaluate.CellResult
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Task != "glue/sst2" || r.Mode != evaluate.Rank || r.Status != evaluate.StatusOK || r.Model.DigestOf != "directory" {
		t.Errorf("--json: %+v, %v\n%s", r, err, stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", goldenRelu, "--task", "glue/sst", "--data", evalData}, `did you mean glue/sst2`},
		{[]string{"eval", goldenRelu, "--task", "glue/sst2", "--shard", "3/3", "--data", evalData}, "--shard"},
		{[]string{"eval", goldenRelu, "--task", "glue/sst2", "--mode", "best", "--data", evalData}, "want predict or rank"},
		{[]string{"eval", goldenRelu, "--task", "glue/sst2", "--out", "ftp://x/y"}, "want a folder or s3://"},
		{[]string{"eval", goldenRelu}, `"task" not set`},
	} {
		// A default --out first, so that a case's own --out wins.
		_, _, err := runCLI(t, "", append([]string{"eval", "--out", filepath.Join(t.TempDir(), "o")}, tc.args[1:]...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}

	// Missing data fails the cells, names the file, and the exit is an error.
	stdout, _, err = runCLI(t, "", "eval", goldenRelu, "--task", "glue/sst2", "--data", t.TempDir(), "--out", t.TempDir(), "-q")
	if err == nil || !strings.Contains(err.Error(), "1 of 1 cells failed") || !strings.Contains(stdout, filepath.Join("glue", "SST-2", "dev.tsv")) {
		t.Errorf("missing data: %v\n%s", err, stdout)
	}
}

func TestEvalTasksCLI(t *testing.T) {
	stdout, _, err := runCLI(t, "", "eval", "tasks", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != len(task.Builtin()) {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	for _, r := range rows {
		if len(r.Files) == 0 {
			t.Errorf("%s lists no file", r.Name)
		}
	}
}

func TestEvalMetricsCLI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		task, lines string
		args        []string
		want        string
	}{
		// T5's metrics_test vectors through the CLI.
		{"glue/sst2", `{"target":"positive","prediction":"positive"}` + "\n" + `{"target":"negative","prediction":"positive"}` + "\n" +
			`{"target":"negative","prediction":"negative"}` + "\n" + `{"target":"positive","prediction":"maybe"}` + "\n", nil,
			"accuracy 50.00 (4 examples, 1 invalid)"},
		{"squad", `{"target":["big moose","hippo"],"prediction":"‘a big  Moose!‘"}` + "\n" + `{"target":["correct1"],"prediction":"wrong"}` + "\n" +
			`{"target":["correct2.1","correct2.2"],"prediction":"correct2.2"}` + "\n" + `{"target":["a","b"],"prediction":"c"}` + "\n", nil,
			"em 25.00, f1 35.00"},
		{"glue/stsb", `{"target":"2.4","prediction":"2.4"}` + "\n" + `{"target":"0.0","prediction":"0.2"}` + "\n" + `{"target":"5.0","prediction":"4.8"}` + "\n", nil,
			"pearson_corrcoef"},
	} {
		stdout, _, err := runCLI(t, "", append([]string{"eval", "metrics", "--task", tc.task, "--predictions", write("p.jsonl", tc.lines)}, tc.args...)...)
		if err != nil || !strings.Contains(stdout, tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.task, stdout, err, tc.want)
		}
	}
	// eval's own examples files are valid input, by id (WSC) or by target.
	out := t.TempDir()
	if _, _, err := runCLI(t, "", "eval", goldenRelu, "--task", "super_glue/wsc,super_glue/cb", "--data", evalData, "--out", out, "-q"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"super_glue/wsc", "super_glue/cb"} {
		key := evaluate.Cell{Model: goldenRelu, Task: name, Mode: evaluate.Predict}.ResultKey()
		data, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		r, err := evaluate.ParseResult(data)
		if err != nil {
			t.Fatal(err)
		}
		examples := filepath.Join(out, filepath.FromSlash(r.ExamplesFile))
		stdout, _, err := runCLI(t, "", "eval", "metrics", "--task", name, "--predictions", examples, "--data", evalData, "--json")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got struct {
			Metrics evaluate.Metrics `json:"metrics"`
			Invalid int              `json:"invalid"`
		}
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Metrics, r.Metrics) || got.Invalid != r.Invalid {
			t.Errorf("%s: metrics from the examples file %v (%d invalid), eval said %v (%d)", name, got.Metrics, got.Invalid, r.Metrics, r.Invalid)
		}
	}
	for _, tc := range []struct{ task, lines, want string }{
		{"glue/sst2", "{\"target\":\"positive\"}\n", `p.jsonl:1: no "prediction"`},
		{"glue/sst2", "{\"target\":\"positive\",\"prediction\":\"x\"}\n{oops\n", "p.jsonl:2:"},
		{"glue/sst2", "\n\n", "no predictions"},
		{"glue/sst2", "{\"prediction\":\"x\"}\n", `want "target" or "id"`},
		{"super_glue/wsc", "{\"target\":\"Tom\",\"prediction\":\"Tom\"}\n", "needs the example's id"},
		{"glue/sst2", "{\"id\":\"0\",\"prediction\":\"x\"}\n", "needs the task's data"},
		{"glue/sst2", "{\"target\":7,\"prediction\":\"x\"}\n", "must be a string or a non-empty list"},
	} {
		_, _, err := runCLI(t, "", "eval", "metrics", "--task", tc.task, "--predictions", write("p.jsonl", tc.lines))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.lines, err, tc.want)
		}
	}
}

func FuzzPredictionsFile(f *testing.F) {
	f.Add("{\"target\":\"positive\",\"prediction\":\"positive\"}\n")
	f.Add("{\"target\":[\"a\",\"b\"],\"prediction\":\"a\",\"group\":\"g\"}\n")
	f.Add("{\"id\":\"3\",\"prediction\":\"x\"}\n{\"target\":\"\",\"prediction\":\"\"}")
	tasks, err := task.Resolve([]string{"glue/sst2", "squad", "super_glue/multirc", "glue/stsb"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, lines string) {
		for _, tk := range tasks {
			scored, n, err := scorePredictions(t.Context(), tk, strings.NewReader(lines), "f.jsonl", "")
			if err == nil && (n == 0 || scored.Invalid > n) {
				t.Fatalf("%s: %d examples, %d invalid", tk.Name(), n, scored.Invalid)
			}
		}
	})
}

// TestDeployEvalJob reads deploy/eval-job.yaml as Kubernetes would run it: every index's
// arguments parse as an eval command, and the shards cover 0..completions-1 of a count
// equal to completions.
func TestDeployEvalJob(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "eval-job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var job struct {
		Kind string `yaml:"kind"`
		Spec struct {
			CompletionMode string `yaml:"completionMode"`
			Completions    int    `yaml:"completions"`
			Template       struct {
				Spec struct {
					Containers []struct {
						Args []string `yaml:"args"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &job); err != nil {
		t.Fatal(err)
	}
	if job.Kind != "Job" || job.Spec.CompletionMode != "Indexed" || job.Spec.Completions < 1 || len(job.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("not an Indexed Job with one container: %+v", job)
	}
	for i := range job.Spec.Completions {
		var args []string
		for _, a := range job.Spec.Template.Spec.Containers[0].Args {
			args = append(args, strings.ReplaceAll(a, "$(JOB_COMPLETION_INDEX)", strconv.Itoa(i)))
		}
		cmd := newEvalCmd()
		if args[0] != "eval" {
			t.Fatalf("args start with %q", args[0])
		}
		if err := cmd.ParseFlags(args[1:]); err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		shard, _ := cmd.Flags().GetString("shard")
		si, sn, err := parseShard(shard)
		if err != nil || si != i || sn != job.Spec.Completions {
			t.Errorf("index %d: --shard %q = %d/%d, %v; want %d/%d", i, shard, si, sn, err, i, job.Spec.Completions)
		}
		tasks, _ := cmd.Flags().GetStringSlice("task")
		if _, err := task.Resolve(tasks); err != nil {
			t.Errorf("tasks %v: %v", tasks, err)
		}
	}
}
