package metric

import (
	"math"
	"testing"
)

// close reports whether got is want within 1e-9 relative (absolute near 0),
// or both are NaN.
func close(got, want float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

func TestClassification(t *testing.T) {
	// Vectors from t5/evaluation/metrics_test.py (T5 e081111c) and the
	// sklearn docstrings (sklearn f5242163), per eval_formats.md §2, §6.1.
	cases := []struct {
		name string
		got  float64
		want float64
	}{
		{"accuracy/t5", Accuracy([]int{0, 0, 2, 1}, []int{0, 1, 2, 1}), 75},
		{"accuracy/strings", Accuracy([]string{"a", "b", "c"}, []string{"a", "x", "c"}), 100 * (2.0 / 3)},
		{"accuracy/invalid", Accuracy([]int{0, 1}, []int{-1, -1}), 0},
		{"accuracy/empty", Accuracy([]int{}, []int{}), math.NaN()},
		{"sequence_accuracy/t5", SequenceAccuracy(
			[]string{"this is a string.", "this is a completely different string."},
			[]string{"this is a string.", "this is a string."}), 50},
		{"mcc/t5", MatthewsCorrcoef([]int{0, 0, 2, 1}, []int{0, 1, 2, 1}), 70},
		{"mcc/sklearn", MatthewsCorrcoef([]int{1, 1, 1, -1}, []int{1, -1, 1, 1}), -100.0 / 3},
		// One predicted class: cov_ypyp = 0, sklearn returns 0.0.
		{"mcc/constant_prediction", MatthewsCorrcoef([]int{0, 1, 1, 0}, []int{1, 1, 1, 1}), 0},
		{"mcc/single_class", MatthewsCorrcoef([]int{1, 1}, []int{1, 1}), 0},
		// −1 is a third class: t_sum {0:2, 1:2}, p_sum {0:1, 1:2, −1:1},
		// trace 3: (3·4−(2+4)) / sqrt((16−8)(16−6)) = 6/sqrt(80).
		{"mcc/invalid_class", MatthewsCorrcoef([]int{0, 0, 1, 1}, []int{0, -1, 1, 1}), 100 * 6 / math.Sqrt(80)},
		{"mcc/perfect", MatthewsCorrcoef([]int{0, 1, 0, 1}, []int{0, 1, 0, 1}), 100},
		{"mcc/inverse", MatthewsCorrcoef([]int{0, 1, 0, 1}, []int{1, 0, 1, 0}), -100},
		{"mcc/empty", MatthewsCorrcoef(nil, nil), math.NaN()},
		{"f1/t5", F1WithInvalid([]int{0, 1, 1, 0}, []int{0, 1, 2, 2}), 50},
		{"f1/multirc_t5", F1WithInvalid([]int{1, 1, 0}, []int{1, 0, 1}), 50},
		// No positives anywhere: sklearn's zero_division gives 0.
		{"f1/no_positives", F1WithInvalid([]int{0, 0}, []int{0, 0}), 0},
		// Invalid on a negative target becomes a false positive.
		{"f1/all_invalid", F1WithInvalid([]int{0, 1}, []int{-1, 7}), 0},
		{"f1/empty", F1WithInvalid(nil, nil), math.NaN()},
		{"mean_3class_f1/t5", MeanMulticlassF1([]int{0, 1, 1, 2}, []int{0, 0, 2, 2}, 3), 44.44444444444444},
		{"macro_f1/sklearn", MeanMulticlassF1([]int{0, 1, 2, 0, 1, 2}, []int{0, 2, 1, 0, 0, 1}, 3), 100 * 0.8 / 3},
		// Class 2 has no support and no prediction: it adds 0 to the mean.
		{"macro_f1/absent_label", MeanMulticlassF1([]int{0, 1}, []int{0, 1}, 3), 100 * 2.0 / 3},
		// −1 counts for no class; class 0 loses recall: F1_0 = 2/3, F1_1 = 1.
		{"macro_f1/invalid", MeanMulticlassF1([]int{0, 0, 1}, []int{0, -1, 1}, 2), 100 * (2.0/3 + 1) / 2},
		{"macro_f1/empty", MeanMulticlassF1(nil, nil, 3), math.NaN()},
		{"all_match/t5_equal", AllMatch([]int{0, 1}, []int{0, 1}), 100},
		{"all_match/t5_differ", AllMatch([]int{0, 1}, []int{0, 2}), 0},
		{"all_match/empty", AllMatch([]int{}, []int{}), math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !close(c.got, c.want) {
				t.Errorf("got %.17g, want %.17g", c.got, c.want)
			}
		})
	}
}

