//go:build !linux

package fetch

import "errors"

// exchange is unsupported here: the caller falls back to two renames.
func exchange(a, b string) error { return errors.ErrUnsupported }
