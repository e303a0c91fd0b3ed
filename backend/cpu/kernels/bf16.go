package kernels

import "math"

// BF16 widens a bfloat16 exactly to float32.
func BF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// ToBF16 rounds f to the nearest bfloat16, ties to even (torch's .to(torch.bfloat16));
// NaN stays a quiet NaN.
func ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
