package kernels

import "math"

// Exp constants (Cephes expf; the same values as in asm/vec.go).
const (
	expLo    = -87.33654
	expHi    = 88
	expLog2e = 1.44269504088896341
	expC1    = 0.693359375
	expC2    = -2.12194440e-4
	expP0    = 1.9875691500e-4
	expP1    = 1.3981999507e-3
	expP2    = 8.3334519073e-3
	expP3    = 4.1665795894e-2
	expP4    = 1.6666665459e-1
	expP5    = 5.0000001201e-1
	geluK0   = 1.5957691216057308  // 2·√(2/π)
	geluK1   = 0.07135481627260025 // 2·√(2/π)·0.044715
)

// Exp is the float32 exponential every path uses: the input is clamped to [-87.34, 88],
// split as n·ln2 + r with n = round(x·log2 e), and exp(r) is a degree-7 polynomial.
func Exp(x float32) float32 {
	x = min(max(x, expLo), expHi)
	n := float32(math.RoundToEven(float64(x * expLog2e)))
	r := x - n*expC1
	r -= n * expC2
	z := r * r
	y := float32(expP0)
	y = y*r + expP1
	y = y*r + expP2
	y = y*r + expP3
	y = y*r + expP4
	y = y*r + expP5
	y = y*z + r
	y += 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

func maxGeneric(x []float32) float32 {
	m := x[0]
	for _, v := range x[1:] {
		m = max(m, v)
	}
	return m
}

func absMaxGeneric(x []float32) float32 {
	var m float32
	for _, v := range x {
		m = max(m, float32(math.Abs(float64(v))))
	}
	return m
}

func expSumGeneric(dst, x []float32, shift float32) float64 {
	var sum float64
	for i, v := range x {
		e := Exp(v - shift)
		if dst != nil {
			dst[i] = e
		}
		sum += float64(e)
	}
	return sum
}

func scaleGeneric(x []float32, f float32) {
	for i := range x {
		x[i] *= f
	}
}

func sumSquaresGeneric(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

func rmsScaleGeneric(dst, x, w []float32, inv float32) {
	dst, w = dst[:len(x)], w[:len(x)]
	for i, v := range x {
		dst[i] = w[i] * (v * inv)
	}
}

func addGeneric(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

func geluTanhGeneric(a, b []float32) {
	for i, x := range a {
		u := x * (geluK0 + geluK1*(x*x))
		g := x - x/(Exp(u)+1)
		if b != nil {
			g *= b[i]
		}
		a[i] = g
	}
}

func quantizeGeneric(dst []byte, x []float32, inv float32, xor byte) {
	for i, v := range x {
		q := math.RoundToEven(float64(v * inv))
		dst[i] = byte(int8(min(max(q, -127), 127))) ^ xor
	}
}
