// Package evaluate measures models: how closely a converted or quantized model follows its
// source (Parity), and, as the evaluation issues land, downstream task quality.
package evaluate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer"
)

// Probe is a fixed set of (input, target) id sequences on which two models are compared.
type Probe struct {
	Name    string
	Inputs  [][]int
	Targets [][]int
	// GreedyTokens is how many tokens greedy decoding generates per input.
	GreedyTokens int
}

// DefaultProbe is four pseudo-random (input, target) pairs of 12–64 and 8–20 ids drawn
// from a fixed seed over the ids a tokenizer produces (below 32,000 and below vocab), each
// ending with </s> (1), and 16 greedy tokens per input. Random ids exercise every row of the
// embedding and LM head, which real text would visit unevenly.
func DefaultProbe(vocab int) Probe {
	rng := rand.New(rand.NewPCG(2109, 10686)) // the paper's arXiv id, for a fixed seed
	hi := min(vocab, 32000)
	seq := func(n int) []int {
		ids := make([]int, n)
		for i := range n - 1 {
			ids[i] = 3 + rng.IntN(hi-3)
		}
		ids[n-1] = 1
		return ids
	}
	p := Probe{Name: "default: 4 seeded random pairs, inputs 12/24/40/64 ids, targets 8/12/16/20, 16 greedy tokens", GreedyTokens: 16}
	for i, n := range []int{12, 24, 40, 64} {
		p.Inputs = append(p.Inputs, seq(n))
		p.Targets = append(p.Targets, seq(8+4*i))
	}
	return p
}

// Thresholds decide whether a conversion passes. An f32 conversion must be exact.
type Thresholds struct {
	// MinGreedyAgreement is the least fraction of greedy tokens that must agree.
	MinGreedyAgreement float64
	// MaxMeanAbsLogprobDiff bounds the mean |Δ log p| of the target tokens.
	MaxMeanAbsLogprobDiff float64
}

// DefaultThresholds are the publication gate for bf16, f16 and int8 models; see
// BENCHMARKS.md for the quality the golden and random models reach.
func DefaultThresholds() Thresholds {
	return Thresholds{MinGreedyAgreement: 0.9, MaxMeanAbsLogprobDiff: 0.05}
}

// String renders the gate as recorded in t5zoo.json.
func (t Thresholds) String() string {
	return fmt.Sprintf("greedy agreement >= %g and mean |dlogprob| <= %g (f32: exact)", t.MinGreedyAgreement, t.MaxMeanAbsLogprobDiff)
}

// Parity runs the probe through the reference model and the candidate and compares their
// teacher-forced logits, target log-probabilities and greedy outputs. dt is the candidate's
// storage dtype: f32 passes only when every logit is identical.
func Parity(ctx context.Context, ref, cand *infer.Model, dt catalog.DType, p Probe, th Thresholds) (*convert.Parity, error) {
	if ref.Shape() != cand.Shape() {
		return nil, errors.New("parity: the models have different shapes: " + catalog.ShapeDiff(ref.Shape(), cand.Shape()))
	}
	if len(p.Inputs) == 0 || len(p.Inputs) != len(p.Targets) {
		return nil, errors.New("parity: the probe needs as many targets as inputs, at least one")
	}
	res := &convert.Parity{Probe: p.Name, Threshold: th.String()}

	// Teacher-forced logits: decoder start, then the target shifted right.
	start := ref.Shape().DecoderStartTokenID
	for i := range p.Inputs {
		feed := append([]int{start}, p.Targets[i][:len(p.Targets[i])-1]...)
		a, err := teacherForced(ctx, ref, p.Inputs[i], feed)
		if err != nil {
			return nil, fmt.Errorf("parity: reference: %w", err)
		}
		b, err := teacherForced(ctx, cand, p.Inputs[i], feed)
		if err != nil {
			return nil, fmt.Errorf("parity: candidate: %w", err)
		}
		for j := range a {
			res.MaxLogitDiff = max(res.MaxLogitDiff, math.Abs(float64(a[j])-float64(b[j])))
		}
	}

	pairs := make([]infer.ScorePair, len(p.Inputs))
	for i := range pairs {
		pairs[i] = infer.ScorePair{Input: p.Inputs[i], Target: p.Targets[i]}
	}
	sa, err := ref.Score(ctx, pairs)
	if err != nil {
		return nil, fmt.Errorf("parity: reference: %w", err)
	}
	sb, err := cand.Score(ctx, pairs)
	if err != nil {
		return nil, fmt.Errorf("parity: candidate: %w", err)
	}
	var sum float64
	var n int
	for i := range sa {
		for j := range sa[i].TokenLogprobs {
			sum += math.Abs(sa[i].TokenLogprobs[j] - sb[i].TokenLogprobs[j])
			n++
		}
	}
	res.MeanAbsLogprobDiff = sum / float64(n)

	opts := infer.GenerateOptions{MaxNewTokens: p.GreedyTokens}
	ga, err := ref.Generate(ctx, p.Inputs, opts)
	if err != nil {
		return nil, fmt.Errorf("parity: reference: %w", err)
	}
	gb, err := cand.Generate(ctx, p.Inputs, opts)
	if err != nil {
		return nil, fmt.Errorf("parity: candidate: %w", err)
	}
	agree, total := 0, 0
	for i := range ga {
		a, b := ga[i].Hypotheses[0].IDs[1:], gb[i].Hypotheses[0].IDs[1:]
		total += max(len(a), len(b))
		// Positions agree until the first difference; after it the two decodes condition on
		// different prefixes, so later matches say nothing.
		for j := 0; j < min(len(a), len(b)) && a[j] == b[j]; j++ {
			agree++
		}
	}
	res.GreedyAgreement = float64(agree) / float64(total)

	if dt == catalog.F32 || dt == "" {
		res.Passed = res.MaxLogitDiff == 0
	} else {
		res.Passed = res.GreedyAgreement >= th.MinGreedyAgreement && res.MeanAbsLogprobDiff <= th.MaxMeanAbsLogprobDiff
	}
	return res, nil
}

// teacherForced returns the logits after each of feed's tokens for one input.
func teacherForced(ctx context.Context, m *infer.Model, input, feed []int) ([]float32, error) {
	enc, err := m.RunEncoder(ctx, [][]int{input})
	if err != nil {
		return nil, err
	}
	return m.Feed(ctx, []*infer.Sequence{enc[0].NewSequence()}, [][]int{feed}, nil)
}
