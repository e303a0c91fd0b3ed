package task

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// goldenDigests pins each built-in's output on the fixtures, keyed by name@version: the
// sha256 (first 16 hex digits) of its examples and of the postprocessed outcomes of fixed
// predictions. A change to a task's examples or postprocessing changes the digest; the
// fix is to bump the task's revision in builtinVersion (builtin.go), so that stored
// results of the old version are not mistaken for the new one, and to record the new
// digest under the new version here.
func goldenDigests() map[string]string {
	return map[string]string{
		"glue/cola@v002.1":            "85a2f5203703187d",
		"glue/mnli_matched@v002.1":    "c61782da6dfbebab",
		"glue/mnli_mismatched@v002.1": "033fc0bb77844a3c",
		"glue/mrpc@v002.1":            "6d13b39b7b4f9fd2",
		"glue/qnli@v002.1":            "fd79b7bb9ea02981",
		"glue/qqp@v002.1":             "e887293469e6399b",
		"glue/rte@v002.1":             "e990e316e7f6f8d1",
		"glue/sst2@v002.1":            "7237ec34cae3fa33",
		"glue/stsb@v002.1":            "e310e6952b75f165",
		"glue/wnli@v002.1":            "69ba68108b0ffe97",
		"squad@v010.1":                "2c0d6f1fdb65bcd6",
		"super_glue/boolq@v102.1":     "6e7bc6bf3aa37aeb",
		"super_glue/cb@v102.1":        "71c66e416184892d",
		"super_glue/copa@v102.1":      "cbb588ae3a3ed291",
		"super_glue/multirc@v102.1":   "ffc8b9a138a5cd49",
		"super_glue/record@v102.1":    "f70f85ffb58ede77",
		"super_glue/rte@v102.1":       "f7325c39423e0094",
		"super_glue/wic@v102.1":       "ad531695392cde3a",
		"super_glue/wsc@v102.1":       "f81b6d388a2b4786",
	}
}

// goldenPredictions are fixed predictions for a task's examples: a rotating choice for
// rankable examples, otherwise the target or a mangled target in turn.
func goldenPredictions(exs []Example) []string {
	preds := make([]string, len(exs))
	for i, e := range exs {
		switch {
		case len(e.Choices) > 0 && i%3 != 2:
			preds[i] = e.Choices[(i*7)%len(e.Choices)]
		case i%2 == 0:
			preds[i] = e.Target
		default:
			preds[i] = "the " + e.Target + "!"
		}
	}
	return preds
}

func TestGoldenVersions(t *testing.T) {
	want := goldenDigests()
	for _, tk := range Builtin() {
		exs, err := tk.Load(t.Context(), fixtures)
		if err != nil {
			t.Fatal(err)
		}
		s, err := tk.Evaluate(exs, goldenPredictions(exs))
		if err != nil {
			t.Fatal(err)
		}
		type row struct {
			ID, Input, Target string
			Answers, Choices  []string
			Group             string
			Gold              int
			GoldSet           bool
			Value             any
			Invalid           bool
		}
		rows := make([]row, len(exs))
		for i, e := range exs {
			rows[i] = row{e.ID, e.Input, e.Target, e.Answers, e.Choices, e.Group, e.gold, e.goldSet, s.Outcomes[i].Value, s.Outcomes[i].Invalid}
		}
		data, err := json.Marshal(rows)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		got := hex.EncodeToString(sum[:])[:16]
		key := tk.Name() + "@" + tk.Version()
		w, ok := want[key]
		switch {
		case !ok:
			t.Errorf("%s: no golden digest; record %q: %q in goldenDigests", tk.Name(), key, got)
		case got != w:
			t.Errorf("%s: its examples or postprocessing changed (digest %s, want %s): bump its revision in builtinVersion (builtin.go) and record %q: %q in goldenDigests",
				tk.Name(), got, w, tk.Name()+"@<new version>", got)
		}
	}
}
