package cpu

import (
	"fmt"
	"sync"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// crossKV is one input's cross-attention keys and values for one layer, packed per head
// once (backend.KV): the keys as the weight of the score product (n × d_kv), the values as
// that of the output product (d_kv × n).
type crossKV struct {
	n      int
	kp, vp []Packed
}

// Len is the number of positions (backend.KV).
func (kv *crossKV) Len() int { return kv.n }

// CrossKV packs each span's keys and values per head, spans in parallel (backend.Backend).
func (c *Backend) CrossKV(dst []backend.KV, kv backend.Tensor, spans []backend.Span, heads int) {
	inner := kv.Cols / 2
	if kv.Cols != 2*inner || heads <= 0 || inner%heads != 0 || len(dst) < len(spans) {
		panic(fmt.Sprintf("cpu: cross keys and values of width %d for %d heads", kv.Cols, heads))
	}
	dkv, slab, ld := inner/heads, data(kv), kv.Stride
	c.pool.For(len(spans), func(_, i int) {
		sp := spans[i]
		rows := slab[sp.Off*ld:]
		lk, lv := PackedLen(sp.N, dkv), PackedLen(dkv, sp.N)
		buf := make([]float32, heads*(lk+lv))
		out := &crossKV{n: sp.N, kp: make([]Packed, heads), vp: make([]Packed, heads)}
		for h := range heads {
			out.kp[h] = PackStrided(buf[h*(lk+lv):h*(lk+lv)+lk], rows[h*dkv:], ld, sp.N, dkv)
			out.vp[h] = PackStridedT(buf[h*(lk+lv)+lk:(h+1)*(lk+lv)], rows[inner+h*dkv:], ld, dkv, sp.N)
		}
		dst[i] = out
	})
}

// tensorKV is keys and values read in place from the rows of a tensor (backend.KV).
type tensorKV struct {
	a     []float32 // row j at a[j·ld:]: keys [0, inner), values [inner, 2·inner)
	ld, n int
	inner int
}

// Len is the number of positions (backend.KV).
func (kv *tensorKV) Len() int { return kv.n }

// ViewKV reads keys and values in place (backend.Backend).
func (c *Backend) ViewKV(kv backend.Tensor) backend.KV {
	if kv.Cols%2 != 0 {
		panic(fmt.Sprintf("cpu: keys and values of odd width %d", kv.Cols))
	}
	return &tensorKV{a: data(kv), ld: kv.Stride, n: kv.Rows, inner: kv.Cols / 2}
}

// attnScratch is one worker's attention scratch: a group's keys and values packed per head,
// and a block of scores.
type attnScratch struct {
	k, v, scores []float32
	kp, vp       Packed
}

// scratchList keeps the attention passes' scratch between calls (one set of per-worker
// scratch a concurrent pass). Not a sync.Pool: that drops its contents at every other
// collection, and reallocating a long pass's scratch is garbage that brings the next
// collection sooner.
type scratchList struct {
	mu   sync.Mutex
	free []*attnSet
}

// attnSet is the scratch of one attention pass: each worker's, and the groups resolved to
// host memory.
type attnSet struct {
	workers []attnScratch
	groups  []attnGroup
}

// maxFreeScratch bounds the scratch sets kept: a burst of concurrent passes leaves no more.
const maxFreeScratch = 4

func (l *scratchList) get(threads int) *attnSet {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		s := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return s
	}
	return &attnSet{workers: make([]attnScratch, threads)}
}

func (l *scratchList) put(s *attnSet) {
	clear(s.groups) // drop the references to the pass's tensors
	s.groups = s.groups[:0]
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < maxFreeScratch {
		l.free = append(l.free, s)
	}
}

// AttnScratchFloats is the float32 scratch one worker's attention needs for groups of up to
// keys keys and d_kv dkv: what the memory model prices.
func AttnScratchFloats(keys, dkv int) int {
	return PackedLen(keys, dkv) + PackedLen(dkv, keys) + queryBlock*keys
}

