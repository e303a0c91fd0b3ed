//go:build unix && !linux

package mat

func adviseHuge([]byte) {}
