package gguf

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// roundRef rounds x to a binary float with mantBits stored mantissa bits and minimum normal
// exponent minExp, ties to even, computed exactly in float64; it returns ±Inf past maxFinite.
func roundRef(x float32, mantBits, minExp int, maxFinite float64) float64 {
	v := float64(x)
	if v == 0 || math.IsInf(v, 0) {
		return v
	}
	e := max(math.Ilogb(v), minExp)
	ulp := math.Ldexp(1, e-mantBits)
	r := math.RoundToEven(v/ulp) * ulp
	if math.Abs(r) > maxFinite {
		return math.Copysign(math.Inf(1), v)
	}
	if r == 0 {
		return math.Copysign(0, v)
	}
	return r
}

func sameFloat(a, b float64) bool {
	return a == b && math.Signbit(a) == math.Signbit(b)
}

func TestF16RoundTripAll(t *testing.T) {
	for h := range 1 << 16 {
		x := safetensors.F16ToF32(uint16(h))
		got := safetensors.F32ToF16(x)
		if math.IsNaN(float64(x)) {
			if got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x, not a NaN", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("safetensors.F32ToF16(safetensors.F16ToF32(%#04x) = %g) = %#04x", h, x, got)
		}
	}
}

func TestBF16RoundTripAll(t *testing.T) {
	for h := range 1 << 16 {
		x := safetensors.BF16ToF32(uint16(h))
		got := safetensors.F32ToBF16(x)
		if math.IsNaN(float64(x)) {
			if got&0x7f80 != 0x7f80 || got&0x7f == 0 || got&0x40 == 0 {
				t.Fatalf("NaN %#04x -> %#04x, not a quiet NaN", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("safetensors.F32ToBF16(safetensors.BF16ToF32(%#04x) = %g) = %#04x", h, x, got)
		}
	}
}

// TestRoundToNearestEven checks F16 and BF16 rounding against an exact float64 reference on
// random bit patterns, on every tie, and around each format's limits.
func TestRoundToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var xs []float32
	for range 1 << 20 {
		xs = append(xs, math.Float32frombits(r.Uint32()))
	}
	for h := range 1 << 16 {
		// Exact ties and their neighbours, for both formats.
		for _, base := range []uint32{math.Float32bits(safetensors.F16ToF32(uint16(h))), uint32(h) << 16} {
			for _, d := range []int32{-1, 0, 1} {
				for _, half := range []uint32{0x1000, 0x8000} {
					xs = append(xs, math.Float32frombits(uint32(int32(base+half)+d)))
				}
			}
		}
	}
	xs = append(xs, 65504, 65519.99, 65520, 65536, 5.96e-8, 2.98e-8, 2.99e-8, 1e-45, -0.0,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32)
	for _, x := range xs {
		if math.IsNaN(float64(x)) {
			continue
		}
		want16 := roundRef(x, 10, -14, 65504)
		if got := float64(safetensors.F16ToF32(safetensors.F32ToF16(x))); !sameFloat(got, want16) {
			t.Fatalf("F16(%g = %#08x) = %g, want %g", x, math.Float32bits(x), got, want16)
		}
		wantBF := roundRef(x, 7, -126, float64(math.Float32frombits(0x7f7f0000)))
		if got := float64(safetensors.BF16ToF32(safetensors.F32ToBF16(x))); !sameFloat(got, wantBF) {
			t.Fatalf("BF16(%g = %#08x) = %g, want %g", x, math.Float32bits(x), got, wantBF)
		}
	}
}

func TestQ8_0(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 32*64)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * float32(math.Ldexp(1, i/32/4-8)) // scales whose d is a normal f16
	}
	copy(x[:32], make([]float32, 32)) // an all-zero block: d = 0
	x[40] = -3                        // a negative maximum
	q, err := QuantizeQ8_0(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 64*34 {
		t.Fatalf("%d bytes, want %d", len(q), 64*34)
	}
	y, err := DequantizeQ8_0(nil, q)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 64 {
		blk := x[32*b : 32*b+32]
		var amax float32
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := safetensors.F16ToF32(safetensors.F32ToF16(amax / 127))
		for j, v := range blk {
			// The error is half a step of the stored scale, plus the scale's own rounding.
			if diff := math.Abs(float64(y[32*b+j] - v)); diff > 0.5*float64(d)+float64(amax)*1e-3 {
				t.Fatalf("block %d elem %d: %g -> %g (d %g)", b, j, v, y[32*b+j], d)
			}
		}
	}
	if int8(q[34+2+8]) != -127 {
		t.Errorf("block 1 elem 8 (the negative maximum) = %d, want -127", int8(q[34+2+8]))
	}
	// Half-way values round away from zero, like roundf: x = 0.5·d and 1.5·d.
	half := make([]float32, 32)
	half[0], half[1], half[2] = 127, 0.5, -1.5
	q, _ = QuantizeQ8_0(nil, half)
	if got := [3]int8{int8(q[2]), int8(q[3]), int8(q[4])}; got != [3]int8{127, 1, -2} {
		t.Errorf("ties quantize to %v, want [127 1 -2]", got)
	}
	if _, err := QuantizeQ8_0(nil, make([]float32, 31)); err == nil {
		t.Error("31 values quantized")
	}
	if _, err := DequantizeQ8_0(nil, make([]byte, 33)); err == nil {
		t.Error("33 bytes dequantized")
	}
}

func TestFloat32sEncode(t *testing.T) {
	x := []float32{0, 1, -2.5, 3.1415927, 65504, 1e-3}
	for _, typ := range []GGMLType{TypeF32, TypeF16, TypeBF16} {
		b, err := EncodeFloat32s(nil, typ, x)
		if err != nil {
			t.Fatal(err)
		}
		y, err := Float32s(typ, b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			var want float32
			switch typ {
			case TypeF32:
				want = x[i]
			case TypeF16:
				want = safetensors.F16ToF32(safetensors.F32ToF16(x[i]))
			case TypeBF16:
				want = safetensors.BF16ToF32(safetensors.F32ToBF16(x[i]))
			}
			if y[i] != want {
				t.Errorf("%s: %g -> %g, want %g", typ, x[i], y[i], want)
			}
		}
	}
	if _, err := EncodeFloat32s(nil, TypeQ4_K, x); err == nil {
		t.Error("encoded Q4_K")
	}
	if _, err := Float32s(TypeQ4_K, nil); err == nil {
		t.Error("decoded Q4_K")
	}
	if _, err := Float32s(TypeF32, []byte{1, 2, 3}); err == nil {
		t.Error("decoded 3 bytes as F32")
	}
	f64, _ := Float32s(TypeF64, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
	if len(f64) != 1 || f64[0] != 1 {
		t.Errorf("F64 1.0 decoded as %v", f64)
	}
}
