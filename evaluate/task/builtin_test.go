package task

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBuiltin: the built-ins, their T5 names, versions, benchmarks, modes.
func TestBuiltin(t *testing.T) {
	want := []string{
		"glue/cola", "glue/mnli_matched", "glue/mnli_mismatched", "glue/mrpc", "glue/qnli", "glue/qqp", "glue/rte",
		"glue/sst2", "glue/stsb", "glue/wnli", "squad", "super_glue/boolq", "super_glue/cb", "super_glue/copa",
		"super_glue/multirc", "super_glue/record", "super_glue/rte", "super_glue/wic", "super_glue/wsc",
	}
	var names []string
	for _, tk := range Builtin() {
		names = append(names, tk.Name())
		bench, _, _ := strings.Cut(tk.Name(), "/")
		if tk.Name() == "squad" {
			bench = ""
		}
		wantVersion := map[string]string{"glue": "v002.1", "super_glue": "v102.1", "": "v010.1"}[bench]
		if tk.Benchmark() != bench || tk.Version() != wantVersion || tk.DecodeLength() != 128 || tk.Description() == "" ||
			tk.T5Name() == "" || len(tk.Files()) != 1 {
			t.Errorf("%s: benchmark %q version %q decode %d t5 %q files %q", tk.Name(), tk.Benchmark(), tk.Version(), tk.DecodeLength(), tk.T5Name(), tk.Files())
		}
		rankable := tk.Name() != "squad" && tk.Name() != "super_glue/wsc"
		if tk.Rankable() != rankable || slices.Contains(tk.Modes(), "rank") != rankable {
			t.Errorf("%s: rankable %v, modes %q", tk.Name(), tk.Rankable(), tk.Modes())
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("built-ins %q, want %q", names, want)
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"glue/sst2", "glue/sst2"}, {"GLUE/SST2", "glue/sst2"}, {"glue_sst2_v002", "glue/sst2"}, {"sst2", "glue/sst2"},
		{"superglue/cb", "super_glue/cb"}, {"super_glue_cb_v102", "super_glue/cb"}, {"cb", "super_glue/cb"},
		{"super_glue_wsc_v102_simple_eval", "super_glue/wsc"}, {"wsc", "super_glue/wsc"}, {"squad_v010_allanswers", "squad"},
		{" squad ", "squad"}, {"mnli_matched", "glue/mnli_matched"}, {"glue_mnli_mismatched_v002", "glue/mnli_mismatched"},
	} {
		tk, err := Lookup(tc.in)
		if err != nil || tk.Name() != tc.want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", tc.in, tk, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"glue/sst", []string{"glue/sst2"}},
		{"rte", []string{"glue/rte", "super_glue/rte"}},
		{"mnli", []string{"glue/mnli_matched", "glue/mnli_mismatched"}},
		{"super_glue/boolg", []string{"super_glue/boolq"}},
		{"xyzzy-unrelated", nil},
		{"", nil},
	} {
		_, err := Lookup(tc.in)
		var ue *UnknownTaskError
		if !errors.As(err, &ue) || !slices.Equal(ue.Suggest, tc.want) {
			t.Errorf("Lookup(%q): err = %v, want suggestions %q", tc.in, err, tc.want)
		}
	}
	_, err := Lookup("glue/sst")
	if want := `task: unknown task "glue/sst"; did you mean glue/sst2?`; err == nil || err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestResolve(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml":  "name: my/a\ndata: a.jsonl\ninput: '{x}'\ntarget: y\n",
		"b.json":  `{"name": "my/a", "data": "a.jsonl", "input": "{x}", "target": "z"}`,
		"c.txt":   "name: my/c\n",
		"bad.yml": "name: glue/sst2\n",
	})
	got, err := Resolve([]string{"glue", "sst2", "super_glue/cb", filepath.Join(dir, "a.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tk := range got {
		names = append(names, tk.Name())
	}
	want := append(append([]string(nil), Benchmarks()["glue"]...), "super_glue/cb", "my/a")
	if !slices.Equal(names, want) {
		t.Errorf("Resolve = %q, want %q", names, want)
	}
	if len(Benchmarks()["glue"]) != 9 || slices.Contains(Benchmarks()["glue"], "glue/wnli") {
		t.Errorf("glue benchmark %q: want T5's nine averaged tasks, no WNLI", Benchmarks()["glue"])
	}
	sg, err := Resolve([]string{"SuperGLUE"})
	if err != nil || len(sg) != 8 {
		t.Errorf("superglue: %d tasks, %v", len(sg), err)
	}
	_, err = Resolve([]string{"glue/sst", filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.json"), filepath.Join(dir, "c.txt"),
		filepath.Join(dir, "bad.yml"), filepath.Join(dir, "missing.yaml")})
	for _, frag := range []string{"did you mean glue/sst2", "already taken", "must end in .json", "built-in", "missing.yaml"} {
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("Resolve errors %v: want %q", err, frag)
		}
	}
}

