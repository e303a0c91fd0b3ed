//go:build unix

package cpu

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hugeMin is the size from which a block asks for transparent huge pages (fewer TLB misses
// while a decoder step streams the weights).
const hugeMin = 4 << 20

// mapAnon maps n zeroed bytes. A refused mapping (an address-space limit, no memory left)
// is an error of the load, not the death of the process.
func mapAnon(n int) ([]byte, error) {
	if n == 0 {
		return []byte{}, nil
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot map %d bytes for weights: %w", ErrNoMemory, n, err)
	}
	if n >= hugeMin {
		adviseHuge(b)
	}
	return b, nil
}

func unmapAnon(b []byte) error {
	if cap(b) == 0 {
		return nil
	}
	return unix.Munmap(b[:cap(b)])
}
