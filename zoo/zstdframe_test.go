package zoo_test

import (
	"encoding/binary"
	"math/bits"
)

// rleFrame writes a zstd frame (RFC 8878 §3.1.1) by hand: blocks RLE blocks of blockSize
// zero bytes each, under a frame header that declares window bytes of window (a power of two,
// 1 KiB to 2 GiB) or, with single set, a single segment whose content size is window. Such a
// frame costs 4 bytes per block, so a few kilobytes can declare and inflate to hundreds of
// MiB: the shape of a decompression bomb.
func rleFrame(window uint64, single bool, blockSize, blocks int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd} // magic number
	if single {
		// Frame_Header_Descriptor: FCS field of 4 bytes (flag 2), Single_Segment set.
		b = append(b, 2<<6|1<<5)
		b = binary.LittleEndian.AppendUint32(b, uint32(window))
	} else {
		// No content size; Window_Descriptor: exponent = log2(window) - 10, mantissa 0.
		b = append(b, 0, byte(bits.Len64(window)-1-10)<<3)
	}
	for i := range blocks {
		last := 0
		if i == blocks-1 {
			last = 1
		}
		// Block_Header: Last_Block, Block_Type 1 (RLE), Block_Size = regenerated size.
		h := uint32(last) | 1<<1 | uint32(blockSize)<<3
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0) // the RLE byte: 0
	}
	return b
}
