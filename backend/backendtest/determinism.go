package backendtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/t5zoo/t5zoo/backend"
)

// The checks of BitIdenticalBatching: each computes the same rows in one batch and in
// pieces (down to one row, or one attention group, alone) on every backend given (one per
// worker count) and fails unless every result has the same bits. The sizes are large enough
// that the CPU backend's products, norms and attention split across workers.

// detThreads are the worker counts whose backends must agree bit for bit.
var detThreads = [...]int{1, 2, 3, 8}

// pieces cuts n rows into consecutive pieces of 1, 2, 1, 5, 13, 1, 3, 8, ... rows.
func pieces(n int) [][2]int {
	sizes := []int{1, 2, 1, 5, 13, 1, 3, 8, 1, 17}
	var ps [][2]int
	for lo, i := 0, 0; lo < n; i++ {
		hi := min(n, lo+sizes[i%len(sizes)])
		ps = append(ps, [2]int{lo, hi})
		lo = hi
	}
	return ps
}

// workers names the backend at index i of a determinism check's backends.
func workers(i int) string {
	return fmt.Sprintf("the backend of %d workers", detThreads[i%len(detThreads)])
}

// rowwise runs op over all rows at once and piece by piece on every backend and checks
// that every run gives the bits of the first backend's batch. op returns its result rows
// for the input rows [lo, hi), each call on operands of its own (views when view).
func rowwise(bes []backend.Backend, n, cols int, op func(be backend.Backend, lo, hi int, view bool) ([]float32, error)) error {
	var want []float32
	for bi, be := range bes {
		all, err := op(be, 0, n, false)
		if err != nil {
			return fmt.Errorf("%s, the batch: %w", workers(bi), err)
		}
		if bi == 0 {
			want = all
		} else if err := sameBits(all, want, cols); err != nil {
			return fmt.Errorf("the batch on %s against %s: %w", workers(bi), workers(0), err)
		}
		for pi, p := range pieces(n) {
			got, err := op(be, p[0], p[1], pi%2 == 1)
			if err != nil {
				return fmt.Errorf("%s, rows [%d, %d): %w", workers(bi), p[0], p[1], err)
			}
			if err := sameBits(got, want[p[0]*cols:p[1]*cols], cols); err != nil {
				return fmt.Errorf("%s: rows [%d, %d) alone against the batch of %d: %w", workers(bi), p[0], p[1], n, err)
			}
		}
	}
	return nil
}

// detTest is one check of BitIdenticalBatching.
type detTest struct {
	name string
	run  func(bes []backend.Backend, rng *rand.Rand) error
}

// detTests are the BitIdenticalBatching checks for the weight types dts.
func detTests(dts []backend.DType) []detTest {
	var ts []detTest
	for _, dt := range dts {
		for _, ep := range []backend.Epilogue{backend.Store, backend.Add, backend.ReLU} {
			ts = append(ts, detTest{fmt.Sprintf("Linear/%v/%s", dt, epName(ep)), func(bes []backend.Backend, rng *rand.Rand) error {
				return detLinear(bes, dt, ep, rng)
			}})
		}
	}
	ts = append(ts, detTest{"RMSNorm", detRMSNorm})
	for _, a := range []backend.Activation{backend.ActReLU, backend.ActGELUTanh, backend.ActGELU, backend.ActSiLU} {
		ts = append(ts, detTest{"Activate/" + actName(a), func(bes []backend.Backend, rng *rand.Rand) error {
			return detActivate(bes, a, rng)
		}})
	}
	for _, k := range []kvKind{crossKV, viewKV} {
		ts = append(ts, detTest{"Attention/" + k.String(), func(bes []backend.Backend, rng *rand.Rand) error {
			return detAttention(bes, k, rng)
		}})
	}
	ts = append(ts, detTest{"Attention/cache", detCacheAttention})
	for _, dt := range dts {
		for _, s := range []float32{1, 0.125} {
			ts = append(ts, detTest{fmt.Sprintf("Logits/%v/scale=%g", dt, s), func(bes []backend.Backend, rng *rand.Rand) error {
				return detLogits(bes, dt, s, rng)
			}})
		}
	}
	return ts
}

// prepareAll prepares src in dt on every backend.
func prepareAll(bes []backend.Backend, src backend.Source, dt backend.DType) ([]backend.Weight, error) {
	ws := make([]backend.Weight, len(bes))
	for i, be := range bes {
		w, err := be.Prepare(src, dt)
		if err != nil {
			return nil, fmt.Errorf("prepare on %s: %w", workers(i), err)
		}
		ws[i] = w
	}
	return ws, nil
}

// index returns be's position in bes.
func index(bes []backend.Backend, be backend.Backend) int {
	for i, b := range bes {
		if b == be {
			return i
		}
	}
	panic("backendtest: a backend not in the list")
}

