package task

import (
	"math"
	"slices"
	"strconv"
	"testing"
)

// TestGlueInputs is T5's preprocessors_test.py test_glue: sorted keys by default, the
// given order with feature_names, "<unk>" for label −1.
func TestGlueInputs(t *testing.T) {
	x := []feature{{"q1", "How so?"}, {"q2", "Why not?"}, {"q3", "Who?"}}
	tests := []struct {
		name  string
		feats []feature
		want  string
	}{
		{"sorted", sortedFeatures(x[2], x[0], x[1]), "qqp q1: How so? q2: Why not? q3: Who?"},
		{"feature_names q3,q1", []feature{x[2], x[0]}, "qqp q3: Who? q1: How so?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := glueInputs("qqp", tc.feats); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	classes := []string{"not_duplicate", "duplicate"}
	if got := targetName(0, classes); got != "not_duplicate" {
		t.Errorf("label 0: %q", got)
	}
	if got := targetName(-1, classes); got != "<unk>" {
		t.Errorf("label -1: %q, want <unk>", got)
	}
}

// TestSortedFeaturesCodePoints: Python's sorted() on str is code-point order: upper case
// before lower case, "b" before "é".
func TestSortedFeaturesCodePoints(t *testing.T) {
	got := sortedFeatures(feature{"é", ""}, feature{"b", ""}, feature{"B", ""}, feature{"a_b", ""}, feature{"a", ""})
	var keys []string
	for _, f := range got {
		keys = append(keys, f.key)
	}
	if want := []string{"B", "a", "a_b", "b", "é"}; !slices.Equal(keys, want) {
		t.Errorf("got %q, want %q", keys, want)
	}
}

// TestMultiRCCleanup: glue() removes <br> (→ space) and <b>/</b> from MultiRC inputs only.
func TestMultiRCCleanup(t *testing.T) {
	feats := []feature{{"question", "Who <b>won</b>?"}, {"answer", "Bob"}, {"paragraph", "<b>Sent 1: </b>Bob won.<br><b>Sent 2: </b>Al lost.<br>"}}
	want := "multirc question: Who won? answer: Bob paragraph: Sent 1: Bob won. Sent 2: Al lost. "
	if got := glueInputs("multirc", feats); got != want {
		t.Errorf("multirc: got %q, want %q", got, want)
	}
	if got := glueInputs("boolq", []feature{{"passage", "a<br>b"}}); got != "boolq passage: a<br>b" {
		t.Errorf("boolq keeps markup: got %q", got)
	}
}

// TestSTSBTarget holds T5's stsb tests (2.8 → "2.8", 1.66 → "1.6") and the facts file's
// rounding table: over the labels k/1000 in [0, 5], round-half-even of the float32
// label×5 differs from round-half-up on exactly 13 labels, where T5 gives the lower value.
func TestSTSBTarget(t *testing.T) {
	for _, tc := range []struct {
		label float32
		want  string
	}{{2.8, "2.8"}, {1.66, "1.6"}, {5, "5.0"}, {0, "0.0"}, {4.75, "4.8"}, {3.2, "3.2"}} {
		if got := stsbTarget(tc.label); got != tc.want {
			t.Errorf("stsbTarget(%v) = %q, want %q", tc.label, got, tc.want)
		}
	}
	table := map[string]string{
		"0.1": "0.0", "0.5": "0.4", "0.9": "0.8", "1.3": "1.2", "1.7": "1.6", "2.1": "2.0", "2.5": "2.4",
		"2.9": "2.8", "3.3": "3.2", "3.7": "3.6", "4.1": "4.0", "4.5": "4.4", "4.9": "4.8",
	}
	differ := map[string]string{}
	for k := 0; k <= 5000; k++ {
		s := strconv.FormatFloat(float64(k)/1000, 'f', -1, 64)
		v, _ := strconv.ParseFloat(s, 64)
		label := float32(v)
		even := stsbTarget(label)
		up := strconv.FormatFloat(math.Floor(float64(label*5)+0.5)/5, 'f', 1, 64)
		if even != up {
			differ[strconv.FormatFloat(float64(k)/1000, 'f', 1, 64)] = even
		}
	}
	if len(differ) != len(table) {
		t.Errorf("half-even and half-up differ on %d labels, want 13: %v", len(differ), differ)
	}
	for label, want := range table {
		if got := differ[label]; got != want {
			t.Errorf("label %s: T5 gives %q, want %q", label, got, want)
		}
		v, _ := strconv.ParseFloat(label, 64)
		if got := stsbTarget(float32(v)); got != want {
			t.Errorf("stsbTarget(%s) = %q, want %q", label, got, want)
		}
	}
	choices := stsbChoices()
	if len(choices) != 26 || choices[0] != "0.0" || choices[1] != "0.2" || choices[25] != "5.0" {
		t.Errorf("stsbChoices = %q", choices)
	}
}

// TestRecordExamples is T5's test_record: one example per answer, the @highlight lines
// turned into sentences.
func TestRecordExamples(t *testing.T) {
	q := recordQuery{
		passage:  "This is the passage\n@highlight\nAnother sentence.\n@highlight\nThird sentence.",
		query:    "It was @placeholder.",
		entities: []string{"A", "B", "C"},
		answers:  []string{"A", "C"},
	}
	got := recordExamples(q)
	const input = "record query: It was @placeholder. entities: A, B, C passage: This is the passage. Another sentence. Third sentence."
	if len(got) != 2 {
		t.Fatalf("%d examples, want 2", len(got))
	}
	for i, want := range []string{"A", "C"} {
		if got[i].Input != input || got[i].Target != want || !slices.Equal(got[i].Answers, q.answers) {
			t.Errorf("example %d = %+v, want input %q target %q", i, got[i], input, want)
		}
	}
	q.answers = nil
	if got := recordExamples(q); len(got) != 1 || got[0].Target != "<unk>" {
		t.Errorf("no answers: %+v, want one <unk> example", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"Hi!\n@highlight\nX", "Hi! X"},
		{"Hi\"\n@highlight\nX", "Hi\" X"},
		{"Hi'\n@highlight\nX", "Hi' X"},
		{"Hi?\n@highlight\nX\n@highlight\nY", "Hi? X. Y"},
		{"@highlight\nX", "@highlight\nX"},
	} {
		want := "record query: q entities:  passage: " + tc.want
		if got := recordInputs("q", nil, tc.in); got != want {
			t.Errorf("recordInputs(%q) = %q, want %q", tc.in, got, want)
		}
	}
}

// TestWSCInputs is T5's wsc_simple test plus the asserts _wsc_inputs makes.
func TestWSCInputs(t *testing.T) {
	got, err := wscInputs("Mitchell asked Tom if he could lend some money.", 4, "he")
	if want := "wsc: Mitchell asked Tom if *he* could lend some money."; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	// Every " X " is replaced, as regex_replace does globally.
	got, err = wscInputs("Mr. X said he saw X there", 3, "he")
	if want := "wsc: Mr. *he* said *he* saw *he* there"; err != nil || got != want {
		t.Errorf("global replace: got %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct {
		text  string
		index int64
		span  string
	}{
		{"he said so", 0, "he"},
		{"so said he", 3, "he"},
		{"so said he", 1, "he"},
	} {
		if _, err := wscInputs(tc.text, tc.index, tc.span); err == nil {
			t.Errorf("wscInputs(%q, %d, %q): want an error", tc.text, tc.index, tc.span)
		}
	}
	special := `When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in an iron safe . Some day they might want to use it , but really for now, what more could they wish for?`
	got, err = wscInputs(special, 33, "it")
	if want := "wsc: When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in an iron safe . Some day they might want to use *it* , but really for now, what more could they wish for?"; err != nil || got != want {
		t.Errorf("special case: got %q, %v", got, err)
	}
}

// TestFixWSC covers TFDS's _fix_wst: case of the indexed word, trailing dots, newlines.
func TestFixWSC(t *testing.T) {
	tests := []struct {
		name string
		in   wscRow
		want wscRow
		bad  bool
	}{
		{"substring untouched", wscRow{text: "The cat sat.", span1Text: "cat", span2Text: "sat"},
			wscRow{text: "The cat sat.", span1Text: "cat", span2Text: "sat"}, false},
		{"lower-case first word", wscRow{text: "I saw the table there", span1Index: 2, span1Text: "The table", span2Text: "saw"},
			wscRow{text: "I saw the table there", span1Index: 2, span1Text: "the table", span2Text: "saw"}, false},
		{"trailing dot and newline", wscRow{text: "Big Red Dog ran", span1Index: 0, span1Text: "big Red\nDog.", span2Text: "ran"},
			wscRow{text: "Big Red Dog ran", span1Index: 0, span1Text: "Big Red Dog", span2Text: "ran"}, false},
		{"theyscold sets span2_index", wscRow{text: "x y", span1Index: 0, span1Text: "x theyscold", span2Text: "y"}, wscRow{}, true},
		{"index out of range", wscRow{text: "a b", span1Index: 5, span1Text: "zz"}, wscRow{}, true},
		{"kamenev kept", wscRow{text: "a b", span1Text: "Kamenev and Zinoviev", span2Text: "b"},
			wscRow{text: "a b", span1Text: "Kamenev and Zinoviev", span2Text: "b"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in
			err := fixWSC(&got)
			if tc.bad {
				if err == nil {
					t.Fatalf("want an error, got %+v", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	ex := wscRow{text: "they scold x", span1Index: 0, span1Text: "they", span2Index: 2, span2Text: "theyscold"}
	_ = fixWSC(&ex)
	if ex.span2Index != 10 {
		t.Errorf("theyscold: span2_index = %d, want 10", ex.span2Index)
	}
}

// TestPadPunctuation is T5's test_squad: punctuation padded, whitespace collapsed, not
// trimmed.
func TestPadPunctuation(t *testing.T) {
	got := squadInputs(padPunctuation("A question?"), padPunctuation("Some context."))
	if want := "question: A question ? context: Some context . "; got != want {
		t.Errorf("inputs %q, want %q", got, want)
	}
	if got, want := padPunctuation("The answer."), "The answer . "; got != want {
		t.Errorf("target %q, want %q", got, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"U.S.", "U . S . "},
		{"a\t\n b", "a b"},
		{"«non-ASCII» é", "«non - ASCII» é"}, // [:punct:] is ASCII in RE2
		{"a\u00a0b", "a\u00a0b"},             // \s is ASCII in RE2
		{"$5,000", " $ 5 , 000"},
	} {
		if got := padPunctuation(tc.in); got != tc.want {
			t.Errorf("padPunctuation(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClassID(t *testing.T) {
	classes := []string{"negative", "positive"}
	for _, tc := range []struct {
		in   string
		want int
	}{{"negative", 0}, {"positive", 1}, {"Positive", -1}, {" positive", -1}, {"positive ", -1}, {"", -1}, {"<unk>", -1}} {
		if got := classID(tc.in, classes); got != tc.want {
			t.Errorf("classID(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestStringToFloat: Python float() semantics, −1.0 on failure.
func TestStringToFloat(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"3.4", 3.4, true}, {" 3.4 ", 3.4, true}, {"\t3.4\n", 3.4, true}, {"1e0", 1, true}, {"1E+2", 100, true},
		{"-1", -1, true}, {"+.5", 0.5, true}, {"5.", 5, true}, {"1_000.5", 1000.5, true}, {"1e1_0", 1e10, true},
		{"inf", math.Inf(1), true}, {"-Infinity", math.Inf(-1), true}, {"iNf", math.Inf(1), true},
		{"1e400", math.Inf(1), true}, {"1e-400", 0, true}, {"\u0663.\u0665", 3.5, true}, {"\x1f2\x1c", 2, true},
		{"\u00a02.0\u2003", 2, true}, {"𝟑", 3, true},
		{"", -1, false}, {" ", -1, false}, {".", -1, false}, {"e5", -1, false}, {"1e", -1, false}, {"0x10", -1, false},
		{"1__0", -1, false}, {"_1", -1, false}, {"1_", -1, false}, {"1_.5", -1, false}, {"1._5", -1, false},
		{"3.4.5", -1, false}, {"nan(1)", -1, false}, {"infinit", -1, false}, {"3,4", -1, false}, {"2.4 </s>", -1, false},
		{"++1", -1, false}, {"1e+-2", -1, false}, {"\u200b1", -1, false},
	}
	for _, tc := range tests {
		got, ok := stringToFloat(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("stringToFloat(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if v, ok := stringToFloat(" NaN "); !ok || !math.IsNaN(v) {
		t.Errorf("stringToFloat(NaN) = %v, %v", v, ok)
	}
}

func TestPyInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"1", 1, true}, {" -1 ", -1, true}, {"+0", 0, true}, {"01", 1, true}, {"1_0", 10, true}, {"\u0661", 1, true},
		{"", 0, false}, {"1.0", 0, false}, {"1e0", 0, false}, {"one", 0, false}, {"-", 0, false}, {"99999999999999999999", 0, false}} {
		got, err := pyInt(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("pyInt(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestPySplitStrip(t *testing.T) {
	if got := pySplit(" a\x1cb\u00a0c\u2028d  "); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("pySplit = %q", got)
	}
	if got := pyStrip("\x1f\u3000 x y \u0085"); got != "x y" {
		t.Errorf("pyStrip = %q", got)
	}
	for _, tc := range []struct{ n, start, stop, lo, hi int }{
		{5, 1, 3, 1, 3}, {5, -2, 5, 3, 5}, {5, 3, 99, 3, 5}, {5, 4, 2, 4, 4}, {5, -9, 2, 0, 2}, {5, 7, 9, 5, 5},
	} {
		if lo, hi := pySlice(tc.n, tc.start, tc.stop); lo != tc.lo || hi != tc.hi {
			t.Errorf("pySlice(%d, %d, %d) = %d, %d; want %d, %d", tc.n, tc.start, tc.stop, lo, hi, tc.lo, tc.hi)
		}
	}
}

// TestWSCSimple is postprocessors.wsc_simple on predictions against a referent.
func TestWSCSimple(t *testing.T) {
	tests := []struct {
		pred, referent string
		want           int
	}{
		{"Tom", "Tom", 1},
		{" tom ", "Tom", 1},
		{"the dog", "The Dog", 1},
		{"dog", "the big dog", 1},   // subset
		{"fuzzy bunny", "bunny", 1}, // superset
		{"a cat", "the dog", 0},     // neither
		{"Bob", "Bob's hat", 0},     // apostrophe on one side only
		{"Bob's", "Bob's hat", 1},   // apostrophes on both sides: subset
		{"the", "Tom", -1},          // empty after determiners
		{"", "Tom", -1},             // empty
		{"   ", "Tom", -1},          // whitespace only
		{"those few", "Tom", -1},    // only determiners
		{"his  dog", "dog", 1},      // words {"", "dog"} ⊇ {"dog"}
		{"his  dog", "a  dog", 1},   // {"", "dog"} on both sides
		{"dog  cat", "dog cat", 1},  // {"dog", "", "cat"} ⊇ {"dog", "cat"}
		{"dog cat", "dog  cat", 1},
		{"Tom Tom", "Tom", 1},           // sets
		{"THEIR Kids", "their kids", 1}, // case
		{"the man's", "The man", 0},     // apostrophe rule before the subset rule
		{"Mr. Moncrieff", "Mr. Moncrieff", 1},
	}
	if got := wscClean(" His  Dog "); got != " dog" {
		t.Errorf("wscClean keeps the empty word of a double space: got %q, want %q", got, " dog")
	}
	for _, tc := range tests {
		if got := wscSimple(tc.pred, tc.referent); got != tc.want {
			t.Errorf("wscSimple(%q, %q) = %d, want %d", tc.pred, tc.referent, got, tc.want)
		}
	}
}

func TestLabelIndex(t *testing.T) {
	classes := []string{"entailment", "not_entailment"}
	for _, tc := range []struct {
		in      string
		idx     int
		ok, bad bool
	}{
		{"entailment", 0, true, false}, {"not_entailment", 1, true, false}, {"1", 1, true, false}, {" 0 ", 0, true, false},
		{"-1", -1, true, false}, {"", 0, false, false}, {"2", 0, false, true}, {"-2", 0, false, true}, {"neutral", 0, false, true},
	} {
		idx, ok, err := labelIndex(tc.in, classes)
		if (err != nil) != tc.bad || ok != tc.ok || (ok && idx != tc.idx) {
			t.Errorf("labelIndex(%q) = %d, %v, %v; want %d, %v, bad=%v", tc.in, idx, ok, err, tc.idx, tc.ok, tc.bad)
		}
	}
}
