package t5

import (
	"context"
	"fmt"
	"slices"

	"github.com/t5zoo/t5zoo/backend"
)

// Sequence is one decoder hypothesis: the decoder input ids fed so far and their
// self-attention keys and values in every layer. A Sequence is used by one goroutine at a
// time; Fork copies it cheaply (positions already computed are shared, never rewritten).
type Sequence struct {
	enc   *EncoderOutput
	ids   []int
	cache backend.Cache // nil until the first feed
}

// Encoder returns the encoded input the sequence attends to.
func (s *Sequence) Encoder() *EncoderOutput { return s.enc }

// Len is the number of tokens fed so far.
func (s *Sequence) Len() int { return len(s.ids) }

// IDs returns a copy of the tokens fed so far.
func (s *Sequence) IDs() []int { return slices.Clone(s.ids) }

// Cached is the number of positions in the sequence's self-attention cache: Len, since a
// pass that fails leaves the cache as it found it.
func (s *Sequence) Cached() int {
	if s.cache == nil {
		return 0
	}
	return s.cache.Len()
}

// Fork returns an independent copy of s that shares the cached positions: feeding either
// one does not change the other.
func (s *Sequence) Fork() *Sequence {
	f := &Sequence{enc: s.enc, ids: slices.Clip(slices.Clone(s.ids))}
	if s.cache != nil {
		f.cache = s.cache.Fork()
	}
	return f
}

// Step feeds tokens[i] to seqs[i] for every i in one decoder pass and returns the next-token
// logits, len(seqs) × vocab_size row-major, in logits if it has the capacity. The sequences
// may belong to different inputs and have different lengths; a sequence may appear only
// once. On error no sequence has changed.
func (m *Model) Step(ctx context.Context, seqs []*Sequence, tokens []int, logits []float32) ([]float32, error) {
	if len(tokens) != len(seqs) {
		return nil, fmt.Errorf("%w: step: %d tokens for %d sequences", ErrInvalidInput, len(tokens), len(seqs))
	}
	toks := make([][]int, len(tokens))
	for i := range tokens {
		toks[i] = tokens[i : i+1 : i+1]
	}
	return m.Feed(ctx, seqs, toks, logits)
}

// Feed feeds tokens[i] (one or more ids) to seqs[i] in one decoder pass, with causal
// attention among the new tokens as in teacher forcing, and returns the logits after every
// fed token: a row per token, sequence after sequence, each vocab_size wide, in logits if it
// has the capacity. On error no sequence has changed.
func (m *Model) Feed(ctx context.Context, seqs []*Sequence, tokens [][]int, logits []float32) ([]float32, error) {
	w, hidden, err := m.decoderPass(ctx, seqs, tokens)
	if err != nil {
		return nil, err
	}
	defer m.putWork(w)
	rows, V := hidden.Rows, m.shape.VocabSize
	if cap(logits) < rows*V {
		logits = make([]float32, rows*V)
	}
	logits = logits[:rows*V]
	m.be.Logits(logits, hidden, m.lmHead, m.lmScale)
	return logits, nil
}

// FeedHidden is Feed that also returns the decoder's final hidden states on the host (a row
// per fed token, d_model wide, before the tied-embedding scaling): what the golden tests
// compare with HF's decoder_hidden_states.
func (m *Model) FeedHidden(ctx context.Context, seqs []*Sequence, tokens [][]int) (hidden, logits []float32, err error) {
	w, h, err := m.decoderPass(ctx, seqs, tokens)
	if err != nil {
		return nil, nil, err
	}
	defer m.putWork(w)
	hidden = make([]float32, h.Rows*h.Cols)
	m.be.Download(hidden, h)
	logits = make([]float32, h.Rows*m.shape.VocabSize)
	m.be.Logits(logits, h, m.lmHead, m.lmScale)
	return hidden, logits, nil
}

// FeedBlocks feeds tokens as Feed does, then turns the hidden states into logits block rows
// at a time, calling fn with the first row of each block and its logits (valid until fn
// returns), so that a long teacher-forced target never needs a full positions × vocab_size
// matrix. It stops at fn's first error, or when ctx ends between blocks.
func (m *Model) FeedBlocks(ctx context.Context, seqs []*Sequence, tokens [][]int, block int, fn func(r0 int, logits []float32) error) error {
	w, hidden, err := m.decoderPass(ctx, seqs, tokens)
	if err != nil {
		return err
	}
	defer m.putWork(w)
	V := m.shape.VocabSize
	var logits []float32
	for lo := 0; lo < hidden.Rows; lo += block {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(hidden.Rows, lo+block)
		if cap(logits) < (hi-lo)*V {
			logits = make([]float32, (hi-lo)*V)
		}
		logits = logits[:(hi-lo)*V]
		m.be.Logits(logits, hidden.RowSlice(lo, hi), m.lmHead, m.lmScale)
		if err := fn(lo, logits); err != nil {
			return err
		}
	}
	return nil
}

