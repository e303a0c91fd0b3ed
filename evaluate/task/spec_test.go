package task

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeFiles writes name → content under a temporary folder and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const sentimentYAML = `# a classification spec
name: demo/sentiment
version: "2"
description: review sentiment
data: reviews.jsonl
input: "review: {text} {{stars}}"
target: label
choices: [negative, positive]
id: rid
decode_length: 8
metrics: [accuracy, f1, macro_f1, mcc]
`

const reviewsJSONL = `{"rid": "r1", "text": "great", "label": "positive"}
{"rid": "r2", "text": "bad", "label": 0}

{"rid": 3, "text": "fine", "label": true}
{"rid": "r4", "text": "meh", "label": 1}
`

// TestSpecClassification parses a YAML spec, loads its JSONL data and scores it.
func TestSpecClassification(t *testing.T) {
	dir := writeFiles(t, map[string]string{"spec.yaml": sentimentYAML, "reviews.jsonl": reviewsJSONL})
	tk, err := LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if tk.Name() != "demo/sentiment" || tk.Benchmark() != "" || tk.DecodeLength() != 8 || !tk.Rankable() ||
		tk.Description() != "review sentiment" || !slices.Equal(tk.Modes(), []string{"predict", "rank"}) {
		t.Errorf("task = %+v", tk)
	}
	if !strings.HasPrefix(tk.Version(), "spec-") || !strings.HasSuffix(tk.Version(), "+2") || len(tk.Version()) != len("spec-")+12+2 {
		t.Errorf("version %q", tk.Version())
	}
	if got := tk.Files(); len(got) != 1 || got[0] != filepath.Join(dir, "reviews.jsonl") {
		t.Errorf("Files = %q", got)
	}
	exs, err := tk.Load(t.Context(), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	want := []Example{
		{ID: "r1", Input: "review: great {stars}", Target: "positive"},
		{ID: "r2", Input: "review: bad {stars}", Target: "negative"},
		{ID: "3", Input: "review: fine {stars}", Target: "positive"},
		{ID: "r4", Input: "review: meh {stars}", Target: "positive"},
	}
	for i := range want {
		want[i].Choices = []string{"negative", "positive"}
		if !sameExample(exs[i], want[i]) {
			t.Errorf("example %d = %+v, want %+v", i, exs[i], want[i])
		}
	}
	s, err := tk.Evaluate(exs, []string{"positive", "positive", "nope", "positive"})
	if err != nil {
		t.Fatal(err)
	}
	// gold 1,0,1,1; predicted 1,1,−1,1. F1: invalid → wrong (0): TP 2, FP 1, FN 1.
	// Macro F1 over (0, 1): class 0 F1 0, class 1 F1 2·2/(2·2+1+1) = 2/3 → 1/3.
	// MCC over labels (−1, 0, 1): t_sum (0,1,3), p_sum (1,0,3), correct 2, n 4.
	mcc := (2.0*4 - (0*1 + 1*0 + 3*3)) / math.Sqrt((16-(0+1+9))*(16-(1+0+9)))
	wantM := map[string]float64{"accuracy": 50, "f1": 200.0 / 3, "mean_2class_f1": 100.0 / 3, "matthews_corrcoef": 100 * mcc}
	for k, v := range wantM {
		if !closeTo(s.Metrics[k], v) {
			t.Errorf("%s = %v, want %v", k, s.Metrics[k], v)
		}
	}
	if len(s.Metrics) != len(wantM) || s.Invalid != 1 {
		t.Errorf("metrics %v, invalid %d", s.Metrics, s.Invalid)
	}
}

// TestSpecFreeText: a JSON spec over TSV data with text metrics, and targets lists.
func TestSpecFreeText(t *testing.T) {
	spec := `{"name": "demo/qa", "data": "data:qa/dev.tsv", "input": "question: {q}", "target": "a", "metrics": ["exact_match", "squad", "bleu", "rouge"]}`
	dir := writeFiles(t, map[string]string{"qa/dev.tsv": "q\ta\nWho? \"x\"\tThe cat\nWhere?\tin Paris\n"})
	tk, err := ParseSpec([]byte(spec), "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Rankable() || !slices.Equal(tk.Modes(), []string{"predict"}) || tk.DecodeLength() != 128 || tk.Files()[0] != "qa/dev.tsv" {
		t.Errorf("task %+v", tk)
	}
	exs, err := tk.Load(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 2 || exs[0].Input != `question: Who? "x"` || exs[0].Target != "The cat" || exs[1].ID != "1" {
		t.Fatalf("examples %+v", exs)
	}
	s, err := tk.Evaluate(exs, []string{" The cat\n", "Paris"})
	if err != nil {
		t.Fatal(err)
	}
	if !closeTo(s.Metrics["exact_match"], 50) || !closeTo(s.Metrics["em"], 50) || !closeTo(s.Metrics["f1"], 100*(1+2.0/3)/2) {
		t.Errorf("metrics %v", s.Metrics)
	}
	for _, k := range []string{"bleu", "rouge1", "rouge2", "rougeLsum"} {
		if _, ok := s.Metrics[k]; !ok {
			t.Errorf("no %s in %v", k, s.Metrics)
		}
	}
	if s.Outcomes[1].Value != "Paris" || s.Invalid != 0 {
		t.Errorf("outcomes %+v", s.Outcomes)
	}

	multi := `name: demo/multi
data: m.jsonl
input: "{q}"
targets: answers
metrics: [accuracy, squad, bleu_13a]
`
	dir = writeFiles(t, map[string]string{"spec.yml": multi, "m.jsonl": `{"q": "a", "answers": ["x", "y"]}` + "\n" + `{"q": "b", "answers": ["z"]}` + "\n"})
	tk, err = LoadSpec(filepath.Join(dir, "spec.yml"))
	if err != nil {
		t.Fatal(err)
	}
	exs, err = tk.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if exs[0].Target != "x" || !slices.Equal(exs[0].Answers, []string{"x", "y"}) {
		t.Errorf("example %+v", exs[0])
	}
	s, err = tk.Evaluate(exs, []string{"y", "q"})
	if err != nil {
		t.Fatal(err)
	}
	if !closeTo(s.Metrics["accuracy"], 50) || !closeTo(s.Metrics["em"], 50) {
		t.Errorf("metrics %v", s.Metrics)
	}
}

// TestSpecNumbers: pearson/spearman on a CSV file (quoted fields with commas and newlines).
func TestSpecNumbers(t *testing.T) {
	spec := "name: demo/sim\ndata: sim.csv\ninput: \"s1: {a} s2: {b}\"\ntarget: score\nmetrics: [pearson, spearman]\n"
	csvData := "a,b,score\n\"x, y\",z,1.0\n\"multi\nline\",w,2.0\np,q,3.0\n"
	dir := writeFiles(t, map[string]string{"spec.yaml": spec, "sim.csv": csvData})
	tk, err := LoadSpec(filepath.Join(dir, "spec.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	exs, err := tk.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 3 || exs[0].Input != "s1: x, y s2: z" || exs[1].Input != "s1: multi\nline s2: w" {
		t.Fatalf("examples %+v", exs)
	}
	s, err := tk.Evaluate(exs, []string{"1", "junk", "3"})
	if err != nil {
		t.Fatal(err)
	}
	if !closeTo(s.Metrics["pearson_corrcoef"], 50) || !closeTo(s.Metrics["spearman_corrcoef"], 50) || s.Invalid != 1 || s.Outcomes[1].Value != -1.0 {
		t.Errorf("scored %+v", s)
	}
	bad := writeFiles(t, map[string]string{"spec.yaml": spec, "sim.csv": "a,b,score\nx,y,high\n"})
	tk, _ = LoadSpec(filepath.Join(bad, "spec.yaml"))
	var le *LineError
	if _, err := tk.Load(t.Context(), ""); !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "not a number") {
		t.Errorf("non-numeric target: err = %v", err)
	}
}

// TestSpecVersion: the version hashes the spec's bytes.
func TestSpecVersion(t *testing.T) {
	a := "name: a/b\ndata: x.jsonl\ninput: \"{t}\"\ntarget: t\n"
	ta, err := ParseSpec([]byte(a), ".")
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := ParseSpec([]byte(a), "/other")
	tc, _ := ParseSpec([]byte(a+"# comment\n"), ".")
	if ta.Version() != tb.Version() || ta.Version() == tc.Version() {
		t.Errorf("versions %q %q %q: same bytes must agree, other bytes differ", ta.Version(), tb.Version(), tc.Version())
	}
	// sha256("name: a/b\ndata: x.jsonl\ninput: \"{t}\"\ntarget: t\n"), first 12 hex digits.
	if want := "spec-" + sha12(a); ta.Version() != want {
		t.Errorf("version %q, want %q", ta.Version(), want)
	}
}

// TestSpecErrors: every validation failure names its key.
func TestSpecErrors(t *testing.T) {
	base := map[string]string{"name": "x/y", "data": "d.jsonl", "input": "'{t}'", "target": "t"}
	yamlOf := func(over map[string]string, drop ...string) string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range over {
			m[k] = v
		}
		var b strings.Builder
		for _, k := range specKeys() {
			if v, ok := m[k]; ok && !slices.Contains(drop, k) {
				b.WriteString(k + ": " + v + "\n")
			}
		}
		return b.String()
	}
	tests := []struct {
		name, spec, field, msg string
	}{
		{"empty", "", "", "empty spec"},
		{"comments only", "# nothing\n", "", "empty spec"},
		{"json unknown key", `{"name": "x/y", "Name": "z"}`, "Name", "unknown key"},
		{"json repeated key", `{"name": "x/y", "name": "z"}`, "name", "repeated"},
		{"json wrong type", `{"name": "x/y", "data": "d.jsonl", "input": "{t}", "target": "t", "decode_length": "8"}`, "decode_length", "want int"},
		{"json trailing", `{"name": "x/y"} {}`, "", "after the spec"},
		{"json syntax", `{"name": }`, "", "JSON"},
		{"yaml unknown key", yamlOf(nil) + "metric: [accuracy]\n", "", "field metric not found"},
		{"yaml repeated key", "name: a\nname: b\n", "", "already defined"},
		{"yaml wrong type", yamlOf(map[string]string{"choices": "positive"}), "", "cannot unmarshal"},
		{"yaml two documents", yamlOf(nil) + "---\nname: z\n", "", "more than one"},
		{"no name", yamlOf(nil, "name"), "name", "required"},
		{"bad name", yamlOf(map[string]string{"name": "/abs"}), "name", "letters"},
		{"dotdot name", yamlOf(map[string]string{"name": "a/../b"}), "name", "letters"},
		{"builtin name", yamlOf(map[string]string{"name": "glue/sst2"}), "name", "built-in"},
		{"builtin alias", yamlOf(map[string]string{"name": "sst2"}), "name", "built-in"},
		{"bad version", yamlOf(map[string]string{"version": "'a b'"}), "version", "letters"},
		{"description lines", yamlOf(map[string]string{"description": "\"a\\nb\""}), "description", "one line"},
		{"no data", yamlOf(nil, "data"), "data", "required"},
		{"unknown extension", yamlOf(map[string]string{"data": "d.txt"}), "format", "cannot tell"},
		{"bad format", yamlOf(map[string]string{"format": "xml"}), "format", "jsonl, tsv or csv"},
		{"absolute data: path", yamlOf(map[string]string{"data": "data:/abs.jsonl"}), "data", "relative"},
		{"no input", yamlOf(nil, "input"), "input", "required"},
		{"unquoted template", yamlOf(map[string]string{"input": "{t}"}), "input", "quote the template"},
		{"unclosed brace", yamlOf(map[string]string{"input": "'a {b'"}), "input", "unclosed"},
		{"lone close brace", yamlOf(map[string]string{"input": "'a } b'"}), "input", "lone }"},
		{"empty field", yamlOf(map[string]string{"input": "'a {} b'"}), "input", "empty field"},
		{"nested brace", yamlOf(map[string]string{"input": "'{a{b}'"}), "input", "unclosed"},
		{"spaced field", yamlOf(map[string]string{"input": "'{ a }'"}), "input", "spaces"},
		{"no target", yamlOf(nil, "target"), "target", "set target"},
		{"target and targets", yamlOf(map[string]string{"targets": "answers"}), "targets", "not both"},
		{"targets needs jsonl", yamlOf(map[string]string{"data": "d.tsv", "targets": "a"}, "target"), "targets", "jsonl"},
		{"targets with choices", yamlOf(map[string]string{"targets": "a", "choices": "[x, y]"}, "target"), "choices", "go with target"},
		{"one choice", yamlOf(map[string]string{"choices": "[x]"}), "choices", "at least two"},
		{"repeated choice", yamlOf(map[string]string{"choices": "[x, x]"}), "choices", "twice"},
		{"empty choice", yamlOf(map[string]string{"choices": "[x, '']"}), "choices", "empty"},
		{"decode length", yamlOf(map[string]string{"decode_length": "-1"}), "decode_length", "1 to 4096"},
		{"unknown metric", yamlOf(map[string]string{"metrics": "[accuracy, bluer]"}), "metrics", `unknown metric "bluer"`},
		{"empty metrics", yamlOf(map[string]string{"metrics": "[]"}), "metrics", "empty"},
		{"f1 needs two choices", yamlOf(map[string]string{"metrics": "[f1]", "choices": "[a, b, c]"}), "metrics", "exactly two"},
		{"mcc needs choices", yamlOf(map[string]string{"metrics": "[mcc]"}), "metrics", "needs choices"},
		{"key collision", yamlOf(map[string]string{"metrics": "[f1, squad]", "choices": "[a, b]"}), "metrics", `both report "f1"`},
		{"rank needs choices", yamlOf(map[string]string{"modes": "[rank]"}), "modes", "needs choices"},
		{"unknown mode", yamlOf(map[string]string{"modes": "[guess]"}), "modes", "predict or rank"},
		{"repeated mode", yamlOf(map[string]string{"modes": "[predict, predict]"}), "modes", "twice"},
		{"empty modes", yamlOf(map[string]string{"modes": "[]"}), "modes", "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tc.spec), ".")
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SpecError", err)
			}
			if se.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v (field %q), want field %q and %q", err, se.Field, tc.field, tc.msg)
			}
		})
	}
	if _, err := ParseSpec([]byte(strings.Repeat("#", MaxSpecBytes+1)), "."); err == nil {
		t.Error("an oversized spec: want an error")
	}
	if _, err := ParseSpec([]byte(yamlOf(map[string]string{"modes": "[rank, predict]", "choices": "[a, b]"})), "."); err != nil {
		t.Errorf("a valid spec: %v", err)
	}
}