// TestLimit: deterministic, group-preserving, order-keeping, monotone in n.
func TestLimit(t *testing.T) {
	var exs []Example
	for q := range 40 {
		for a := range 1 + q%4 {
			exs = append(exs, Example{ID: string(rune('A'+q)) + string(rune('a'+a)), Group: "q" + string(rune('A'+q))})
		}
	}
	tk := mustLookup(t, "super_glue/multirc")
	index := map[string]int{}
	for i, e := range exs {
		index[e.ID] = i
	}
	prev := map[string]bool{}
	for _, n := range []int{1, 5, 17, 30, 60} {
		got := Limit(tk, exs, n)
		again := Limit(tk, slices.Clone(exs), n)
		if len(got) != len(again) {
			t.Fatalf("n=%d: not deterministic", n)
		}
		groups := map[string]int{}
		for i, e := range got {
			if e.ID != again[i].ID {
				t.Fatalf("n=%d: not deterministic", n)
			}
			if i > 0 && index[e.ID] <= index[got[i-1].ID] {
				t.Errorf("n=%d: order not kept", n)
			}
			groups[e.Group]++
		}
		total := 0
		for g, c := range groups {
			if want := 1 + int(g[1]-'A')%4; c != want {
				t.Errorf("n=%d: group %s has %d of %d examples", n, g, c, want)
			}
			total += c
		}
		if total < n || total > n+3 {
			t.Errorf("n=%d: %d examples", n, total)
		}
		for g := range prev {
			if groups[g] == 0 {
				t.Errorf("n=%d drops group %s that a smaller n kept", n, g)
			}
		}
		prev = map[string]bool{}
		for g := range groups {
			prev[g] = true
		}
	}
	if got := Limit(tk, exs, 0); len(got) != len(exs) {
		t.Errorf("n=0: %d examples", len(got))
	}
	if got := Limit(tk, exs, len(exs)+5); len(got) != len(exs) {
		t.Errorf("n>len: %d examples", len(got))
	}
	// Ungrouped examples are units of their own; another task name draws another subset.
	flat := make([]Example, 100)
	for i := range flat {
		flat[i] = Example{ID: string(rune(0x4e00 + i))}
	}
	a, b := Limit(mustLookup(t, "glue/sst2"), flat, 10), Limit(mustLookup(t, "glue/cola"), flat, 10)
	if len(a) != 10 || len(b) != 10 {
		t.Fatalf("flat: %d, %d examples", len(a), len(b))
	}
	same := 0
	for i := range a {
		if a[i].ID == b[i].ID {
			same++
		}
	}
	if same == 10 {
		t.Error("two tasks drew the same subset")
	}
}

func TestAverages(t *testing.T) {
	full := map[string]map[string]float64{
		"glue/cola": {"matthews_corrcoef": 50}, "glue/sst2": {"accuracy": 90}, "glue/mrpc": {"f1": 80, "accuracy": 70},
		"glue/stsb": {"pearson_corrcoef": 88, "spearman_corrcoef": 86}, "glue/qqp": {"f1": 60, "accuracy": 64},
		"glue/mnli_matched": {"accuracy": 80}, "glue/mnli_mismatched": {"accuracy": 82}, "glue/qnli": {"accuracy": 85},
		"glue/rte": {"accuracy": 66}, "glue/wnli": {"accuracy": 0},
	}
	got := Averages(full)
	// Group means 50, 90, 75, 87, 62, 81, 85, 66; WNLI is not in T5's average.
	if want := (50.0 + 90 + 75 + 87 + 62 + 81 + 85 + 66) / 8; len(got) != 1 || got[0].Benchmark != "glue" || !closeTo(got[0].Value, want) ||
		len(got[0].Groups) != 8 || len(got[0].Missing) != 0 {
		t.Errorf("Averages = %+v, want glue %v", got, want)
	}
	delete(full, "glue/mnli_mismatched")
	delete(full["glue/mrpc"], "f1")
	full["super_glue/cb"] = map[string]float64{"mean_3class_f1": 70, "accuracy": 80}
	full["super_glue/wsc"] = map[string]float64{"accuracy": 60}
	got = Averages(full)
	if len(got) != 2 {
		t.Fatalf("Averages = %+v", got)
	}
	if want := (50.0 + 90 + 87 + 62 + 85 + 66) / 6; !closeTo(got[0].Value, want) || !slices.Equal(got[0].Missing, []string{"MRPC", "MNLI"}) ||
		!slices.Equal(got[0].Groups, []string{"CoLA", "SST-2", "STSB", "QQP", "QNLI", "GLUE RTE"}) {
		t.Errorf("partial glue = %+v, want %v", got[0], want)
	}
	if sg := got[1]; sg.Benchmark != "super_glue" || !closeTo(sg.Value, 67.5) || !slices.Equal(sg.Groups, []string{"CB", "WSC"}) || len(sg.Missing) != 6 {
		t.Errorf("super_glue = %+v", sg)
	}
	if got := Averages(map[string]map[string]float64{"glue/cola": {"matthews_corrcoef": math.NaN()}}); len(got) != 1 || !math.IsNaN(got[0].Value) {
		t.Errorf("NaN metric: %+v, want a NaN average", got)
	}
	if got := Averages(nil); len(got) != 0 {
		t.Errorf("nothing: %+v", got)
	}
}
