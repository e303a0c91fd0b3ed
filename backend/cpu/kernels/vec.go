package kernels

import "fmt"

// Max returns the largest value of x, which must not be empty:
//
//	m := x[0]
//	for _, v := range x[1:] {
//		m = max(m, v)
//	}
func (s Set) Max(x []float32) float32 {
	if len(x) == 0 {
		panic("infer: kernels: Max of an empty slice")
	}
	return maxF32(s.path, x)
}

// AbsMax returns the largest |x[i]|, 0 for an empty x.
func (s Set) AbsMax(x []float32) float32 { return absMax(s.path, x) }

// ExpSum sets dst[i] = exp(x[i] - shift) for every i (dst may be x; nil only sums) and
// returns the sum of those values accumulated in float64:
//
//	var sum float64
//	for i, v := range x {
//		e := Exp(v - shift)
//		dst[i] = e
//		sum += float64(e)
//	}
//
// exp is a float32 Cephes-style approximation (within 2 ulp of the exact value; inputs
// below -87.3 give about 1e-38 instead of a smaller number or 0).
func (s Set) ExpSum(dst, x []float32, shift float32) float64 {
	if dst != nil && len(dst) < len(x) {
		panic(fmt.Sprintf("infer: kernels: ExpSum: len(dst) %d < len(x) %d", len(dst), len(x)))
	}
	return expSum(s.path, dst, x, shift)
}

// Scale sets x[i] *= f.
func (s Set) Scale(x []float32, f float32) { scale(s.path, x, f) }

// SumSquares returns Σ x[i]² accumulated in float64 (exact products).
func (s Set) SumSquares(x []float32) float64 { return sumSquares(s.path, x) }

// RMSScale sets dst[i] = w[i] · (x[i] · inv), rounding after each product (the second step
// of HF's T5LayerNorm), for i < len(x); every path gives the same bits.
func (s Set) RMSScale(dst, x, w []float32, inv float32) {
	if len(dst) < len(x) || len(w) < len(x) {
		panic(fmt.Sprintf("infer: kernels: RMSScale: len(dst) %d, len(w) %d < len(x) %d", len(dst), len(w), len(x)))
	}
	rmsScale(s.path, dst, x, w, inv)
}

// Add sets x[i] += y[i] for i < len(x); every path gives the same bits.
func (s Set) Add(x, y []float32) {
	if len(y) < len(x) {
		panic(fmt.Sprintf("infer: kernels: Add: len(y) %d < len(x) %d", len(y), len(x)))
	}
	add(s.path, x, y)
}

// GELUTanh sets a[i] = gelu_new(a[i]), times b[i] when b is not nil (a gated FFN), with
// gelu_new(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) evaluated in float32 as
//
//	u := x * (2√(2/π) + 2√(2/π)·0.044715·(x*x))
//	g := x - x/(Exp(u)+1)
//
// (the same function: 0.5·(1 + tanh(u/2)) = 1 - 1/(e^u + 1)).
func (s Set) GELUTanh(a, b []float32) {
	if b != nil && len(b) < len(a) {
		panic(fmt.Sprintf("infer: kernels: GELUTanh: len(b) %d < len(a) %d", len(b), len(a)))
	}
	geluTanh(s.path, a, b)
}

// QuantizeRow quantizes x symmetrically to int8 for TileI8 and returns its scale:
//
//	amax := AbsMax(x); scale := amax / 127; inv := 127 / amax
//	q[i] = clamp(roundToEven(x[i] * inv), -127, 127)   // x[i]*inv rounded to float32 first
//
// dst[i] holds q[i] as a byte, plus 128 on paths where I8Offset is true; dst[len(x):] is
// filled with the encoding of 0. An all-zero row has scale 0.
func (s Set) QuantizeRow(dst []byte, x []float32) float32 {
	if len(dst) < len(x) {
		panic(fmt.Sprintf("infer: kernels: QuantizeRow: len(dst) %d < len(x) %d", len(dst), len(x)))
	}
	var xor byte
	if s.I8Offset() {
		xor = 0x80
	}
	amax := absMax(s.path, x)
	if amax == 0 {
		for i := range dst {
			dst[i] = xor
		}
		return 0
	}
	inv := 127 / amax
	quantize(s.path, dst[:len(x)], x, inv, xor)
	for i := len(x); i < len(dst); i++ {
		dst[i] = xor
	}
	return amax / 127
}

// Argmax returns the index of the first largest value of x, which must not be empty (as
// greedy decoding picks a token): the largest chunk maximum by Max, then the first index
// holding it.
func (s Set) Argmax(x []float32) int {
	if len(x) == 0 {
		panic("infer: kernels: Argmax of an empty slice")
	}
	const chunk = 512
	best, at := s.Max(x[:min(len(x), chunk)]), 0
	for c := chunk; c < len(x); c += chunk {
		if m := s.Max(x[c:min(len(x), c+chunk)]); m > best {
			best, at = m, c
		}
	}
	for i, v := range x[at:] {
		if v == best {
			return at + i
		}
	}
	return at // NaN only
}
