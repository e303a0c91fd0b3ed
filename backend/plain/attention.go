package plain

import (
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
)

// kvStore is one layer's keys and values: Len positions, position j at
// data[off+j·stride:], its inner = heads·dkv keys (head after head) then as many values —
// the layout of a row of CrossKV's and ViewKV's kv and of Cache.Append's. CrossKV and Cache
// stores own their data (stride 2·inner, offset 0); a ViewKV store reads the tensor's
// buffer in place.
//
// Stores of forked caches share their backing arrays. The invariant that keeps them
// independent: the elements of data past len(data) (up to its capacity) belong to this
// store alone. Append writes only there (append reallocates when they run out); Fork and
// Truncate cut the capacity to the length, so that positions another store can see are
// never written again.
type kvStore struct {
	owner       *Backend
	heads       int // 0 when unknown (ViewKV)
	inner       int
	off, stride int
	n           int
	data        []float32
	view        backend.Tensor // ViewKV: the tensor read in place (for the overlap checks)
}

// Len is the number of positions stored.
func (s *kvStore) Len() int { return s.n }

// key and value are the dkv keys and values of head h at position j.
func (s *kvStore) key(j, h, dkv int) []float32 {
	o := s.off + j*s.stride + h*dkv
	return s.data[o : o+dkv : o+dkv]
}

func (s *kvStore) value(j, h, dkv int) []float32 {
	o := s.off + j*s.stride + s.inner + h*dkv
	return s.data[o : o+dkv : o+dkv]
}

// CrossKV copies, for each span, rows [Off, Off+N) of kv into dst[i]. kv's columns must be
// 2·heads·dkv for some dkv ≥ 1.
func (b *Backend) CrossKV(dst []backend.KV, kv backend.Tensor, spans []backend.Span, heads int) {
	b.live("CrossKV")
	b.check("CrossKV", "kv", kv)
	if heads < 1 || kv.Cols == 0 || kv.Cols%(2*heads) != 0 || len(dst) != len(spans) {
		panic(fmt.Sprintf("plain: CrossKV: %d spans into %d KVs of a %d×%d kv tensor for %d heads", len(spans), len(dst), kv.Rows, kv.Cols, heads))
	}
	for i, sp := range spans {
		if sp.Off < 0 || sp.N < 0 || sp.Off+sp.N > kv.Rows {
			panic(fmt.Sprintf("plain: CrossKV: span %d is rows [%d, %d) of %d", i, sp.Off, sp.Off+sp.N, kv.Rows))
		}
		s := &kvStore{owner: b, heads: heads, inner: kv.Cols / 2, stride: kv.Cols, n: sp.N, data: make([]float32, 0, sp.N*kv.Cols)}
		for r := sp.Off; r < sp.Off+sp.N; r++ {
			s.data = append(s.data, row(kv, r)...)
		}
		dst[i] = s
	}
}

// ViewKV returns the keys and values of kv's rows, read in place. kv's columns must be
// even (the head count is Attention's to check: it divides inner = Cols/2).
func (b *Backend) ViewKV(kv backend.Tensor) backend.KV {
	b.live("ViewKV")
	b.check("ViewKV", "kv", kv)
	if kv.Cols == 0 || kv.Cols%2 != 0 {
		panic(fmt.Sprintf("plain: ViewKV: a %d×%d kv tensor (want 2·heads·d_kv columns)", kv.Rows, kv.Cols))
	}
	s := &kvStore{owner: b, inner: kv.Cols / 2, off: kv.Off, stride: kv.Stride, n: kv.Rows, view: kv}
	if kv.Rows > 0 {
		s.data = kv.Buf.(*buffer).data
	}
	return s
}

// cache is a decoder sequence's self-attention keys and values: one store per layer.
type cache struct {
	owner      *Backend
	heads, dkv int
	layers     []*kvStore
}

// NewCache returns an empty cache of layers layers of heads × dkv keys and values.
func (b *Backend) NewCache(layers, heads, dkv int) backend.Cache {
	b.live("NewCache")
	if layers < 0 || heads < 1 || dkv < 1 {
		panic(fmt.Sprintf("plain: NewCache of %d layers, %d heads of %d", layers, heads, dkv))
	}
	c := &cache{owner: b, heads: heads, dkv: dkv, layers: make([]*kvStore, layers)}
	for l := range c.layers {
		c.layers[l] = &kvStore{owner: b, heads: heads, inner: heads * dkv, stride: 2 * heads * dkv}
	}
	return c
}

// Len is layer 0's number of positions (0 for a cache of no layers).
func (c *cache) Len() int {
	if len(c.layers) == 0 {
		return 0
	}
	return c.layers[0].Len()
}

