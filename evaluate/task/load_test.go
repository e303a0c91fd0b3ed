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

// fixtures is the data folder of excerpts of the real dev files (and hand-written files
// in the official layout for the sets not in the workspace): testdata/eval/README.md.
const fixtures = "../../testdata/eval"

// expectedExample is one example of testdata/eval/expected.json, written by the Python
// transliteration of TFDS's readers and T5's preprocessors (testdata/eval/emulate.py).
type expectedExample struct {
	ID      string   `json:"id"`
	Input   string   `json:"input"`
	Target  string   `json:"target"`
	Group   string   `json:"group"`
	Gold    *int     `json:"gold"`
	Answers []string `json:"answers"`
	Choices []string `json:"choices"`
}

func loadExpected(t *testing.T) map[string][]expectedExample {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]expectedExample
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// TestLoadFixtures loads every built-in from the fixtures and compares each example with
// the reference emulation's.
func TestLoadFixtures(t *testing.T) {
	want := loadExpected(t)
	for _, tk := range Builtin() {
		t.Run(tk.Name(), func(t *testing.T) {
			got, err := tk.Load(t.Context(), fixtures)
			if err != nil {
				t.Fatal(err)
			}
			exp, ok := want[tk.Name()]
			if !ok {
				t.Fatalf("no expected examples for %s", tk.Name())
			}
			if len(got) != len(exp) {
				t.Fatalf("%d examples, want %d", len(got), len(exp))
			}
			for i, e := range exp {
				g := got[i]
				if g.ID != e.ID || g.Input != e.Input || g.Target != e.Target {
					t.Errorf("example %d:\n got %q %q %q\nwant %q %q %q", i, g.ID, g.Input, g.Target, e.ID, e.Input, e.Target)
				}
				if e.Group != "" && g.Group != e.Group {
					t.Errorf("example %d: group %q, want %q", i, g.Group, e.Group)
				}
				if e.Gold != nil && (!g.goldSet || g.gold != *e.Gold) {
					t.Errorf("example %d: gold %d (set %v), want %d", i, g.gold, g.goldSet, *e.Gold)
				}
				if e.Answers != nil && !slices.Equal(g.Answers, e.Answers) {
					t.Errorf("example %d: answers %q, want %q", i, g.Answers, e.Answers)
				}
				if e.Choices != nil && !slices.Equal(g.Choices, e.Choices) {
					t.Errorf("example %d: choices %q, want %q", i, g.Choices, e.Choices)
				}
				if tk.Rankable() && tk.Name() != "super_glue/record" && !slices.Contains(g.Choices, g.Target) {
					t.Errorf("example %d: target %q not among choices %q", i, g.Target, g.Choices)
				}
			}
		})
	}
}

// TestLoadLayouts: the task folder may sit directly under the data folder (a user pointing
// at GLUE's own download); a missing file names every path tried and where to get it.
func TestLoadLayouts(t *testing.T) {
	sst2, err := Lookup("glue/sst2")
	if err != nil {
		t.Fatal(err)
	}
	direct, err := sst2.Load(t.Context(), filepath.Join(fixtures, "glue"))
	if err != nil {
		t.Fatal(err)
	}
	nested, err := sst2.Load(t.Context(), fixtures)
	if err != nil || len(direct) != len(nested) || !sameExample(direct[0], nested[0]) {
		t.Errorf("direct layout: %d examples, nested %d, %v", len(direct), len(nested), err)
	}
	if got := sst2.Files(); !slices.Equal(got, []string{"glue/SST-2/dev.tsv"}) {
		t.Errorf("Files = %q", got)
	}

	empty := t.TempDir()
	for _, tk := range Builtin() {
		_, err := tk.Load(t.Context(), empty)
		var missing *MissingDataError
		if !errors.As(err, &missing) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: err = %v, want a *MissingDataError", tk.Name(), err)
		}
		if len(missing.Tried) != 2 || !strings.Contains(err.Error(), filepath.Join(empty, filepath.FromSlash(tk.Files()[0]))) ||
			!strings.Contains(err.Error(), "https://") || !strings.HasPrefix(err.Error(), tk.Name()+": ") {
			t.Errorf("%s: message %q should name both paths tried and where the files come from", tk.Name(), err)
		}
	}
}

// realCounts are the validation rows of ../shared/data's README (MultiRC: 953 questions,
// 4,848 answers), the sizes of the official dev sets.
var realCounts = map[string]int{
	"glue/sst2": 872, "glue/cola": 1043, "glue/mrpc": 408, "glue/rte": 277, "glue/stsb": 1500,
	"glue/qnli": 5463, "glue/wnli": 71, "glue/qqp": 40430, "glue/mnli_matched": 9815, "glue/mnli_mismatched": 9832,
	"super_glue/boolq": 3270, "super_glue/cb": 56, "super_glue/copa": 100, "super_glue/multirc": 4848,
	"super_glue/rte": 277, "super_glue/wic": 638, "super_glue/wsc": 104, "super_glue/record": 10000, "squad": 10570,
}

// TestLoadRealData loads every built-in from the data folder T5ZOO_EVAL_DATA names (the
// real GLUE/SuperGLUE/SQuAD files) and checks the row counts; files not there are skipped.
func TestLoadRealData(t *testing.T) {
	dir := os.Getenv("T5ZOO_EVAL_DATA")
	if dir == "" {
		t.Skip("T5ZOO_EVAL_DATA names no data folder")
	}
	for _, tk := range Builtin() {
		t.Run(tk.Name(), func(t *testing.T) {
			exs, err := tk.Load(t.Context(), dir)
			if errors.Is(err, fs.ErrNotExist) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := realCounts[tk.Name()]; len(exs) != want {
				t.Errorf("%d examples, want %d", len(exs), want)
			}
			if tk.Name() == "super_glue/multirc" {
				groups := map[string]bool{}
				for _, e := range exs {
					groups[e.Group] = true
				}
				if len(groups) != 953 {
					t.Errorf("%d questions, want 953", len(groups))
				}
			}
			ids := map[string]bool{}
			for _, e := range exs {
				if ids[e.ID] {
					t.Fatalf("id %q repeats", e.ID)
				}
				ids[e.ID] = true
			}
		})
	}
}
