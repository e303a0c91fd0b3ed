package main

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// The golden checkpoints and reference outputs copied into infer's testdata (HF
// transformers v4.30.2; see infer/testdata/README.md).
const (
	tinyRelu  = "../../testdata/golden/tiny-relu"
	tinyGated = "../../testdata/golden/tiny-gated"
)

// inferGolden is the part of golden.json the CLI tests use.
type inferGolden struct {
	Encoder struct {
		InputIDs   [][]int  `json:"input_ids"`
		InputTexts []string `json:"input_texts"`
	} `json:"encoder"`
	Loglik struct {
		LabelTexts    []string    `json:"label_texts"`
		SumLogprob    []float64   `json:"sum_logprob"`
		TokenLogprobs [][]float64 `json:"token_logprobs"`
	} `json:"loglik"`
	Greedy struct {
		Sequences    [][]int     `json:"sequences"`
		StepLogprobs [][]float64 `json:"step_logprobs"`
	} `json:"greedy"`
	Beam struct {
		PerInput []struct {
			Sequences [][]int   `json:"sequences"`
			Scores    []float64 `json:"sequences_scores"`
		} `json:"per_input"`
	} `json:"beam"`
}

func readInferGolden(t *testing.T, dir string) *inferGolden {
	t.Helper()
	raw, err := os.ReadFile(dir + "/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	g := new(inferGolden)
	if err := json.Unmarshal(raw, g); err != nil {
		t.Fatal(err)
	}
	return g
}

// runInferCmd runs `t5zoo args...` in-process and returns its standard output.
func runInferCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := runCLI(t, "", args...)
	return out, err
}

type runJSON struct {
	IDs      []int     `json:"ids"`
	Text     string    `json:"text"`
	Logprobs []float64 `json:"logprobs"`
	Beams    []struct {
		IDs   []int   `json:"ids"`
		Text  string  `json:"text"`
		Score float64 `json:"score"`
	} `json:"beams"`
}

func decodeRunLines(t *testing.T, out string) []runJSON {
	t.Helper()
	var res []runJSON
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r runJSON
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		res = append(res, r)
	}
	return res
}

// TestRunGreedyGolden runs the golden input texts through `t5zoo run --json` in one batch
// and compares with the golden greedy sequences (exact) and step log-probs (5e-4, the
// golden README's logits tolerance).
func TestRunGreedyGolden(t *testing.T) {
	for _, dir := range []string{tinyRelu, tinyGated} {
		t.Run(dir[strings.LastIndex(dir, "/")+1:], func(t *testing.T) {
			g := readInferGolden(t, dir)
			texts := g.Encoder.InputTexts[:4] // row 4 is random ids, not text
			out, err := runInferCmd(t, append([]string{"run", dir + "/checkpoint", "--json"}, texts...)...)
			if err != nil {
				t.Fatal(err)
			}
			res := decodeRunLines(t, out)
			if len(res) != len(texts) {
				t.Fatalf("%d objects for %d texts:\n%s", len(res), len(texts), out)
			}
			for i, r := range res {
				if !slices.Equal(r.IDs, g.Greedy.Sequences[i]) {
					t.Errorf("text %d: ids %v, want %v", i, r.IDs, g.Greedy.Sequences[i])
					continue
				}
				for j, lp := range g.Greedy.StepLogprobs[i] {
					if math.Abs(r.Logprobs[j]-lp) > 5e-4 {
						t.Errorf("text %d step %d: logprob %v, want %v", i, j, r.Logprobs[j], lp)
					}
				}
			}
		})
	}
}