// Layer returns layer l's store; it follows later Appends.
func (c *cache) Layer(l int) backend.KV { return c.layer("Layer", l) }

func (c *cache) layer(op string, l int) *kvStore {
	if l < 0 || l >= len(c.layers) {
		panic(fmt.Sprintf("plain: Cache.%s: layer %d of %d", op, l, len(c.layers)))
	}
	return c.layers[l]
}

// Reserve makes room for n more positions in every layer.
func (c *cache) Reserve(n int) {
	if n < 0 {
		panic(fmt.Sprintf("plain: Cache.Reserve(%d)", n))
	}
	for _, s := range c.layers {
		if need := len(s.data) + n*s.stride; need > cap(s.data) {
			grown := make([]float32, len(s.data), need)
			copy(grown, s.data)
			s.data = grown
		}
	}
}

// Append adds the rows of kv (2·heads·dkv columns: keys, then values) to layer l.
func (c *cache) Append(l int, kv backend.Tensor) {
	c.owner.live("Cache.Append")
	s := c.layer("Append", l)
	c.owner.check("Cache.Append", "kv", kv)
	if kv.Cols != s.stride && kv.Rows > 0 {
		panic(fmt.Sprintf("plain: Cache.Append: a %d×%d kv tensor to a cache of %d heads of %d (%d columns)", kv.Rows, kv.Cols, c.heads, c.dkv, s.stride))
	}
	for r := range kv.Rows {
		s.data = append(s.data, row(kv, r)...)
	}
	s.n += kv.Rows
}

// Truncate drops the positions from n on in every layer that has them.
func (c *cache) Truncate(n int) {
	if n < 0 {
		panic(fmt.Sprintf("plain: Cache.Truncate(%d)", n))
	}
	for _, s := range c.layers {
		if n < s.n {
			e := n * s.stride
			s.data = s.data[:e:e] // a fork may still read [e, old length)
			s.n = n
		}
	}
}

// Fork returns a cache with the same positions, sharing their storage.
func (c *cache) Fork() backend.Cache {
	f := &cache{owner: c.owner, heads: c.heads, dkv: c.dkv, layers: make([]*kvStore, len(c.layers))}
	for l, s := range c.layers {
		s.data = s.data[:len(s.data):len(s.data)]
		f.layers[l] = &kvStore{owner: s.owner, heads: s.heads, inner: s.inner, stride: s.stride, n: s.n, data: s.data}
	}
	return f
}

// kv returns g's KV as this backend's store, or panics.
func (b *Backend) kv(i int, kv backend.KV) *kvStore {
	s, ok := kv.(*kvStore)
	if !ok || s == nil {
		panic(fmt.Sprintf("plain: Attention: group %d: KV is not a plain KV (%T)", i, kv))
	}
	if s.owner != b {
		panic(fmt.Sprintf("plain: Attention: group %d: KV belongs to another plain backend", i))
	}
	return s
}

// Attention computes every group's attention, group by group, head by head, query by
// query (see attend). Q and Out of a group may be the same view; no other operands may
// overlap.
func (b *Backend) Attention(groups []backend.AttnGroup, heads int, bias backend.Tensor) {
	b.live("Attention")
	b.check("Attention", "bias", bias)
	if heads < 1 {
		panic(fmt.Sprintf("plain: Attention: %d heads", heads))
	}
	dist := -1 // no bias
	if !bias.Empty() {
		if bias.Rows != heads || bias.Cols%2 != 1 {
			panic(fmt.Sprintf("plain: Attention: a %d×%d bias for %d heads (want %d × 2D+1)", bias.Rows, bias.Cols, heads, heads))
		}
		dist = (bias.Cols - 1) / 2
	}
	stores := make([]*kvStore, len(groups))
	for i := range groups {
		stores[i] = b.checkGroup(i, &groups[i], heads)
		disjoint("Attention", "bias", fmt.Sprintf("group %d's Out", i), bias, groups[i].Out)
		disjoint("Attention", "bias", fmt.Sprintf("group %d's Probs", i), bias, groups[i].Probs)
	}
	for i := range groups {
		for j := range groups {
			gi, gj := &groups[i], &groups[j]
			// What a group writes must not be read by any group through a ViewKV.
			disjoint("Attention", fmt.Sprintf("group %d's Out", i), fmt.Sprintf("group %d's viewed KV", j), gi.Out, stores[j].view)
			disjoint("Attention", fmt.Sprintf("group %d's Probs", i), fmt.Sprintf("group %d's viewed KV", j), gi.Probs, stores[j].view)
			if i == j {
				continue
			}
			for _, t := range []struct {
				name string
				t    backend.Tensor
			}{{"Q", gj.Q}, {"Out", gj.Out}, {"Probs", gj.Probs}} {
				disjoint("Attention", fmt.Sprintf("group %d's Out", i), fmt.Sprintf("group %d's %s", j, t.name), gi.Out, t.t)
				disjoint("Attention", fmt.Sprintf("group %d's Probs", i), fmt.Sprintf("group %d's %s", j, t.name), gi.Probs, t.t)
			}
		}
	}
	for i := range groups {
		attend(&groups[i], stores[i], heads, bias, dist)
	}
}