// checkFeed validates a Feed request before anything changes.
func (m *Model) checkFeed(seqs []*Sequence, tokens [][]int) (int, error) {
	if len(seqs) == 0 || len(tokens) != len(seqs) {
		return 0, fmt.Errorf("%w: feed: %d token lists for %d sequences", ErrInvalidInput, len(tokens), len(seqs))
	}
	seen := make(map[*Sequence]bool, len(seqs))
	t := 0
	for i, s := range seqs {
		if s == nil || s.enc == nil {
			return 0, fmt.Errorf("%w: feed: sequence %d was not made by EncoderOutput.NewSequence", ErrInvalidInput, i)
		}
		if seen[s] {
			return 0, fmt.Errorf("%w: feed: sequence %d appears twice", ErrInvalidInput, i)
		}
		seen[s] = true
		if len(tokens[i]) == 0 {
			return 0, fmt.Errorf("%w: feed: no tokens for sequence %d", ErrInvalidInput, i)
		}
		if n := s.Len() + len(tokens[i]); n > m.maxTokens {
			return 0, fmt.Errorf("%w: feed: sequence %d would reach %d tokens, more than the limit of %d", ErrInvalidInput, i, n, m.maxTokens)
		}
		for j, id := range tokens[i] {
			if id < 0 || id >= m.shape.VocabSize {
				return 0, fmt.Errorf("%w: feed: token %d (%d of sequence %d) is outside the vocabulary (0..%d)", ErrInvalidInput, id, j, i, m.shape.VocabSize-1)
			}
		}
		t += len(tokens[i])
	}
	return t, nil
}

// decoderPass runs the decoder over the new tokens of every sequence, appends their keys
// and values to the sequences' caches, and returns the final layer-normed hidden states,
// one row per new token (before the tied-embedding scaling), in the scratch w, which the
// caller hands back (putWork) once it has read them.
func (m *Model) decoderPass(ctx context.Context, seqs []*Sequence, tokens [][]int) (_ *work, _ backend.Tensor, err error) {
	t, err := m.checkFeed(seqs, tokens)
	if err != nil {
		return nil, backend.Tensor{}, err
	}
	be, nl, inner := m.be, len(m.dec), m.inner
	// Undo the cache appends if the pass does not complete.
	oldLen := make([]int, len(seqs))
	for i, s := range seqs {
		if s.cache == nil {
			s.cache = be.NewCache(nl, m.heads, m.dkv)
		}
		oldLen[i] = len(s.ids)
	}
	w, p := m.getWork(t)
	defer func() {
		if err != nil {
			m.putWork(w)
			for i, s := range seqs {
				s.cache.Truncate(oldLen[i])
			}
		}
	}()
	r := 0
	for i, s := range seqs {
		n := len(tokens[i])
		be.Embed(p.x.RowSlice(r, r+n), m.embed, tokens[i])
		// Each sequence's new keys and values go to memory of its own (every layer's, for its
		// new tokens), so that a finished sequence's cache is garbage at once, whatever other
		// sequences shared its steps: what a request holds is what it is charged.
		s.cache.Reserve(n)
		r += n
	}
	qkv := w.qkv.get(be, t, 3*inner)
	self := make([]backend.AttnGroup, len(seqs))
	cross := make([]backend.AttnGroup, len(seqs))
	for l, layer := range m.dec {
		if err := ctx.Err(); err != nil {
			return nil, backend.Tensor{}, err
		}
		// Self-attention over the cache and the new tokens, causal.
		be.RMSNorm(p.h, p.x, layer.selfNorm, m.eps)
		be.Linear(qkv, p.h, layer.qkv, backend.Store)
		r := 0
		for i, s := range seqs {
			n := len(tokens[i])
			rows := qkv.RowSlice(r, r+n)
			s.cache.Append(l, rows.ColSlice(inner, 3*inner))
			out := p.att.RowSlice(r, r+n)
			self[i] = backend.AttnGroup{Q: rows.ColSlice(0, inner), Out: out, Pos0: oldLen[i], KV: s.cache.Layer(l), Causal: true}
			cross[i] = backend.AttnGroup{Q: p.q.RowSlice(r, r+n), Out: out, KV: s.enc.cross[l]}
			r += n
		}
		be.Attention(self, m.heads, m.decRel)
		be.Linear(p.x, p.att, layer.selfO, backend.Add)

		// Cross-attention over the encoder output, no position bias.
		be.RMSNorm(p.h, p.x, layer.crossNorm, m.eps)
		be.Linear(p.q, p.h, layer.crossQ, backend.Store)
		be.Attention(cross, m.heads, backend.Tensor{})
		be.Linear(p.x, p.att, layer.crossO, backend.Add)

		m.feedForward(p, layer.ffnNorm, layer.ffn)
	}
	for i, s := range seqs {
		s.ids = append(s.ids, tokens[i]...)
	}
	out := w.out.get(be, t, m.dModel)
	be.RMSNorm(out, p.x, m.decFinal, m.eps)
	return w, out, nil
}
