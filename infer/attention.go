package infer

import (
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/backend/cpu"
)

// attnGroup is the query rows of one input or sequence and the key and value rows they
// attend to (full inner width, num_heads·d_kv; each head takes its slice).
type attnGroup struct {
	q          []float32 // query row i at q[i*ldq:]
	ldq        int
	out        []float32 // output row i at out[i*inner:]
	n          int       // query rows
	pos0       int       // position of query row 0; rows are consecutive positions
	keys, vals [][]float32
	kp, vp     []cpu.Packed // per head, instead of keys and vals: packed once (cross-attention)
	causal     bool         // query at position p sees keys 0..p only
}

// attnScratch is one worker's attention scratch.
type attnScratch struct {
	k, v, scores []float32
	kp, vp       cpu.Packed // views of k and v
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// queryBlock bounds the query rows whose scores are held at once.
const queryBlock = 64

// attend computes multi-head attention for every group: for each head h and query row r,
// out[r, h] = Σ_j softmax_j(q[r, h]·k_j[h] + bias_h(j - pos_r)) · v_j[h], without scaling the
// scores (T5 folds 1/√d_kv into its weights). rel is the model's [head][2·maxDist+1] bias
// table (nil for cross-attention). The products are kernel GEMMs over keys and values packed
// per (group, head); the softmax is float32 with its normaliser summed in float64. A query
// row's result depends only on its own group, never on the other groups of the call.
func (m *Model) attend(groups []attnGroup, rel []float32, sc []attnScratch) {
	work, keys := 0, 0
	for i := range groups {
		work += groups[i].n * groups[i].keyCount()
		keys = max(keys, groups[i].keyCount())
	}
	// Size every worker's scratch for the longest group at once: growing it group by group
	// would leave a trail of garbage the size of the pass.
	for w := range sc {
		s := &sc[w]
		s.k = grow(s.k, cpu.PackedLen(keys, m.dkv))
		s.v = grow(s.v, cpu.PackedLen(m.dkv, keys))
		s.scores = grow(s.scores, queryBlock*keys)
	}
	job := attnJob{m: m, groups: groups, rel: rel, sc: sc}
	items := len(groups) * m.heads
	if work*m.dkv < 1<<14 || items == 1 {
		for it := range items {
			job.item(0, it)
		}
		return
	}
	cpu.DoRecycled(m.pool, &m.attnJobs, items, job)
}

// attnJob is one attention pass, cut into (group, head) items.
type attnJob struct {
	m      *Model
	groups []attnGroup
	rel    []float32
	sc     []attnScratch
}

// Item runs item it on worker w's scratch (cpu.Job).
func (j *attnJob) Item(w, it int) { j.item(w, it) }

func (j *attnJob) item(w, it int) {
	m := j.m
	dkv, inner := m.dkv, m.inner
	g, h := &j.groups[it/m.heads], it%m.heads
	s := &j.sc[w]
	nk := g.keyCount()
	var kp, vp *cpu.Packed
	if g.kp != nil {
		kp, vp = &g.kp[h], &g.vp[h]
	} else {
		s.k = grow(s.k, cpu.PackedLen(nk, dkv))
		s.v = grow(s.v, cpu.PackedLen(dkv, nk))
		s.kp, s.vp = cpu.PackRows(s.k, g.keys, h*dkv, dkv), cpu.PackRowsT(s.v, g.vals, h*dkv, dkv)
		kp, vp = &s.kp, &s.vp
	}
	var tbl []float32
	if j.rel != nil {
		tbl = j.rel[h*(2*m.maxDist+1) : (h+1)*(2*m.maxDist+1)]
	}
	for i0 := 0; i0 < g.n; i0 += queryBlock {
		rows := min(queryBlock, g.n-i0)
		s.scores = grow(s.scores, rows*nk)
		scores := s.scores
		m.be.Gemm(scores, nk, g.q[i0*g.ldq+h*dkv:], g.ldq, rows, kp, kernels.Store, nil)
		for i := range rows {
			row := scores[i*nk : (i+1)*nk]
			pos := g.pos0 + i0 + i
			valid := nk
			if g.causal {
				valid = min(nk, pos+1)
			}
			if tbl != nil {
				m.addRelBias(row[:valid], tbl, pos)
			}
			m.softmax(row[:valid])
			clear(row[valid:])
		}
		m.be.Gemm(g.out[i0*inner+h*dkv:], inner, scores, nk, rows, vp, kernels.Store, nil)
	}
}

// keyCount is the number of keys the group attends to.
func (g *attnGroup) keyCount() int {
	if g.kp != nil {
		n, _ := g.kp[0].Dims()
		return n
	}
	return len(g.keys)
}

// softmax normalises row in place: exp(x - max) / Σ.
func (m *Model) softmax(row []float32) {
	mx := m.ks.Max(row)
	sum := m.ks.ExpSum(row, row, mx)
	m.ks.Scale(row, float32(1/sum))
}

// addRelBias adds to the scores of keys 0..len(row)-1 for a query at position pos the bias of
// their clamped relative position key - pos from tbl (index rel + maxDist).
func (m *Model) addRelBias(row, tbl []float32, pos int) {
	d := m.maxDist
	n := len(row)
	// Keys j < pos-d see tbl[0], keys j > pos+d see tbl[2d], the rest tbl[j-pos+d].
	lo := min(n, max(0, pos-d))
	hi := min(n, max(lo, pos+d+1))
	for j := range lo {
		row[j] += tbl[0]
	}
	if hi > lo {
		m.ks.Add(row[lo:hi], tbl[lo-pos+d:hi-pos+d])
	}
	for j := hi; j < n; j++ {
		row[j] += tbl[2*d]
	}
}
