package main

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestScoreGolden scores the golden (input, label) texts with `t5zoo score` and compares
// with the golden log-likelihoods (1e-3 relative on the sum, the golden README's
// tolerance; 5e-4 absolute per token).
func TestScoreGolden(t *testing.T) {
	for _, dir := range []string{tinyRelu, tinyGated} {
		t.Run(dir[strings.LastIndex(dir, "/")+1:], func(t *testing.T) {
			g := readInferGolden(t, dir)
			args := []string{"score", dir + "/checkpoint", "--json"}
			for i := range 4 { // row 4 is random ids, not text
				args = append(args, "--input", g.Encoder.InputTexts[i], "--target", g.Loglik.LabelTexts[i])
			}
			out, err := runInferCmd(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(strings.NewReader(out))
			for i := range 4 {
				var r struct {
					SumLogprob    float64   `json:"sum_logprob"`
					TokenLogprobs []float64 `json:"token_logprobs"`
				}
				if err := dec.Decode(&r); err != nil {
					t.Fatalf("pair %d: %v in %q", i, err, out)
				}
				want := g.Loglik.SumLogprob[i]
				if math.Abs(r.SumLogprob-want)/math.Abs(want) > 1e-3 {
					t.Errorf("pair %d: sum_logprob %v, want %v", i, r.SumLogprob, want)
				}
				if len(r.TokenLogprobs) != len(g.Loglik.TokenLogprobs[i]) {
					t.Fatalf("pair %d: %d token logprobs, want %d", i, len(r.TokenLogprobs), len(g.Loglik.TokenLogprobs[i]))
				}
				for j, lp := range g.Loglik.TokenLogprobs[i] {
					if math.Abs(r.TokenLogprobs[j]-lp) > 5e-4 {
						t.Errorf("pair %d token %d: %v, want %v", i, j, r.TokenLogprobs[j], lp)
					}
				}
			}
			// Plain output: the sums, one per line.
			plain, err := runInferCmd(t, "score", dir+"/checkpoint", "--input", g.Encoder.InputTexts[0], "--target", g.Loglik.LabelTexts[0])
			if err != nil {
				t.Fatal(err)
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(plain), 64)
			if err != nil || math.Abs(v-g.Loglik.SumLogprob[0])/math.Abs(g.Loglik.SumLogprob[0]) > 1e-3 {
				t.Errorf("plain output %q, want %v", plain, g.Loglik.SumLogprob[0])
			}
		})
	}
}

func TestScoreErrors(t *testing.T) {
	zooHome(t) // the names below are looked up in a fresh cache and registry
	ckpt := tinyRelu + "/checkpoint"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"score", ckpt}, "in pairs"},
		{[]string{"score", ckpt, "--input", "a", "--input", "b", "--target", "c"}, "2 inputs and 1 targets"},
		{[]string{"score", "testdata/no-such-model", "--input", "a", "--target", "b"}, "does not exist"},
		{[]string{"score", tinyRelu + "/checkpoint", "--threads", "-1", "--input", "a", "--target", "b"}, "--threads -1"},
	} {
		_, err := runInferCmd(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}
