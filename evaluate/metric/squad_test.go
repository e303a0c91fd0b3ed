package metric

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeSQuAD(t *testing.T) {
	cases := []struct{ in, want string }{
		{"‘a big  Moose!‘", "‘ big moose‘"}, // ‘ is not in string.punctuation
		{"The Cat", "cat"},
		{"an apple a day", "apple day"},
		{"a", ""},
		{"$$$$", ""},
		{"correct2.1", "correct21"},
		{"the-cat", "thecat"}, // punctuation goes before articles
		{"the_cat", "thecat"}, // '_' is in string.punctuation
		// Python 3's \b is Unicode: é is a word character, so "éthe" keeps
		// "the" (Go's regexp \b would strip it).
		{"éthe", "éthe"},
		{"naïve the end", "naïve end"},
		{"١the", "١the"}, // ARABIC-INDIC DIGIT ONE is \w
		// A combining mark is not \w: Python sees a boundary after it.
		{"x\u0301 the", "x\u0301"},
		{"x\u0301the", "x\u0301"},
		// Python's str.split() also splits on U+001C–U+001F, NBSP, U+3000.
		{"x\x1cy\x1fz", "x y z"},
		{"x\u00a0y\u3000z", "x y z"},
		{"  spaced\tout\n", "spaced out"},
		// Python's lower(): İ → i + U+0307, final sigma.
		{"İstanbul", "i\u0307stanbul"},
		{"ΟΔΟΣ", "οδο\u03c2"},
		{"ΣΑΣ ΣΑ", "\u03c3α\u03c2 \u03c3α"},
		{"Σ", "σ"}, // no cased letter before: not final
		// ' is case-ignorable: skipped when looking for a cased letter after Σ.
		{"ΑΣ'Α", "α\u03c3α"},
		{"ΑΣ' Α", "α\u03c2 α"},
		{"", ""},
	}
	for _, c := range cases {
		if got := NormalizeSQuAD(c.in); got != c.want {
			t.Errorf("NormalizeSQuAD(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNormalizeTriviaQA(t *testing.T) {
	cases := []struct{ in, want string }{
		{"‘a big  Moose!‘", "big moose"},
		{"correct2.1", "correct2 1"},
		{"the-cat", "cat"}, // punctuation becomes a space, exposing "the"
		{"it´s", "it s"},
		{"x_y`z", "x y z"},
		{"éthe", "éthe"},
	}
	for _, c := range cases {
		if got := NormalizeTriviaQA(c.in); got != c.want {
			t.Errorf("NormalizeTriviaQA(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSQuAD(t *testing.T) {
	// metrics_test.py test_squad_big / test_squad_small / test_trivia_qa.
	big := [][]string{{"big moose", "hippo"}, {"correct1"}, {"correct2.1", "correct2.2"}, {"a", "b"}}
	bigPred := []string{"‘a big  Moose!‘", "wrong", "correct2.2", "c"}
	nan := math.NaN()
	cases := []struct {
		name    string
		fn      func([][]string, []string) (float64, float64)
		answers [][]string
		preds   []string
		em, f1  float64
	}{
		{"squad_big", SQuAD, big, bigPred, 25, 35},
		{"squad_small", SQuAD, [][]string{{"abc abd", "$$$$"}}, []string{"abd"}, 0, 100 * 2.0 / 3},
		{"trivia_qa", TriviaQA, big, bigPred, 50, 50},
		// Repeated tokens count once per match (Counter &).
		{"counter", SQuAD, [][]string{{"x x y"}}, []string{"x x x"}, 0, 100 * (2 * (2.0 / 3) * (2.0 / 3)) / (4.0 / 3)},
		// Both normalize to "": EM 1, but F1 0 (no overlap), as in T5.
		{"both_empty", SQuAD, [][]string{{"the"}}, []string{"a"}, 100, 0},
		{"no_answers", SQuAD, [][]string{{}}, []string{"x"}, 0, 0},
		{"empty", SQuAD, nil, nil, nan, nan},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			em, f1 := c.fn(c.answers, c.preds)
			if !close(em, c.em) || !close(f1, c.f1) {
				t.Errorf("em, f1 = %.17g, %.17g; want %.17g, %.17g", em, f1, c.em, c.f1)
			}
		})
	}
}

func FuzzNormalizeSQuAD(f *testing.F) {
	for _, s := range []string{"‘a big  Moose!‘", "éthe", "ΟΔΟΣ", "İ", "x\x1cy", "an the a", "$$$$", "", "\xff\xfe"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		for _, norm := range []func(string) string{NormalizeSQuAD, NormalizeTriviaQA} {
			n := norm(s)
			if !utf8.ValidString(n) {
				t.Fatalf("%q → invalid UTF-8 %q", s, n)
			}
			if strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") || strings.Contains(n, "  ") {
				t.Fatalf("%q → unfixed whitespace %q", s, n)
			}
			if strings.ContainsAny(n, squadPunct) {
				t.Fatalf("%q → punctuation left in %q", s, n)
			}
			for _, w := range strings.Fields(n) {
				if w == "a" || w == "an" || w == "the" {
					t.Fatalf("%q → article left in %q", s, n)
				}
			}
			if again := norm(n); again != n {
				t.Fatalf("not idempotent: %q → %q → %q", s, n, again)
			}
		}
		for _, fn := range []func([][]string, []string) (float64, float64){SQuAD, TriviaQA} {
			em, f1 := fn([][]string{{s}, {other, s}}, []string{s, other})
			if em != 100 {
				t.Fatalf("identical texts: em %v", em)
			}
			if f1 < 0 || f1 > 100 {
				t.Fatalf("f1 %v outside [0, 100]", f1)
			}
		}
	})
}
