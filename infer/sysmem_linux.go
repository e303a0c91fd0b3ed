package infer

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// SystemMemory is the memory this process can still allocate, as far as the system says: the
// smaller of the kernel's MemAvailable estimate and the room left under the process's
// address-space and data limits (ulimit -v, ulimit -d). ok is false when none is known.
func SystemMemory() (n int64, ok bool) {
	n = -1
	take := func(v int64) {
		if v >= 0 && (n < 0 || v < n) {
			n = v
		}
	}
	if avail, ok := meminfoAvailable(); ok {
		take(avail)
	}
	status := procStatus()
	for _, lim := range []struct {
		res   int
		field string
	}{{unix.RLIMIT_AS, "VmSize"}, {unix.RLIMIT_DATA, "VmData"}} {
		var r unix.Rlimit
		if unix.Getrlimit(lim.res, &r) != nil || r.Cur == unix.RLIM_INFINITY || r.Cur > 1<<62 {
			continue
		}
		used := status[lim.field]
		take(max(0, int64(r.Cur)-used))
	}
	return n, n >= 0
}

// meminfoAvailable reads MemAvailable from /proc/meminfo.
func meminfoAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	v, ok := kbField(b, "MemAvailable")
	return v, ok
}

// procStatus reads the kB fields of /proc/self/status that SystemMemory uses.
func procStatus() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for _, f := range []string{"VmSize", "VmData"} {
		if v, ok := kbField(b, f); ok {
			out[f] = v
		}
	}
	return out
}

// kbField parses a "Name:   123 kB" line.
func kbField(b []byte, name string) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte(name+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		if len(f) > 1 && string(f[1]) == "kB" {
			v *= 1024
		}
		return v, true
	}
	return 0, false
}
