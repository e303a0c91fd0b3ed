package convert

import "encoding/binary"

// castFloat32 converts f32 values to little-endian bf16 or f16 bytes.
func castFloat32(v []float32, cvt func(float32) uint16) []byte {
	out := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(out[2*i:], cvt(x))
	}
	return out
}
