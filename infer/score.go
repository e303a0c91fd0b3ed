package infer

import (
	"context"
	"fmt"
)

// batchTokens bounds the tokens one internal forward pass of Score or Encode covers;
// longer batches are split (the results do not depend on the split).
const batchTokens = 4096

// lmBlockRows is how many decoder rows Score turns into logits at a time, so that a long
// target never needs a full positions × vocab_size logits matrix.
const lmBlockRows = 64

// chunks splits items of the given sizes into consecutive runs of at most budget in total
// (a larger item gets a run of its own).
func chunks(sizes []int, budget int) [][2]int {
	var out [][2]int
	start, sum := 0, 0
	for i, n := range sizes {
		if i > start && sum+n > budget {
			out = append(out, [2]int{start, i})
			start, sum = i, 0
		}
		sum += n
	}
	if start < len(sizes) {
		out = append(out, [2]int{start, len(sizes)})
	}
	return out
}

// ScorePair is one (input, target) pair to score.
type ScorePair struct {
	Input  []int // encoder input ids, normally ending with </s>
	Target []int // target ids (HF labels), normally ending with </s>
}

// ScoreResult is log p(target | input) under the model.
type ScoreResult struct {
	// SumLogprob is the sum of TokenLogprobs.
	SumLogprob float64
	// TokenLogprobs[j] is log p(target[j] | input, target[:j]): the float64 log-softmax of the
	// float32 logits, the decoder being fed decoder_start_token_id then target[:j] (HF's
	// shift-right of the labels).
	TokenLogprobs []float64
}

// Score computes log p(target | input) for each pair, in one batch or a few.
func (m *Model) Score(ctx context.Context, pairs []ScorePair) ([]ScoreResult, error) {
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%w: no pairs to score", ErrInvalidInput)
	}
	sizes := make([]int, len(pairs))
	for i, p := range pairs {
		if err := m.checkIDs(fmt.Sprintf("pair %d input", i), p.Input); err != nil {
			return nil, err
		}
		if err := m.checkIDs(fmt.Sprintf("pair %d target", i), p.Target); err != nil {
			return nil, err
		}
		sizes[i] = len(p.Input) + len(p.Target)
	}
	results := make([]ScoreResult, len(pairs))
	for _, c := range chunks(sizes, batchTokens) {
		if err := m.scoreBatch(ctx, pairs[c[0]:c[1]], results[c[0]:c[1]]); err != nil {
			return nil, err
		}
	}
	return results, nil
}

func (m *Model) scoreBatch(ctx context.Context, pairs []ScorePair, results []ScoreResult) error {
	inputs := make([][]int, len(pairs))
	targets := make([][]int, len(pairs))
	owner := make([]int, len(pairs))
	for i, p := range pairs {
		inputs[i], targets[i], owner[i] = p.Input, p.Target, i
	}
	encs, err := m.RunEncoder(ctx, inputs)
	if err != nil {
		return err
	}
	return m.scoreTargets(ctx, encs, owner, targets, results)
}

// scoreTargets teacher-forces targets[i] on the encoder output encs[owner[i]] and writes
// log p(targets[i] | input) into results[i]. Several targets may share one encoder output:
// their sequences read the same cross-attention keys and values.
func (m *Model) scoreTargets(ctx context.Context, encs []*EncoderOutput, owner []int, targets [][]int, results []ScoreResult) error {
	seqs := make([]*Sequence, len(targets))
	feeds := make([][]int, len(targets))
	for i, tg := range targets {
		seqs[i] = encs[owner[i]].NewSequence()
		feeds[i] = append([]int{m.shape.DecoderStartTokenID}, tg[:len(tg)-1]...)
	}
	// Row r of the decoder's output predicts labels[r], a token of target rowOf[r].
	var labels, rowOf []int
	for i, tg := range targets {
		labels = append(labels, tg...)
		for range tg {
			rowOf = append(rowOf, i)
		}
		results[i].TokenLogprobs = make([]float64, 0, len(tg))
	}
	V := m.shape.VocabSize
	return m.t.FeedBlocks(ctx, seqs, feeds, lmBlockRows, func(lo int, logits []float32) error {
		for r := lo; r < lo+len(logits)/V; r++ {
			lp := m.logSoftmaxAt(logits[(r-lo)*V:(r-lo+1)*V], labels[r])
			if !finite(lp) {
				return numericsError("a target token's log-probability")
			}
			res := &results[rowOf[r]]
			res.TokenLogprobs = append(res.TokenLogprobs, lp)
			res.SumLogprob += lp
		}
		return nil
	})
}

