package infer

import (
	"github.com/t5zoo/t5zoo/backend/cpu"
	"math"
	"slices"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
)

// logRow returns logits whose log-softmax is log(p) (p sums to 1).
func logRow(p ...float64) []float32 {
	out := make([]float32, len(p))
	for i, v := range p {
		out[i] = float32(math.Log(v))
	}
	return out
}

// TestBeamRules drives the beam search with hand-made distributions over a 6-token
// vocabulary (</s> = 1), 2 beams and max_new_tokens 3, and checks HF v4.30.2's rules step
// by step: only the first beam expands at the first step; a </s> candidate of rank below
// num_beams becomes a hypothesis scored without the </s> in its length; ties rank by
// beam·vocab+token; is_done divides the best candidate by the length it reaches; the open
// beams join at max_length; equal scores come out last-added first.
func TestBeamRules(t *testing.T) {
	s := catalog.DefaultShape()
	s.VocabSize = 6
	be := cpu.New(cpu.Options{Threads: 1})
	defer be.Close()
	m := &Model{shape: s, be: be}
	steps := [][][]float32{
		{logRow(.05, .4, .3, .15, .06, .04)},
		{logRow(.1, .5, .2, .1, .05, .05), logRow(.1, .1, .6, .1, .05, .05)},
		{logRow(.3, .1, .3, .1, .1, .1), logRow(.1, .1, .1, .1, .3, .3)},
	}
	type want struct {
		ids   []int
		score float64
	}
	tests := []struct {
		name  string
		early bool
		beams [][]int // the live beams after each step
		want  []want
	}{
		{"heuristic", false,
			[][]int{{0, 2}, {0, 3}, {0, 3, 2}, {0, 2, 2}},
			[]want{{[]int{0, 3, 2, 2}, math.Log(.027) / 4}, {[]int{0, 3, 2, 0}, math.Log(.027) / 4}}},
		{"early stopping", true,
			[][]int{{0, 2}, {0, 3}},
			[]want{{[]int{0, 1}, math.Log(.4) / 1}, {[]int{0, 2, 1}, math.Log(.15) / 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := genConfig{maxNew: 3, beams: 2, numReturn: 2, lengthPenalty: 1, earlyStopping: tt.early}
			b := newBeamSearch(m, &EncoderOutput{}, c)
			var live [][]int
			for step := 0; ; step++ {
				seqs, _ := b.pending()
				if len(seqs) == 0 {
					break
				}
				if step >= len(steps) || len(seqs) != len(steps[step]) {
					t.Fatalf("step %d: %d live beams", step, len(seqs))
				}
				if err := b.advance(slices.Concat(steps[step]...)); err != nil {
					t.Fatal(err)
				}
				for _, bm := range b.beams {
					live = append(live, bm.ids)
				}
			}
			if !slices.EqualFunc(live, tt.beams, slices.Equal) {
				t.Errorf("live beams %v, want %v", live, tt.beams)
			}
			got := b.result().Hypotheses
			if len(got) != len(tt.want) {
				t.Fatalf("%d hypotheses, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if !slices.Equal(got[i].IDs, w.ids) || math.Abs(got[i].Score-w.score) > 1e-6 {
					t.Errorf("hypothesis %d: %v %.6f, want %v %.6f", i, got[i].IDs, got[i].Score, w.ids, w.score)
				}
			}
		})
	}
}

// TestBeamHypsAdd checks BeamHypotheses.add's bookkeeping of the worst kept score.
func TestBeamHypsAdd(t *testing.T) {
	h := beamHyps{n: 2, lengthPenalty: 2, worst: 1e9}
	h.add([]int{0, 5}, 2, nil, -8)    // -2
	h.add([]int{0, 5, 6}, 3, nil, -9) // -1
	if h.worst != -2 || len(h.beams) != 2 {
		t.Fatalf("worst %v, %d kept", h.worst, len(h.beams))
	}
	h.add([]int{0, 7}, 2, nil, -12) // -3: not better than the worst, dropped
	h.add([]int{0, 8}, 2, nil, -6)  // -1.5: replaces -2
	if h.worst != -1.5 || len(h.beams) != 2 || h.beams[0].score != -1 {
		t.Fatalf("worst %v, kept %+v", h.worst, h.beams)
	}
	if !h.isDone(-6, 2) || h.isDone(-5.9, 2) {
		t.Error("isDone: worst -1.5 vs best -6/2² = -1.5 (done) and -5.9/4 (not done)")
	}
	h.early = true
	if !h.isDone(0, 2) {
		t.Error("isDone with early stopping and 2 hypotheses is false")
	}
}
