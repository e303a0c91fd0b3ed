package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// DType is a safetensors element type, spelled as in the header ("F32", "BF16", ...).
type DType string

// The element types of the safetensors format (huggingface/safetensors, Dtype enum).
const (
	Bool   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

// Size is the width of one element in bytes, or 0 for a dtype safetensors does not define.
func (d DType) Size() int {
	switch d {
	case Bool, U8, I8, F8E5M2, F8E4M3:
		return 1
	case I16, U16, F16, BF16:
		return 2
	case I32, U32, F32:
		return 4
	case F64, I64, U64:
		return 8
	}
	return 0
}

// Valid reports whether d is one of the dtypes of the format.
func (d DType) Valid() bool { return d.Size() != 0 }

// littleEndian reports whether the host's byte order is the file's, where F32 data can be
// used in place.
func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// Float32s converts the raw little-endian bytes of a tensor of type dtype to float32.
// F32 data whose address is 4-byte aligned is returned in place (aliased, not copied) on
// little-endian hosts; F16 and BF16 are widened exactly, F64 is rounded to nearest. Other
// dtypes are an error.
func Float32s(dtype DType, b []byte) (out []float32, aliased bool, err error) {
	size := dtype.Size()
	if size == 0 {
		return nil, false, fmt.Errorf("safetensors: unknown dtype %q", dtype)
	}
	if len(b)%size != 0 {
		return nil, false, fmt.Errorf("safetensors: %d bytes is not a whole number of %s elements", len(b), dtype)
	}
	n := len(b) / size
	switch dtype {
	case F32:
		if n == 0 {
			return []float32{}, false, nil
		}
		if littleEndian() && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n), true, nil
		}
		out = make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		out = make([]float32, n)
		for i := range out {
			out[i] = F16ToF32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case BF16:
		out = make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case F64:
		out = make([]float32, n)
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	default:
		return nil, false, fmt.Errorf("safetensors: dtype %s is not a floating-point type", dtype)
	}
	return out, false, nil
}

// F16ToF32 widens an IEEE 754 binary16 value exactly (subnormals, infinities and NaN
// payloads included).
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf / NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: normalise the mantissa.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32Bytes returns the little-endian bytes of v, aliasing v on little-endian hosts.
func Float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return []byte{}
	}
	if littleEndian() {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

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
