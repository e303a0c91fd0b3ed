package task

import (
	"math"
	"strings"
	"testing"
)

func mustLookup(t *testing.T, name string) *Task {
	t.Helper()
	tk, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// targets makes examples with the given targets (and a task's choices).
func targets(choices []string, ts ...string) []Example {
	out := make([]Example, len(ts))
	for i, tg := range ts {
		out[i] = Example{ID: string(rune('a' + i)), Target: tg, Choices: choices}
	}
	return out
}

// closeTo compares metric values to 1e-9 relative (NaN equals NaN).
func closeTo(got, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// TestEvaluate scores hand-made predictions for each built-in; expected values follow
// from T5's metric definitions (and T5's own test vectors where they fit).
func TestEvaluate(t *testing.T) {
	wsc := func(target string, gold int) Example { return Example{Target: target, gold: gold, goldSet: true} }
	tests := []struct {
		name        string
		task        string
		examples    []Example
		predictions []string
		want        map[string]float64
		invalid     int
		values      []any
	}{
		{"sst2 accuracy, exact class names", "glue/sst2", targets(nil, "positive", "negative", "positive", "negative"),
			[]string{"positive", "positive", "Positive", "negative"}, map[string]float64{"accuracy": 50}, 1, []any{1, 1, -1, 0}},
		// sklearn's docstring: y_true [+1,+1,+1,-1], y_pred [+1,-1,+1,+1] → −1/3.
		{"cola mcc", "glue/cola", targets(nil, "acceptable", "acceptable", "acceptable", "unacceptable"),
			[]string{"acceptable", "unacceptable", "acceptable", "acceptable"}, map[string]float64{"matthews_corrcoef": -100.0 / 3}, 0, nil},
		// An invalid prediction is an extra class: C over (−1, 0, 1) gives 2/sqrt(80).
		{"cola mcc invalid class", "glue/cola", targets(nil, "acceptable", "acceptable", "unacceptable", "unacceptable"),
			[]string{"acceptable", "yes", "unacceptable", "acceptable"}, map[string]float64{"matthews_corrcoef": 100 * 2 / math.Sqrt(80)}, 1, nil},
		// T5's f1_score_with_invalid test: targets 0,1,1,0, predictions 0,1,2,2 → 50.
		{"mrpc f1 with invalid", "glue/mrpc", targets(nil, "not_equivalent", "equivalent", "equivalent", "not_equivalent"),
			[]string{"not_equivalent", "equivalent", "foo", "bar"}, map[string]float64{"f1": 50, "accuracy": 50}, 2, nil},
		{"qqp", "glue/qqp", targets(nil, "duplicate", "not_duplicate"), []string{"duplicate", "duplicate"},
			map[string]float64{"f1": 100 * 2.0 / 3, "accuracy": 50}, 0, nil},
		// T5's pearson test ([0,2] vs [0,1] → 100), through Python float() parsing.
		{"stsb parses like float()", "glue/stsb", targets(nil, "0.0", "2.0"), []string{" 0 ", "1e0"},
			map[string]float64{"pearson_corrcoef": 100, "spearman_corrcoef": 100}, 0, []any{0.0, 1.0}},
		// [1,2,3] against [1,−1,3]: r = 2/sqrt(2·8) = 0.5; ranks [1,2,3] vs [2,1,3]: 0.5.
		{"stsb invalid is -1", "glue/stsb", targets(nil, "1.0", "2.0", "3.0"), []string{"1.0", "junk", "3.0"},
			map[string]float64{"pearson_corrcoef": 50, "spearman_corrcoef": 50}, 1, []any{1.0, -1.0, 3.0}},
		{"stsb constant prediction", "glue/stsb", targets(nil, "1.0", "2.0"), []string{"nan", "inf"},
			map[string]float64{"pearson_corrcoef": math.NaN(), "spearman_corrcoef": math.NaN()}, 0, []any{"NaN", "+Inf"}},
		{"mnli", "glue/mnli_mismatched", targets(nil, "entailment", "neutral", "contradiction"), []string{"entailment", "contradiction", "contradiction"},
			map[string]float64{"accuracy": 200.0 / 3}, 0, []any{0, 2, 2}},
		// T5's mean_multiclass_f1(3) test: [0,1,1,2] vs [0,0,2,2] → 44.44…; CB's order is
		// entailment, contradiction, neutral.
		{"cb", "super_glue/cb", targets(nil, "entailment", "contradiction", "contradiction", "neutral"),
			[]string{"entailment", "entailment", "neutral", "neutral"}, map[string]float64{"mean_3class_f1": 400.0 / 9, "accuracy": 50}, 0, nil},
		{"cb invalid costs recall only", "super_glue/cb", targets(nil, "entailment", "neutral"), []string{"entailment", "maybe"},
			map[string]float64{"mean_3class_f1": 100.0 / 3, "accuracy": 50}, 1, nil},
		{"copa", "super_glue/copa", targets(nil, "choice1", "choice2"), []string{"choice2", "choice2"}, map[string]float64{"accuracy": 50}, 0, nil},
		{"boolq", "super_glue/boolq", targets(nil, "True", "False"), []string{"True", "false"}, map[string]float64{"accuracy": 50}, 1, nil},
		// q0 all right (100), q1 one invalid (0) → EM 50; F1 over answers: gold 1,0,1,1,
		// predicted 1,0,1,(invalid→0) → 2TP/(2TP+FN) = 4/5.
		{"multirc", "super_glue/multirc", []Example{
			{Target: "True", Group: "q0"}, {Target: "False", Group: "q0"}, {Target: "True", Group: "q1"}, {Target: "True", Group: "q1"}},
			[]string{"True", "False", "True", "maybe"}, map[string]float64{"f1": 80, "exact_match": 50}, 1, nil},
		// The second example of group p0/q0 is a duplicate T5's deduplicate_metric drops.
		{"record dedup first", "super_glue/record", []Example{
			{Target: "Alice", Answers: []string{"Alice"}, Group: "p0/q0"},
			{Target: "Alice", Answers: []string{"Alice"}, Group: "p0/q0"},
			{Target: "Paris", Answers: []string{"Paris", "Zoë"}, Group: "p0/q1"},
			{Target: "port", Answers: []string{"port"}, Group: "p1/q2"}},
			[]string{"alice", "wrong", "the Paris!", "ship"}, map[string]float64{"em": 200.0 / 3, "f1": 200.0 / 3}, 0,
			[]any{"alice", "wrong", "the Paris!", "ship"}},
		{"wsc simple", "super_glue/wsc", []Example{wsc("Tom", 1), wsc("the dog", 0), wsc("Bob's hat", 1), wsc("Ann", 0)},
			[]string{"tom", "the dog", "Bob", ""}, map[string]float64{"accuracy": 25}, 1, []any{1, 1, 0, -1}},
		// T5's squad test: em 25, f1 35.
		{"squad", "squad", []Example{
			{Answers: []string{"big moose", "hippo"}}, {Answers: []string{"correct1"}},
			{Answers: []string{"correct2.1", "correct2.2"}}, {Answers: []string{"a", "b"}}},
			[]string{"‘a big  Moose!‘", "wrong", "correct2.2", "c"}, map[string]float64{"em": 25, "f1": 35}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := mustLookup(t, tc.task).Evaluate(tc.examples, tc.predictions)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Metrics) != len(tc.want) {
				t.Errorf("metrics %v, want keys of %v", s.Metrics, tc.want)
			}
			for k, want := range tc.want {
				if got, ok := s.Metrics[k]; !ok || !closeTo(got, want) {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
			if s.Invalid != tc.invalid {
				t.Errorf("invalid = %d, want %d", s.Invalid, tc.invalid)
			}
			if len(s.Outcomes) != len(tc.examples) {
				t.Fatalf("%d outcomes", len(s.Outcomes))
			}
			inv := 0
			for i, o := range s.Outcomes {
				if o.Invalid {
					inv++
				}
				if tc.values != nil && o.Value != tc.values[i] {
					t.Errorf("outcome %d = %#v, want %#v", i, o.Value, tc.values[i])
				}
			}
			if inv != tc.invalid {
				t.Errorf("%d outcomes invalid, want %d", inv, tc.invalid)
			}
		})
	}
}

func TestEvaluateErrors(t *testing.T) {
	if _, err := mustLookup(t, "glue/sst2").Evaluate(targets(nil, "positive"), nil); err == nil {
		t.Error("length mismatch: want an error")
	}
	_, err := mustLookup(t, "super_glue/wsc").Evaluate([]Example{{ID: "x", Target: "Tom"}}, []string{"Tom"})
	if err == nil || !strings.Contains(err.Error(), "gold label") {
		t.Errorf("WSC without a gold label: err = %v", err)
	}
	s, err := mustLookup(t, "glue/sst2").Evaluate(nil, nil)
	if err != nil || !math.IsNaN(s.Metrics["accuracy"]) {
		t.Errorf("no examples: %v, %v; want NaN accuracy", s.Metrics, err)
	}
}

// TestEvaluateRankChoices: rank mode passes a chosen choice as the prediction, so the
// gold choice of every rankable fixture example scores perfectly with nothing invalid.
func TestEvaluateRankChoices(t *testing.T) {
	for _, tk := range Builtin() {
		if !tk.Rankable() {
			continue
		}
		t.Run(tk.Name(), func(t *testing.T) {
			exs, err := tk.Load(t.Context(), fixtures)
			if err != nil {
				t.Fatal(err)
			}
			preds := make([]string, len(exs))
			for i, e := range exs {
				if len(e.Choices) == 0 {
					t.Fatalf("example %s has no choices", e.ID)
				}
				preds[i] = e.Target
			}
			s, err := tk.Evaluate(exs, preds)
			if err != nil {
				t.Fatal(err)
			}
			if s.Invalid != 0 {
				t.Errorf("%d invalid", s.Invalid)
			}
			for k, v := range s.Metrics {
				if !closeTo(v, 100) {
					t.Errorf("%s = %v, want 100", k, v)
				}
			}
		})
	}
}