func detLinear(bes []backend.Backend, dt backend.DType, ep backend.Epilogue, rng *rand.Rand) error {
	const rows, out, in = 67, 96, 160
	ws, err := prepareAll(bes, source{randMat(rng, out, in, 1)}, dt)
	if err != nil {
		return err
	}
	x, d0 := randMat(rng, rows, in, 1), randMat(rng, rows, out, 1)
	return rowwise(bes, rows, out, func(be backend.Backend, lo, hi int, view bool) ([]float32, error) {
		xr, dr := place(be, x.rowRange(lo, hi), view, rng), place(be, d0.rowRange(lo, hi), view, rng)
		be.Linear(dr.t, xr.t, ws[index(bes, be)], ep)
		m, err := dr.read(be)
		return m.v, err
	})
}

func detRMSNorm(bes []backend.Backend, rng *rand.Rand) error {
	const rows, cols = 300, 64
	x, w := randMat(rng, rows, cols, 1), randMat(rng, 1, cols, 1)
	return rowwise(bes, rows, cols, func(be backend.Backend, lo, hi int, view bool) ([]float32, error) {
		xr, wr := place(be, x.rowRange(lo, hi), view, rng), place(be, w, view, rng)
		dr := place(be, newMat(hi-lo, cols), view, rng)
		be.RMSNorm(dr.t, xr.t, wr.t, 1e-6)
		m, err := dr.read(be)
		return m.v, err
	})
}

func detActivate(bes []backend.Backend, fn backend.Activation, rng *rand.Rand) error {
	const rows, cols = 300, 64
	a, b := randMat(rng, rows, cols, 2), randMat(rng, rows, cols, 1)
	return rowwise(bes, rows, cols, func(be backend.Backend, lo, hi int, view bool) ([]float32, error) {
		ar, br := place(be, a.rowRange(lo, hi), view, rng), place(be, b.rowRange(lo, hi), view, rng)
		be.Activate(ar.t, br.t, fn)
		m, err := ar.read(be)
		return m.v, err
	})
}

func detLogits(bes []backend.Backend, dt backend.DType, scale float32, rng *rand.Rand) error {
	const rows, vocab, d = 24, 300, 64
	ws, err := prepareAll(bes, source{randMat(rng, vocab, d, 1)}, dt)
	if err != nil {
		return err
	}
	h := randMat(rng, rows, d, 1)
	return rowwise(bes, rows, vocab, func(be backend.Backend, lo, hi int, view bool) ([]float32, error) {
		hr := place(be, h.rowRange(lo, hi), view, rng)
		dst := make([]float32, (hi-lo)*vocab)
		be.Logits(dst, hr.t, ws[index(bes, be)], scale)
		return dst, nil
	})
}

// detGroups are the attention groups of the determinism checks: ragged, causal and not.
var detGroups = []qGroup{
	{n: 33, l: 40, pos0: 0}, {n: 1, l: 57, pos0: 56, causal: true}, {n: 65, l: 65, pos0: 0, causal: true},
	{n: 7, l: 19, pos0: 3}, {n: 20, l: 31, pos0: 11, causal: true}, {n: 1, l: 1, pos0: 0},
}

// attnRun is one attention call's results: every group's output rows, then its
// probabilities.
type attnRun func(be backend.Backend, gs []int, view bool) ([][]float32, error)

// sameGroups runs attention on every backend with all groups in one call, each alone and
// all in reverse order, and checks that every group gets the first run's bits.
func sameGroups(bes []backend.Backend, n int, run attnRun) error {
	all := make([]int, n)
	rev := make([]int, n)
	for i := range all {
		all[i], rev[i] = i, n-1-i
	}
	var want [][]float32
	for bi, be := range bes {
		got, err := run(be, all, false)
		if err != nil {
			return fmt.Errorf("%s, all groups: %w", workers(bi), err)
		}
		if bi == 0 {
			want = got
		} else {
			for g := range got {
				if err := sameBits(got[g], want[g], 0); err != nil {
					return fmt.Errorf("group %d on %s against %s (output, then probabilities): %w", g, workers(bi), workers(0), err)
				}
			}
		}
		got, err = run(be, rev, true)
		if err != nil {
			return fmt.Errorf("%s, the groups in reverse: %w", workers(bi), err)
		}
		for i, g := range rev {
			if err := sameBits(got[i], want[g], 0); err != nil {
				return fmt.Errorf("%s: group %d with the groups in reverse (output, then probabilities): %w", workers(bi), g, err)
			}
		}
		for g := range n {
			got, err := run(be, []int{g}, g%2 == 1)
			if err != nil {
				return fmt.Errorf("%s, group %d alone: %w", workers(bi), g, err)
			}
			if err := sameBits(got[0], want[g], 0); err != nil {
				return fmt.Errorf("%s: group %d alone against all together (output, then probabilities): %w", workers(bi), g, err)
			}
		}
	}
	return nil
}

