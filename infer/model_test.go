package infer

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/t5zoo/t5zoo/convert/safetensors"
)

func randomVariants() []struct {
	name string
	spec randomSpec
} {
	relu := smallShape()
	gated := smallShape()
	gated.FeedForwardProj, gated.TieWordEmbeddings = "gated-gelu", false
	silu := smallShape()
	silu.FeedForwardProj, silu.NumLayers, silu.NumDecoderLayers = "gated-silu", 1, 3
	gelu := smallShape()
	gelu.FeedForwardProj = "gelu"
	return []struct {
		name string
		spec randomSpec
	}{
		{"relu-tied-f32", randomSpec{shape: relu, zeroEOS: true}},
		{"gated-gelu-untied-bf16-sharded", randomSpec{shape: gated, dtype: safetensors.BF16, shards: 3, zeroEOS: true}},
		{"gated-silu-f16", randomSpec{shape: silu, dtype: safetensors.F16, zeroEOS: true}},
		{"gelu-f32", randomSpec{shape: gelu, zeroEOS: true}},
	}
}

func loadRandom(t testing.TB, spec randomSpec, opts LoadOptions) *Model {
	t.Helper()
	dir := writeModel(t, spec, randomTensors(spec, 1))
	m, err := Load(context.Background(), dir, testOptions(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestRandomSelfConsistency runs models whose d_kv·num_heads ≠ d_model and whose stacks
// differ in depth: batched == unbatched (greedy, beam, sampling, score), greedy == beam
// search with one beam, and the score of the greedy output == its step log-probs.
func TestRandomSelfConsistency(t *testing.T) {
	for _, v := range randomVariants() {
		t.Run(v.name, func(t *testing.T) {
			m := loadRandom(t, v.spec, LoadOptions{})
			s := m.Shape()
			ctx := t.Context()
			inputs := randomInputs(5, 6, 40, s.VocabSize, s.EOSTokenID)
			inputs[0] = []int{s.EOSTokenID} // a one-token input
			greedy, err := m.Generate(ctx, inputs, GenerateOptions{MaxNewTokens: 12})
			if err != nil {
				t.Fatal(err)
			}
			beamOpts := GenerateOptions{MaxNewTokens: 8, NumBeams: 4, NumReturnSequences: 3}
			beams, err := m.Generate(ctx, inputs, beamOpts)
			if err != nil {
				t.Fatal(err)
			}
			sampleOpts := GenerateOptions{MaxNewTokens: 10, Sample: true, TopK: 20, TopP: 0.9, Temperature: 0.8, Seed: 42, NumReturnSequences: 2}
			samples, err := m.Generate(ctx, inputs, sampleOpts)
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range inputs {
				one, err := m.Generate(ctx, [][]int{in}, GenerateOptions{MaxNewTokens: 12})
				if err != nil {
					t.Fatal(err)
				}
				g := greedy[i].Hypotheses[0]
				if !slices.Equal(one[0].Hypotheses[0].IDs, g.IDs) || !slices.Equal(one[0].Hypotheses[0].TokenLogprobs, g.TokenLogprobs) {
					t.Errorf("input %d: batched greedy differs from unbatched", i)
				}
				if len(g.IDs) != 13 {
					t.Errorf("input %d: greedy stopped after %d tokens with </s> zeroed", i, len(g.IDs))
				}

				// Beam search with one beam follows the greedy path.
				c, err := m.genConfig(GenerateOptions{MaxNewTokens: 12})
				if err != nil {
					t.Fatal(err)
				}
				encs, err := m.RunEncoder(ctx, [][]int{in})
				if err != nil {
					t.Fatal(err)
				}
				bs := newBeamSearch(m, encs[0], c)
				if err := m.run(ctx, []search{bs}); err != nil {
					t.Fatal(err)
				}
				b1 := bs.result().Hypotheses[0]
				if !slices.Equal(b1.IDs, g.IDs) {
					t.Errorf("input %d: beam(1) %v != greedy %v", i, b1.IDs, g.IDs)
				}
				if d := math.Abs(b1.Score*float64(len(g.IDs)) - g.Score); d > 1e-4 {
					t.Errorf("input %d: beam(1) score·len %v != greedy sum %v", i, b1.Score*float64(len(g.IDs)), g.Score)
				}

				// Scoring the greedy output gives back its step log-probs.
				sc, err := m.Score(ctx, []ScorePair{{Input: in, Target: g.IDs[1:]}})
				if err != nil {
					t.Fatal(err)
				}
				for j, lp := range g.TokenLogprobs {
					if d := math.Abs(sc[0].TokenLogprobs[j] - lp); d > 1e-6 {
						t.Errorf("input %d token %d: score %v != step log-prob %v", i, j, sc[0].TokenLogprobs[j], lp)
					}
				}
				if d := math.Abs(sc[0].SumLogprob - g.Score); d > 1e-5 {
					t.Errorf("input %d: score sum %v != greedy sum %v", i, sc[0].SumLogprob, g.Score)
				}

				oneBeam, err := m.Generate(ctx, [][]int{in}, beamOpts)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(oneBeam[0].Hypotheses, beams[i].Hypotheses, hypEqual) {
					t.Errorf("input %d: batched beams differ from unbatched", i)
				}
				if n := len(beams[i].Hypotheses); n != 3 {
					t.Errorf("input %d: %d beams returned, want 3", i, n)
				}
				for j := 1; j < len(beams[i].Hypotheses); j++ {
					if beams[i].Hypotheses[j].Score > beams[i].Hypotheses[j-1].Score {
						t.Errorf("input %d: beams not sorted by score", i)
					}
				}

				oneSample, err := m.Generate(ctx, [][]int{in}, sampleOpts)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(oneSample[0].Hypotheses, samples[i].Hypotheses, hypEqual) {
					t.Errorf("input %d: batched samples differ from unbatched", i)
				}
			}
		})
	}
}

func hypEqual(a, b Hypothesis) bool {
	return slices.Equal(a.IDs, b.IDs) && slices.Equal(a.TokenLogprobs, b.TokenLogprobs) && a.Score == b.Score
}

// TestSampling checks reproducibility, the effect of the seed, and that top-k 1 is greedy.
func TestSampling(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	ctx := t.Context()
	inputs := randomInputs(9, 3, 20, s.VocabSize, s.EOSTokenID)
	opts := GenerateOptions{MaxNewTokens: 15, Sample: true, Seed: 7, NumReturnSequences: 3}
	a, err := m.Generate(ctx, inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Generate(ctx, inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Seed = 8
	c, err := m.Generate(ctx, inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	differ := false
	for i := range inputs {
		if !slices.EqualFunc(a[i].Hypotheses, b[i].Hypotheses, hypEqual) {
			t.Errorf("input %d: same seed, different samples", i)
		}
		if !slices.EqualFunc(a[i].Hypotheses, c[i].Hypotheses, hypEqual) {
			differ = true
		}
		if slices.Equal(a[i].Hypotheses[0].IDs, a[i].Hypotheses[1].IDs) && slices.Equal(a[i].Hypotheses[1].IDs, a[i].Hypotheses[2].IDs) {
			t.Errorf("input %d: three samples are identical", i)
		}
	}
	if !differ {
		t.Error("seeds 7 and 8 gave the same samples")
	}
	greedy, err := m.Generate(ctx, inputs, GenerateOptions{MaxNewTokens: 15})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []GenerateOptions{
		{MaxNewTokens: 15, Sample: true, TopK: 1, Seed: 3},
		{MaxNewTokens: 15, Sample: true, TopP: 1e-6, Seed: 3},
		{MaxNewTokens: 15, Sample: true, Temperature: 1e-4, Seed: 3},
	} {
		got, err := m.Generate(ctx, inputs, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range inputs {
			if !slices.Equal(got[i].Hypotheses[0].IDs, greedy[i].Hypotheses[0].IDs) {
				t.Errorf("%+v input %d: %v, want greedy %v", o, i, got[i].Hypotheses[0].IDs, greedy[i].Hypotheses[0].IDs)
			}
		}
	}
}

// TestStepMatchesFeed checks the low-level API: stepping token by token, with a fork in the
// middle, gives the logits of feeding the whole prefix at once.
func TestStepMatchesFeed(t *testing.T) {
	m := loadRandom(t, randomVariants()[1].spec, LoadOptions{})
	s := m.Shape()
	ctx := t.Context()
	inputs := randomInputs(11, 2, 30, s.VocabSize, s.EOSTokenID)
	encs, err := m.RunEncoder(ctx, inputs)
	if err != nil {
		t.Fatal(err)
	}
	prefix := []int{0, 17, 33, 5, 250, 9}
	V := s.VocabSize
	whole, err := m.Feed(ctx, []*Sequence{encs[1].NewSequence()}, [][]int{prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := encs[1].NewSequence(), encs[0].NewSequence()
	var fork *Sequence
	for j, tok := range prefix {
		seqs, toks := []*Sequence{b, a}, []int{tok, tok}
		if fork != nil {
			seqs, toks = append(seqs, fork), append(toks, tok)
		}
		logits, err := m.Step(ctx, seqs, toks, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := whole[j*V : (j+1)*V]
		if d := maxAbsDiff(logits[V:2*V], want); d > 1e-5 {
			t.Fatalf("position %d: step logits differ from feed by %g", j, d)
		}
		if fork != nil {
			if d := maxAbsDiff(logits[2*V:3*V], want); d > 1e-5 {
				t.Fatalf("position %d: forked sequence differs by %g", j, d)
			}
		}
		if j == 2 {
			fork = a.Fork()
		}
	}
	if a.Len() != len(prefix) || fork.Len() != len(prefix) || !slices.Equal(a.IDs(), prefix) {
		t.Errorf("lengths %d, %d; ids %v", a.Len(), fork.Len(), a.IDs())
	}
}

// TestEncodeMean checks the pooled embedding against the hidden states.
func TestEncodeMean(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	inputs := randomInputs(2, 3, 25, s.VocabSize, s.EOSTokenID)
	out, err := m.Encode(t.Context(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	d := s.DModel
	for i, e := range out {
		if len(e.Hidden) != len(inputs[i])*d || len(e.Mean) != d {
			t.Fatalf("input %d: sizes %d, %d", i, len(e.Hidden), len(e.Mean))
		}
		for k := range d {
			var sum float64
			for r := range len(inputs[i]) {
				sum += float64(e.Hidden[r*d+k])
			}
			if math.Abs(sum/float64(len(inputs[i]))-float64(e.Mean[k])) > 1e-6 {
				t.Fatalf("input %d: mean[%d] = %v, want %v", i, k, e.Mean[k], sum/float64(len(inputs[i])))
			}
		}
	}
}

// TestThreadsAgree checks that one thread and several give identical results.
func TestThreadsAgree(t *testing.T) {
	spec := randomVariants()[1].spec
	dir := writeModel(t, spec, randomTensors(spec, 1))
	var outs [][]Generation
	for _, threads := range []int{1, 3} {
		m, err := Load(t.Context(), dir, testOptions(t, LoadOptions{Threads: threads}))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s := m.Shape()
		g, err := m.Generate(t.Context(), randomInputs(4, 4, 60, s.VocabSize, s.EOSTokenID), GenerateOptions{NumBeams: 3, MaxNewTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, g)
	}
	for i := range outs[0] {
		if !slices.EqualFunc(outs[0][i].Hypotheses, outs[1][i].Hypotheses, hypEqual) {
			t.Errorf("input %d: 1 and 3 threads differ", i)
		}
	}
}