// checkGroup panics unless group i's operands fit and returns its store.
func (b *Backend) checkGroup(i int, g *backend.AttnGroup, heads int) *kvStore {
	name := func(s string) string { return fmt.Sprintf("group %d's %s", i, s) }
	b.check("Attention", name("Q"), g.Q)
	b.check("Attention", name("Out"), g.Out)
	b.check("Attention", name("Probs"), g.Probs)
	s := b.kv(i, g.KV)
	if g.Q.Rows != g.Out.Rows || g.Q.Cols != g.Out.Cols || g.Q.Cols != s.inner || g.Q.Cols%heads != 0 ||
		s.heads != 0 && s.heads != heads || g.Pos0 < 0 {
		panic(fmt.Sprintf("plain: Attention: group %d: Q %d×%d, Out %d×%d, position %d, KV of %d keys a position (%d heads; 0: unknown), for %d heads",
			i, g.Q.Rows, g.Q.Cols, g.Out.Rows, g.Out.Cols, g.Pos0, s.inner, s.heads, heads))
	}
	if !g.Probs.Empty() && (g.Probs.Rows != heads*g.Q.Rows || g.Probs.Cols != s.Len()) {
		panic(fmt.Sprintf("plain: Attention: group %d: Probs %d×%d for %d heads × %d queries × %d keys",
			i, g.Probs.Rows, g.Probs.Cols, heads, g.Q.Rows, s.Len()))
	}
	sameOrDisjoint("Attention", name("Q"), name("Out"), g.Q, g.Out)
	disjoint("Attention", name("Probs"), name("Q"), g.Probs, g.Q)
	disjoint("Attention", name("Probs"), name("Out"), g.Probs, g.Out)
	return s
}

// attend computes one group. For head h and query i at position p = Pos0+i, over the keys
// j < valid (all of them, or min(Len, p+1) when causal):
//
//	s_j = float32 chain Σ_d q[d]·k_j[d] (as Linear's), then float32(s_j + tbl[clamp(j-p, -D, D) + D])
//	m = max_j s_j; e_j = float32(exp(float64(s_j - m))); sum = Σ_j float64(e_j)
//	p_j = float32(e_j · float32(1/sum))
//	Out[i, h][d] = float32 chain Σ_j p_j·v_j[d]
//
// A query that sees no key (a group with an empty KV) gets zeros. Q[i, h] is read before
// Out[i, h] is written and never after, so that Out may be Q.
func attend(g *backend.AttnGroup, s *kvStore, heads int, bias backend.Tensor, dist int) {
	n, nk, dkv := g.Q.Rows, s.Len(), s.inner/heads
	p, acc := make([]float32, nk), make([]float32, dkv)
	for h := range heads {
		var tbl []float32
		if dist >= 0 {
			tbl = row(bias, h)
		}
		for i := range n {
			pos := g.Pos0 + i
			valid := nk
			if g.Causal {
				valid = min(nk, pos+1)
			}
			q := row(g.Q, i)[h*dkv : (h+1)*dkv]
			for j := range valid {
				var acc float32
				for d, k := range s.key(j, h, dkv) {
					acc = float32(acc + float32(q[d]*k))
				}
				if tbl != nil {
					acc = float32(acc + tbl[min(max(j-pos, -dist), dist)+dist])
				}
				p[j] = acc
			}
			softmax(p[:valid])
			clear(p[valid:])
			// Each out[d] is its own chain over j in increasing order.
			clear(acc)
			for j, pj := range p[:valid] {
				for d, v := range s.value(j, h, dkv) {
					acc[d] = float32(acc[d] + float32(pj*v))
				}
			}
			copy(row(g.Out, i)[h*dkv:(h+1)*dkv], acc)
			if !g.Probs.Empty() {
				copy(row(g.Probs, h*n+i), p)
			}
		}
	}
}

// softmax normalises x in place: float32 exponentials of x - max, their sum in float64,
// each scaled by float32(1/sum).
func softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	mx := x[0]
	for _, v := range x[1:] {
		mx = max(mx, v)
	}
	var sum float64
	for i, v := range x {
		e := float32(math.Exp(float64(v - mx)))
		x[i] = e
		sum += float64(e)
	}
	f := float32(1 / sum)
	for i, e := range x {
		x[i] = float32(e * f)
	}
}
