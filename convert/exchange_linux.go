package convert

import "golang.org/x/sys/unix"

// exchangeDirs swaps two paths atomically (renameat2 RENAME_EXCHANGE, Linux 3.15+; file
// systems without it return EINVAL and the caller falls back).
func exchangeDirs(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
