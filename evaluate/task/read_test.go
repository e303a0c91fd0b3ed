package task

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// sst2Source is SST-2's config, for reader tests.
func sourceOf(t *testing.T, name string) glueSource {
	t.Helper()
	for _, g := range glueTasks() {
		if g.name == name {
			return g.src
		}
	}
	t.Fatalf("no GLUE task %s", name)
	return glueSource{}
}

// TestReadGLUE checks TFDS's TSV semantics: QUOTE_NONE (quotes literal), rows too short
// for a feature or with an empty label dropped, blank lines skipped without counting,
// integer labels, a UTF-8 BOM dropped, \r\n endings.
func TestReadGLUE(t *testing.T) {
	type ex struct{ id, input, target string }
	tests := []struct {
		name, task, data string
		want             []ex
	}{
		{"quotes are literal", "sst2", "sentence\tlabel\n\"it 's \"\"good\"\" \t1\n\"open quote\t0\n",
			[]ex{{"0", `sst2 sentence: "it 's ""good"" `, "positive"}, {"1", `sst2 sentence: "open quote`, "negative"}}},
		{"extra fields ignored", "sst2", "sentence\tlabel\nx\t0\textra\n", []ex{{"0", "sst2 sentence: x", "negative"}}},
		{"short row dropped, counted", "rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\n2\td\te\tnot_entailment\n",
			[]ex{{"0", "rte sentence1: a sentence2: b", "entailment"}, {"2", "rte sentence1: d sentence2: e", "not_entailment"}}},
		{"missing label dropped", "rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\n1\tc\td\tentailment\n",
			[]ex{{"1", "rte sentence1: c sentence2: d", "entailment"}}},
		{"empty label dropped", "sst2", "sentence\tlabel\na\t\nb\t1\n", []ex{{"1", "sst2 sentence: b", "positive"}}},
		{"blank lines skipped, not counted", "sst2", "sentence\tlabel\n\na\t0\n\n\nb\t1\n",
			[]ex{{"0", "sst2 sentence: a", "negative"}, {"1", "sst2 sentence: b", "positive"}}},
		{"crlf and bom", "sst2", "\ufeffsentence\tlabel\r\na \t1\r\n", []ex{{"0", "sst2 sentence: a ", "positive"}}},
		{"no final newline", "sst2", "sentence\tlabel\na\t1", []ex{{"0", "sst2 sentence: a", "positive"}}},
		{"int label -1 is <unk>", "sst2", "sentence\tlabel\na\t-1\n", []ex{{"0", "sst2 sentence: a", "<unk>"}}},
		{"repeated column: last wins", "sst2", "sentence\tsentence\tlabel\na\tb\t1\n", []ex{{"0", "sst2 sentence: b", "positive"}}},
		{"mrpc columns", "mrpc", "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tHe said .\t\" She said .\n",
			[]ex{{"0", `mrpc sentence1: He said . sentence2: " She said .`, "equivalent"}}},
		{"mnli renames and sorts", "mnli_matched", "sentence1\tsentence2\tgold_label\nP\tH\tneutral\n",
			[]ex{{"0", "mnli hypothesis: H premise: P", "neutral"}}},
		{"cola has no header", "cola", "gj04\t1\t\tA b.\ngj04\t0\t*\tB a.\n",
			[]ex{{"0", "cola sentence: A b.", "acceptable"}, {"1", "cola sentence: B a.", "unacceptable"}}},
		{"stsb float32 rounding", "stsb", "sentence1\tsentence2\tscore\na\tb\t2.5\nc\td\t 1.66 \n",
			[]ex{{"0", "stsb sentence1: a sentence2: b", "2.4"}, {"1", "stsb sentence1: c sentence2: d", "1.6"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readGLUE(t.Context(), strings.NewReader(tc.data), "dev.tsv", sourceOf(t, tc.task))
			if err != nil {
				t.Fatal(err)
			}
			var gotEx []ex
			for _, e := range got {
				gotEx = append(gotEx, ex{e.ID, e.Input, e.Target})
			}
			if len(gotEx) != len(tc.want) {
				t.Fatalf("got %d examples %q, want %q", len(gotEx), gotEx, tc.want)
			}
			for i := range gotEx {
				if gotEx[i] != tc.want[i] {
					t.Errorf("example %d = %q, want %q", i, gotEx[i], tc.want[i])
				}
			}
		})
	}
}

// TestReadGLUEErrors: a row TFDS would crash on is an error naming the file and line.
func TestReadGLUEErrors(t *testing.T) {
	tests := []struct {
		name, task, data string
		line             int
		msg              string
	}{
		{"label not a class", "rte", "sentence1\tsentence2\tlabel\na\tb\tentailment\nc\td\tneutral\n", 3, "neither a class"},
		{"label out of range", "sst2", "sentence\tlabel\na\t2\n", 2, "out of range"},
		{"missing label column", "sst2", "sentence\tscore\na\t1\n", 1, `no "label" column`},
		{"missing feature column", "qqp", "question1\tis_duplicate\na\t1\n", 1, `no "question2" column`},
		{"carriage return in a row", "sst2", "sentence\tlabel\na\rb\t1\n", 2, "carriage return"},
		{"invalid UTF-8", "sst2", "sentence\tlabel\nok\t1\n\xff\xfe\t0\n", 3, "invalid UTF-8"},
		{"cola short row", "cola", "gj04\t1\t\tA.\ngj04\t1\n", 2, "want 4"},
		{"cola blank row", "cola", "gj04\t1\t\tA.\n\n", 2, "want 4"},
		{"stsb bad score", "stsb", "sentence1\tsentence2\tscore\na\tb\tfive\n", 2, "not a number"},
		{"stsb empty score", "stsb", "sentence1\tsentence2\tscore\na\tb\t\n", 2, "not a number"},
		{"stsb missing score", "stsb", "sentence1\tsentence2\tscore\na\tb\n", 2, `no "score"`},
		{"empty header", "sst2", "\na\t1\n", 1, "empty header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readGLUE(t.Context(), strings.NewReader(tc.data), "dev.tsv", sourceOf(t, tc.task))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err = %v, want a *LineError", err)
			}
			if le.File != "dev.tsv" || le.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v (line %d), want dev.tsv:%d with %q", err, le.Line, tc.line, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "dev.tsv:") {
				t.Errorf("message %q does not start with file:line", err)
			}
		})
	}
}

