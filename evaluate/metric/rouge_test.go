package metric

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestRougeScorer(t *testing.T) {
	// rouge/rouge_scorer_test.py (066e6a12).
	cases := []struct {
		name, typ, target, prediction string
		p, r, f                       float64
	}{
		{"rouge1", "rouge1", "testing one two", "testing", 1, 1.0 / 3, 0.5},
		{"rouge2", "rouge2", "testing one two", "testing one", 1, 0.5, 2.0 / 3},
		{"rougeL_consecutive", "rougeL", "testing one two", "testing one", 1, 2.0 / 3, 0.8},
		{"rougeL_non_consecutive", "rougeL", "testing one two", "testing two", 1, 2.0 / 3, 0.8},
		{"rouge1_multi", "rouge1", "testing one two", "testing one", 1, 2.0 / 3, 0.8},
		{"rouge9_short", "rouge9", "testing one two", "testing", 0, 0, 0},
		{"rougeLsum", "rougeLsum", "w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", 0.4, 0.8, 2 * 0.4 * 0.8 / 1.2},
		// Which LCS the backtrack reads matters: "a b" vs "b a" yields {0}
		// ("a"), "a" yields {0} again, so the union is one hit, not two.
		{"rougeLsum_tie_rule", "rougeLsum", "a b", "b a\na", 1.0 / 3, 0.5, 0.4},
		{"rougeLsum_empty_prediction", "rougeLsum", "w1 w2 w3 w4 w5", "", 0, 0, 0},
		{"rougeLsum_empty_target", "rougeLsum", "", "w1", 0, 0, 0},
		{"rougeLsum_non_word", "rougeLsum", "w1 w2 w3 w4 w5", "/", 0, 0, 0},
		{"rouge1_empty", "rouge1", "testing one two", "", 0, 0, 0},
		{"rouge2_empty", "rouge2", "testing one two", "", 0, 0, 0},
		{"rougeL_empty", "rougeL", "testing one two", "", 0, 0, 0},
		// Repeated n-grams are clipped: target has "a" once.
		{"rouge1_clipped", "rouge1", "a b", "a a a", 1.0 / 3, 0.5, 0.4},
		// The tokenizer lowercases, splits on non-[a-z0-9], and drops
		// non-ASCII letters: "café" is "caf", "naïve" is "na ve".
		{"tokenizer", "rouge1", "CAF na ve", "café naïve!", 1, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := rougeScore(c.typ, c.target, c.prediction)
			if !close(s.P, c.p) || !close(s.R, c.r) || !close(s.F, c.f) {
				t.Errorf("got P %v R %v F %v, want %v %v %v", s.P, s.R, s.F, c.p, c.r, c.f)
			}
		})
	}
}

