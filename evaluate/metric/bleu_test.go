package metric

import (
	"math"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The source's regexps, verbatim in Go syntax (the backtick as \x60), as
// the reference the rune-loop tokenizers are checked against. Go's regexp
// and Python's re agree on these: leftmost, non-overlapping matches, and
// negated classes match a newline.
var (
	ref13a = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`([\{-\~\[-\x60 -\&\(-\+\:-\@\/])`), " ${1} "},
		{regexp.MustCompile(`([^0-9])([\.,])`), "${1} ${2} "},
		{regexp.MustCompile(`([\.,])([^0-9])`), " ${1} ${2}"},
		{regexp.MustCompile(`([0-9])(-)`), "${1} ${2} "},
	}
	refIntl = []struct {
		re   *regexp.Regexp
		repl string
	}{
		{regexp.MustCompile(`(\P{N})(\p{P})`), "${1} ${2} "},
		{regexp.MustCompile(`(\p{P})(\P{N})`), " ${1} ${2}"},
		{regexp.MustCompile(`(\p{S})`), " ${1} "},
	}
)

// regexp13a and regexpIntl are the tokenizers written with the regexps.
func regexp13a(line string) string {
	for _, p := range [...][2]string{
		{"<skipped>", ""}, {"-\n", ""}, {"\n", " "},
		{"&quot;", `"`}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
	} {
		line = strings.ReplaceAll(line, p[0], p[1])
	}
	line = " " + line + " "
	for _, r := range ref13a {
		line = r.re.ReplaceAllString(line, r.repl)
	}
	return strings.Join(pySplit(line), " ")
}

func regexpIntl(line string) string {
	for _, r := range refIntl {
		line = r.re.ReplaceAllString(line, r.repl)
	}
	return strings.Join(pySplit(line), " ")
}

