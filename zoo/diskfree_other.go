//go:build !(linux || darwin || freebsd)

package zoo

import "errors"

// diskFree is unknown here: the free-space check before a pull is skipped, and a full disk
// shows as the write error itself.
func diskFree(string) (uint64, error) { return 0, errors.ErrUnsupported }
