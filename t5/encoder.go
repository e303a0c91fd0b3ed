package t5

import (
	"context"
	"fmt"
	"slices"

	"github.com/t5zoo/t5zoo/backend"
)

// CheckIDs reports the first problem with one token sequence: empty, longer than the
// model's MaxTokens, or holding an id outside the vocabulary.
func (m *Model) CheckIDs(what string, ids []int) error {
	if len(ids) == 0 {
		return fmt.Errorf("%w: %s is empty", ErrInvalidInput, what)
	}
	if len(ids) > m.maxTokens {
		return fmt.Errorf("%w: %s has %d tokens, more than the limit of %d", ErrInvalidInput, what, len(ids), m.maxTokens)
	}
	for j, id := range ids {
		if id < 0 || id >= m.shape.VocabSize {
			return fmt.Errorf("%w: %s: token %d at position %d is outside the vocabulary (0..%d)", ErrInvalidInput, what, id, j, m.shape.VocabSize-1)
		}
	}
	return nil
}

// CheckInputs reports the first problem with a batch of encoder inputs.
func (m *Model) CheckInputs(inputs [][]int) error {
	if len(inputs) == 0 {
		return fmt.Errorf("%w: no inputs", ErrInvalidInput)
	}
	for i, ids := range inputs {
		if err := m.CheckIDs(fmt.Sprintf("input %d", i), ids); err != nil {
			return err
		}
	}
	return nil
}

// encoderPass runs the encoder over inputs packed one after another (no padding) and
// returns the final layer-normed hidden states (t × d_model, a new tensor) and each input's
// rows.
func (m *Model) encoderPass(ctx context.Context, inputs [][]int) (backend.Tensor, []backend.Span, error) {
	if err := m.CheckInputs(inputs); err != nil {
		return backend.Tensor{}, nil, err
	}
	spans := make([]backend.Span, len(inputs))
	t := 0
	for i, ids := range inputs {
		spans[i] = backend.Span{Off: t, N: len(ids)}
		t += len(ids)
	}
	be, inner := m.be, m.inner
	w, p := m.getWork(t)
	defer m.putWork(w)
	qkv := w.qkv.get(be, t, 3*inner)
	groups := make([]backend.AttnGroup, len(spans))
	for i, sp := range spans {
		be.Embed(p.x.RowSlice(sp.Off, sp.Off+sp.N), m.embed, inputs[i])
		rows := qkv.RowSlice(sp.Off, sp.Off+sp.N)
		// The keys and values are read in place from the q/k/v product, which every layer
		// rewrites: one view serves all layers.
		groups[i] = backend.AttnGroup{
			Q: rows.ColSlice(0, inner), Out: p.att.RowSlice(sp.Off, sp.Off+sp.N),
			KV: be.ViewKV(rows.ColSlice(inner, 3*inner)),
		}
	}
	for _, l := range m.enc {
		if err := ctx.Err(); err != nil {
			return backend.Tensor{}, nil, err
		}
		be.RMSNorm(p.h, p.x, l.attnNorm, m.eps)
		be.Linear(qkv, p.h, l.qkv, backend.Store)
		be.Attention(groups, m.heads, m.encRel)
		be.Linear(p.x, p.att, l.o, backend.Add)
		m.feedForward(p, l.ffnNorm, l.ffn)
	}
	out := be.Alloc(t, m.dModel)
	be.RMSNorm(out, p.x, m.encFinal, m.eps)
	return out, spans, nil
}

// EncodeHidden runs the encoder over inputs (one batch) and returns each input's final
// hidden states, len(input) × d_model row-major on the host.
func (m *Model) EncodeHidden(ctx context.Context, inputs [][]int) ([][]float32, error) {
	out, spans, err := m.encoderPass(ctx, inputs)
	if err != nil {
		return nil, err
	}
	return m.download(out, spans), nil
}

// download copies each span's rows of t to the host.
func (m *Model) download(t backend.Tensor, spans []backend.Span) [][]float32 {
	res := make([][]float32, len(spans))
	for i, sp := range spans {
		res[i] = make([]float32, sp.N*t.Cols)
		m.be.Download(res[i], t.RowSlice(sp.Off, sp.Off+sp.N))
	}
	return res
}

// EncoderOutput is one input after the encoder: its final hidden states and, for every
// decoder layer, the cross-attention keys and values computed from them once. Any number of
// Sequences (beams, samples) attend to it; it is read-only and safe to share.
type EncoderOutput struct {
	ids    []int
	hidden []float32    // len(ids) × d_model, on the host
	cross  []backend.KV // per decoder layer
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
	hidden, spans, err := m.encoderPass(ctx, inputs)
	if err != nil {
		return nil, err
	}
	be, nl := m.be, len(m.dec)
	outs := make([]*EncoderOutput, len(inputs))
	// Copies, so that the batch's hidden states are not all kept alive by one input.
	host := m.download(hidden, spans)
	for i := range spans {
		outs[i] = &EncoderOutput{ids: slices.Clone(inputs[i]), hidden: host[i], cross: make([]backend.KV, nl)}
	}
	if nl == 0 {
		return outs, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Layer by layer (the scratch is one layer's k and v, not every layer's: tens of MB for a
	// long input on a large shape), the keys and values of every input.
	w := m.work.get()
	defer m.putWork(w)
	slab := w.cross.get(be, hidden.Rows, 2*m.inner)
	kvs := make([]backend.KV, len(spans))
	for l := range nl {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		be.Linear(slab, hidden, m.dec[l].crossKV, backend.Store)
		be.CrossKV(kvs, slab, spans, m.heads)
		for i := range outs {
			outs[i].cross[l] = kvs[i]
		}
	}
	return outs, nil
}
