package cpu

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/t5zoo/t5zoo/backend"
)

// kvBuf is one layer's self-attention keys and values for a sequence and the forks that
// share its positions, packed as the weights of attention's two products and grown in
// place: a new position is written into its lane of the last panel, so a decoder step packs
// one position, not the whole cache.
//
//	k: [head][cap/32 panels][d_kv][32]      per head the keys as the weight of the score product
//	v: [head][vp panels][cap][32]           per head and 32 values the weight of the output product
//
// Positions below used are never rewritten; a cache may append in place only at used (it
// is the furthest writer), and claims the slots with a compare-and-swap, so that forks
// stepped on different goroutines stay independent. Any other cache copies its positions
// to a buffer of its own first.
type kvBuf struct {
	heads, dkv int
	vp         int // panels of values per head: ceil(d_kv/32)
	cap        int // positions, a multiple of 32
	k, v       []float32
	used       atomic.Int64
}

func newKVBuf(heads, dkv, cap int) *kvBuf {
	vp := (dkv + panel - 1) / panel
	return &kvBuf{heads: heads, dkv: dkv, vp: vp, cap: cap,
		k: make([]float32, heads*cap*dkv), v: make([]float32, heads*vp*cap*panel)}
}

// KVBytes is the memory one layer's cache takes for room for cap positions (a multiple of
// 32), for the memory model.
func KVBytes(heads, dkv, cap int) int64 {
	vp := (dkv + panel - 1) / panel
	return 4 * int64(heads) * int64(cap) * int64(dkv+vp*panel)
}

// KVCap is the room a cache holds once it has n positions: a multiple of 32 that doubles.
func KVCap(n int) int {
	c := panel
	for c < n {
		c *= 2
	}
	return c
}

// keys returns head h's keys 0..n-1 as the weight of the score product (n × d_kv).
func (b *kvBuf) keys(h, n int) Packed {
	stride := b.cap * b.dkv
	panels := (n + panel - 1) / panel
	return Packed{dt: F32, n: n, k: b.dkv, panels: panels, f32: b.k[h*stride : h*stride+panels*b.dkv*panel]}
}

// vals returns head h's values q·32.. of positions 0..n-1 as the weight of the output
// product (up to 32 × n).
func (b *kvBuf) vals(h, q, n int) Packed {
	off := (h*b.vp + q) * b.cap * panel
	return Packed{dt: F32, n: min(panel, b.dkv-q*panel), k: n, panels: 1, f32: b.v[off : off+n*panel]}
}

// writeKV stores position j: its keys and its values, heads·d_kv each.
func (b *kvBuf) writeKV(j int, keys, vals []float32) {
	dkv := b.dkv
	p, l := j/panel, j%panel
	for h := range b.heads {
		kd := b.k[h*b.cap*dkv+p*dkv*panel:]
		for kk, x := range keys[h*dkv : (h+1)*dkv] {
			kd[kk*panel+l] = x
		}
		for q := range b.vp {
			lo := h*dkv + q*panel
			hi := min(lo+panel, (h+1)*dkv)
			copy(b.v[(h*b.vp+q)*b.cap*panel+j*panel:], vals[lo:hi])
		}
	}
}

// copyTo copies positions 0..n-1 into dst (of the same heads and d_kv): exactly those, not
// the rest of the last panel, which a fork may be writing in place.
func (b *kvBuf) copyTo(dst *kvBuf, n int) {
	dkv, full, rest := b.dkv, n/panel, n%panel
	for h := range b.heads {
		src, d := b.k[h*b.cap*dkv:], dst.k[h*dst.cap*dkv:]
		copy(d, src[:full*dkv*panel])
		if rest > 0 {
			for kk := range dkv {
				o := full*dkv*panel + kk*panel
				copy(d[o:o+rest], src[o:o+rest])
			}
		}
		for q := range b.vp {
			copy(dst.v[(h*dst.vp+q)*dst.cap*panel:], b.v[(h*b.vp+q)*b.cap*panel:(h*b.vp+q)*b.cap*panel+n*panel])
		}
	}
}

