package infer

import (
	"context"
	"fmt"
	"sync"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
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

// embedRows gathers the embedding rows of ids into x (from the packed shared weight: exact
// for f32 and bf16, q·scale for int8).
func (m *Model) embedRows(x []float32, ids []int) {
	d := m.dModel
	for t, id := range ids {
		m.embed.Row(id, x[t*d:(t+1)*d])
	}
}

// work holds a forward pass's temporaries for t rows; Model.work keeps them between calls.
type work struct {
	x, h, att, q []float32 // t × d_model (att, q: t × inner)
	qkv          []float32 // t × 3·inner
	cross        []float32 // RunEncoder: t × 2·inner, one decoder layer's cross k and v
	ffA, ffB     []float32 // t × d_ff (ffB only when gated)
	attn         []attnScratch
}

// workList keeps the forward passes' scratch between calls. Not a sync.Pool: that drops its
// contents at every other collection, and reallocating a pass's scratch (MBs for a long
// input) is the garbage that makes the next collection come sooner.
type workList struct {
	mu   sync.Mutex
	free []*work
}

// maxFreeWork bounds the scratch kept: a burst of concurrent passes leaves no more than this.
const maxFreeWork = 4

// retainRows bounds the rows of the scratch kept for reuse: a long pass's scratch (tens of MB
// on a large shape) is left to the collector rather than held by an idle model.
const retainRows = 512

func (l *workList) get() *work {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		w := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return w
	}
	return new(work)
}

func (l *workList) put(w *work) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < maxFreeWork {
		l.free = append(l.free, w)
	}
}

// putWork hands w back for reuse, unless it is larger than the scratch of retainRows rows.
func (m *Model) putWork(w *work) {
	d, inner, ff := m.dModel, m.inner, m.shape.DFF
	n := cap(w.x) + cap(w.h) + cap(w.att) + cap(w.q) + cap(w.qkv) + cap(w.cross) + cap(w.ffA) + cap(w.ffB)
	if n > retainRows*(2*d+7*inner+2*ff) {
		return
	}
	m.work.put(w)
}

func (m *Model) getWork(t int) *work {
	w := m.work.get()
	d, inner, ff := m.dModel, m.inner, m.shape.DFF
	w.x, w.h = grow(w.x, t*d), grow(w.h, t*d)
	w.att, w.q = grow(w.att, t*inner), grow(w.q, t*inner)
	w.ffA = grow(w.ffA, t*ff)
	if m.gated {
		w.ffB = grow(w.ffB, t*ff)
	}
	if len(w.attn) < m.pool.Threads() {
		w.attn = make([]attnScratch, m.pool.Threads())
	}
	return w
}

// feedForward applies one FFN sublayer to the t rows of w.x: x += wo(act(wi(h)) [· wi_1(h)])
// with h = layer_norm(x); relu is the epilogue of the wi product and the residual add that
// of the wo product.
func (m *Model) feedForward(w *work, t int, norm []float32, f ffn) {
	m.rmsNorm(w.h, w.x, norm)
	ff := m.shape.DFF
	a := w.ffA[:t*ff]
	switch {
	case !m.gated && m.actName == "relu":
		m.be.MulT(a, w.h, t, f.wi, kernels.ReLU)
	case m.gated:
		b := w.ffB[:t*ff]
		m.be.MulT(a, w.h, t, f.wi, kernels.Store)
		m.be.MulT(b, w.h, t, f.wi1, kernels.Store)
		m.parallelRows(t, ff, func(lo, hi int) {
			if m.actName == "gelu_new" {
				m.ks.GELUTanh(a[lo*ff:hi*ff], b[lo*ff:hi*ff])
				return
			}
			for i := lo * ff; i < hi*ff; i++ {
				a[i] = m.act(a[i]) * b[i]
			}
		})
	default:
		m.be.MulT(a, w.h, t, f.wi, kernels.Store)
		m.parallelRows(t, ff, func(lo, hi int) {
			if m.actName == "gelu_new" {
				m.ks.GELUTanh(a[lo*ff:hi*ff], nil)
				return
			}
			for i := lo * ff; i < hi*ff; i++ {
				a[i] = m.act(a[i])
			}
		})
	}
	m.be.MulT(w.x, a, t, f.wo, kernels.Add)
}

// encoderHidden runs the encoder over inputs packed one after another (no padding) and
// returns the final layer-normed hidden states, t × d_model (a new slice), and each input's
// rows.
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
	w := m.getWork(t)
	defer m.putWork(w)
	w.qkv = grow(w.qkv, t*3*inner)
	qkv := w.qkv
	rowsK := make([][]float32, t)
	rowsV := make([][]float32, t)
	for r := range t {
		rowsK[r] = qkv[r*3*inner+inner : r*3*inner+2*inner]
		rowsV[r] = qkv[r*3*inner+2*inner : r*3*inner+3*inner]
	}
	groups := make([]attnGroup, len(segs))
	for i, sg := range segs {
		m.embedRows(w.x[sg.off*m.dModel:], inputs[i])
		groups[i] = attnGroup{
			q: qkv[sg.off*3*inner:], ldq: 3 * inner, out: w.att[sg.off*inner:], n: sg.n,
			keys: rowsK[sg.off : sg.off+sg.n], vals: rowsV[sg.off : sg.off+sg.n],
		}
	}
	for _, l := range m.enc {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		m.rmsNorm(w.h, w.x, l.attnNorm)
		m.be.MulT(qkv, w.h, t, l.qkv, kernels.Store)
		m.attend(groups, m.encRel, w.attn)
		m.be.MulT(w.x, w.att, t, l.o, kernels.Add)
		m.feedForward(w, t, l.ffnNorm, l.ffn)
	}
	out := make([]float32, t*m.dModel)
	m.rmsNorm(out, w.x, m.encFinal)
	return out, segs, nil
}