func TestMacroF1PerClass(t *testing.T) {
	// sklearn docs: f1_score(average=None) → [0.8, 0, 0]; the macro mean of
	// those is 0.2666…, so check the per-class values through f1Counts.
	targets := []int{0, 1, 2, 0, 1, 2}
	preds := []int{0, 2, 1, 0, 0, 1}
	want := []float64{0.8, 0, 0}
	for k, w := range want {
		tp, ts, ps := 0, 0, 0
		for i := range targets {
			if targets[i] == k {
				ts++
			}
			if preds[i] == k {
				ps++
				if targets[i] == k {
					tp++
				}
			}
		}
		if got := f1Counts(tp, ts, ps); !close(got, w) {
			t.Errorf("class %d: got %v, want %v", k, got, w)
		}
	}
	if got := MeanMulticlassF1(targets, preds, 3); !close(got, 26.666666666666668) {
		t.Errorf("macro: got %.17g", got)
	}
}

func TestGroupMetrics(t *testing.T) {
	// metrics_test.py test_mean_group_metric: groups a:(0→0, 1→0), b:(0→1).
	groups := []string{"a", "a", "b"}
	targets := []int{0, 1, 0}
	preds := []int{0, 0, 1}
	sub := func(x []int, idx []int) []int {
		out := make([]int, len(idx))
		for k, i := range idx {
			out[k] = x[i]
		}
		return out
	}
	acc := GroupMean(groups, func(idx []int) float64 { return Accuracy(sub(targets, idx), sub(preds, idx)) })
	if !close(acc, 25) {
		t.Errorf("mean_group_metric(accuracy) = %v, want 25", acc)
	}
	em := GroupMean(groups, func(idx []int) float64 { return AllMatch(sub(targets, idx), sub(preds, idx)) })
	if !close(em, 0) {
		t.Errorf("mean_group_metric(all_match) = %v, want 0", em)
	}
	var order []int
	GroupMean([]string{"q2", "q1", "q2", "q3"}, func(idx []int) float64 { order = append(order, idx...); return 0 })
	if want := []int{0, 2, 1, 3}; !equalInts(order, want) {
		t.Errorf("group order %v, want %v (first-seen)", order, want)
	}
	if got := GroupMean(nil, nil); !math.IsNaN(got) {
		t.Errorf("GroupMean(nil) = %v, want NaN", got)
	}

	// test_deduplicate_metric: targets a:0, a:0, b:1, predictions 0, 0, 0.
	first := FirstPerGroup([]string{"a", "a", "b"})
	if !equalInts(first, []int{0, 2}) {
		t.Fatalf("FirstPerGroup = %v", first)
	}
	if got := Accuracy(sub([]int{0, 0, 1}, first), sub([]int{0, 0, 0}, first)); !close(got, 50) {
		t.Errorf("deduplicated accuracy = %v, want 50", got)
	}
	if got := FirstPerGroup(nil); len(got) != 0 {
		t.Errorf("FirstPerGroup(nil) = %v", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCorrelation(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name     string
		x, y     []float64
		pearson  float64
		spearman float64
	}{
		{"t5_pearson", []float64{0, 2}, []float64{0, 1}, 100, 100},
		{"t5_spearman", []float64{0, 2, 1}, []float64{0, 1, 2}, 50, 50},
		// Ties get average ranks: x ranks [1.5, 1.5, 3, 4] vs y [1..4].
		// Pearson of x: mean 1.75 → xm (−.75,−.75,.25,1.25), ym (−1.5,−.5,.5,1.5);
		// dot 3.5 / sqrt(2.75·5); Spearman: rank xm (−1,−1,.5,1.5), 4.5/sqrt(4.5·5).
		{"ties", []float64{1, 1, 2, 3}, []float64{1, 2, 3, 4}, 100 * 3.5 / math.Sqrt(2.75*5), 100 * 4.5 / math.Sqrt(4.5*5)},
		{"inverse", []float64{1, 2, 3}, []float64{3, 2, 1}, -100, -100},
		// STS-B with an invalid prediction (−1.0): rounded targets stay floats.
		{"stsb_invalid", []float64{0.4, 2.4, 5}, []float64{-1, 2.4, 4.8}, pearsonRef([]float64{0.4, 2.4, 5}, []float64{-1, 2.4, 4.8}), 100},
		{"constant_target", []float64{1, 1, 1}, []float64{1, 2, 3}, nan, nan},
		{"constant_prediction", []float64{1, 2, 3}, []float64{-1, -1, -1}, nan, nan},
		{"one", []float64{1}, []float64{2}, nan, nan},
		{"empty", nil, nil, nan, nan},
		{"nan", []float64{1, 2, 3}, []float64{1, nan, 3}, nan, nan},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Pearson(c.x, c.y); !close(got, c.pearson) {
				t.Errorf("Pearson = %.17g, want %.17g", got, c.pearson)
			}
			if got := Spearman(c.x, c.y); !close(got, c.spearman) {
				t.Errorf("Spearman = %.17g, want %.17g", got, c.spearman)
			}
		})
	}
}