func TestRougeAgainstROUGE155(t *testing.T) {
	// rouge_scorer_test.py *AgainstRouge155: lines 0 and 1 of testdata, to
	// 5 places (assertAlmostEqual(..., 5): |diff| < 5e-6).
	read := func(name string) []string {
		b, err := os.ReadFile("testdata/rouge/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	targets, predictions := read("target.txt"), read("prediction.txt")
	cases := []struct {
		typ     string
		line    int
		r, p, f float64
	}{
		{"rouge1", 0, 0.40741, 0.68750, 0.51163},
		{"rouge1", 1, 0.40476, 0.65385, 0.50000},
		{"rouge2", 0, 0.30769, 0.53333, 0.39024},
		{"rouge2", 1, 0.29268, 0.48000, 0.36364},
		{"rougeL", 0, 0.40741, 0.68750, 0.51163},
		{"rougeL", 1, 0.40476, 0.65385, 0.50000},
	}
	for _, c := range cases {
		s := rougeScore(c.typ, targets[c.line], predictions[c.line])
		if math.Abs(s.R-c.r) >= 5e-6 || math.Abs(s.P-c.p) >= 5e-6 || math.Abs(s.F-c.f) >= 5e-6 {
			t.Errorf("%s line %d: R %.5f P %.5f F %.5f, want %.5f %.5f %.5f", c.typ, c.line, s.R, s.P, s.F, c.r, c.p, c.f)
		}
	}
}

func TestLCS(t *testing.T) {
	// testLcsTable / testUnionLcs / testSummaryLevelLcs.
	ref := []int32{1, 2, 3, 4, 5}
	if got := lcsTable(ref, []int32{2, 5, 3, 4}).at(5, 4); got != 3 {
		t.Errorf("lcs length %d, want 3", got)
	}
	if got := lcsIndices(ref, []int32{2, 5, 3, 4}); !equalInts(got, []int{1, 2, 3}) {
		t.Errorf("lcs indices %v, want [1 2 3]", got)
	}
	if got := lcsIndices(ref, []int32{8, 9}); len(got) != 0 {
		t.Errorf("lcs indices %v, want none", got)
	}
	// The backtrack's tie rule picks the LCS: on a tie it steps up (drops a
	// reference token), so [1 2] vs [2 1] reads back index 0, not 1.
	if got := lcsIndices([]int32{1, 2}, []int32{2, 1}); !equalInts(got, []int{0}) {
		t.Errorf("tie rule: %v, want [0]", got)
	}
	s := summaryLevelLCS([][]string{{"1", "2", "3", "4", "5"}}, [][]string{{"1", "2", "6", "7", "8"}, {"1", "3", "8", "9", "5"}})
	if s.R != 0.8 || s.P != 0.4 {
		t.Errorf("summary-level R %v P %v, want 0.8 0.4", s.R, s.P)
	}
	if s := summaryLevelLCS([][]string{{"reference"}}, [][]string{{}}); s.R != 0 {
		t.Errorf("empty candidate sentence: R %v", s.R)
	}
	// Double counting: "a" appears once in the candidate, so two reference
	// sentences both matching it get one hit between them.
	s = summaryLevelLCS([][]string{{"a"}, {"a"}}, [][]string{{"a"}})
	if s.R != 0.5 || s.P != 1 {
		t.Errorf("double counting: R %v P %v, want 0.5 1", s.R, s.P)
	}
}

func TestRouge(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name                string
		targets, predictons []string
		types               []string
		want                map[string]float64
	}{
		// metrics_test.py test_same_rouge / test_different_rouge.
		{"t5_same", []string{"this is a string", "this is a string"}, []string{"this is a string", "this is a string"}, nil,
			map[string]float64{"rouge1": 100, "rouge2": 100, "rougeLsum": 100}},
		{"t5_empty_predictions", []string{"this is a string", "this is a string"}, []string{"", ""}, nil,
			map[string]float64{"rouge1": 0, "rouge2": 0, "rougeLsum": 0}},
		// " . " → " .\n" makes two sentences, which rougeLsum matches in
		// either order; rougeL sees one sequence.
		{"t5_sentences", []string{"a b . c d"}, []string{"c d . a b"}, []string{"rougeL", "rougeLsum"},
			map[string]float64{"rougeL": 50, "rougeLsum": 100}},
		{"mean", []string{"a b", "c d"}, []string{"a b", "x y"}, []string{"rouge1", "rouge1"},
			map[string]float64{"rouge1": 50}},
		{"empty", nil, nil, []string{"rougeL"}, map[string]float64{"rougeL": nan}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Rouge(c.targets, c.predictons, c.types...)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Errorf("keys %v, want %v", got, c.want)
			}
			for k, w := range c.want {
				if !close(got[k], w) {
					t.Errorf("%s = %v, want %v", k, got[k], w)
				}
			}
		})
	}
	for _, bad := range []string{"rougen", "rouge0", "rouge10", "rougel", ""} {
		if _, err := Rouge([]string{"x"}, []string{"x"}, bad); err == nil {
			t.Errorf("type %q: no error", bad)
		}
	}
}

func TestRougeTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"The quick-brown fox, 2x!", []string{"the", "quick", "brown", "fox", "2x"}},
		{"café", []string{"caf"}},
		{"İ", []string{"i"}},        // Python lower: i + U+0307
		{"\u212a9", []string{"k9"}}, // KELVIN SIGN lowers to ASCII k
		{"日本", nil},
	}
	for _, c := range cases {
		got := rougeTokenize(c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("rougeTokenize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzRouge(f *testing.F) {
	f.Add("testing one two", "testing")
	f.Add("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5")
	f.Add("a b . c d . a", "c d . a b")
	f.Add("café\n\nİK", "/")
	f.Fuzz(func(t *testing.T, target, prediction string) {
		types := []string{"rouge1", "rouge2", "rougeL", "rougeLsum"}
		got, err := Rouge([]string{target}, []string{prediction}, types...)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range got {
			if !(v >= 0 && v <= 100+1e-9) {
				t.Fatalf("%s = %v outside [0, 100]", k, v)
			}
		}
		same, err := Rouge([]string{target}, []string{target}, types...)
		if err != nil {
			t.Fatal(err)
		}
		n := len(rougeTokenize(target))
		want := map[string]float64{"rouge1": 0, "rouge2": 0, "rougeL": 0, "rougeLsum": 0}
		if n >= 1 {
			want["rouge1"], want["rougeL"], want["rougeLsum"] = 100, 100, 100
		}
		// A bigram needs two tokens on one side: rouge2 over the whole
		// text (newlines do not split it).
		if n >= 2 {
			want["rouge2"] = 100
		}
		for k, w := range want {
			if math.Abs(same[k]-w) > 1e-9 {
				t.Fatalf("%s(%q, itself) = %v, want %v", k, target, same[k], w)
			}
		}
	})
}

func BenchmarkRouge(b *testing.B) {
	hyps, refs := benchCorpus(3000)
	b.ReportAllocs()
	for b.Loop() {
		v, err := Rouge(refs, hyps, "rouge1", "rouge2", "rougeL", "rougeLsum")
		if err != nil {
			b.Fatal(err)
		}
		benchSink = v["rougeLsum"]
	}
}
