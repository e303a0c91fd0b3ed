package mat

import "fmt"

// Go is the pure-Go backend: cache-blocked, register-blocked float32 products split into
// tiles over the output that up to Workers goroutines share (0 means GOMAXPROCS). A decode
// step's few rows (one per sequence or beam) are one product whose tiles run over the weight
// rows, so every worker streams its own part of the weight once for all rows.
//
// Each output element is the sum over k in increasing order, accumulated in float32 with
// every product rounded (no fused multiply-add), whatever the tiling, the worker count or
// the number of rows m: a row's result does not depend on the other rows of the batch.
type Go struct {
	Workers int
}

var _ Backend = Go{}

// Prepare returns data as a *Matrix without copying.
func (Go) Prepare(data []float32, r, c int) Weight { return NewMatrix(data, r, c) }

// Tile sizes: a tile is up to tileM rows of a by tileN rows of w; k is taken in blocks of
// blockK so that a 4-row panel of w (16 KiB at most) stays in L1 while a tile's rows of a
// (at most 64 KiB per block) stay in L2.
const (
	tileM  = 64
	tileN  = 64
	blockK = 256
	// minParallel is the m·r·c below which a product runs on the calling goroutine.
	minParallel = 1 << 16
)

// MulT sets dst (m×r) = a (m×c) · wᵀ. w must be a *Matrix.
func (g Go) MulT(dst, a []float32, m int, w Weight) {
	mw, ok := w.(*Matrix)
	if !ok {
		panic(fmt.Sprintf("infer: mat: Go backend got a %T weight", w))
	}
	MulT(g.Workers, dst, a, m, mw)
}

// MulT is the Go backend's product on up to workers goroutines (0 means GOMAXPROCS):
//
//	for i := range m {
//		for j := range w.Rows {
//			var s float32
//			for k := range w.Cols {
//				s += float32(a[i*w.Cols+k] * w.Data[j*w.Cols+k])
//			}
//			dst[i*w.Rows+j] = s
//		}
//	}
func MulT(workers int, dst, a []float32, m int, w *Matrix) {
	n, k := w.Rows, w.Cols
	if m < 0 || len(a) < m*k || len(dst) < m*n {
		panic(fmt.Sprintf("infer: mat: MulT %d×%d · (%d×%d)ᵀ with len(a) %d, len(dst) %d", m, k, n, k, len(a), len(dst)))
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(dst[:m*n])
		return
	}
	tilesM := (m + tileM - 1) / tileM
	tilesN := (n + tileN - 1) / tileN
	tile := func(t int) {
		tm, tn := t%tilesM, t/tilesM
		i0, j0 := tm*tileM, tn*tileN
		mulTile(dst, a, w.Data, n, k, i0, min(m, i0+tileM), j0, min(n, j0+tileN))
	}
	workers = Workers(workers)
	if m*n*k < minParallel {
		workers = 1
	}
	For(workers, tilesM*tilesN, tile)
}

// mulTile computes dst[i][j] for i in [i0, i1), j in [j0, j1).
func mulTile(dst, a, w []float32, n, k, i0, i1, j0, j1 int) {
	for k0 := 0; k0 < k; k0 += blockK {
		k1 := min(k, k0+blockK)
		first := k0 == 0
		j := j0
		for ; j+4 <= j1; j += 4 {
			w0 := w[j*k+k0 : j*k+k1]
			w1 := w[(j+1)*k+k0 : (j+1)*k+k1]
			w2 := w[(j+2)*k+k0 : (j+2)*k+k1]
			w3 := w[(j+3)*k+k0 : (j+3)*k+k1]
			i := i0
			for ; i+2 <= i1; i += 2 {
				a0 := a[i*k+k0 : i*k+k1]
				a1 := a[(i+1)*k+k0 : (i+1)*k+k1]
				kern2x4(dst[i*n+j:i*n+j+4], dst[(i+1)*n+j:(i+1)*n+j+4], a0, a1, w0, w1, w2, w3, first)
			}
			if i < i1 {
				a0 := a[i*k+k0 : i*k+k1]
				kern1x4(dst[i*n+j:i*n+j+4], a0, w0, w1, w2, w3, first)
			}
		}
		for ; j < j1; j++ {
			wj := w[j*k+k0 : j*k+k1]
			for i := i0; i < i1; i++ {
				p := &dst[i*n+j]
				var s float32
				if !first {
					s = *p
				}
				*p = dot(s, a[i*k+k0:i*k+k1], wj)
			}
		}
	}
}

// dot returns s + Σ a[k]·b[k], in order, each product rounded.
func dot(s float32, a, b []float32) float32 {
	b = b[:len(a)]
	for k, x := range a {
		s += float32(x * b[k])
	}
	return s
}

func kern2x4(d0, d1, a0, a1, w0, w1, w2, w3 []float32, first bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	d0, d1 = d0[:4], d1[:4]
	if !first {
		c00, c01, c02, c03 = d0[0], d0[1], d0[2], d0[3]
		c10, c11, c12, c13 = d1[0], d1[1], d1[2], d1[3]
	}
	a1 = a1[:len(a0)]
	w0, w1, w2, w3 = w0[:len(a0)], w1[:len(a0)], w2[:len(a0)], w3[:len(a0)]
	for k, x0 := range a0 {
		x1 := a1[k]
		y0, y1, y2, y3 := w0[k], w1[k], w2[k], w3[k]
		c00 += float32(x0 * y0)
		c01 += float32(x0 * y1)
		c02 += float32(x0 * y2)
		c03 += float32(x0 * y3)
		c10 += float32(x1 * y0)
		c11 += float32(x1 * y1)
		c12 += float32(x1 * y2)
		c13 += float32(x1 * y3)
	}
	d0[0], d0[1], d0[2], d0[3] = c00, c01, c02, c03
	d1[0], d1[1], d1[2], d1[3] = c10, c11, c12, c13
}

func kern1x4(d0, a0, w0, w1, w2, w3 []float32, first bool) {
	var c0, c1, c2, c3 float32
	d0 = d0[:4]
	if !first {
		c0, c1, c2, c3 = d0[0], d0[1], d0[2], d0[3]
	}
	w0, w1, w2, w3 = w0[:len(a0)], w1[:len(a0)], w2[:len(a0)], w3[:len(a0)]
	for k, x := range a0 {
		c0 += float32(x * w0[k])
		c1 += float32(x * w1[k])
		c2 += float32(x * w2[k])
		c3 += float32(x * w3[k])
	}
	d0[0], d0[1], d0[2], d0[3] = c0, c1, c2, c3
}