// TestLineLimit: a line over MaxLineBytes is an error, not an allocation.
func TestLineLimit(t *testing.T) {
	data := "sentence\tlabel\n" + strings.Repeat("a", MaxLineBytes+1) + "\t1\n"
	_, err := readGLUE(t.Context(), strings.NewReader(data), "dev.tsv", sourceOf(t, "sst2"))
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("err = %v, want a line-2 length error", err)
	}
	data = "sentence\tlabel\n" + strings.Repeat("a", MaxLineBytes-10) + "\t1\n"
	if exs, err := readGLUE(t.Context(), strings.NewReader(data), "dev.tsv", sourceOf(t, "sst2")); err != nil || len(exs) != 1 {
		t.Errorf("a line just under the limit: %d examples, %v", len(exs), err)
	}
}

// TestReadCanceled: a canceled context stops a long read.
func TestReadCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	data := "sentence\tlabel\n" + strings.Repeat("a\t1\n", 3*checkEvery)
	if _, err := readGLUE(ctx, strings.NewReader(data), "dev.tsv", sourceOf(t, "sst2")); err == nil {
		t.Error("want the context's error")
	}
}

// TestReadSuperGLUEErrors: malformed JSONL rows name file and line.
func TestReadSuperGLUEErrors(t *testing.T) {
	byName := map[string]superGLUETask{}
	for _, g := range superGLUETasks() {
		byName[g.name] = g
	}
	tests := []struct {
		name, task, data string
		line             int
		msg              string
	}{
		{"not JSON", "cb", `{"premise": "a", "hypothesis": "b", "label": "neutral", "idx": 0}` + "\n{oops\n", 2, "invalid character"},
		{"not an object", "cb", "[1]\n", 1, "cannot unmarshal"},
		{"missing field", "cb", `{"premise": "a", "label": "neutral", "idx": 0}` + "\n", 1, `missing "hypothesis"`},
		{"wrong type", "cb", `{"premise": 1, "hypothesis": "b", "label": "neutral", "idx": 0}` + "\n", 1, `"premise": want a string`},
		{"no label", "boolq", `{"question": "q", "passage": "p", "idx": 0}` + "\n", 1, "test split"},
		{"bad label", "cb", `{"premise": "a", "hypothesis": "b", "label": "maybe", "idx": 0}` + "\n", 1, "not one of"},
		{"int label on boolq", "boolq", `{"question": "q", "passage": "p", "idx": 0, "label": 1}` + "\n", 1, "not one of"},
		{"float idx", "rte", `{"premise": "a", "hypothesis": "b", "label": "entailment", "idx": 1.5}` + "\n", 1, `"idx": want an integer`},
		{"trailing data", "rte", `{"premise": "a", "hypothesis": "b", "label": "entailment", "idx": 1} {}` + "\n", 1, "data after"},
		{"wic offsets", "wic", `{"word": "w", "sentence1": "a", "sentence2": "b", "idx": 0, "label": true}` + "\n", 1, `missing "start1"`},
		{"multirc nested", "multirc", `{"idx": 0, "passage": {"text": "t", "questions": [{"question": "q", "idx": 0, "answers": [{"text": "a"}]}]}}` + "\n", 1, `passage.questions[0]: answers[0]: missing "idx"`},
		{"record entity", "record", `{"idx": 0, "passage": {"text": "t", "entities": [{"start": 0}]}, "qas": []}` + "\n", 1, `passage.entities[0]: missing "end"`},
		{"wsc span", "wsc", `{"text": "a b c", "target": {"span1_index": 0, "span2_index": 1, "span1_text": "a", "span2_text": "c"}, "idx": 0, "label": true}` + "\n", 1, "not span2_text"},
		{"wsc unfixable", "wsc", `{"text": "a b c", "target": {"span1_index": 0, "span2_index": 1, "span1_text": "a", "span2_text": "x"}, "idx": 0, "label": true}` + "\n", 1, "even after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := byName[tc.task].read(t.Context(), strings.NewReader(tc.data), "val.jsonl")
			var le *LineError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want val.jsonl:%d with %q", err, tc.line, tc.msg)
			}
		})
	}
}

