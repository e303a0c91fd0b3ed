package infer

import (
	"context"
	"fmt"
	"slices"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/backend/cpu"
)

// EncoderOutput is one input after the encoder: its final hidden states and, for every
// decoder layer, the cross-attention keys and values computed from them once. Any number of
// Sequences (beams, samples) attend to it; it is read-only and safe to share.
type EncoderOutput struct {
	ids    []int
	hidden []float32 // len(ids) × d_model
	// crossK and crossV are [decoder layer][head]: the head's keys packed as the weight of
	// the score product (len(ids) × d_kv) and its values as that of the output product
	// (d_kv × len(ids)), packed once here rather than at every step.
	crossK, crossV [][]cpu.Packed
}

// Len is the input's length in tokens.
func (e *EncoderOutput) Len() int { return len(e.ids) }

// Hidden returns the encoder's last_hidden_state for the input, Len() × d_model row-major.
// The slice is shared: do not modify it.
func (e *EncoderOutput) Hidden() []float32 { return e.hidden }

// NewSequence starts a decoder hypothesis on e with nothing fed yet; the first token to feed
// is normally the model's decoder_start_token_id.
func (e *EncoderOutput) NewSequence() *Sequence { return &Sequence{enc: e} }

// RunEncoder encodes inputs (one batch; their lengths may differ) and computes each one's
// cross-attention keys and values for every decoder layer.
func (m *Model) RunEncoder(ctx context.Context, inputs [][]int) ([]*EncoderOutput, error) {
	if err := m.checkInputs(inputs); err != nil {
		return nil, err
	}
	sizes := make([]int, len(inputs))
	for i, in := range inputs {
		sizes[i] = len(in)
	}
	outs := make([]*EncoderOutput, 0, len(inputs))
	for _, c := range chunks(sizes, batchTokens) {
		o, err := m.runEncoder(ctx, inputs[c[0]:c[1]])
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

func (m *Model) runEncoder(ctx context.Context, inputs [][]int) ([]*EncoderOutput, error) {
	hidden, segs, err := m.encoderHidden(ctx, inputs)
	if err != nil {
		return nil, err
	}
	t, inner, d := len(hidden)/m.dModel, m.inner, m.dModel
	nl := len(m.dec)
	outs := make([]*EncoderOutput, len(inputs))
	for i, sg := range segs {
		outs[i] = &EncoderOutput{
			ids: slices.Clone(inputs[i]),
			// A copy, so that the batch's hidden states are not all kept alive by one input.
			hidden: slices.Clone(hidden[sg.off*d : (sg.off+sg.n)*d]),
			crossK: make([][]cpu.Packed, nl),
			crossV: make([][]cpu.Packed, nl),
		}
	}
	if nl == 0 {
		return outs, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Layer by layer (the scratch is one layer's k and v, not every layer's: tens of MB for a
	// long input on a large shape), the keys and values of every input, packed per head.
	width := 2 * inner
	w := m.getWork(0)
	defer m.putWork(w)
	w.cross = grow(w.cross, t*width)
	slab := w.cross
	dkv, heads := m.dkv, m.heads
	for l := range nl {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.be.MulT(slab, hidden, t, m.dec[l].crossKV, kernels.Store)
		m.pool.For(len(segs), func(_, i int) {
			sg := segs[i]
			ks, vs := make([][]float32, sg.n), make([][]float32, sg.n)
			for j := range sg.n {
				row := slab[(sg.off+j)*width:]
				ks[j], vs[j] = row[:inner], row[inner:2*inner]
			}
			lk, lv := cpu.PackedLen(sg.n, dkv), cpu.PackedLen(dkv, sg.n)
			buf := make([]float32, heads*(lk+lv))
			kp, vp := make([]cpu.Packed, heads), make([]cpu.Packed, heads)
			for h := range heads {
				kp[h] = cpu.PackRows(buf[h*(lk+lv):h*(lk+lv)+lk], ks, h*dkv, dkv)
				vp[h] = cpu.PackRowsT(buf[h*(lk+lv)+lk:(h+1)*(lk+lv)], vs, h*dkv, dkv)
			}
			outs[i].crossK[l], outs[i].crossV[l] = kp, vp
		})
	}
	return outs, nil
}

// Sequence is one decoder hypothesis: the decoder input ids fed so far and their
// self-attention keys and values in every layer. A Sequence is used by one goroutine at a
// time; Fork copies it cheaply (positions already computed are shared, never rewritten).
type Sequence struct {
	enc        *EncoderOutput
	ids        []int
	keys, vals [][][]float32 // [layer][position] → num_heads·d_kv
}

// Encoder returns the encoded input the sequence attends to.
func (s *Sequence) Encoder() *EncoderOutput { return s.enc }

// Len is the number of tokens fed so far.
func (s *Sequence) Len() int { return len(s.ids) }

// IDs returns a copy of the tokens fed so far.
func (s *Sequence) IDs() []int { return slices.Clone(s.ids) }

// Fork returns an independent copy of s that shares the cached positions: feeding either
// one does not change the other.
func (s *Sequence) Fork() *Sequence {
	f := &Sequence{enc: s.enc, ids: slices.Clip(slices.Clone(s.ids))}
	if s.keys != nil {
		f.keys = make([][][]float32, len(s.keys))
		f.vals = make([][][]float32, len(s.vals))
		for l := range s.keys {
			f.keys[l] = slices.Clip(slices.Clone(s.keys[l]))
			f.vals[l] = slices.Clip(slices.Clone(s.vals[l]))
		}
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
	hidden, err := m.decoderHidden(ctx, seqs, tokens)
	if err != nil {
		return nil, err
	}
	return m.lmLogits(hidden, logits), nil
}

// lmLogits applies the LM head to hidden (rows × d_model), after the d_model^-0.5 scaling
// of tied models; hidden is scaled in place.
func (m *Model) lmLogits(hidden, logits []float32) []float32 {
	rows, V := len(hidden)/m.dModel, m.shape.VocabSize
	if cap(logits) < rows*V {
		logits = make([]float32, rows*V)
	}
	logits = logits[:rows*V]
	if m.lmScale != 1 {
		for i := range hidden {
			hidden[i] *= m.lmScale
		}
	}
	m.be.MulT(logits, hidden, rows, m.lmHead, kernels.Store)
	return logits
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

// decoderHidden runs the decoder over the new tokens of every sequence, appends their keys
// and values to the sequences' caches, and returns the final layer-normed hidden states,
// one row per new token (before the tied-embedding scaling).
func (m *Model) decoderHidden(ctx context.Context, seqs []*Sequence, tokens [][]int) (_ []float32, err error) {
	t, err := m.checkFeed(seqs, tokens)
	if err != nil {
		return nil, err
	}
	nl, inner := len(m.dec), m.inner
	for _, s := range seqs {
		if s.keys == nil {
			s.keys = make([][][]float32, nl)
			s.vals = make([][][]float32, nl)
		}
	}
	// Undo the cache appends if the pass does not complete.
	oldLen := make([]int, len(seqs))
	for i, s := range seqs {
		oldLen[i] = len(s.ids)
	}
	defer func() {
		if err != nil {
			for i, s := range seqs {
				for l := range nl {
					s.keys[l] = s.keys[l][:min(len(s.keys[l]), oldLen[i])]
					s.vals[l] = s.vals[l][:min(len(s.vals[l]), oldLen[i])]
				}
			}
		}
	}()

	w := m.getWork(t)
	defer m.putWork(w)
	d := m.dModel
	r := 0
	for i := range seqs {
		m.embedRows(w.x[r*d:], tokens[i])
		r += len(tokens[i])
	}
	// The new keys and values of each sequence go to a slab of its own (every layer's, for
	// its new tokens), so that a finished sequence's cache is garbage at once, whatever other
	// sequences shared its steps: what a request holds is what it is charged
	// (Model.GenerateBytes).
	w.qkv = grow(w.qkv, t*3*inner)
	qkv := w.qkv
	slabs := make([][]float32, len(seqs))
	for i := range seqs {
		slabs[i] = make([]float32, nl*len(tokens[i])*2*inner)
	}
	self := make([]attnGroup, len(seqs))
	cross := make([]attnGroup, len(seqs))
	for l, layer := range m.dec {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Self-attention over the cache and the new tokens, causal.
		m.rmsNorm(w.h, w.x, layer.selfNorm)
		m.be.MulT(qkv, w.h, t, layer.qkv, kernels.Store)
		r := 0
		for i, s := range seqs {
			n := len(tokens[i])
			kv := slabs[i][l*n*2*inner : (l+1)*n*2*inner]
			for j := range n {
				dst := kv[j*2*inner : (j+1)*2*inner : (j+1)*2*inner]
				copy(dst, qkv[(r+j)*3*inner+inner:(r+j+1)*3*inner])
				s.keys[l] = append(s.keys[l], dst[:inner:inner])
				s.vals[l] = append(s.vals[l], dst[inner:])
			}
			self[i] = attnGroup{
				q: qkv[r*3*inner:], ldq: 3 * inner, out: w.att[r*inner:], n: n, pos0: oldLen[i],
				keys: s.keys[l], vals: s.vals[l], causal: true,
			}
			cross[i] = attnGroup{
				q: w.q[r*inner:], ldq: inner, out: w.att[r*inner:], n: n,
				kp: s.enc.crossK[l], vp: s.enc.crossV[l],
			}
			r += n
		}
		m.attend(self, m.decRel, w.attn)
		m.be.MulT(w.x, w.att, t, layer.selfO, kernels.Add)

		// Cross-attention over the encoder output, no position bias.
		m.rmsNorm(w.h, w.x, layer.crossNorm)
		m.be.MulT(w.q, w.h, t, layer.crossQ, kernels.Store)
		m.attend(cross, nil, w.attn)
		m.be.MulT(w.x, w.att, t, layer.crossO, kernels.Add)

		m.feedForward(w, t, layer.ffnNorm, layer.ffn)
	}
	for i, s := range seqs {
		s.ids = append(s.ids, tokens[i]...)
	}
	out := make([]float32, t*d)
	m.rmsNorm(out, w.x, m.decFinal)
	return out, nil
}