// pearsonRef is the textbook formula, for a cross-check within tolerance.
func pearsonRef(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i] / n
		my += y[i] / n
	}
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return 100 * sxy / math.Sqrt(sxx*syy)
}

func TestRankAverage(t *testing.T) {
	got := rankAverage([]float64{3, 1, 4, 1, 5, 9, 2, 6, 5})
	want := []float64{4, 1.5, 5, 1.5, 6.5, 9, 3, 8, 6.5}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rankAverage = %v, want %v", got, want)
		}
	}
}

func TestPairwiseSum(t *testing.T) {
	// Against exact integer sums on every path (<8, ≤128, split), and the
	// blocked order on a case where it differs from a running sum.
	for _, n := range []int{0, 1, 7, 8, 9, 127, 128, 129, 1000} {
		x := make([]float64, n)
		want := 0.0
		for i := range x {
			x[i] = float64(i % 13)
			want += x[i]
		}
		if got := pairwiseSum(x); got != want {
			t.Errorf("n=%d: %v, want %v", n, got, want)
		}
	}
	// 1 followed by eight 2^-53: a running sum drops each tiny term
	// (1 + 2^-53 rounds to 1), numpy's 8 lanes keep them together.
	x := []float64{1, 0x1p-53, 0x1p-53, 0x1p-53, 0x1p-53, 0x1p-53, 0x1p-53, 0x1p-53, 0x1p-53}
	if got, want := pairwiseSum(x), 1+0x1p-53*8; got != want {
		t.Errorf("pairwise lanes: %.17g, want %.17g", got, want)
	}
}

func TestAUC(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name    string
		targets []int
		scores  []float64
		roc, ap float64
	}{
		// metrics_test.py test_auc: auc-roc 0.75, auc-pr 0.8333.
		{"t5", []int{0, 0, 1, 1}, []float64{0.1, 0.4, 0.35, 0.8}, 0.75, 5.0 / 6},
		// One tie across the classes: ROC takes the diagonal (0.5 of a cell);
		// AP steps once at that threshold with precision 1/2.
		{"tie", []int{0, 1}, []float64{0.5, 0.5}, 0.5, 0.5},
		{"perfect", []int{0, 1, 0, 1}, []float64{0.1, 0.9, 0.2, 0.8}, 1, 1},
		{"reversed", []int{1, 0}, []float64{0.1, 0.9}, 0, 0.5},
		// sklearn: AP([0,0,1,1], [0.1,0.4,0.35,0.8]) ties variant with
		// 0.35 → 0.4: thresholds 0.8 (P 1, R .5), 0.4 (P 2/3, R 1).
		{"tie_ap", []int{0, 0, 1, 1}, []float64{0.1, 0.4, 0.4, 0.8}, 0.875, 0.5 + 0.5*2.0/3},
		{"one_class", []int{1, 1}, []float64{0.2, 0.3}, nan, 1},
		{"no_positive", []int{0, 0}, []float64{0.2, 0.3}, nan, 0},
		{"empty", nil, nil, nan, nan},
		{"nan_score", []int{0, 1}, []float64{nan, 1}, nan, nan},
		{"inf_score", []int{0, 1}, []float64{0, math.Inf(1)}, nan, nan},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := AUCROC(c.targets, c.scores); !close(got, c.roc) {
				t.Errorf("AUCROC = %.17g, want %.17g", got, c.roc)
			}
			if got := AveragePrecision(c.targets, c.scores); !close(got, c.ap) {
				t.Errorf("AveragePrecision = %.17g, want %.17g", got, c.ap)
			}
		})
	}
}

func TestLengthMismatchPanics(t *testing.T) {
	calls := map[string]func(){
		"Accuracy":         func() { Accuracy([]int{1}, []int{}) },
		"MatthewsCorrcoef": func() { MatthewsCorrcoef([]int{1}, nil) },
		"F1WithInvalid":    func() { F1WithInvalid([]int{1}, nil) },
		"MeanMulticlassF1": func() { MeanMulticlassF1([]int{1}, nil, 2) },
		"Pearson":          func() { Pearson([]float64{1}, nil) },
		"Spearman":         func() { Spearman([]float64{1}, nil) },
		"AllMatch":         func() { AllMatch([]int{1}, nil) },
		"SQuAD":            func() { SQuAD([][]string{{"a"}}, nil) },
		"AUCROC":           func() { AUCROC([]int{1}, nil) },
	}
	for name, f := range calls {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
