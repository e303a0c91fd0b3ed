//go:build !unix

package mat

import "unsafe"

func mapAnon(n int) []byte {
	b := make([]byte, n+64)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & 63)
	return b[off : off+n : off+n]
}

func unmapAnon([]byte) error { return nil }
