package infer

import (
	"context"
	"fmt"

	"github.com/t5zoo/t5zoo/infer/internal/mat"
)

// segment is one input's rows [off, off+n) in a packed batch.
type segment struct{ off, n int }

// checkIDs reports the first problem with one token sequence: empty, longer than the
// model's MaxTokens, or holding an id outside the vocabulary.
func (m *Model) checkIDs(what string, ids []int) error {
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

func (m *Model) checkInputs(inputs [][]int) error {
	if len(inputs) == 0 {
		return fmt.Errorf("%w: no inputs", ErrInvalidInput)
	}
	for i, ids := range inputs {
		if err := m.checkIDs(fmt.Sprintf("input %d", i), ids); err != nil {
			return err
		}
	}
	return nil
}

// embedRows gathers the embedding rows of ids into x.
func (m *Model) embedRows(x []float32, ids []int) {
	d := m.dModel
	for t, id := range ids {
		copy(x[t*d:(t+1)*d], m.embed[id*d:(id+1)*d])
	}
}

// scratch holds a forward pass's temporaries for t rows.
type scratch struct {
	x, h, tmp []float32 // t × d_model
	q, att    []float32 // t × inner
	ffA, ffB  []float32 // t × d_ff (ffB only when gated)
	queries   []query
}

func (m *Model) newScratch(t int) *scratch {
	d, inner, ff := m.dModel, m.inner, m.shape.DFF
	s := &scratch{
		x: make([]float32, t*d), h: make([]float32, t*d), tmp: make([]float32, t*d),
		q: make([]float32, t*inner), att: make([]float32, t*inner),
		ffA: make([]float32, t*ff), queries: make([]query, t),
	}
	if m.gated {
		s.ffB = make([]float32, t*ff)
	}
	return s
}

// feedForward applies one FFN sublayer to the t rows of s.x: x += wo(act(wi(h)) [· wi_1(h)])
// with h = layer_norm(x).
func (m *Model) feedForward(s *scratch, t int, norm []float32, f ffn) {
	m.rmsNorm(s.h, s.x, norm)
	ff := m.shape.DFF
	a := s.ffA[:t*ff]
	m.be.MulT(a, s.h, t, f.wi)
	if m.gated {
		b := s.ffB[:t*ff]
		m.be.MulT(b, s.h, t, f.wi1)
		mat.ForRange(m.workers, len(a), 1<<14, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				a[i] = m.act(a[i]) * b[i]
			}
		})
	} else {
		mat.ForRange(m.workers, len(a), 1<<14, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				a[i] = m.act(a[i])
			}
		})
	}
	m.be.MulT(s.tmp, a, t, f.wo)
	addInPlace(s.x, s.tmp)
}

// encoderHidden runs the encoder over inputs packed one after another (no padding) and
// returns the final layer-normed hidden states, t × d_model, and each input's rows.
func (m *Model) encoderHidden(ctx context.Context, inputs [][]int) ([]float32, []segment, error) {
	if err := m.checkInputs(inputs); err != nil {
		return nil, nil, err
	}
	segs := make([]segment, len(inputs))
	t := 0
	for i, ids := range inputs {
		segs[i] = segment{t, len(ids)}
		t += len(ids)
	}
	inner := m.inner
	s := m.newScratch(t)
	k := make([]float32, t*inner)
	v := make([]float32, t*inner)
	rowsK := make([][]float32, t)
	rowsV := make([][]float32, t)
	for r := range t {
		rowsK[r] = k[r*inner : (r+1)*inner]
		rowsV[r] = v[r*inner : (r+1)*inner]
	}
	for i, sg := range segs {
		m.embedRows(s.x[sg.off*m.dModel:], inputs[i])
		for j := range sg.n {
			s.queries[sg.off+j] = query{keys: rowsK[sg.off : sg.off+sg.n], vals: rowsV[sg.off : sg.off+sg.n], rel0: -j}
		}
	}
	for _, l := range m.enc {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		m.rmsNorm(s.h, s.x, l.attnNorm)
		m.be.MulT(s.q, s.h, t, l.attn.q)
		m.be.MulT(k, s.h, t, l.attn.k)
		m.be.MulT(v, s.h, t, l.attn.v)
		m.attend(s.att, s.q, s.queries, m.encBias, m.encBucket)
		m.be.MulT(s.tmp, s.att, t, l.attn.o)
		addInPlace(s.x, s.tmp)
		m.feedForward(s, t, l.ffnNorm, l.ffn)
	}
	out := s.h
	m.rmsNorm(out, s.x, m.encFinal)
	return out, segs, nil
}
