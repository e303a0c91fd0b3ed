package task

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// trainFixtures is the data folder of train-split excerpts: testdata/train/README.md.
const trainFixtures = "testdata/train"

// TestLoadSplitFixtures reads the train split of each task with fixtures and compares every
// example with the reference emulation's (testdata/train/emulate_train.py).
func TestLoadSplitFixtures(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(trainFixtures, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]expectedExample
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"glue/sst2", "glue/cola", "glue/mrpc", "super_glue/boolq", "super_glue/cb",
		"super_glue/wsc", "super_glue/record", "squad"} {
		t.Run(name, func(t *testing.T) {
			tk, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tk.LoadSplit(t.Context(), trainFixtures, SplitTrain)
			if err != nil {
				t.Fatal(err)
			}
			exp := want[name]
			if len(exp) == 0 || len(got) != len(exp) {
				t.Fatalf("%d examples, want %d", len(got), len(exp))
			}
			for i, e := range exp {
				g := got[i]
				if g.ID != e.ID || g.Input != e.Input || g.Target != e.Target {
					t.Errorf("example %d:\n got %q %q → %q\nwant %q %q → %q", i, g.ID, g.Input, g.Target, e.ID, e.Input, e.Target)
				}
				if e.Answers != nil && !slices.Equal(g.Answers, e.Answers) {
					t.Errorf("example %d: answers %q, want %q", i, g.Answers, e.Answers)
				}
			}
		})
	}
}

// TestLoadSplitTrainForms checks what the train split does differently from Load.
func TestLoadSplitTrainForms(t *testing.T) {
	load := func(name string) []Example {
		t.Helper()
		tk, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		exs, err := tk.LoadSplit(t.Context(), trainFixtures, SplitTrain)
		if err != nil {
			t.Fatal(err)
		}
		return exs
	}
	// MRPC: the MSR file's rows 9 and 18 are dev pairs (dev_ids.tsv) and must not train.
	mrpc := load("glue/mrpc")
	if len(mrpc) != 18 {
		t.Errorf("MRPC: %d examples, want the 20 MSR rows less 2 dev pairs", len(mrpc))
	}
	for _, ex := range mrpc {
		if ex.ID == "9" || ex.ID == "18" {
			t.Errorf("MRPC: dev pair %s in the train split", ex.ID)
		}
	}
	// WSC: simple_train keeps only the rows labelled True (8 of the first 12, and line 235).
	wsc := load("super_glue/wsc")
	if len(wsc) != 9 {
		t.Errorf("WSC: %d examples, want 9", len(wsc))
	}
	for _, ex := range wsc {
		if !ex.goldSet || ex.gold != 1 {
			t.Errorf("WSC example %s has gold %d", ex.ID, ex.gold)
		}
	}
	if last := wsc[len(wsc)-1]; last.Target != "willow-towered Canopy Huntertropic wrestles" {
		t.Errorf("WSC line 235: target %q, want _fix_wst's repaired span", last.Target)
	}
	// ReCoRD: one example per answer (the second query has two).
	record := load("super_glue/record")
	var targets []string
	for _, ex := range record {
		targets = append(targets, ex.ID+"="+ex.Target)
	}
	if want := []string{"p0/q0=Alice", "p0/q1=Paris", "p0/q1=Zoë", "p1/q2=port"}; !slices.Equal(targets, want) {
		t.Errorf("ReCoRD train examples %q, want %q", targets, want)
	}
}

