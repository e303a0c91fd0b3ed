package infer

import (
	"math"
	"slices"
	"testing"
)

// trimPad drops HF's batch padding after </s> from a batched sequence.
func trimPad(ids []int, eos int) []int {
	if i := slices.Index(ids, eos); i >= 0 {
		return ids[:i+1]
	}
	return ids
}

// TestGoldenGreedy checks greedy sequences and step log-probs, unbatched and batched, and
// the long input.
func TestGoldenGreedy(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			m, g, _ := loadGolden(t, name)
			opts := GenerateOptions{MaxNewTokens: g.Greedy.Params.MaxNewTokens}
			batched, err := m.Generate(t.Context(), g.Encoder.InputIDs, opts)
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for b, ids := range g.Encoder.InputIDs {
				one, err := m.Generate(t.Context(), [][]int{ids}, opts)
				if err != nil {
					t.Fatal(err)
				}
				h := one[0].Hypotheses[0]
				if !slices.Equal(h.IDs, g.Greedy.Sequences[b]) {
					t.Errorf("input %d: greedy %v, want %v", b, h.IDs, g.Greedy.Sequences[b])
					continue
				}
				for j, lp := range g.Greedy.StepLogprobs[b] {
					d := math.Abs(h.TokenLogprobs[j] - lp)
					worst = max(worst, d)
					if d > tolLogits {
						t.Errorf("input %d step %d: logprob %v, want %v", b, j, h.TokenLogprobs[j], lp)
					}
				}
				if want := trimPad(g.Greedy.BatchedSequences[b], m.shape.EOSTokenID); !slices.Equal(batched[b].Hypotheses[0].IDs, want) {
					t.Errorf("input %d: batched greedy %v, want %v", b, batched[b].Hypotheses[0].IDs, want)
				}
				if !slices.Equal(batched[b].Hypotheses[0].TokenLogprobs, h.TokenLogprobs) {
					t.Errorf("input %d: batched log-probs differ from unbatched", b)
				}
			}
			long, err := m.Generate(t.Context(), [][]int{g.Long.InputIDs}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if h := long[0].Hypotheses[0]; !slices.Equal(h.IDs, g.Long.GreedySequence) {
				t.Errorf("long: greedy %v, want %v", h.IDs, g.Long.GreedySequence)
			} else {
				for j, lp := range g.Long.GreedyStepLogprobs {
					worst = max(worst, math.Abs(h.TokenLogprobs[j]-lp))
				}
			}
			t.Logf("greedy step logprob max |diff| %.3g", worst)
		})
	}
}

// TestGoldenBeam checks beam search (4 beams, 4 returned) per input and the batched top-1.
func TestGoldenBeam(t *testing.T) {
	for _, name := range goldenModels {
		t.Run(name, func(t *testing.T) {
			m, g, _ := loadGolden(t, name)
			p := g.Beam.Params
			lp := p.LengthPenalty
			opts := GenerateOptions{
				MaxNewTokens: p.MaxNewTokens, NumBeams: p.NumBeams, LengthPenalty: &lp,
				EarlyStopping: p.EarlyStopping, NumReturnSequences: p.NumReturnSequences,
			}
			var worst float64
			for b, ids := range g.Encoder.InputIDs {
				out, err := m.Generate(t.Context(), [][]int{ids}, opts)
				if err != nil {
					t.Fatal(err)
				}
				want := g.Beam.PerInput[b]
				hs := out[0].Hypotheses
				if len(hs) != len(want.Sequences) {
					t.Fatalf("input %d: %d hypotheses, want %d", b, len(hs), len(want.Sequences))
				}
				for j, h := range hs {
					if !slices.Equal(h.IDs, want.Sequences[j]) {
						t.Errorf("input %d beam %d: %v, want %v", b, j, h.IDs, want.Sequences[j])
					}
					d := math.Abs(h.Score - want.Scores[j])
					worst = max(worst, d)
					if d > tolBeamScore {
						t.Errorf("input %d beam %d: score %v, want %v", b, j, h.Score, want.Scores[j])
					}
				}
			}
			top1 := opts
			top1.NumReturnSequences = 1
			out, err := m.Generate(t.Context(), g.Encoder.InputIDs, top1)
			if err != nil {
				t.Fatal(err)
			}
			for b := range g.Encoder.InputIDs {
				h := out[b].Hypotheses[0]
				if want := trimPad(g.Beam.BatchedTop1Sequences[b], m.shape.EOSTokenID); !slices.Equal(h.IDs, want) {
					t.Errorf("input %d: batched top-1 %v, want %v", b, h.IDs, want)
				}
				d := math.Abs(h.Score - g.Beam.BatchedTop1Scores[b])
				worst = max(worst, d)
				if d > tolBeamScore {
					t.Errorf("input %d: batched top-1 score %v, want %v", b, h.Score, g.Beam.BatchedTop1Scores[b])
				}
			}
			t.Logf("beam score max |diff| %.3g", worst)
		})
	}
}