// TestRunBeamGolden checks `t5zoo run --beams 4 --num-return 4 --json` against the golden
// beams of one input.
func TestRunBeamGolden(t *testing.T) {
	g := readInferGolden(t, tinyGated)
	const row = 1
	out, err := runInferCmd(t, "run", tinyGated+"/checkpoint", "--beams", "4", "--num-return", "4", "--json", g.Encoder.InputTexts[row])
	if err != nil {
		t.Fatal(err)
	}
	res := decodeRunLines(t, out)
	if len(res) != 1 || len(res[0].Beams) != 4 {
		t.Fatalf("output %s", out)
	}
	want := g.Beam.PerInput[row]
	for j, b := range res[0].Beams {
		if !slices.Equal(b.IDs, want.Sequences[j]) || math.Abs(b.Score-want.Scores[j]) > 1e-4 {
			t.Errorf("beam %d: %v %v, want %v %v", j, b.IDs, b.Score, want.Sequences[j], want.Scores[j])
		}
	}
}

func TestRunTextAndSampling(t *testing.T) {
	ckpt := tinyGated + "/checkpoint"
	plain, err := runInferCmd(t, "run", ckpt, "Yes", "The <extra_id_0> walks in <extra_id_1> park")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n"); len(lines) != 2 || lines[0] == "" {
		t.Errorf("plain output %q, want two non-empty lines", plain)
	}
	beams, err := runInferCmd(t, "run", ckpt, "--beams", "3", "--num-return", "2", "--max-new-tokens", "5", "Yes")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(beams, "\n"), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "\t") {
		t.Errorf("beam output %q, want two score<TAB>text lines", beams)
	}
	args := []string{"run", ckpt, "--sample", "--seed", "3", "--top-k", "10", "--top-p", "0.9", "--temperature", "0.7", "--json", "Yes"}
	a, err := runInferCmd(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := runInferCmd(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || len(decodeRunLines(t, a)) != 1 {
		t.Errorf("sampling with one seed gave %q and %q", a, b)
	}
	several, err := runInferCmd(t, "run", ckpt, "--sample", "--num-return", "3", "--json", "Yes")
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Samples []runJSON `json:"samples"`
	}
	if err := json.Unmarshal([]byte(several), &obj); err != nil || len(obj.Samples) != 3 {
		t.Errorf("samples output %q (%v)", several, err)
	}
}