// TestLoadSplitLayouts covers the file names and errors of LoadSplit and SplitPaths.
func TestLoadSplitLayouts(t *testing.T) {
	sst2, err := Lookup("glue/sst2")
	if err != nil {
		t.Fatal(err)
	}
	// The validation split is Load's.
	val, err := sst2.LoadSplit(t.Context(), fixtures, SplitValidation)
	if err != nil {
		t.Fatal(err)
	}
	load, err := sst2.Load(t.Context(), fixtures)
	if err != nil || len(val) != len(load) || !sameExample(val[0], load[0]) {
		t.Errorf("validation split: %d examples, Load %d (%v)", len(val), len(load), err)
	}
	if _, err := sst2.LoadSplit(t.Context(), fixtures, "test"); err == nil || !strings.Contains(err.Error(), `"test"`) {
		t.Errorf("unknown split: err = %v", err)
	}
	if got := sst2.Splits(); !slices.Equal(got, []string{SplitTrain, SplitValidation}) {
		t.Errorf("Splits = %q", got)
	}

	// The direct layout (<data>/SST-2/train.tsv) and CoLA's GLUE name train.tsv.
	dir := t.TempDir()
	copyTo := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyTo(filepath.Join(trainFixtures, "glue/SST-2/train.tsv"), filepath.Join(dir, "SST-2", "train.tsv"))
	copyTo(filepath.Join(trainFixtures, "glue/CoLA/in_domain_train.tsv"), filepath.Join(dir, "glue", "CoLA", "train.tsv"))
	copyTo(filepath.Join(trainFixtures, "glue/MRPC/msr_paraphrase_train.txt"), filepath.Join(dir, "glue", "MRPC", "train.tsv"))
	for name, file := range map[string]string{"glue/sst2": "SST-2/train.tsv", "glue/cola": "glue/CoLA/train.tsv", "glue/mrpc": "glue/MRPC/train.tsv"} {
		tk, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		paths, err := tk.SplitPaths(dir, SplitTrain)
		if err != nil || !slices.Equal(paths, []string{filepath.Join(dir, filepath.FromSlash(file))}) {
			t.Errorf("%s: SplitPaths = %q, %v; want %s", name, paths, err, file)
		}
		exs, err := tk.LoadSplit(t.Context(), dir, SplitTrain)
		if err != nil || len(exs) == 0 {
			t.Errorf("%s from %s: %d examples, %v", name, file, len(exs), err)
		}
	}
	// MRPC without dev_ids.tsv reads train.tsv as it is (here: all 20 MSR rows).
	if mrpc, _ := Lookup("glue/mrpc"); mrpc != nil {
		exs, err := mrpc.LoadSplit(t.Context(), dir, SplitTrain)
		if err != nil || len(exs) != 20 {
			t.Errorf("MRPC train.tsv: %d examples, %v", len(exs), err)
		}
	}

	// Every built-in names the train files it tried and where they come from.
	empty := t.TempDir()
	for _, tk := range Builtin() {
		_, err := tk.LoadSplit(t.Context(), empty, SplitTrain)
		var missing *MissingDataError
		if !errors.As(err, &missing) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: err = %v, want a *MissingDataError", tk.Name(), err)
		}
		msg := err.Error()
		if len(missing.Tried) < 2 || !strings.Contains(msg, "train") || !strings.Contains(msg, "https://") ||
			!strings.HasPrefix(msg, tk.Name()+" train: ") || strings.Contains(msg, "dev.tsv") || strings.Contains(msg, "val.jsonl") {
			t.Errorf("%s: message %q should name the train paths tried and where they come from", tk.Name(), msg)
		}
	}

	// A spec task has only its validation split.
	spec, err := ParseSpec([]byte("name: mine/t\ndata: d.jsonl\ninput: \"{x}\"\ntarget: y\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Splits(); !slices.Equal(got, []string{SplitValidation}) {
		t.Errorf("spec Splits = %q", got)
	}
	if _, err := spec.LoadSplit(t.Context(), empty, SplitTrain); err == nil || !strings.Contains(err.Error(), "no train split") {
		t.Errorf("spec train split: err = %v", err)
	}
}

// TestLoadSplitBadRows checks that a malformed train row is a *LineError naming the file.
func TestLoadSplitBadRows(t *testing.T) {
	cases := []struct {
		task, file, body, want string
	}{
		{"glue/sst2", "glue/SST-2/train.tsv", "sentence\tlabel\nfine\t1\nbad\tx\n", "train.tsv:3"},
		{"glue/mrpc", "glue/MRPC/dev_ids.tsv", "1\t2\n3\n", "dev_ids.tsv:2"},
		{"super_glue/cb", "superglue/CB/train.jsonl", `{"premise":"p","hypothesis":"h","idx":0}` + "\n", "train.jsonl:1"},
	}
	for _, c := range cases {
		t.Run(c.task, func(t *testing.T) {
			dir := t.TempDir()
			write := func(rel string, b []byte) {
				t.Helper()
				p := filepath.Join(dir, filepath.FromSlash(rel))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.task == "glue/mrpc" {
				msr, err := os.ReadFile(filepath.Join(trainFixtures, "glue/MRPC/msr_paraphrase_train.txt"))
				if err != nil {
					t.Fatal(err)
				}
				write("glue/MRPC/msr_paraphrase_train.txt", msr)
			}
			write(c.file, []byte(c.body))
			tk, err := Lookup(c.task)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tk.LoadSplit(t.Context(), dir, SplitTrain)
			var le *LineError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want a *LineError at %s", err, c.want)
			}
		})
	}
}

// realTrainCounts are the train sizes T5's mixtures weight by (glue_utils.py; MultiRC
// counts answers, ReCoRD T5's per-answer examples, WSC simple_train's True rows).
var realTrainCounts = map[string]int{
	"glue/cola": 8551, "glue/sst2": 67349, "glue/mrpc": 3668, "glue/qqp": 363849, "glue/stsb": 5749,
	"glue/mnli_matched": 392702, "glue/mnli_mismatched": 392702, "glue/qnli": 104743, "glue/rte": 2490, "glue/wnli": 635,
	"super_glue/boolq": 9427, "super_glue/cb": 250, "super_glue/copa": 400, "super_glue/multirc": 27243,
	"super_glue/record": 138854, "super_glue/rte": 2490, "super_glue/wic": 5428, "super_glue/wsc": 259, "squad": 87599,
}

// TestLoadSplitRealData reads every built-in's train split from the data folder
// T5ZOO_EVAL_DATA names and checks the row counts; files not there are skipped.
func TestLoadSplitRealData(t *testing.T) {
	dir := os.Getenv("T5ZOO_EVAL_DATA")
	if dir == "" {
		t.Skip("T5ZOO_EVAL_DATA names no data folder")
	}
	for _, tk := range Builtin() {
		t.Run(tk.Name(), func(t *testing.T) {
			exs, err := tk.LoadSplit(t.Context(), dir, SplitTrain)
			if errors.Is(err, fs.ErrNotExist) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := realTrainCounts[tk.Name()]; len(exs) != want {
				t.Errorf("%d examples, want %d", len(exs), want)
			}
		})
	}
}
