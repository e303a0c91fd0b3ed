package cpu

import (
	"fmt"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

const (
	// blockBytes bounds the activations one work item reads (a block of rows, kept in L2
	// while the item's weight panels pass over it).
	blockBytes = 96 << 10
	// itemsPerThread is how many work items a product aims to give each worker, so that
	// uneven progress (another process on a core) balances.
	itemsPerThread = 8
	// minParallel is the m·n·k below which a product runs on the caller alone (about a µs;
	// chosen by timing decoder steps, where even a 128×256 product gains from the second core).
	minParallel = 1 << 14
)

// MulT sets dst (m×N) = op(dst, a (m×K) · wᵀ) on the backend's workers.
func (c *Backend) MulT(dst, a []float32, m int, w *Packed, op kernels.Op) {
	c.Gemm(dst, w.n, a, w.k, m, w, op, c.pool)
}

// Gemm sets dst[i*ldc+j] = op(dst[i*ldc+j], Σ_k a[i*lda+k]·W[j][k]) for i < m and j < N on
// pool's workers, or on the caller alone when pool is nil (inside another parallel loop).
// It panics if a slice is too short for the dimensions.
func (c *Backend) Gemm(dst []float32, ldc int, a []float32, lda int, m int, w *Packed, op kernels.Op, pool *Pool) {
	n, k := w.n, w.k
	if m < 0 || lda < k || ldc < n || m > 0 && (len(a) < (m-1)*lda+k || len(dst) < (m-1)*ldc+n) {
		panic(fmt.Sprintf("infer: mat: product of %d×%d (lda %d, len %d) and (%d×%d)ᵀ into ldc %d, len %d", m, k, lda, len(a), n, k, ldc, len(dst)))
	}
	if m == 0 {
		return
	}
	j := gemmJob{ks: c.k, dst: dst, ldc: ldc, a: a, lda: lda, m: m, w: w, op: op, lq: 4 * w.kq}
	maxRows, elem := j.ks.Rows(), 4
	if w.dt == Int8 {
		maxRows, elem = j.ks.RowsI8(), 1
		buf := c.getQuant(m*j.lq, m)
		defer c.quant.Put(buf)
		j.qa, j.sa = buf.b, buf.f
		for i := range m {
			j.sa[i] = j.ks.QuantizeRow(j.qa[i*j.lq:(i+1)*j.lq], a[i*lda:i*lda+k])
		}
	}
	// Strips of at most maxRows rows, as even as possible; blocks of strips whose rows fit
	// blockBytes; groups of panels, so that there are about itemsPerThread items per worker.
	j.nStrips = (m + maxRows - 1) / maxRows
	perBlock := max(1, blockBytes/(k*elem)/maxRows)
	j.nBlocks = (j.nStrips + perBlock - 1) / perBlock
	threads := 1
	if pool != nil && m*n*k >= minParallel {
		threads = pool.Threads()
	}
	// A single strip of a few rows (a decoder step) takes several panels per kernel call.
	j.np = 1
	if j.nStrips == 1 {
		j.np = j.ks.Panels(m)
	}
	j.units = (w.panels + j.np - 1) / j.np
	j.nGroups = 1
	if want := itemsPerThread * threads; threads > 1 && j.nBlocks < want {
		j.nGroups = min(j.units, (want+j.nBlocks-1)/j.nBlocks)
	}
	items := j.nBlocks * j.nGroups
	if threads == 1 || items == 1 {
		for it := range items {
			j.item(it)
		}
		return
	}
	DoRecycled(pool, &c.jobs, items, j)
}

// gemmJob is one product, cut into items of (block of row strips) × (group of panels).
type gemmJob struct {
	ks                 kernels.Set
	dst, a             []float32
	ldc, lda, m        int
	w                  *Packed
	op                 kernels.Op
	qa                 []byte    // int8: quantized rows, lq bytes each
	sa                 []float32 // int8: row scales
	lq                 int
	nStrips, nBlocks   int
	np, units, nGroups int
}

// strip returns the first row and the height of strip s.
func (j *gemmJob) strip(s int) (row0, h int) {
	base, extra := j.m/j.nStrips, j.m%j.nStrips
	return s*base + min(s, extra), base + b2i(s < extra)
}

// Item runs item it (Job).
func (j *gemmJob) Item(_, it int) { j.item(it) }

func (j *gemmJob) item(it int) {
	b, g := it%j.nBlocks, it/j.nBlocks
	s0, s1 := b*j.nStrips/j.nBlocks, (b+1)*j.nStrips/j.nBlocks
	full := j.w.n / panel
	for u := g * j.units / j.nGroups; u < (g+1)*j.units/j.nGroups; u++ {
		p0 := u * j.np
		if j.np > 1 && p0+j.np <= full {
			j.multi(p0)
			continue
		}
		for p := p0; p < min(j.w.panels, p0+j.np); p++ {
			mask := kernels.Mask(j.w.n - p*panel)
			for s := s0; s < s1; s++ {
				row0, h := j.strip(s)
				j.tile(row0, h, p, mask)
			}
		}
	}
}

// tile is rows [row0, row0+h) by panel p.
func (j *gemmJob) tile(row0, h, p int, mask uint32) {
	w, k, ks := j.w, j.w.k, j.ks
	cc := j.dst[row0*j.ldc+p*panel:]
	switch w.dt {
	case F32:
		ks.TileF32(h, k, j.a[row0*j.lda:], j.lda, w.f32[p*k*panel:(p+1)*k*panel], cc, j.ldc, mask, j.op)
	case BF16:
		ks.TileBF16(h, k, j.a[row0*j.lda:], j.lda, w.bf16[p*k*panel:(p+1)*k*panel], cc, j.ldc, mask, j.op)
	case Int8:
		lq := j.lq
		ks.TileI8(h, w.kq, j.qa[row0*lq:], lq, j.sa[row0:], w.i8[p*lq*panel:(p+1)*lq*panel],
			w.scale[p*panel:(p+1)*panel], w.corr[p*panel:(p+1)*panel], cc, j.ldc, mask, j.op)
	}
}

// multi is the single strip (all m rows) by the full panels p..p+np-1.
func (j *gemmJob) multi(p int) {
	w, k, ks, np := j.w, j.w.k, j.ks, j.np
	cc := j.dst[p*panel:]
	switch w.dt {
	case F32:
		ks.TileF32N(j.m, np, k, j.a, j.lda, w.f32[p*k*panel:(p+np)*k*panel], cc, j.ldc, j.op)
	case BF16:
		ks.TileBF16N(j.m, np, k, j.a, j.lda, w.bf16[p*k*panel:(p+np)*k*panel], cc, j.ldc, j.op)
	case Int8:
		lq := j.lq
		ks.TileI8N(j.m, np, w.kq, j.qa, lq, j.sa, w.i8[p*lq*panel:(p+np)*lq*panel],
			w.scale[p*panel:(p+np)*panel], w.corr[p*panel:(p+np)*panel], cc, j.ldc, j.op)
	}
}

// quantBuf is the scratch of an int8 product: quantized rows and their scales.
type quantBuf struct {
	b []byte
	f []float32
}

func (c *Backend) getQuant(nb, nf int) *quantBuf {
	q, _ := c.quant.Get().(*quantBuf)
	if q == nil {
		q = new(quantBuf)
	}
	if cap(q.b) < nb {
		q.b = make([]byte, nb)
	}
	if cap(q.f) < nf {
		q.f = make([]float32, nf)
	}
	q.b, q.f = q.b[:nb], q.f[:nf]
	return q
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
