package cpu

import "golang.org/x/sys/unix"

// adviseHuge asks for transparent huge pages (advisory: kernels without THP ignore it).
func adviseHuge(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }
