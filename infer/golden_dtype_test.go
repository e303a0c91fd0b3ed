package infer

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
)

// dtypeBounds are the worst differences from the float32 reference outputs accepted for
// weights kept in bf16 or int8. They are not HF's tolerances (those hold for f32 only): they
// were set at about 3× the differences measured on the golden checkpoints (logged by
// TestGoldenDTypes and recorded in BENCHMARKS.md), to catch a broken kernel, not to certify
// accuracy.
var dtypeBounds = map[catalog.DType]struct{ hidden, logits, loglikRel float64 }{
	catalog.BF16: {hidden: 0.1, logits: 0.6, loglikRel: 0.01},
	catalog.Int8: {hidden: 0.5, logits: 3, loglikRel: 0.03},
}

// TestGoldenDTypes loads the golden f32 checkpoints with their matrices converted to bf16 and
// to int8 at load time and measures the outputs against the f32 reference: encoder hidden
// states, teacher-forced logits, log-likelihoods, and how many greedy and beam outputs are
// unchanged.
func TestGoldenDTypes(t *testing.T) {
	for _, name := range goldenModels {
		for _, dt := range []catalog.DType{catalog.BF16, catalog.Int8} {
			t.Run(name+"/"+string(dt), func(t *testing.T) {
				_, g, tensors := loadGolden(t, name)
				m, err := Load(t.Context(), filepath.Join("..", "testdata", "golden", name, "checkpoint"), testOptions(t, LoadOptions{DType: dt}))
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if m.DType() != dt {
					t.Fatalf("DType() = %s, want %s", m.DType(), dt)
				}
				bound := dtypeBounds[dt]
				want, shape := goldenF32(t, tensors, "encoder.last_hidden_state")
				lpad, d := shape[1], shape[2]
				outs, err := m.Encode(t.Context(), g.Encoder.InputIDs)
				if err != nil {
					t.Fatal(err)
				}
				var hidden float64
				for b, ids := range g.Encoder.InputIDs {
					hidden = max(hidden, maxAbsDiff(outs[b].Hidden, want[b*lpad*d:(b*lpad+len(ids))*d]))
				}

				encs, err := m.RunEncoder(t.Context(), g.Encoder.InputIDs)
				if err != nil {
					t.Fatal(err)
				}
				seqs := make([]*Sequence, len(encs))
				for i, e := range encs {
					seqs[i] = e.NewSequence()
				}
				h, err := m.Feed(t.Context(), seqs, g.TeacherForcing.DecoderInputIDs, nil)
				if err != nil {
					t.Fatal(err)
				}
				wantL, _ := goldenF32(t, tensors, "decoder.logits")
				logits := maxAbsDiff(h, wantL)

				pairs := make([]ScorePair, len(g.Encoder.InputIDs))
				for i := range pairs {
					pairs[i] = ScorePair{Input: g.Encoder.InputIDs[i], Target: g.Loglik.Labels[i]}
				}
				res, err := m.Score(t.Context(), pairs)
				if err != nil {
					t.Fatal(err)
				}
				var loglik float64
				for i := range pairs {
					loglik = max(loglik, math.Abs(res[i].SumLogprob-g.Loglik.SumLogprob[i])/math.Abs(g.Loglik.SumLogprob[i]))
				}

				greedy, err := m.Generate(t.Context(), g.Encoder.InputIDs, GenerateOptions{MaxNewTokens: g.Greedy.Params.MaxNewTokens})
				if err != nil {
					t.Fatal(err)
				}
				sameGreedy := 0
				for b := range g.Encoder.InputIDs {
					if slices.Equal(greedy[b].Hypotheses[0].IDs, g.Greedy.Sequences[b]) {
						sameGreedy++
					}
				}
				p := g.Beam.Params
				lp := p.LengthPenalty
				beams, err := m.Generate(t.Context(), g.Encoder.InputIDs, GenerateOptions{MaxNewTokens: p.MaxNewTokens, NumBeams: p.NumBeams, LengthPenalty: &lp, EarlyStopping: p.EarlyStopping})
				if err != nil {
					t.Fatal(err)
				}
				sameBeam := 0
				for b := range g.Encoder.InputIDs {
					if slices.Equal(beams[b].Hypotheses[0].IDs, g.Beam.PerInput[b].Sequences[0]) {
						sameBeam++
					}
				}
				var maxLogit float64
				for _, v := range wantL {
					maxLogit = max(maxLogit, math.Abs(float64(v)))
				}
				t.Logf("accuracy %s %s: encoder hidden max|diff| %.3g, logits max|diff| %.3g (max |logit| %.3g), loglik max rel diff %.3g, greedy same %d/%d, beam top-1 same %d/%d",
					name, dt, hidden, logits, maxLogit, loglik, sameGreedy, len(g.Encoder.InputIDs), sameBeam, len(g.Encoder.InputIDs))
				if dt == catalog.Int8 {
					// The share of the weights' own quantization: the same int8 weights,
					// converted by convert.Convert, multiplied in float32.
					dir := t.TempDir()
					if _, err := convert.Convert(t.Context(), filepath.Join("..", "testdata", "golden", name, "checkpoint"), dir, convert.Options{DType: catalog.Int8}); err != nil {
						t.Fatal(err)
					}
					wo, err := Load(t.Context(), dir, testOptions(t, LoadOptions{DType: catalog.F32}))
					if err != nil {
						t.Fatal(err)
					}
					defer wo.Close()
					encs, err := wo.RunEncoder(t.Context(), g.Encoder.InputIDs)
					if err != nil {
						t.Fatal(err)
					}
					for i, e := range encs {
						seqs[i] = e.NewSequence()
					}
					h, err := wo.Feed(t.Context(), seqs, g.TeacherForcing.DecoderInputIDs, nil)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("accuracy %s int8 weights in f32 products (weight-only): logits max|diff| %.3g", name, maxAbsDiff(h, wantL))
				}
				if hidden > bound.hidden || logits > bound.logits || loglik > bound.loglikRel {
					t.Errorf("%s beyond the recorded bounds %+v", dt, bound)
				}
			})
		}
	}
}
