package kernels

import (
	"fmt"
	"math/bits"
)

// TileF32 multiplies mr rows of a (row i at a[i*lda:], k values) by one packed float32
// panel b (k rows of 32) and applies op to the columns of c set in mask:
//
//	for i := range mr {
//		for j := range 32 {
//			if mask&(1<<j) == 0 {
//				continue
//			}
//			var s float32
//			for kk := range k {
//				s = fma(a[i*lda+kk], b[kk*32+j], s) // one rounding per step
//			}
//			c[i*ldc+j] = op(c[i*ldc+j], s)
//		}
//	}
//
// Each result is one chain over k in increasing order, whatever mr, the mask or the path;
// the assembly paths round once per step (FMA) and agree bit for bit, the generic one
// rounds the product and the sum. mr must be in 1..Rows().
func (s Set) TileF32(mr, k int, a []float32, lda int, b []float32, c []float32, ldc int, mask uint32, op Op) {
	checkTile("TileF32", mr, s.Rows(), k, len(a), lda, len(b), k*Panel, len(c), ldc, mask)
	if k == 0 || mask == 0 {
		tileZero(mr, c, ldc, mask, op)
		return
	}
	tileF32(s.path, mr, k, a, lda, b, c, ldc, mask, op)
}

// TileBF16 is TileF32 with a packed bfloat16 panel: each weight is widened exactly to
// float32 (its bits shifted up 16) before the multiply-add.
func (s Set) TileBF16(mr, k int, a []float32, lda int, b []uint16, c []float32, ldc int, mask uint32, op Op) {
	checkTile("TileBF16", mr, s.Rows(), k, len(a), lda, len(b), k*Panel, len(c), ldc, mask)
	if k == 0 || mask == 0 {
		tileZero(mr, c, ldc, mask, op)
		return
	}
	tileBF16(s.path, mr, k, a, lda, b, c, ldc, mask, op)
}

// TileI8 multiplies mr int8-quantized rows by one packed int8 panel of kq groups of four k
// values. Row i holds kq·4 bytes at a[i*lda:], encoded by QuantizeRow of the same Set, with
// scale sa[i]; column j has scale ws[j] and, on paths where I8Offset is true, corr[j] =
// 128·Σ_k w[j][k]. Then
//
//	for i := range mr {
//		for j := range 32 { // where mask has bit j
//			var acc int32
//			for kk := range 4 * kq {
//				acc += int32(q[i][kk]) * int32(w[j][kk]) // exact
//			}
//			c[i*ldc+j] = op(c[i*ldc+j], float32(acc)*(sa[i]*ws[j]))
//		}
//	}
//
// The integer sums are exact, so every path gives the same bits. mr must be in 1..RowsI8().
func (s Set) TileI8(mr, kq int, a []byte, lda int, sa []float32, b []int8, ws []float32, corr []int32, c []float32, ldc int, mask uint32, op Op) {
	checkTile("TileI8", mr, s.RowsI8(), 4*kq, len(a), lda, len(b), kq*4*Panel, len(c), ldc, mask)
	if len(sa) < mr || len(ws) < Panel || len(corr) < Panel {
		panic(fmt.Sprintf("infer: kernels: TileI8: %d row scales for %d rows, %d column scales, %d corrections", len(sa), mr, len(ws), len(corr)))
	}
	if kq == 0 || mask == 0 {
		tileZero(mr, c, ldc, mask, op)
		return
	}
	tileI8(s.path, mr, kq, a, lda, sa, b, ws, corr, c, ldc, mask, op)
}

// checkTile panics unless every access of a tile call is within its slices.
func checkTile(name string, mr, maxMR, k, la, lda, lb, needB, lc, ldc int, mask uint32) {
	if mr < 1 || mr > maxMR || k < 0 || lda < k || ldc < 1 {
		panic(fmt.Sprintf("infer: kernels: %s: %d rows (max %d), k %d, lda %d, ldc %d", name, mr, maxMR, k, lda, ldc))
	}
	if mask == 0 {
		return
	}
	last := 31 - bits.LeadingZeros32(mask)
	if la < (mr-1)*lda+k || lb < needB || lc < (mr-1)*ldc+last+1 {
		panic(fmt.Sprintf("infer: kernels: %s: %d rows, k %d: len(a) %d (lda %d), len(b) %d (need %d), len(c) %d (ldc %d, last column %d)",
			name, mr, k, la, lda, lb, needB, lc, ldc, last))
	}
}

