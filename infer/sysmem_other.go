//go:build !linux

package infer

// SystemMemory is the memory this process can still allocate, as far as the system says; on
// this system nothing is known (ok is false).
func SystemMemory() (n int64, ok bool) { return 0, false }