// sacrebleu test/test_bleu.py (2ae13669): three hypotheses, two streams.
var (
	sbHyps = []string{"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."}
	sbRefs = [][]string{
		{"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
		{"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."},
	}
)

func TestBLEU(t *testing.T) {
	const ref = "this is a string"
	cases := []struct {
		name  string
		hyps  []string
		refs  [][]string
		tok   string
		want  float64
		atol  float64 // the source's digits
		isNaN bool
	}{
		{"sacrebleu_13a", sbHyps, sbRefs, "13a", 48.530827, 1e-6, false},
		{"sacrebleu_none", sbHyps, sbRefs, "none", 49.1919566, 1e-7, false},
		{"sacrebleu_intl", sbHyps, sbRefs, "intl", 43.91623493, 1e-8, false},
		{"sacrebleu_empty_hyps", []string{"", "", ""}, sbRefs, "13a", 0, 0, false},
		// metrics_test.py test_same_bleu / test_different_bleu /
		// test_multiple_references_bleu (T5 passes tokenize="intl").
		{"t5_same", []string{ref, ref}, [][]string{{ref, ref}}, "intl", 100, 1e-12, false},
		{"t5_different", []string{"", ""}, [][]string{{ref, ref}}, "intl", 0, 0, false},
		{"t5_multi_ref", []string{ref, ref}, [][]string{{"", ref}, {ref, ""}}, "intl", 100, 1e-12, false},
		{"no_predictions", nil, [][]string{{}}, "intl", 0, 0, true},
		// Three tokens: no 4-grams at all, so the score is 0 even though
		// everything matches (compute_bleu breaks on total == 0).
		{"short", []string{"a b c"}, [][]string{{"a b c"}}, "none", 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := BLEU(c.hyps, c.refs, c.tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.isNaN {
				if !math.IsNaN(got) {
					t.Errorf("got %v, want NaN", got)
				}
				return
			}
			if math.Abs(got-c.want) > c.atol {
				t.Errorf("got %.10f, want %.10f", got, c.want)
			}
		})
	}
}

func TestBLEUErrors(t *testing.T) {
	if _, err := BLEU([]string{"x"}, [][]string{{"x"}}, "zh-nope"); err == nil || !strings.Contains(err.Error(), "zh-nope") {
		t.Errorf("unknown tokenizer: %v", err)
	}
	if _, err := BLEU([]string{"x"}, nil, "13a"); err == nil {
		t.Error("no streams: no error")
	}
	if _, err := BLEU([]string{"x", "y"}, [][]string{{"x", ""}}, "13a"); err == nil || !strings.Contains(err.Error(), "segment 1") {
		t.Errorf("empty reference: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("stream of the wrong length: no panic")
		}
	}()
	BLEU([]string{"x", "y"}, [][]string{{"x"}}, "13a")
}

func TestComputeBLEU(t *testing.T) {
	// test_bleu.py: compute_bleu([9,7,5,3], [10,8,6,4], 11, 11) → 0.8375922397 (/100).
	got := computeBLEU([4]int{9, 7, 5, 3}, [4]int{10, 8, 6, 4}, 11, 11)
	if math.Abs(got/100-0.8375922397) > 1e-10 {
		t.Errorf("got %.12f", got/100)
	}
	// Brevity penalty exp(1 − 12/10) on perfect precisions.
	if got, want := computeBLEU([4]int{10, 9, 8, 7}, [4]int{10, 9, 8, 7}, 10, 12), 100*math.Exp(1-1.2); !close(got, want) {
		t.Errorf("bp: got %v, want %v", got, want)
	}
	// exp smoothing: the 2nd and 4th orders have no matches: 100/(2·8) and 100/(4·6).
	want := math.Exp((math.Log(100*5.0/9) + math.Log(100/(2*8.0)) + math.Log(100*1.0/7) + math.Log(100/(4*6.0))) / 4)
	if got := computeBLEU([4]int{5, 0, 1, 0}, [4]int{9, 8, 7, 6}, 9, 9); !close(got, want) {
		t.Errorf("exp smoothing: got %v, want %v", got, want)
	}
	if got := computeBLEU([4]int{}, [4]int{3, 2, 1, 0}, 3, 0); got != 0 {
		t.Errorf("no matches: %v", got)
	}
}

func TestClosestRefLen(t *testing.T) {
	cases := []struct {
		hyp  int
		refs []int
		want int
	}{
		{5, []int{3, 7}, 3}, // tie → shorter
		{5, []int{7, 3}, 3},
		{5, []int{6, 9}, 6},
		{5, []int{5}, 5},
	}
	for _, c := range cases {
		if got := closestRefLen(c.hyp, c.refs); got != c.want {
			t.Errorf("closestRefLen(%d, %v) = %d, want %d", c.hyp, c.refs, got, c.want)
		}
	}
}

func TestTokenize13a(t *testing.T) {
	cases := []struct{ in, want string }{
		{"It wasn't surprising.", "It wasn't surprising ."},
		{"Hello, world!", "Hello , world !"},
		{"3.14 and 1,000", "3.14 and 1,000"},
		{"end.", "end ."}, // the padding space lets the period split
		{"1999.", "1999 ."},
		{"1-2 a-b", "1 - 2 a-b"},
		{"&quot;x&quot; &amp; &lt;y&gt;", `" x " & < y >`},
		// Sequential replaces: &quot; has had its turn when &amp; makes one,
		// so it stays and splits on & and ;.
		{"&amp;quot;", "& quot ;"},
		{"co-\nop<skipped>\nx", "coop x"},
		{"a{b}c~d[e]f^g_h`i/j@k", "a { b } c ~ d [ e ] f ^ g _ h ` i / j @ k"},
		{"$5 #1 %", "$ 5 # 1 %"},
		{"", ""},
	}
	for _, c := range cases {
		if got := tokenize13a(c.in); got != c.want {
			t.Errorf("tokenize13a(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := regexp13a(c.in); got != c.want {
			t.Errorf("regexp13a(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestTokenizeIntl(t *testing.T) {
	cases := []struct{ in, want string }{
		{"It wasn't surprising.", "It wasn ' t surprising ."},
		{"3.14 and 1,000", "3.14 and 1,000"},
		{"1999.", "1999."}, // mteval-v14's known quirk, kept by sacrebleu
		{"costs $5+€3", "costs $ 5 + € 3"},
		{"«quoted»—dash", "« quoted » — dash"},
		{"日本語。テスト", "日本語 。 テスト"},
	}
	for _, c := range cases {
		if got := tokenizeIntl(c.in); got != c.want {
			t.Errorf("tokenizeIntl(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := regexpIntl(c.in); got != c.want {
			t.Errorf("regexpIntl(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzBLEU(f *testing.F) {
	for i := range sbHyps {
		f.Add(sbHyps[i], sbRefs[0][i], sbRefs[1][i])
	}
	f.Add("", "x", "")
	f.Add("&amp; 1.5 -\n", "<skipped>", "1-2,3.")
	f.Fuzz(func(t *testing.T, hyp, ref1, ref2 string) {
		if utf8.ValidString(hyp) {
			if got, want := tokenize13a(hyp), regexp13a(hyp); got != want {
				t.Fatalf("tokenize13a(%q) = %q, regexp version %q", hyp, got, want)
			}
			if got, want := tokenizeIntl(hyp), regexpIntl(hyp); got != want {
				t.Fatalf("tokenizeIntl(%q) = %q, regexp version %q", hyp, got, want)
			}
		}
		for _, tok := range []string{"13a", "intl", "none"} {
			got, err := BLEU([]string{hyp}, [][]string{{ref1}, {ref2}}, tok)
			if ref1 == "" && ref2 == "" {
				if err == nil {
					t.Fatalf("%s: all-empty references: no error", tok)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", tok, err)
			}
			if !(got >= 0 && got <= 100+1e-9) {
				t.Fatalf("%s: BLEU %v outside [0, 100]", tok, got)
			}
			if hyp == "" {
				continue
			}
			same, err := BLEU([]string{hyp}, [][]string{{hyp}}, tok)
			if err != nil {
				t.Fatalf("%s: %v", tok, err)
			}
			// Identical text scores 100 once it has 4 tokens (else 0).
			toks := len(pySplit(tokenizeFor(tok)(pyRStrip(hyp))))
			if want := map[bool]float64{true: 100, false: 0}[toks >= 4]; math.Abs(same-want) > 1e-9 {
				t.Fatalf("%s: BLEU(%q, itself) = %v, want %v (%d tokens)", tok, hyp, same, want, toks)
			}
		}
	})
}

func tokenizeFor(name string) func(string) string {
	tok, err := bleuTokenizer(name)
	if err != nil {
		panic(err)
	}
	return tok
}

var benchSink float64

func BenchmarkBLEU(b *testing.B) {
	hyps, refs := benchCorpus(3000)
	b.ReportAllocs()
	for b.Loop() {
		v, err := BLEU(hyps, [][]string{refs}, "intl")
		if err != nil {
			b.Fatal(err)
		}
		benchSink = v
	}
}

// benchCorpus builds n segment pairs of 20–30 words that share most words.
func benchCorpus(n int) (hyps, refs []string) {
	words := strings.Fields("the a of model shape matters for downstream fine-tuning quality, while scaling protocols differ across compute regions. t5 base large xl")
	for i := range n {
		var h, r []string
		for j := range 20 + i%11 {
			h = append(h, words[(i*7+j*3)%len(words)])
			r = append(r, words[(i*7+j*3+j%4)%len(words)])
		}
		hyps = append(hyps, strings.Join(h, " "))
		refs = append(refs, strings.Join(r, " "))
	}
	return hyps, refs
}
