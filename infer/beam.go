package infer

import (
	"fmt"
	"math"
	"slices"
)

// beamSearch is HF v4.30.2's beam search (generation/utils.py beam_search with
// BeamSearchScorer and BeamHypotheses) for one input:
//
//   - beam scores are float32 sums of float32 log-softmax values; at the first step every
//     beam but the first starts at -1e9, so the first step expands one beam;
//   - each step ranks the 2·num_beams best (beam, token) candidates; a candidate ending in
//     </s> becomes a finished hypothesis only if its rank is below num_beams, the others
//     fill the num_beams beams of the next step in rank order;
//   - a finished hypothesis scores sum_logprobs / len^length_penalty, len counting the start
//     token but not the </s>; at most num_beams are kept;
//   - the search is done when num_beams hypotheses are finished and either EarlyStopping
//     is set or the best candidate score of the step divided by (current length + 1)^α
//     cannot beat the worst kept one; at max_length the open beams are added as they are.
type beamSearch struct {
	m      *Model
	c      genConfig
	beams  []beam
	first  bool
	done   bool
	maxLen int // HF max_length: the start token plus max_new_tokens
	hyps   beamHyps
}

type beam struct {
	seq   *Sequence
	ids   []int
	lps   []float64
	score float32
}

// candidate is one (beam, token) extension.
type candidate struct {
	score  float32
	parent int // index into beams
	flat   int // virtual beam · vocab + token, HF's flat index, for ranking ties
	tok    int
	lp     float64 // float64 log-prob of tok, reported in TokenLogprobs
}

func newBeamSearch(m *Model, e *EncoderOutput, c genConfig) *beamSearch {
	start := m.shape.DecoderStartTokenID
	return &beamSearch{
		m: m, c: c, first: true, maxLen: c.maxNew + 1,
		beams: []beam{{seq: e.NewSequence(), ids: []int{start}}},
		hyps:  beamHyps{n: c.beams, lengthPenalty: c.lengthPenalty, early: c.earlyStopping, worst: 1e9},
	}
}

func (b *beamSearch) pending() ([]*Sequence, []int) {
	if b.done {
		return nil, nil
	}
	seqs := make([]*Sequence, len(b.beams))
	toks := make([]int, len(b.beams))
	for i, bm := range b.beams {
		seqs[i] = bm.seq
		toks[i] = bm.ids[len(bm.ids)-1]
	}
	return seqs, toks
}

func (b *beamSearch) advance(logits []float32) error {
	nb, V, eos := b.c.beams, b.m.shape.VocabSize, b.m.shape.EOSTokenID
	k := 2 * nb
	// Rank the candidates: a bounded list kept sorted by descending score, then ascending
	// flat index; candidates are visited in ascending flat index.
	top := make([]candidate, 0, k+1)
	consider := func(cd candidate) {
		if len(top) == k && cd.score <= top[k-1].score {
			return
		}
		i := len(top)
		for i > 0 && top[i-1].score < cd.score {
			i--
		}
		top = slices.Insert(top, i, cd)
		if len(top) > k {
			top = top[:k]
		}
	}
	lse := make([]float64, len(b.beams))
	for p := range b.beams {
		lse[p] = b.m.logSumExp(logits[p*V : (p+1)*V])
		if !finite(lse[p]) {
			return numericsError("the log-sum-exp of a logits row")
		}
	}
	virtual := len(b.beams)
	if b.first {
		virtual = nb // HF runs num_beams identical beams, all but the first at -1e9
	}
	for vb := range virtual {
		p, base := vb, float32(0)
		if b.first {
			p = 0
			if vb > 0 {
				base = -1e9
			}
		} else {
			base = b.beams[p].score
		}
		row := logits[p*V : (p+1)*V]
		for tok, x := range row {
			lp := float32(float64(x) - lse[p])
			consider(candidate{score: base + lp, parent: p, flat: vb*V + tok, tok: tok})
		}
	}
	for i := range top {
		cd := &top[i]
		cd.lp = float64(logits[cd.parent*V+cd.tok]) - lse[cd.parent]
	}

	// BeamSearchScorer.process.
	var next []candidate
	for rank, cd := range top {
		if cd.tok == eos {
			if rank >= nb {
				continue
			}
			parent := b.beams[cd.parent]
			ids := append(slices.Clone(parent.ids), eos)
			lps := append(slices.Clone(parent.lps), cd.lp)
			b.hyps.add(ids, len(parent.ids), lps, float64(cd.score))
		} else {
			next = append(next, cd)
		}
		if len(next) == nb {
			break
		}
	}
	if len(next) < nb {
		return fmt.Errorf("infer: beam search: only %d of the %d best candidates are not </s>", len(next), k)
	}
	curLen := len(b.beams[0].ids) + 1
	if b.hyps.isDone(float64(top[0].score), curLen) {
		b.finish()
		return nil
	}

	// Reorder the beams: the first child of a beam takes over its sequence, later children
	// fork it (sharing the cached positions).
	claimed := make([]bool, len(b.beams))
	nextBeams := make([]beam, nb)
	for i, cd := range next {
		parent := b.beams[cd.parent]
		seq := parent.seq
		if claimed[cd.parent] {
			seq = seq.Fork()
		}
		claimed[cd.parent] = true
		nextBeams[i] = beam{
			seq:   seq,
			ids:   append(slices.Clip(parent.ids), cd.tok),
			lps:   append(slices.Clip(parent.lps), cd.lp),
			score: cd.score,
		}
	}
	b.beams, b.first = nextBeams, false
	if len(b.beams[0].ids) >= b.maxLen {
		// BeamSearchScorer.finalize: the open beams join the finished hypotheses.
		for _, bm := range b.beams {
			b.hyps.add(bm.ids, len(bm.ids), bm.lps, float64(bm.score))
		}
		b.finish()
	}
	return nil
}