// MaxFreeScratch is how many sets of per-worker attention scratch the backend keeps between
// passes.
const MaxFreeScratch = maxFreeScratch

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// queryBlock bounds the query rows whose scores are held at once.
const queryBlock = 64

// attnGroup is a backend.AttnGroup resolved to host memory.
type attnGroup struct {
	q, out   []float32
	ldq, ldo int
	n, pos0  int
	nk       int
	self     *kvBuf    // self-attention, packed as it grew
	kvm      *tensorKV // keys and values read in place: the encoder's, a decoder cache's first feed
	kp, vp   []Packed  // cross-attention, per head
	causal   bool
	probs    []float32
	ldp      int
}

// Attention is multi-head attention over every group (backend.Backend): per (group, head)
// item on the workers, scores and outputs by kernel GEMMs over keys and values packed per
// head (cross-attention's once, in CrossKV; self-attention's into the worker's scratch).
func (c *Backend) Attention(groups []backend.AttnGroup, heads int, bias backend.Tensor) {
	if len(groups) == 0 {
		return
	}
	inner := groups[0].Q.Cols
	if heads <= 0 || inner%heads != 0 {
		panic(fmt.Sprintf("cpu: attention of width %d over %d heads", inner, heads))
	}
	dkv := inner / heads
	set := c.attn.get(c.pool.Threads())
	defer c.attn.put(set)
	if cap(set.groups) < len(groups) {
		set.groups = make([]attnGroup, len(groups))
	}
	gs := set.groups[:len(groups)]
	work, keys, packed := 0, 0, 0 // packed: the most keys a worker packs (read-in-place groups)
	for i, g := range groups {
		if g.Q.Cols != inner || g.Out.Cols != inner || g.Out.Rows != g.Q.Rows {
			panic(fmt.Sprintf("cpu: attention group %d: q %d×%d, out %d×%d, width %d", i, g.Q.Rows, g.Q.Cols, g.Out.Rows, g.Out.Cols, inner))
		}
		r := attnGroup{q: data(g.Q), ldq: g.Q.Stride, out: data(g.Out), ldo: g.Out.Stride, n: g.Q.Rows, pos0: g.Pos0, causal: g.Causal}
		switch kv := g.KV.(type) {
		case *crossKV:
			r.kp, r.vp, r.nk = kv.kp, kv.vp, kv.n
		case *selfKV:
			r.self, r.nk = kv.buf, kv.n
			if kv.buf == nil {
				r.kvm = &kv.first
				packed = max(packed, kv.n)
			}
		case *tensorKV:
			r.kvm, r.nk = kv, kv.n
			packed = max(packed, kv.n)
		default:
			panic(fmt.Sprintf("cpu: attention over keys of another backend (%T)", g.KV))
		}
		if !g.Probs.Empty() {
			if g.Probs.Rows != heads*r.n || g.Probs.Cols != r.nk {
				panic(fmt.Sprintf("cpu: attention probabilities %d×%d for %d heads × %d queries × %d keys", g.Probs.Rows, g.Probs.Cols, heads, r.n, r.nk))
			}
			r.probs, r.ldp = data(g.Probs), g.Probs.Stride
		}
		gs[i] = r
		work += r.n * r.nk
		keys = max(keys, r.nk)
	}
	var rel []float32
	maxDist, relStride := 0, 0
	if !bias.Empty() {
		if bias.Rows != heads || bias.Cols%2 != 1 {
			panic(fmt.Sprintf("cpu: a position bias of %d×%d for %d heads", bias.Rows, bias.Cols, heads))
		}
		rel, maxDist, relStride = data(bias), (bias.Cols-1)/2, bias.Stride
	}
	sc := set.workers
	// Size every worker's scratch for the longest group at once: growing it group by group
	// would leave a trail of garbage the size of the pass.
	for w := range sc {
		s := &sc[w]
		if packed > 0 {
			s.k = grow(s.k, PackedLen(packed, dkv))
			s.v = grow(s.v, PackedLen(dkv, packed))
		}
		s.scores = grow(s.scores, queryBlock*keys)
	}
	job := attnJob{c: c, groups: gs, rel: rel, relStride: relStride, maxDist: maxDist, heads: heads, dkv: dkv, sc: sc}
	items := len(gs) * heads
	if work*dkv < 1<<14 || items == 1 {
		for it := range items {
			job.item(0, it)
		}
		return
	}
	DoRecycled(c.pool, &c.attnJobs, items, job)
}