// selfKV is one layer of a decoder sequence's cache: its first n positions (backend.KV).
// The positions of a cache's first feed stay as rows of that pass's slab, read in place and
// packed per attention pass as the encoder's are, because most such caches are never fed again (the targets
// of Score, the choices of rank classification: a packed buffer's room of 32 positions would
// be several times their size); the next feed moves them into a packed buffer, which grows
// in place from then on.
type selfKV struct {
	buf   *kvBuf
	n     int
	first tensorKV // before buf: the first feed's rows in the slab (never rewritten)
}

// Len is the number of positions (backend.KV).
func (kv *selfKV) Len() int { return kv.n }

// cache is a decoder sequence's self-attention cache (backend.Cache).
type cache struct {
	heads, dkv int
	layers     []selfKV
	// slab holds the first feed's positions, every layer's, so that a finished sequence's
	// memory is its own whatever other sequences shared its steps.
	slab  []float32
	slabN int // positions per layer in slab
}

// NewCache returns an empty cache (backend.Backend).
func (c *Backend) NewCache(layers, heads, dkv int) backend.Cache {
	return &cache{heads: heads, dkv: dkv, layers: make([]selfKV, layers)}
}

func (s *cache) Len() int {
	if len(s.layers) == 0 {
		return 0
	}
	return s.layers[0].n
}

func (s *cache) Layer(l int) backend.KV { return &s.layers[l] }

// Reserve allocates the first feed's slab; later feeds grow the packed buffers as they
// append.
func (s *cache) Reserve(n int) {
	if s.Len() == 0 {
		s.slab, s.slabN = make([]float32, len(s.layers)*n*2*s.heads*s.dkv), n
	}
}

func (s *cache) Append(l int, kv backend.Tensor) {
	inner := s.heads * s.dkv
	if kv.Cols != 2*inner {
		panic(fmt.Sprintf("cpu: append %d×%d to a cache of width %d", kv.Rows, kv.Cols, 2*inner))
	}
	lay := &s.layers[l]
	n, add := lay.n, kv.Rows
	src := data(kv)
	if n == 0 && lay.buf == nil {
		if add != s.slabN {
			panic(fmt.Sprintf("cpu: append %d positions to a cache reserved for %d", add, s.slabN))
		}
		dst := s.slab[l*add*2*inner : (l+1)*add*2*inner]
		for j := range add {
			copy(dst[j*2*inner:(j+1)*2*inner], src[j*kv.Stride:j*kv.Stride+2*inner])
		}
		lay.n, lay.first = add, tensorKV{a: dst, ld: 2 * inner, n: add, inner: inner}
		return
	}
	b := lay.buf
	if b == nil {
		// The second feed: the first feed's rows move to a packed buffer of this cache's own.
		b = newKVBuf(s.heads, s.dkv, KVCap(n+add))
		for j := range n {
			row := lay.first.a[j*2*inner : (j+1)*2*inner]
			b.writeKV(j, row[:inner], row[inner:])
		}
		b.used.Store(int64(n + add))
		lay.buf, lay.first = b, tensorKV{}
		s.slab = nil // garbage once every layer has moved
	} else if n+add > b.cap || !b.used.CompareAndSwap(int64(n), int64(n+add)) {
		nb := newKVBuf(s.heads, s.dkv, KVCap(n+add))
		b.copyTo(nb, n)
		nb.used.Store(int64(n + add))
		b, lay.buf = nb, nb
	}
	for j := range add {
		row := src[j*kv.Stride : j*kv.Stride+2*inner]
		b.writeKV(n+j, row[:inner], row[inner:])
	}
	lay.n = n + add
}

func (s *cache) Truncate(n int) {
	for l := range s.layers {
		lay := &s.layers[l]
		if n >= lay.n {
			continue
		}
		if lay.buf != nil {
			// Give the slots back when no fork has written past them.
			lay.buf.used.CompareAndSwap(int64(lay.n), int64(n))
		} else {
			lay.first.n = n
		}
		lay.n = n
	}
}

func (s *cache) Fork() backend.Cache {
	f := &cache{heads: s.heads, dkv: s.dkv, layers: slices.Clone(s.layers)}
	return f
}
