//go:build !unix

package cpu

import "unsafe"

func mapAnon(n int) ([]byte, error) {
	b := make([]byte, n+64)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & 63)
	return b[off : off+n : off+n], nil
}

func unmapAnon([]byte) error { return nil }
