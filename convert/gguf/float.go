package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// F32ToF16 rounds x to the nearest IEEE 754 binary16 value, ties to even (as numpy's
// astype(float16) and ggml's F16C path do). Overflow gives an infinity; NaN stays a quiet NaN
// with the top of its payload.
func F32ToF16(x float32) uint16 {
	b := math.Float32bits(x)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased binary16 exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal (or zero) result: shift the full significand, rounding to nearest even.
		if e < -10 {
			return sign // below half the smallest subnormal: ±0
		}
		m := mant | 0x800000 // implicit leading one
		shift := uint32(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to infinity: still correct
	}
	return sign | uint16(h)
}

// F16ToF32 widens a binary16 value exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToBF16 rounds x to bfloat16, ties to even; NaN becomes a quiet NaN. It is ggml's
// ggml_compute_fp32_to_bf16 (and gguf-py's BF16 quantizer) bit for bit.
func F32ToBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16((u&0xffff0000 | 64<<16) >> 16)
	}
	return uint16((uint64(u) + 0x7fff + uint64((u>>16)&1)) >> 16)
}

// BF16ToF32 widens a bfloat16 value exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// q8Block is the number of elements of a Q8_0 block (ggml QK8_0).
const q8Block = 32

// QuantizeQ8_0 encodes x (a multiple of 32 values) as Q8_0 blocks: a binary16 scale
// d = max|x|/127 followed by 32 int8 values round(x/d), rounding half away from zero. This is
// ggml's quantize_row_q8_0_ref and gguf-py's Q8_0 bit for bit (both compute in float32).
func QuantizeQ8_0(dst []byte, x []float32) ([]byte, error) {
	if len(x)%q8Block != 0 {
		return dst, fmt.Errorf("gguf: Q8_0: %d values is not a multiple of %d", len(x), q8Block)
	}
	for b := 0; b < len(x); b += q8Block {
		blk := x[b : b+q8Block]
		var amax float32
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax = a
			}
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		for _, v := range blk {
			p := v * id
			q := math.Round(float64(p)) // half away from zero, like roundf
			q = max(-128, min(127, q))
			dst = append(dst, byte(int8(q)))
		}
	}
	return dst, nil
}

// DequantizeQ8_0 decodes Q8_0 blocks into float32 values, each d·q computed in float32.
func DequantizeQ8_0(dst []float32, blocks []byte) ([]float32, error) {
	const size = 2 + q8Block
	if len(blocks)%size != 0 {
		return dst, fmt.Errorf("gguf: Q8_0: %d bytes is not a whole number of %d-byte blocks", len(blocks), size)
	}
	for b := 0; b < len(blocks); b += size {
		d := F16ToF32(binary.LittleEndian.Uint16(blocks[b:]))
		for _, q := range blocks[b+2 : b+size] {
			dst = append(dst, d*float32(int8(q)))
		}
	}
	return dst, nil
}

// Float32s decodes tensor data of type t (F32, F16, BF16, F64 or Q8_0) into float32 values.
func Float32s(t GGMLType, data []byte) ([]float32, error) {
	var size int
	switch t {
	case TypeF32:
		size = 4
	case TypeF16, TypeBF16:
		size = 2
	case TypeF64:
		size = 8
	case TypeQ8_0:
		return DequantizeQ8_0(make([]float32, 0, len(data)/34*32), data)
	default:
		return nil, fmt.Errorf("gguf: cannot decode %s data as float32", t)
	}
	if len(data)%size != 0 {
		return nil, fmt.Errorf("gguf: %d bytes is not a whole number of %s elements", len(data), t)
	}
	out := make([]float32, len(data)/size)
	for i := range out {
		switch t {
		case TypeF32:
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		case TypeF16:
			out[i] = F16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		case TypeBF16:
			out[i] = BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		case TypeF64:
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
		}
	}
	return out, nil
}

// EncodeFloat32s encodes x as tensor data of type t (F32, F16, BF16 or Q8_0), appending to
// dst. F16 and BF16 round to nearest even; Q8_0 needs a multiple of 32 values.
func EncodeFloat32s(dst []byte, t GGMLType, x []float32) ([]byte, error) {
	switch t {
	case TypeF32:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case TypeF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(v))
		}
	case TypeBF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToBF16(v))
		}
	case TypeQ8_0:
		return QuantizeQ8_0(dst, x)
	default:
		return dst, fmt.Errorf("gguf: cannot encode float32 values as %s", t)
	}
	return dst, nil
}
