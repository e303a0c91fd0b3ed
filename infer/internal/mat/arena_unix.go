//go:build unix

package mat

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hugeMin is the size from which a block asks for transparent huge pages (fewer TLB misses
// while a decoder step streams the weights).
const hugeMin = 4 << 20

func mapAnon(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		panic(fmt.Sprintf("infer: mat: cannot map %d bytes for weights: %v", n, err))
	}
	if n >= hugeMin {
		adviseHuge(b)
	}
	return b
}

func unmapAnon(b []byte) error {
	if cap(b) == 0 {
		return nil
	}
	return unix.Munmap(b[:cap(b)])
}