// attendGroups runs one Attention call of the groups gs (queries q[g], keys kvs[g]) with
// probabilities requested, and returns each group's output then probabilities.
func attendGroups(be backend.Backend, gs []int, q []mat, kvs []backend.KV, spec []qGroup, heads int, bias mat, view bool, rng *rand.Rand) ([][]float32, error) {
	groups := make([]backend.AttnGroup, len(gs))
	outs, probs := make([]region, len(gs)), make([]region, len(gs))
	for i, g := range gs {
		qr := place(be, q[g], view, rng)
		outs[i] = place(be, newMat(q[g].rows, q[g].cols), view, rng)
		probs[i] = place(be, newMat(heads*q[g].rows, spec[g].l), view, rng)
		groups[i] = backend.AttnGroup{Q: qr.t, Out: outs[i].t, Pos0: spec[g].pos0, KV: kvs[g], Causal: spec[g].causal, Probs: probs[i].t}
	}
	br := placeRows(be, bias, rng)
	be.Attention(groups, heads, br.t)
	res := make([][]float32, len(gs))
	for i := range gs {
		o, err := outs[i].read(be)
		if err != nil {
			return nil, fmt.Errorf("out: %w", err)
		}
		p, err := probs[i].read(be)
		if err != nil {
			return nil, fmt.Errorf("probs: %w", err)
		}
		res[i] = append(o.v, p.v...)
	}
	return res, nil
}

func detAttention(bes []backend.Backend, kind kvKind, rng *rand.Rand) error {
	const heads, dkv = 4, 16
	inner := heads * dkv
	q, kv := make([]mat, len(detGroups)), make([]mat, len(detGroups))
	for g, s := range detGroups {
		q[g], kv[g] = randMat(rng, s.n, inner, qkScale(dkv)), randKV(rng, s.l, inner, dkv)
	}
	bias := randMat(rng, heads, 2*8+1, 1)
	// Each backend's KVs, made once: CrossKV of all groups in one call, ViewKV of each
	// group's tensor (kept alive in views).
	kvs := make([][]backend.KV, len(bes))
	for bi, be := range bes {
		kvs[bi] = make([]backend.KV, len(detGroups))
		switch kind {
		case crossKV:
			all := newMat(0, 2*inner)
			spans := make([]backend.Span, len(detGroups))
			for g, m := range kv {
				spans[g] = backend.Span{Off: all.rows, N: m.rows}
				all = mat{rows: all.rows + m.rows, cols: all.cols, v: append(all.v, m.v...)}
			}
			be.CrossKV(kvs[bi], place(be, all, true, rng).t, spans, heads)
		case viewKV:
			for g, m := range kv {
				kvs[bi][g] = be.ViewKV(place(be, m, true, rng).t)
			}
		}
	}
	return sameGroups(bes, len(detGroups), func(be backend.Backend, gs []int, view bool) ([][]float32, error) {
		return attendGroups(be, gs, q, kvs[index(bes, be)], detGroups, heads, bias, view, rng)
	})
}

// detCacheAttention: groups over the layers of a cache grown identically on every backend,
// two groups a layer (a decoder step and the whole prefix).
func detCacheAttention(bes []backend.Backend, rng *rand.Rand) error {
	const layers, heads, dkv = 3, 4, 16
	inner := heads * dkv
	rounds := []int{20, 1, 1, 1, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	data := make([][]mat, len(rounds))
	n := 0
	for r, k := range rounds {
		n += k
		data[r] = make([]mat, layers)
		for l := range layers {
			data[r][l] = randKV(rng, k, inner, dkv)
		}
	}
	var spec []qGroup
	var q []mat
	for range layers {
		spec = append(spec, qGroup{n: 1, l: n, pos0: n - 1, causal: true}, qGroup{n: n, l: n, pos0: 0, causal: true})
		q = append(q, randMat(rng, 1, inner, qkScale(dkv)), randMat(rng, n, inner, qkScale(dkv)))
	}
	bias := randMat(rng, heads, 2*8+1, 1)
	kvs := make([][]backend.KV, len(bes))
	for bi, be := range bes {
		c := be.NewCache(layers, heads, dkv)
		for r, k := range rounds {
			c.Reserve(k)
			for l := range layers {
				c.Append(l, place(be, data[r][l], r%2 == 1, rng).t)
			}
		}
		if c.Len() != n {
			return fmt.Errorf("%s: cache Len %d, want %d", workers(bi), c.Len(), n)
		}
		for l := range layers {
			kvs[bi] = append(kvs[bi], c.Layer(l), c.Layer(l))
		}
	}
	return sameGroups(bes, len(spec), func(be backend.Backend, gs []int, view bool) ([][]float32, error) {
		return attendGroups(be, gs, q, kvs[index(bes, be)], spec, heads, bias, view, rng)
	})
}
