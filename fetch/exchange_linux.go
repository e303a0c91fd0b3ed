package fetch

import "golang.org/x/sys/unix"

// exchange swaps the directories a and b in one atomic step (renameat2 RENAME_EXCHANGE,
// Linux 3.15; some file systems refuse it, and the caller falls back).
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
