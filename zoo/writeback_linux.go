package zoo

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a finished chunk to disk now, without
// waiting (sync_file_range SYNC_FILE_RANGE_WRITE), so that the fsync before the model is
// installed finds little left to write. Errors are ignored: the fsync reports them.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
