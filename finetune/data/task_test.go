package data

import (
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/evaluate/task"
)

// Data folders of the evaluate tests: excerpts of the real GLUE/SuperGLUE train and dev
// files (their README.md files give the provenance).
const (
	trainFixtures = "../../evaluate/task/testdata/train"
	devFixtures   = "../../testdata/eval"
)

func TestFromTask(t *testing.T) {
	cases := []struct {
		task, dir, split string
		n                int
		first            Pair
	}{
		{"glue/sst2", trainFixtures, task.SplitTrain, 12, Pair{"sst2 sentence: hide new secretions from the parental units ", "negative"}},
		{"glue/cola", trainFixtures, task.SplitTrain, 12, Pair{"cola sentence: Our friends won't buy this analysis, let alone the next one we propose.", "acceptable"}},
		{"super_glue/cb", trainFixtures, task.SplitTrain, 8, Pair{}},
		{"super_glue/boolq", trainFixtures, task.SplitTrain, 6, Pair{}},
		{"glue/sst2", devFixtures, task.SplitValidation, 20, Pair{}},
	}
	for _, c := range cases {
		t.Run(c.task+"/"+c.split, func(t *testing.T) {
			tk, err := task.Lookup(c.task)
			if err != nil {
				t.Fatal(err)
			}
			s, err := FromTask(t.Context(), tk, c.dir, c.split)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := tk.LoadSplit(t.Context(), c.dir, c.split)
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != c.n || len(exs) != c.n {
				t.Fatalf("%d pairs, %d examples, want %d", s.Len(), len(exs), c.n)
			}
			for i, ex := range exs {
				if s.Pairs[i] != (Pair{ex.Input, ex.Target}) {
					t.Fatalf("pair %d = %q, want the task's example %q → %q", i, s.Pairs[i], ex.Input, ex.Target)
				}
			}
			if c.first != (Pair{}) && s.Pairs[0] != c.first {
				t.Errorf("first pair %q, want %q", s.Pairs[0], c.first)
			}
			if s.Name != "task:"+c.task+"/"+c.split || s.Digest != PairsDigest(s.Pairs) {
				t.Errorf("name %q digest %s", s.Name, s.Digest)
			}
		})
	}
	tk, err := task.Lookup("glue/sst2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromTask(t.Context(), tk, t.TempDir(), task.SplitTrain); err == nil || !strings.Contains(err.Error(), "train.tsv") {
		t.Errorf("missing train file: err = %v", err)
	}
	if _, err := FromTask(t.Context(), tk, trainFixtures, "test"); err == nil {
		t.Error("unknown split: no error")
	}
}
