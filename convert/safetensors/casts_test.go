package safetensors

import (
	"math"
	"testing"
)

func TestF32ToBF16(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3f80},
		{-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // 1 + 2^-8: a tie, rounds to even (down)
		{math.Float32frombits(0x3f818000), 0x3f82}, // 1 + 3·2^-8: a tie, rounds to even (up)
		{math.Float32frombits(0x3f808001), 0x3f81}, // just above the tie
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // max float32 rounds to +inf
		{float32(math.Inf(-1)), 0xff80},
		{math.Float32frombits(0x00000001), 0x0000}, // smallest subnormal rounds to 0
	}
	for _, tt := range tests {
		if got := F32ToBF16(tt.in); got != tt.want {
			t.Errorf("F32ToBF16(%g / %#08x) = %#04x, want %#04x", tt.in, math.Float32bits(tt.in), got, tt.want)
		}
	}
	if nan := F32ToBF16(float32(math.NaN())); nan&0x7f80 != 0x7f80 || nan&0x7f == 0 {
		t.Errorf("NaN became %#04x", nan)
	}
	if nan := F32ToBF16(math.Float32frombits(0x7f800001)); nan&0x7f == 0 {
		t.Errorf("a NaN with a low payload became infinity %#04x", nan)
	}
	// Every bf16 value survives the round trip exactly.
	for h := range 1 << 16 {
		f := BF16ToF32(uint16(h))
		if f != f {
			continue
		}
		if got := F32ToBF16(f); got != uint16(h) {
			t.Fatalf("bf16 %#04x → %g → %#04x", h, f, got)
		}
	}
}

func TestF32ToF16(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65519, 0x7bff},                            // below the midpoint to 65536
		{65520, 0x7c00},                            // the tie rounds to even: infinity
		{1e10, 0x7c00},                             //
		{float32(math.Ldexp(1, -24)), 1},           // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0},           // half of it: a tie, rounds to even 0
		{float32(math.Ldexp(3, -25)), 2},           // 1.5 units: a tie, rounds to even 2
		{float32(math.Ldexp(1, -14)), 0x0400},      // smallest normal
		{float32(math.Ldexp(1023, -24)), 0x03ff},   // largest subnormal
		{float32(math.Ldexp(2047, -25)), 0x0400},   // rounds up into the normals
		{math.Float32frombits(0x3f801000), 0x3c00}, // 1 + 2^-11: tie, to even (down)
		{math.Float32frombits(0x3f803000), 0x3c02}, // 1 + 3·2^-11: tie, to even (up)
		{float32(math.Ldexp(1, -26)), 0},
	}
	for _, tt := range tests {
		if got := F32ToF16(tt.in); got != tt.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tt.in, got, tt.want)
		}
	}
	if nan := F32ToF16(float32(math.NaN())); nan&0x7c00 != 0x7c00 || nan&0x3ff == 0 {
		t.Errorf("NaN became %#04x", nan)
	}
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		if f != f {
			continue
		}
		if got := F32ToF16(f); got != uint16(h) {
			t.Fatalf("f16 %#04x → %g → %#04x", h, f, got)
		}
	}
	// Against float64 rounding on a sweep: the result is the nearest f16, ties to even.
	for i := range 200000 {
		f := float32(math.Ldexp(float64(i%4096)+0.5*float64(i%3), i%40-30))
		if f >= 65520 {
			continue // rounds to infinity, checked above
		}
		got := F16ToF32(F32ToF16(f))
		lo, hi := F16ToF32(F32ToF16(f)-1), F16ToF32(F32ToF16(f)+1)
		if F32ToF16(f) != 0 && math.Abs(float64(f-got)) > math.Abs(float64(f-lo)) || F32ToF16(f) < 0x7bff && math.Abs(float64(f-got)) > math.Abs(float64(f-hi)) {
			t.Fatalf("F32ToF16(%g) = %g is not the nearest (neighbours %g, %g)", f, got, lo, hi)
		}
	}
}
