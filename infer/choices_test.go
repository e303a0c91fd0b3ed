package infer

import (
	"errors"
	"testing"
)

// TestScoreChoicesEqualsScore checks that scoring k choices against one encoder pass gives
// what Score gives for each (input, choice) pair, bit for bit, across several sets batched
// together and across the chunk boundary of a long batch.
func TestScoreChoicesEqualsScore(t *testing.T) {
	for _, v := range randomVariants()[:2] {
		t.Run(v.name, func(t *testing.T) {
			m := loadRandom(t, v.spec, LoadOptions{})
			s := m.Shape()
			in := randomInputs(7, 40, 120, s.VocabSize, s.EOSTokenID)
			var sets []ChoiceSet
			for i := 0; i+3 < len(in); i += 4 {
				sets = append(sets, ChoiceSet{Input: in[i], Targets: [][]int{in[i+1], in[i+2], in[i+3][len(in[i+3])-1:]}})
			}
			got, err := m.ScoreChoices(t.Context(), sets)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(sets) {
				t.Fatalf("%d results for %d sets", len(got), len(sets))
			}
			for i, cs := range sets {
				if len(got[i]) != len(cs.Targets) {
					t.Fatalf("set %d: %d results for %d targets", i, len(got[i]), len(cs.Targets))
				}
				for j, tg := range cs.Targets {
					want, err := m.Score(t.Context(), []ScorePair{{Input: cs.Input, Target: tg}})
					if err != nil {
						t.Fatal(err)
					}
					if got[i][j].SumLogprob != want[0].SumLogprob || len(got[i][j].TokenLogprobs) != len(tg) {
						t.Errorf("set %d target %d: ScoreChoices %v (%d tokens), Score %v", i, j, got[i][j].SumLogprob, len(got[i][j].TokenLogprobs), want[0].SumLogprob)
					}
				}
			}
		})
	}
}

func TestScoreChoicesInvalid(t *testing.T) {
	v := randomVariants()[0]
	m := loadRandom(t, v.spec, LoadOptions{})
	for name, sets := range map[string][]ChoiceSet{
		"none":       nil,
		"no targets": {{Input: []int{5, 1}}},
		"bad id":     {{Input: []int{5, 1}, Targets: [][]int{{1 << 30}}}},
		"empty":      {{Input: []int{5, 1}, Targets: [][]int{{}}}},
	} {
		if _, err := m.ScoreChoices(t.Context(), sets); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: got %v, want ErrInvalidInput", name, err)
		}
	}
}
