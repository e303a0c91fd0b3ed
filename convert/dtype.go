package convert

import (
	"encoding/binary"
	"math"
)

// F32ToBF16 rounds to the nearest bfloat16, ties to even, as torch's .to(torch.bfloat16)
// does. NaN stays NaN (quiet, sign kept); values beyond the range round to infinity.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep the top bits, force a quiet NaN
		return uint16(b>>16) | 0x40
	}
	// Add 0x7fff plus the lowest kept bit: round half to even on the 16 dropped bits.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToF32 widens a bfloat16 exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToF16 rounds to the nearest IEEE 754 binary16, ties to even, with subnormals; values
// beyond ±65504 (after rounding) become infinities, NaN stays NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127+15 >= 0x1f: // too large even before rounding
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e <= 0 {
		// Subnormal in f16 (or zero): shift the full mantissa (implicit bit included) right.
		if e < -10 {
			return sign // rounds to ±0
		}
		m := mant | 0x800000
		shift := uint32(14 - e) // 13 for the mantissa width difference, plus 1-e
		half := uint32(1) << (shift - 1)
		rest := m & (1<<shift - 1)
		q := m >> shift
		if rest > half || rest == half && q&1 == 1 {
			q++
		}
		return sign | uint16(q) // a carry into the exponent field is correct
	}
	q := uint32(e)<<10 | mant>>13
	rest := mant & 0x1fff
	if rest > 0x1000 || rest == 0x1000 && q&1 == 1 {
		q++ // may carry into the exponent, up to infinity: correct
	}
	return sign | uint16(q)
}

// castFloat32 converts f32 values to little-endian bf16 or f16 bytes.
func castFloat32(v []float32, cvt func(float32) uint16) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], cvt(x))
	}
	return out
}
