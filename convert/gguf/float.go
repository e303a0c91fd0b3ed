package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/convert/safetensors"
)

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
		dst = binary.LittleEndian.AppendUint16(dst, safetensors.F32ToF16(d))
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
		d := safetensors.F16ToF32(binary.LittleEndian.Uint16(blocks[b:]))
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
			out[i] = safetensors.F16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
		case TypeBF16:
			out[i] = safetensors.BF16ToF32(binary.LittleEndian.Uint16(data[2*i:]))
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
			dst = binary.LittleEndian.AppendUint16(dst, safetensors.F32ToF16(v))
		}
	case TypeBF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, safetensors.F32ToBF16(v))
		}
	case TypeQ8_0:
		return QuantizeQ8_0(dst, x)
	default:
		return dst, fmt.Errorf("gguf: cannot encode float32 values as %s", t)
	}
	return dst, nil
}
