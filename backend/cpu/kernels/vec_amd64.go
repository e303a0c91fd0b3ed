//go:build amd64 && !purego

package kernels

// The element-wise kernels of vec_amd64.s take a positive multiple of 8 elements (16 for
// quantAVX2); the wrappers below finish the tails with the generic code. Both assembly
// paths use them (Zen 4 runs Y and Z registers at the same rate).

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func absMaxAVX2(x *float32, n int) float32

//go:noescape
func expSumAVX2(dst *float32, x *float32, n int, shift float32) float64

//go:noescape
func sumSqAVX2(x *float32, n int) float64

//go:noescape
func rmsScaleAVX2(dst *float32, x *float32, w *float32, n int, inv float32)

//go:noescape
func addAVX2(x *float32, y *float32, n int)

//go:noescape
func scaleAVX2(x *float32, n int, f float32)

//go:noescape
func geluTanhAVX2(a *float32, b *float32, n int)

//go:noescape
func quantAVX2(dst *byte, x *float32, n int, inv float32, xor uint32)

func maxF32(p Path, x []float32) float32 {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		return maxGeneric(x)
	}
	m := maxAVX2(&x[0], n)
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m
}

func absMax(p Path, x []float32) float32 {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		return absMaxGeneric(x)
	}
	return max(absMaxAVX2(&x[0], n), absMaxGeneric(x[n:]))
}

func expSum(p Path, dst, x []float32, shift float32) float64 {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		return expSumGeneric(dst, x, shift)
	}
	var d *float32
	var rest []float32
	if dst != nil {
		d, rest = &dst[0], dst[n:]
	}
	return expSumAVX2(d, &x[0], n, shift) + expSumGeneric(rest, x[n:], shift)
}

func scale(p Path, x []float32, f float32) {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		scaleGeneric(x, f)
		return
	}
	scaleAVX2(&x[0], n, f)
	scaleGeneric(x[n:], f)
}

func sumSquares(p Path, x []float32) float64 {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		return sumSquaresGeneric(x)
	}
	return sumSqAVX2(&x[0], n) + sumSquaresGeneric(x[n:])
}

func rmsScale(p Path, dst, x, w []float32, inv float32) {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		rmsScaleGeneric(dst, x, w, inv)
		return
	}
	rmsScaleAVX2(&dst[0], &x[0], &w[0], n, inv)
	rmsScaleGeneric(dst[n:], x[n:], w[n:], inv)
}

func add(p Path, x, y []float32) {
	n := len(x) &^ 7
	if p == Generic || n == 0 {
		addGeneric(x, y)
		return
	}
	addAVX2(&x[0], &y[0], n)
	addGeneric(x[n:], y[n:])
}

func geluTanh(p Path, a, b []float32) {
	n := len(a) &^ 7
	if p == Generic || n == 0 {
		geluTanhGeneric(a, b)
		return
	}
	var bp *float32
	var rest []float32
	if b != nil {
		bp, rest = &b[0], b[n:]
	}
	geluTanhAVX2(&a[0], bp, n)
	geluTanhGeneric(a[n:], rest)
}

func quantize(p Path, dst []byte, x []float32, inv float32, xor byte) {
	n := len(x) &^ 15
	if p == Generic || n == 0 {
		quantizeGeneric(dst, x, inv, xor)
		return
	}
	quantAVX2(&dst[0], &x[0], n, inv, uint32(xor)*0x01010101)
	quantizeGeneric(dst[n:], x[n:], inv, xor)
}

//go:noescape
func fmaLoop512(n int)

//go:noescape
func fmaLoop256(n int)

//go:noescape
func streamAVX2(x *float32, n int) float32

func fmaLoop(p Path, iters int) int64 {
	switch p {
	case AVX512:
		fmaLoop512(iters)
		return int64(iters) * 16 * 16 * 2
	case AVX2:
		fmaLoop256(iters)
		return int64(iters) * 16 * 8 * 2
	}
	return fmaLoopGeneric(iters)
}

func streamRead(p Path, x []float32) float32 {
	n := len(x) &^ 127 // four quarters of whole 128-byte blocks
	if p == Generic || n == 0 {
		return streamGeneric(x)
	}
	return streamAVX2(&x[0], n) + streamGeneric(x[n:])
}
