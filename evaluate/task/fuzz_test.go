package task

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// addFiles seeds a fuzz target with the first lines of fixture files (whole files would
// make the fuzzer's minimisation slow).
func addFiles(f *testing.F, lines int, patterns ...string) {
	f.Helper()
	for _, p := range patterns {
		files, err := filepath.Glob(filepath.Join(fixtures, p))
		if err != nil || len(files) == 0 {
			f.Fatalf("no seed files for %s", p)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			if lines > 0 {
				if parts := bytes.SplitAfter(data, []byte("\n")); len(parts) > lines {
					data = bytes.Join(parts[:lines], nil)
				}
			}
			f.Add(data)
		}
	}
}

// FuzzReadTSV reads arbitrary bytes as each GLUE layout: never a panic, and what reads is
// well formed (unique ids, inputs under the benchmark's name, targets among the choices).
func FuzzReadTSV(f *testing.F) {
	addFiles(f, 6, "glue/*/*.tsv")
	f.Add([]byte("sentence\tlabel\n\"a\t1\n\n\tb\t\r\n"))
	f.Add([]byte("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t2\t3\ta\n"))
	f.Add([]byte("s1\ts2\tscore\na\tb\t1e400\nc\td\tnan\n"))
	tasks := glueTasks()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, g := range tasks {
			exs, err := readGLUE(t.Context(), bytes.NewReader(data), "dev.tsv", g.src)
			if err != nil {
				continue
			}
			ids := map[string]bool{}
			for _, e := range exs {
				if ids[e.ID] {
					t.Fatalf("%s: id %q repeats", g.name, e.ID)
				}
				ids[e.ID] = true
				if !strings.HasPrefix(e.Input, g.src.benchmark+" ") {
					t.Fatalf("%s: input %q", g.name, e.Input)
				}
				if e.Target != "<unk>" && !slices.Contains(e.Choices, e.Target) && g.name != "stsb" {
					t.Fatalf("%s: target %q not in %q", g.name, e.Target, e.Choices)
				}
			}
		}
	})
}

// FuzzReadJSONL reads arbitrary bytes as each SuperGLUE layout.
func FuzzReadJSONL(f *testing.F) {
	addFiles(f, 3, "superglue/*/val.jsonl")
	f.Add([]byte(`{"idx": 0, "passage": {"text": "Zoë", "entities": [{"start": -5, "end": 1e3}]}, "qas": [{"query": "q", "idx": 0}]}`))
	f.Add([]byte(`{"text": "a b", "target": {"span1_index": -1, "span2_index": 1, "span1_text": "x\n.", "span2_text": "b"}, "idx": 0, "label": 1}`))
	f.Add([]byte(`{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": [], "idx": 9}`))
	tasks := superGLUETasks()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, g := range tasks {
			exs, err := g.read(t.Context(), bytes.NewReader(data), "val.jsonl")
			if err != nil {
				continue
			}
			for _, e := range exs {
				if e.ID == "" || e.Input == "" {
					t.Fatalf("%s: example %+v", g.name, e)
				}
				if (g.name == "multirc" || g.name == "record") && e.Group == "" {
					t.Fatalf("%s: no group in %+v", g.name, e)
				}
			}
			preds := make([]string, len(exs))
			for i, e := range exs {
				preds[i] = e.Target
			}
			if _, err := g.score(exs, preds); err != nil {
				t.Fatalf("%s: score: %v", g.name, err)
			}
		}
	})
}

// FuzzSQuADJSON reads arbitrary bytes as SQuAD's JSON.
func FuzzSQuADJSON(f *testing.F) {
	addFiles(f, 0, "squad/*.json")
	f.Add([]byte(`{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q", "answers": [{"answer_start": 0, "text": "a"}]}, {"id": "x", "question": "q2", "answers": []}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		exs, err := readSQuAD(t.Context(), bytes.NewReader(data), "dev.json")
		if err != nil {
			return
		}
		for _, e := range exs {
			if len(e.Answers) == 0 || e.Target != e.Answers[0] || !strings.HasPrefix(e.Input, "question: ") {
				t.Fatalf("example %+v", e)
			}
		}
	})
}

// FuzzParseSpec parses arbitrary bytes as a spec: never a panic; a spec that parses has
// a valid name and a version that depends only on its bytes.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(sentimentYAML))
	f.Add([]byte(`{"name": "demo/qa", "data": "data:qa/dev.tsv", "input": "question: {q}", "target": "a", "metrics": ["exact_match", "squad"]}`))
	f.Add([]byte("name: a/b\ndata: x.csv\ninput: '{{{x}}}'\ntargets: t\nmodes: [rank]\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := ParseSpec(data, "/specs")
		if err != nil {
			return
		}
		if !specNameRE.MatchString(tk.Name()) || !strings.HasPrefix(tk.Version(), "spec-") {
			t.Fatalf("task %q version %q", tk.Name(), tk.Version())
		}
		again, err := ParseSpec(data, "/elsewhere")
		if err != nil || again.Version() != tk.Version() {
			t.Fatalf("reparse: %v, version %q vs %q", err, again.Version(), tk.Version())
		}
	})
}