// tileZero applies op to a zero result (k == 0).
func tileZero(mr int, c []float32, ldc int, mask uint32, op Op) {
	if op == Add {
		return
	}
	for i := range mr {
		for j := range Panel {
			if mask&(1<<j) != 0 {
				c[i*ldc+j] = 0
			}
		}
	}
}

// apply returns op(old, x).
func apply(op Op, old, x float32) float32 {
	switch op {
	case Add:
		return old + x
	case ReLU:
		if x > 0 {
			return x
		}
		return 0
	}
	return x
}

// Panels is how many full panels a TileF32N, TileBF16N or TileI8N call of mr rows takes on
// this path: on AVX-512, four for one or two rows and two for three or four, so that enough
// independent accumulator chains hide the multiply-add latency of a decoder step's few
// rows; otherwise one.
func (s Set) Panels(mr int) int {
	if s.path != AVX512 {
		return 1
	}
	switch mr {
	case 1, 2:
		return 4
	case 3, 4:
		return 2
	}
	return 1
}

// TileF32N is TileF32 over np consecutive full panels: b holds np·k·32 values (panel p at
// b[p*k*32:]) and the result fills np·32 columns of c. Every element is the same chain as in
// TileF32, so the two give the same bits.
func (s Set) TileF32N(mr, np, k int, a []float32, lda int, b []float32, c []float32, ldc int, op Op) {
	checkTile("TileF32N", mr, s.Rows(), k, len(a), lda, len(b), np*k*Panel, len(c), ldc, 1<<31)
	if len(c) < (mr-1)*ldc+np*Panel {
		panic(fmt.Sprintf("infer: kernels: TileF32N: len(c) %d for %d rows of %d panels (ldc %d)", len(c), mr, np, ldc))
	}
	if k > 0 && np > 1 && np == s.Panels(mr) && tileF32N(s.path, mr, np, k, a, lda, b, c, ldc, op) {
		return
	}
	for p := range np {
		s.TileF32(mr, k, a, lda, b[p*k*Panel:(p+1)*k*Panel], c[p*Panel:], ldc, ^uint32(0), op)
	}
}

// TileBF16N is TileBF16 over np consecutive full panels (see TileF32N).
func (s Set) TileBF16N(mr, np, k int, a []float32, lda int, b []uint16, c []float32, ldc int, op Op) {
	checkTile("TileBF16N", mr, s.Rows(), k, len(a), lda, len(b), np*k*Panel, len(c), ldc, 1<<31)
	if len(c) < (mr-1)*ldc+np*Panel {
		panic(fmt.Sprintf("infer: kernels: TileBF16N: len(c) %d for %d rows of %d panels (ldc %d)", len(c), mr, np, ldc))
	}
	if k > 0 && np > 1 && np == s.Panels(mr) && tileBF16N(s.path, mr, np, k, a, lda, b, c, ldc, op) {
		return
	}
	for p := range np {
		s.TileBF16(mr, k, a, lda, b[p*k*Panel:(p+1)*k*Panel], c[p*Panel:], ldc, ^uint32(0), op)
	}
}

// TileI8N is TileI8 over np consecutive full panels: b holds np·kq·128 values, ws and corr
// np·32 (see TileF32N).
func (s Set) TileI8N(mr, np, kq int, a []byte, lda int, sa []float32, b []int8, ws []float32, corr []int32, c []float32, ldc int, op Op) {
	checkTile("TileI8N", mr, s.RowsI8(), 4*kq, len(a), lda, len(b), np*kq*4*Panel, len(c), ldc, 1<<31)
	if len(c) < (mr-1)*ldc+np*Panel || len(sa) < mr || len(ws) < np*Panel || len(corr) < np*Panel {
		panic(fmt.Sprintf("infer: kernels: TileI8N: %d rows of %d panels: len(c) %d (ldc %d), %d row scales, %d column scales", mr, np, len(c), ldc, len(sa), len(ws)))
	}
	if kq > 0 && np > 1 && np == s.Panels(mr) && tileI8N(s.path, mr, np, kq, a, lda, sa, b, ws, corr, c, ldc, op) {
		return
	}
	for p := range np {
		s.TileI8(mr, kq, a, lda, sa, b[p*kq*4*Panel:(p+1)*kq*4*Panel], ws[p*Panel:], corr[p*Panel:], c[p*Panel:], ldc, ^uint32(0), op)
	}
}