func (b *beamSearch) finish() {
	b.done = true
	b.beams = nil
}

func (b *beamSearch) result() Generation {
	// finalize: Python's stable sort by score, ascending, then pop from the end.
	sorted := slices.Clone(b.hyps.beams)
	slices.SortStableFunc(sorted, func(x, y finished) int {
		switch {
		case x.score < y.score:
			return -1
		case x.score > y.score:
			return 1
		}
		return 0
	})
	var g Generation
	for j := 0; j < b.c.numReturn && len(sorted) > 0; j++ {
		h := sorted[len(sorted)-1]
		sorted = sorted[:len(sorted)-1]
		g.Hypotheses = append(g.Hypotheses, Hypothesis{IDs: h.ids, TokenLogprobs: h.lps, Score: h.score})
	}
	return g
}

// beamHyps is HF's BeamHypotheses: the best n finished hypotheses.
type beamHyps struct {
	n             int
	lengthPenalty float64
	early         bool
	beams         []finished
	worst         float64
}

type finished struct {
	score float64
	ids   []int
	lps   []float64
}

// add offers a hypothesis of length hypLen (HF's hyp.shape[-1]) whose token log-probs sum
// to sumLogprobs.
func (h *beamHyps) add(ids []int, hypLen int, lps []float64, sumLogprobs float64) {
	score := sumLogprobs / math.Pow(float64(hypLen), h.lengthPenalty)
	if len(h.beams) >= h.n && score <= h.worst {
		return
	}
	h.beams = append(h.beams, finished{score: score, ids: ids, lps: lps})
	if len(h.beams) <= h.n {
		h.worst = min(score, h.worst)
		return
	}
	// Drop the worst (the first of equals, as sorting (score, index) pairs does) and
	// remember the next worst.
	order := make([]int, len(h.beams))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, c int) int {
		switch {
		case h.beams[a].score < h.beams[c].score:
			return -1
		case h.beams[a].score > h.beams[c].score:
			return 1
		}
		return 0
	})
	h.worst = h.beams[order[1]].score
	h.beams = slices.Delete(h.beams, order[0], order[0]+1)
}

// isDone is BeamHypotheses.is_done for the best candidate score of a step and HF's
// cur_len (the length the candidates reach, start token included).
func (h *beamHyps) isDone(bestSumLogprobs float64, curLen int) bool {
	if len(h.beams) < h.n {
		return false
	}
	if h.early {
		return true
	}
	return h.worst >= bestSumLogprobs/math.Pow(float64(curLen), h.lengthPenalty)
}