// TestReadSuperGLUE checks TFDS's JSON semantics: COPA's truthy label, MultiRC's bool()
// of the label, WSC's row.update(target), ReCoRD's code-point entity offsets.
func TestReadSuperGLUE(t *testing.T) {
	byName := map[string]superGLUETask{}
	for _, g := range superGLUETasks() {
		byName[g.name] = g
	}
	tests := []struct {
		name, task, data string
		want             []Example
	}{
		{"copa truthy", "copa", `{"premise": "P", "choice1": "A", "choice2": "B", "question": "cause", "label": 1, "idx": 3}` + "\n\n" +
			`{"premise": "P", "choice1": "A", "choice2": "B", "question": "effect", "label": 0, "idx": 4}` + "\n",
			[]Example{{ID: "3", Input: "copa choice1: A choice2: B premise: P question: cause", Target: "choice2", Choices: []string{"choice1", "choice2"}},
				{ID: "4", Input: "copa choice1: A choice2: B premise: P question: effect", Target: "choice1", Choices: []string{"choice1", "choice2"}}}},
		{"boolq sorted keys, bool label", "boolq", `{"question": "q?", "passage": "p.", "idx": 7, "label": false}`,
			[]Example{{ID: "7", Input: "boolq passage: p. question: q?", Target: "False", Choices: []string{"False", "True"}}}},
		{"wic explicit order", "wic", `{"word": "w", "sentence1": "a", "sentence2": "b", "idx": 0, "label": true, "start1": 0, "start2": 0, "end1": 1, "end2": 1}`,
			[]Example{{ID: "0", Input: "wic sentence1: a sentence2: b word: w", Target: "True", Choices: []string{"False", "True"}}}},
		{"multirc labels and groups", "multirc", `{"idx": 2, "passage": {"text": "P<br>", "questions": [{"question": "Q", "idx": 5, "answers": [{"text": "A", "idx": 0, "label": 0}, {"text": "B", "idx": 1, "label": true}, {"text": "C", "idx": 2}]}]}}`,
			[]Example{
				{ID: "p2/q5/a0", Input: "multirc question: Q answer: A paragraph: P ", Target: "False", Choices: []string{"False", "True"}, Group: "q5"},
				{ID: "p2/q5/a1", Input: "multirc question: Q answer: B paragraph: P ", Target: "True", Choices: []string{"False", "True"}, Group: "q5"},
				{ID: "p2/q5/a2", Input: "multirc question: Q answer: C paragraph: P ", Target: "<unk>", Choices: []string{"False", "True"}, Group: "q5"}}},
		{"record code points, end inclusive, set, sorted", "record",
			`{"idx": 1, "passage": {"text": "Zoë met Al.\n@highlight\nAl won", "entities": [{"start": 8, "end": 9}, {"start": 0, "end": 2}, {"start": 23, "end": 24}, {"start": -2, "end": 99}]}, "qas": [{"query": "@placeholder met Al.", "answers": [{"text": "Zoë"}, {"text": "Zoë"}], "idx": 4}, {"query": "x", "idx": 5}]}`,
			[]Example{
				{ID: "p1/q4", Input: "record query: @placeholder met Al. entities: Al, Zoë, on passage: Zoë met Al. Al won", Target: "Zoë", Answers: []string{"Zoë"}, Choices: []string{"Al", "Zoë", "on"}, Group: "p1/q4"},
				{ID: "p1/q5", Input: "record query: x entities: Al, Zoë, on passage: Zoë met Al. Al won", Target: "<unk>", Choices: []string{"Al", "Zoë", "on"}, Group: "p1/q5"}}},
		{"wsc target keys win", "wsc", `{"text": "Tom said he left", "target": {"span1_index": 0, "span2_index": 2, "span1_text": "Tom", "span2_text": "he"}, "idx": 9, "label": false}`,
			[]Example{{ID: "9", Input: "wsc: Tom said *he* left", Target: "Tom", goldSet: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := byName[tc.task].read(t.Context(), strings.NewReader(tc.data), "val.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d examples %+v, want %d", len(got), got, len(tc.want))
			}
			for i := range got {
				if !sameExample(got[i], tc.want[i]) {
					t.Errorf("example %d\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func sameExample(a, b Example) bool {
	eq := func(x, y []string) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return a.ID == b.ID && a.Input == b.Input && a.Target == b.Target && a.Group == b.Group &&
		eq(a.Answers, b.Answers) && eq(a.Choices, b.Choices) && a.goldSet == b.goldSet && a.gold == b.gold
}

// TestReadSQuAD: answers grouped by id, padded; errors name the JSON path.
func TestReadSQuAD(t *testing.T) {
	data := `{"data": [{"title": "T", "paragraphs": [{"context": "Some context.", "qas": [
		{"id": "a", "question": "A question?", "answers": [{"answer_start": 0, "text": "The answer."}]},
		{"id": "b", "question": "Q2", "answers": [{"answer_start": 0, "text": "Some"}]}]},
		{"context": "Other.", "qas": [{"id": "a", "question": "ignored", "answers": [{"answer_start": 0, "text": "Other"}]}]}]}]}`
	got, err := readSQuAD(t.Context(), strings.NewReader(data), "dev.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{ID: "a", Input: "question: A question ? context: Some context . ", Target: "The answer . ", Answers: []string{"The answer . ", "Other"}},
		{ID: "b", Input: "question: Q2 context: Some context . ", Target: "Some", Answers: []string{"Some"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if !sameExample(got[i], want[i]) {
			t.Errorf("example %d\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	for _, tc := range []struct{ data, msg string }{
		{`{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "a", "question": "q", "answers": []}]}]}]}`, "no answers"},
		{`{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "a", "answers": []}]}]}]}`, `data[0].paragraphs[0].qas[0]: missing "question"`},
		{`{"data": [{"paragraphs": [{"context": 5}]}]}`, `data[0].paragraphs[0]: "context": want a string`},
		{`{"version": "1.1"}`, `missing "data"`},
		{`[]`, "cannot unmarshal"},
		{`{"data": []} x`, "data after"},
	} {
		if _, err := readSQuAD(t.Context(), strings.NewReader(tc.data), "dev.json"); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("readSQuAD(%s): err = %v, want %q", tc.data, err, tc.msg)
		}
	}
}

func TestLimitedReader(t *testing.T) {
	r := &limitedReader{r: strings.NewReader("0123456789ab"), max: 10}
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "larger than 10") {
		t.Errorf("over the limit: err = %v", err)
	}
	r = &limitedReader{r: strings.NewReader("0123456789"), max: 10}
	if data, err := io.ReadAll(r); err != nil || len(data) != 10 {
		t.Errorf("at the limit: %q, %v", data, err)
	}
}