// attnJob is one attention pass, cut into (group, head) items.
type attnJob struct {
	c          *Backend
	groups     []attnGroup
	rel        []float32
	relStride  int // head h's table at rel[h·relStride:]
	maxDist    int
	heads, dkv int
	sc         []attnScratch
}

// Item runs item it on worker w's scratch (Job).
func (j *attnJob) Item(w, it int) { j.item(w, it) }

func (j *attnJob) item(w, it int) {
	c, dkv := j.c, j.dkv
	g, h := &j.groups[it/j.heads], it%j.heads
	s := &j.sc[w]
	nk := g.nk
	var kp, vp *Packed
	switch {
	case g.kp != nil:
		kp, vp = &g.kp[h], &g.vp[h]
	case g.self != nil:
		s.kp = g.self.keys(h, nk)
		kp = &s.kp
	case g.kvm != nil:
		s.k = grow(s.k, PackedLen(nk, dkv))
		s.v = grow(s.v, PackedLen(dkv, nk))
		kv := g.kvm
		s.kp = PackStrided(s.k, kv.a[h*dkv:], kv.ld, nk, dkv)
		s.vp = PackStridedT(s.v, kv.a[kv.inner+h*dkv:], kv.ld, dkv, nk)
		kp, vp = &s.kp, &s.vp
	}
	var tbl []float32
	if j.rel != nil {
		tbl = j.rel[h*j.relStride : h*j.relStride+2*j.maxDist+1]
	}
	for i0 := 0; i0 < g.n; i0 += queryBlock {
		rows := min(queryBlock, g.n-i0)
		s.scores = grow(s.scores, rows*nk)
		scores := s.scores
		c.Gemm(scores, nk, g.q[i0*g.ldq+h*dkv:], g.ldq, rows, kp, kernels.Store, nil)
		for i := range rows {
			row := scores[i*nk : (i+1)*nk]
			pos := g.pos0 + i0 + i
			valid := nk
			if g.causal {
				valid = min(nk, pos+1)
			}
			if tbl != nil {
				j.addRelBias(row[:valid], tbl, pos)
			}
			c.softmax(row[:valid])
			clear(row[valid:])
			if g.probs != nil {
				copy(g.probs[(h*g.n+i0+i)*g.ldp:], row)
			}
		}
		if g.self == nil {
			c.Gemm(g.out[i0*g.ldo+h*dkv:], g.ldo, scores, nk, rows, vp, kernels.Store, nil)
			continue
		}
		// The values grow in panels of 32 of d_kv, each its own weight.
		for q := range g.self.vp {
			s.vp = g.self.vals(h, q, nk)
			c.Gemm(g.out[i0*g.ldo+h*dkv+q*panel:], g.ldo, scores, nk, rows, &s.vp, kernels.Store, nil)
		}
	}
}

// softmax normalises row in place: exp(x - max) / Σ.
func (c *Backend) softmax(row []float32) {
	mx := c.k.Max(row)
	sum := c.k.ExpSum(row, row, mx)
	c.k.Scale(row, float32(1/sum))
}

// addRelBias adds to the scores of keys 0..len(row)-1 for a query at position pos the bias of
// their clamped relative position key - pos from tbl (index rel + maxDist).
func (j *attnJob) addRelBias(row, tbl []float32, pos int) {
	d := j.maxDist
	n := len(row)
	// Keys j < pos-d see tbl[0], keys j > pos+d see tbl[2d], the rest tbl[j-pos+d].
	lo := min(n, max(0, pos-d))
	hi := min(n, max(lo, pos+d+1))
	for k := range lo {
		row[k] += tbl[0]
	}
	if hi > lo {
		j.c.k.Add(row[lo:hi], tbl[lo-pos+d:hi-pos+d])
	}
	for k := hi; k < n; k++ {
		row[k] += tbl[2*d]
	}
}
