//go:build !amd64 || purego

package kernels

// Supported reports whether this build can run path p: only Generic without assembly.
func Supported(p Path) bool { return p == Generic }

func tileF32(_ Path, mr, k int, a []float32, lda int, b []float32, c []float32, ldc int, mask uint32, op Op) {
	tileF32Generic(mr, k, a, lda, b, c, ldc, mask, op)
}

func tileBF16(_ Path, mr, k int, a []float32, lda int, b []uint16, c []float32, ldc int, mask uint32, op Op) {
	tileBF16Generic(mr, k, a, lda, b, c, ldc, mask, op)
}

func tileI8(_ Path, mr, kq int, a []byte, lda int, sa []float32, b []int8, ws []float32, _ []int32, c []float32, ldc int, mask uint32, op Op) {
	tileI8Generic(mr, kq, a, lda, sa, b, ws, c, ldc, mask, op)
}

func tileF32N(Path, int, int, int, []float32, int, []float32, []float32, int, Op) bool { return false }

func tileBF16N(Path, int, int, int, []float32, int, []uint16, []float32, int, Op) bool { return false }

func tileI8N(Path, int, int, int, []byte, int, []float32, []int8, []float32, []int32, []float32, int, Op) bool {
	return false
}