// ChoiceSet is one input and the candidate targets to score against it: the label strings
// of a classification example in rank mode.
type ChoiceSet struct {
	Input   []int   // encoder input ids, normally ending with </s>
	Targets [][]int // candidate targets, each normally ending with </s>
}

// ScoreChoices computes log p(target | input) for every target of every set. The encoder
// runs once per set's input and all of its targets decode against that one encoder output,
// so k choices cost one encoder pass, not k; sets are batched together. results[i][j] is
// what Score returns for the pair (sets[i].Input, sets[i].Targets[j]).
func (m *Model) ScoreChoices(ctx context.Context, sets []ChoiceSet) ([][]ScoreResult, error) {
	if len(sets) == 0 {
		return nil, fmt.Errorf("%w: no choice sets to score", ErrInvalidInput)
	}
	sizes := make([]int, len(sets))
	for i, cs := range sets {
		if err := m.checkIDs(fmt.Sprintf("set %d input", i), cs.Input); err != nil {
			return nil, err
		}
		if len(cs.Targets) == 0 {
			return nil, fmt.Errorf("%w: set %d has no targets", ErrInvalidInput, i)
		}
		sizes[i] = len(cs.Input)
		for j, tg := range cs.Targets {
			if err := m.checkIDs(fmt.Sprintf("set %d target %d", i, j), tg); err != nil {
				return nil, err
			}
			sizes[i] += len(tg)
		}
	}
	results := make([][]ScoreResult, len(sets))
	for _, c := range chunks(sizes, batchTokens) {
		part := sets[c[0]:c[1]]
		inputs := make([][]int, len(part))
		var targets [][]int
		var owner []int
		for i, cs := range part {
			inputs[i] = cs.Input
			targets = append(targets, cs.Targets...)
			for range cs.Targets {
				owner = append(owner, i)
			}
		}
		encs, err := m.RunEncoder(ctx, inputs)
		if err != nil {
			return nil, err
		}
		flat := make([]ScoreResult, len(targets))
		if err := m.scoreTargets(ctx, encs, owner, targets, flat); err != nil {
			return nil, err
		}
		for i, cs := range part {
			results[c[0]+i], flat = flat[:len(cs.Targets):len(cs.Targets)], flat[len(cs.Targets):]
		}
	}
	return results, nil
}

// Encoding is one input's encoder output.
type Encoding struct {
	// Hidden is the encoder's last_hidden_state, len(input) × d_model row-major.
	Hidden []float32
	// Mean is the mean of Hidden's rows (every position of the input is a real token, so
	// this is the mean over non-pad positions), accumulated in float64.
	Mean []float32
}

// Encode runs the encoder over inputs and returns each one's hidden states and mean-pooled
// embedding.
func (m *Model) Encode(ctx context.Context, inputs [][]int) ([]Encoding, error) {
	if err := m.checkInputs(inputs); err != nil {
		return nil, err
	}
	sizes := make([]int, len(inputs))
	for i, in := range inputs {
		sizes[i] = len(in)
	}
	d := m.dModel
	out := make([]Encoding, len(inputs))
	for _, c := range chunks(sizes, batchTokens) {
		hidden, err := m.t.EncodeHidden(ctx, inputs[c[0]:c[1]])
		if err != nil {
			return nil, err
		}
		for i, h := range hidden {
			n := len(h) / d
			sum := make([]float64, d)
			for r := range n {
				for k, v := range h[r*d : (r+1)*d] {
					sum[k] += float64(v)
				}
			}
			mean := make([]float32, d)
			for k := range mean {
				if !finite(sum[k]) {
					return nil, numericsError("an encoder hidden state")
				}
				mean[k] = float32(sum[k] / float64(n))
			}
			out[c[0]+i] = Encoding{Hidden: h, Mean: mean}
		}
	}
	return out, nil
}
