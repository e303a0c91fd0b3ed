//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// The feature guards match the // Requires: lines of gemm_amd64.s and vec_amd64.s exactly.
func hasF32x512() bool  { return cpu.X86.HasAVX512F }                                  // gemmF32x512*
func hasBF16x512() bool { return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW }           // gemmBF16x512*
func hasI8x512() bool   { return cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI }         // gemmI8x512*
func hasF32x256() bool  { return cpu.X86.HasAVX && cpu.X86.HasFMA }                    // gemmF32x256*, vec kernels with FMA
func hasInt256() bool   { return cpu.X86.HasAVX && cpu.X86.HasAVX2 && cpu.X86.HasFMA } // gemmBF16x256*, gemmI8x256*, quantAVX2

// Supported reports whether this CPU and build can run path p.
func Supported(p Path) bool {
	switch p {
	case Generic:
		return true
	case AVX2:
		return hasF32x256() && hasInt256()
	case AVX512:
		return hasF32x512() && hasBF16x512() && hasI8x512() && hasF32x256() && hasInt256()
	}
	return false
}

func tileF32(p Path, mr, k int, a []float32, lda int, b []float32, c []float32, ldc int, mask uint32, op Op) {
	switch p {
	case AVX512:
		gemmF32x512(mr, k, &a[0], 4*lda, &b[0], &c[0], 4*ldc, mask, int(op))
	case AVX2:
		if mask != ^uint32(0) {
			var tmp [6 * Panel]float32
			gemmF32x256(mr, k, &a[0], 4*lda, &b[0], &tmp[0], 4*Panel, int(Store))
			gemmF32x256(mr, k, &a[0], 4*lda, &b[16], &tmp[16], 4*Panel, int(Store))
			edge(mr, tmp[:], c, ldc, mask, op)
			return
		}
		gemmF32x256(mr, k, &a[0], 4*lda, &b[0], &c[0], 4*ldc, int(op))
		gemmF32x256(mr, k, &a[0], 4*lda, &b[16], &c[16], 4*ldc, int(op))
	default:
		tileF32Generic(mr, k, a, lda, b, c, ldc, mask, op)
	}
}

func tileBF16(p Path, mr, k int, a []float32, lda int, b []uint16, c []float32, ldc int, mask uint32, op Op) {
	switch p {
	case AVX512:
		gemmBF16x512(mr, k, &a[0], 4*lda, &b[0], &c[0], 4*ldc, mask, int(op))
	case AVX2:
		if mask != ^uint32(0) {
			var tmp [6 * Panel]float32
			gemmBF16x256(mr, k, &a[0], 4*lda, &b[0], &tmp[0], 4*Panel, int(Store))
			gemmBF16x256(mr, k, &a[0], 4*lda, &b[16], &tmp[16], 4*Panel, int(Store))
			edge(mr, tmp[:], c, ldc, mask, op)
			return
		}
		gemmBF16x256(mr, k, &a[0], 4*lda, &b[0], &c[0], 4*ldc, int(op))
		gemmBF16x256(mr, k, &a[0], 4*lda, &b[16], &c[16], 4*ldc, int(op))
	default:
		tileBF16Generic(mr, k, a, lda, b, c, ldc, mask, op)
	}
}

func tileI8(p Path, mr, kq int, a []byte, lda int, sa []float32, b []int8, ws []float32, corr []int32, c []float32, ldc int, mask uint32, op Op) {
	switch p {
	case AVX512:
		gemmI8x512(mr, kq, &a[0], lda, &b[0], &c[0], 4*ldc, &sa[0], &ws[0], &corr[0], mask, int(op))
	case AVX2:
		if mask != ^uint32(0) {
			var tmp [4 * Panel]float32
			gemmI8x256(mr, kq, &a[0], lda, &b[0], &tmp[0], 4*Panel, &sa[0], &ws[0], int(Store))
			gemmI8x256(mr, kq, &a[0], lda, &b[64], &tmp[16], 4*Panel, &sa[0], &ws[16], int(Store))
			edge(mr, tmp[:], c, ldc, mask, op)
			return
		}
		gemmI8x256(mr, kq, &a[0], lda, &b[0], &c[0], 4*ldc, &sa[0], &ws[0], int(op))
		gemmI8x256(mr, kq, &a[0], lda, &b[64], &c[16], 4*ldc, &sa[0], &ws[16], int(op))
	default:
		tileI8Generic(mr, kq, a, lda, sa, b, ws, c, ldc, mask, op)
	}
}

// edge applies op from a full tile computed into tmp (rows of 32) to the masked columns of c.
func edge(mr int, tmp, c []float32, ldc int, mask uint32, op Op) {
	for i := range mr {
		for j := range Panel {
			if mask&(1<<j) != 0 {
				c[i*ldc+j] = apply(op, c[i*ldc+j], tmp[i*Panel+j])
			}
		}
	}
}

// tileF32N runs the multi-panel kernel; it reports false where there is none.
func tileF32N(p Path, mr, np, k int, a []float32, lda int, b []float32, c []float32, ldc int, op Op) bool {
	if p != AVX512 {
		return false
	}
	gemmF32x512N(mr, k, &a[0], 4*lda, &b[0], &c[0], 4*ldc, int(op))
	return true
}

func tileBF16N(p Path, mr, np, k int, a []float32, lda int, b []uint16, c []float32, ldc int, op Op) bool {
	if p != AVX512 {
		return false
	}
	gemmBF16x512N(mr, k, &a[0], 4*lda, &b[0], &c[0], 4*ldc, int(op))
	return true
}

func tileI8N(p Path, mr, np, kq int, a []byte, lda int, sa []float32, b []int8, ws []float32, corr []int32, c []float32, ldc int, op Op) bool {
	if p != AVX512 {
		return false
	}
	gemmI8x512N(mr, kq, &a[0], lda, &b[0], &c[0], 4*ldc, &sa[0], &ws[0], &corr[0], int(op))
	return true
}
