//go:build !linux

package convert

import "errors"

// exchangeDirs has no atomic form here; the caller moves the directories one at a time.
func exchangeDirs(a, b string) error { return errors.ErrUnsupported }
