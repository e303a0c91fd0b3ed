package t5

import (
	"sync"

	"github.com/t5zoo/t5zoo/backend"
)

// buf is a scratch tensor kept between passes, reshaped to each pass's size and reallocated
// only when it is too small.
type buf struct {
	t backend.Tensor
	n int // elements allocated
}

func (b *buf) get(be backend.Backend, rows, cols int) backend.Tensor {
	if b.n < rows*cols {
		b.t, b.n = be.Alloc(rows, cols), rows*cols
	}
	return b.t.Reshape(rows, cols)
}

// work holds a forward pass's temporaries; Model.work keeps them between calls.
type work struct {
	x, h, att, q buf // t × d_model (att, q: t × inner)
	qkv          buf // t × 3·inner
	cross        buf // RunEncoder: t × 2·inner, one decoder layer's cross k and v
	ffA, ffB     buf // t × d_ff (ffB only when gated)
	out          buf // the decoder's final hidden states, t × d_model
}

// elems is the scratch w holds, in float32 elements.
func (w *work) elems() int {
	return w.x.n + w.h.n + w.att.n + w.q.n + w.qkv.n + w.cross.n + w.ffA.n + w.ffB.n + w.out.n
}

// workList keeps the forward passes' scratch between calls. Not a sync.Pool: that drops its
// contents at every other collection, and reallocating a pass's scratch (MBs for a long
// input) is the garbage that makes the next collection come sooner.
type workList struct {
	mu   sync.Mutex
	free []*work
}

// MaxFreeWork bounds the scratch kept: a burst of concurrent passes leaves no more than this.
const MaxFreeWork = 4

// RetainRows bounds the rows of the scratch kept for reuse: a long pass's scratch (tens of MB
// on a large shape) is left to the collector rather than held by an idle model.
const RetainRows = 512

// RetainFloats is the most float32 scratch one kept pass holds, for a model of d_model d,
// inner width inner and d_ff ff: what the memory model prices.
func RetainFloats(d, inner, ff int) int { return RetainRows * (3*d + 7*inner + 2*ff) }

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
	if len(l.free) < MaxFreeWork {
		l.free = append(l.free, w)
	}
}

// putWork hands w back for reuse, unless it is larger than the scratch of RetainRows rows.
func (m *Model) putWork(w *work) {
	if w.elems() > RetainFloats(m.dModel, m.inner, m.shape.DFF) {
		return
	}
	m.work.put(w)
}

// getWork returns scratch for a pass over t rows: x, h, att, q and the FFN's.
func (m *Model) getWork(t int) (*work, passTensors) {
	w := m.work.get()
	be, d, inner, ff := m.be, m.dModel, m.inner, m.shape.DFF
	p := passTensors{
		x: w.x.get(be, t, d), h: w.h.get(be, t, d),
		att: w.att.get(be, t, inner), q: w.q.get(be, t, inner),
		ffA: w.ffA.get(be, t, ff),
	}
	if m.gated {
		p.ffB = w.ffB.get(be, t, ff)
	}
	return w, p
}

// passTensors are the views of a pass's scratch at its size.
type passTensors struct {
	x, h, att, q, ffA, ffB backend.Tensor
}

// feedForward applies one FFN sublayer to the t rows of p.x: x += wo(act(wi(h)) [· wi_1(h)])
// with h = layer_norm(x); relu is the epilogue of the wi product and the residual add that
// of the wo product.
func (m *Model) feedForward(p passTensors, norm backend.Tensor, f ffn) {
	be := m.be
	be.RMSNorm(p.h, p.x, norm, m.eps)
	switch {
	case !m.gated && m.act == backend.ActReLU:
		be.Linear(p.ffA, p.h, f.wi, backend.ReLU)
	case m.gated:
		be.Linear(p.ffA, p.h, f.wi, backend.Store)
		be.Linear(p.ffB, p.h, f.wi1, backend.Store)
		be.Activate(p.ffA, p.ffB, m.act)
	default:
		be.Linear(p.ffA, p.h, f.wi, backend.Store)
		be.Activate(p.ffA, backend.Tensor{}, m.act)
	}
	be.Linear(p.x, p.ffA, f.wo, backend.Add)
}