func TestRunErrors(t *testing.T) {
	zooHome(t) // the names below are looked up in a fresh cache and registry
	ckpt := tinyRelu + "/checkpoint"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", ckpt}, "requires at least 2 arg"},
		{[]string{"run", ckpt, "--temperature", "0.5", "x"}, "--temperature goes with --sample"},
		{[]string{"run", ckpt, "--length-penalty", "2", "x"}, "--length-penalty goes with --beams"},
		{[]string{"run", ckpt, "--num-return", "2", "x"}, "--num-return goes with --beams or --sample"},
		{[]string{"run", ckpt, "--sample", "--beams", "2", "x"}, "do not go together"},
		{[]string{"run", ckpt, "--beams", "2", "--num-return", "3", "x"}, "num_return_sequences 3 is more than num_beams 2"},
		{[]string{"run", ckpt, "--max-new-tokens", "100000", "x"}, "max_new_tokens"},
		{[]string{"run", "testdata/no-such-model", "x"}, "does not exist"},
		// A value given as 0 means what it says or is an error, never the default.
		{[]string{"run", ckpt, "--max-new-tokens", "0", "x"}, "--max-new-tokens 0: want at least 1"},
		{[]string{"run", ckpt, "--max-new-tokens", "-3", "x"}, "--max-new-tokens -3"},
		{[]string{"run", ckpt, "--sample", "--num-return", "0", "x"}, "--num-return 0"},
		{[]string{"run", ckpt, "--beams", "2", "--num-return", "0", "x"}, "--num-return 0"},
		{[]string{"run", ckpt, "--sample", "--top-p", "0", "x"}, "--top-p 0: want a probability in (0, 1]"},
		{[]string{"run", ckpt, "--sample", "--top-p", "1.5", "x"}, "--top-p 1.5"},
		{[]string{"run", ckpt, "--sample", "--top-k", "-1", "x"}, "--top-k -1"},
		{[]string{"run", ckpt, "--sample", "--temperature", "-1", "x"}, "--temperature -1"},
		{[]string{"run", ckpt, "--sample", "--temperature", "NaN", "x"}, "--temperature NaN"},
		{[]string{"run", ckpt, "--sample", "--temperature", "0", "--num-return", "2", "x"}, "--temperature 0 is greedy decoding"},
		{[]string{"run", ckpt, "--beams", "2", "--length-penalty", "Inf", "x"}, "--length-penalty +Inf"},
		{[]string{"run", ckpt, "--threads", "-1", "x"}, "--threads -1"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[2:], " "), func(t *testing.T) {
			_, err := runInferCmd(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestRunTemperatureZero: --sample --temperature 0 is greedy decoding (the limit of
// sampling as the temperature falls), whatever the seed, top-k and top-p.
func TestRunTemperatureZero(t *testing.T) {
	ckpt := tinyGated + "/checkpoint"
	greedy, err := runInferCmd(t, "run", ckpt, "--json", "Yes", "The <extra_id_0> walks")
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{{}, {"--seed", "3"}, {"--seed", "9", "--top-k", "5", "--top-p", "0.5"}} {
		got, err := runInferCmd(t, append(append([]string{"run", ckpt, "--json", "--sample", "--temperature", "0"}, extra...), "Yes", "The <extra_id_0> walks")...)
		if err != nil {
			t.Fatal(err)
		}
		if got != greedy {
			t.Errorf("--sample --temperature 0 %v:\n%s\nwant the greedy output\n%s", extra, got, greedy)
		}
	}
}

// TestRunDType loads the golden model in bf16 and int8 with --dtype: bf16 keeps every greedy
// output of tiny-relu (BENCHMARKS.md's accuracy table) with log-probs near f32's, int8 moves
// the log-probs further; f16 and unknown types are refused before anything loads.
func TestRunDType(t *testing.T) {
	g := readInferGolden(t, tinyRelu)
	texts := g.Encoder.InputTexts[:4]
	maxDiff := func(dt string) float64 {
		out, err := runInferCmd(t, append([]string{"run", tinyRelu + "/checkpoint", "--json", "--dtype", dt}, texts...)...)
		if err != nil {
			t.Fatalf("--dtype %s: %v", dt, err)
		}
		res := decodeRunLines(t, out)
		if len(res) != len(texts) {
			t.Fatalf("--dtype %s: %d objects for %d texts", dt, len(res), len(texts))
		}
		var d float64
		for i, r := range res {
			if dt == "bf16" && !slices.Equal(r.IDs, g.Greedy.Sequences[i]) {
				t.Errorf("--dtype bf16, text %d: ids %v, want %v", i, r.IDs, g.Greedy.Sequences[i])
			}
			for j, lp := range g.Greedy.StepLogprobs[i] {
				if j < len(r.Logprobs) && slices.Equal(r.IDs[:j+1], g.Greedy.Sequences[i][:j+1]) {
					d = max(d, math.Abs(r.Logprobs[j]-lp))
				}
			}
		}
		return d
	}
	bf, i8 := maxDiff("bf16"), maxDiff("int8")
	if bf == 0 || bf > 0.05 {
		t.Errorf("--dtype bf16: log-probs differ from f32 by up to %g, want (0, 0.05]", bf)
	}
	if i8 <= bf || i8 > 0.5 {
		t.Errorf("--dtype int8: log-probs differ from f32 by up to %g, want more than bf16's %g and at most 0.5", i8, bf)
	}
	for _, dt := range []string{"f16", "f64"} {
		if _, err := runInferCmd(t, "run", tinyRelu+"/checkpoint", "--dtype", dt, "hello"); err == nil || !strings.Contains(err.Error(), "--dtype") {
			t.Errorf("--dtype %s: err %v, want a --dtype error", dt, err)
		}
	}
	out, err := runInferCmd(t, "score", tinyRelu+"/checkpoint", "--dtype", "int8", "--input", texts[0], "--target", "positive", "--json")
	if err != nil || !strings.Contains(out, "sum_logprob") {
		t.Errorf("score --dtype int8: %v\n%s", err, out)
	}
}