// TestSpecLoadErrors: bad rows of a spec's data name file and line.
func TestSpecLoadErrors(t *testing.T) {
	cls := "name: x/y\ndata: d.jsonl\ninput: \"{t}\"\ntarget: l\nchoices: [a, b]\nid: i\n"
	tests := []struct {
		name, spec, data string
		line             int
		msg              string
	}{
		{"missing input field", cls, `{"i": "1", "l": "a"}`, 1, `no field "t"`},
		{"target not a choice", cls, `{"i": "1", "t": "x", "l": "c"}`, 1, "not one of the choices"},
		{"quoted index is text", cls, `{"i": "1", "t": "x", "l": "1"}`, 1, "not one of the choices"},
		{"index out of range", cls, `{"i": "1", "t": "x", "l": 2}`, 1, "want 0 to 1"},
		{"repeated id", cls, `{"i": "1", "t": "x", "l": "a"}` + "\n" + `{"i": 1, "t": "y", "l": "b"}`, 2, "repeats the id of line 1"},
		{"object field", cls, `{"i": "1", "t": {"x": 1}, "l": "a"}`, 1, "want a string, number or bool"},
		{"null field", cls, `{"i": "1", "t": null, "l": "a"}`, 1, "want a string"},
		{"not json", cls, "{", 1, "unexpected EOF"},
		{"targets not a list", "name: x/y\ndata: d.jsonl\ninput: \"{t}\"\ntargets: a\n", `{"t": "x", "a": "z"}`, 1, "non-empty list"},
		{"targets empty", "name: x/y\ndata: d.jsonl\ninput: \"{t}\"\ntargets: a\n", `{"t": "x", "a": []}`, 1, "non-empty list"},
		{"tsv short row", "name: x/y\ndata: d.tsv\ninput: \"{t}\"\ntarget: l\n", "t\tl\nx\n", 2, "too short"},
		{"tsv unknown column", "name: x/y\ndata: d.tsv\ninput: \"{u}\"\ntarget: l\n", "t\tl\nx\ty\n", 2, `no column "u"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ext := filepath.Ext(strings.Split(strings.Split(tc.spec, "data: ")[1], "\n")[0])
			dir := writeFiles(t, map[string]string{"s.yaml": tc.spec, "d" + ext: tc.data})
			tk, err := LoadSpec(filepath.Join(dir, "s.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = tk.Load(t.Context(), "")
			var le *LineError
			if !errors.As(err, &le) || le.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want line %d with %q", err, tc.line, tc.msg)
			}
		})
	}
	dir := writeFiles(t, map[string]string{"s.yaml": cls, "d.jsonl": "\n\n"})
	tk, _ := LoadSpec(filepath.Join(dir, "s.yaml"))
	if _, err := tk.Load(t.Context(), ""); err == nil || !strings.Contains(err.Error(), "no examples") {
		t.Errorf("empty data: err = %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "d.jsonl")); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Load(t.Context(), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing data: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadSpec(filepath.Join(dir, "absent.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing spec: err = %v", err)
	}
}

func sha12(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}
