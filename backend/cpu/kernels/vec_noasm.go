//go:build !amd64 || purego

package kernels

func maxF32(_ Path, x []float32) float32 { return maxGeneric(x) }

func absMax(_ Path, x []float32) float32 { return absMaxGeneric(x) }

func expSum(_ Path, dst, x []float32, shift float32) float64 { return expSumGeneric(dst, x, shift) }

func scale(_ Path, x []float32, f float32) { scaleGeneric(x, f) }

func sumSquares(_ Path, x []float32) float64 { return sumSquaresGeneric(x) }

func rmsScale(_ Path, dst, x, w []float32, inv float32) { rmsScaleGeneric(dst, x, w, inv) }

func add(_ Path, x, y []float32) { addGeneric(x, y) }

func geluTanh(_ Path, a, b []float32) { geluTanhGeneric(a, b) }

func quantize(_ Path, dst []byte, x []float32, inv float32, xor byte) {
	quantizeGeneric(dst, x, inv, xor)
}

func fmaLoop(_ Path, iters int) int64 { return fmaLoopGeneric(iters) }

func streamRead(_ Path, x []float32) float32 { return streamGeneric(x) }
