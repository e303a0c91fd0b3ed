package mat

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Workers returns n if positive, else GOMAXPROCS.
func Workers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// For runs fn(i) for every i in [0, n) on up to workers goroutines (inline when workers or n
// is 1). Items are handed out one at a time, so uneven items balance.
func For(workers, n int, fn func(i int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// ForRange splits [0, n) into about workers·4 contiguous chunks of at least grain items and
// runs fn(lo, hi) for each on up to workers goroutines.
func ForRange(workers, n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := min(max(workers, 1)*4, (n+grain-1)/grain)
	if chunks <= 1 || workers <= 1 {
		fn(0, n)
		return
	}
	size := (n + chunks - 1) / chunks
	chunks = (n + size - 1) / size
	For(workers, chunks, func(c int) {
		fn(c*size, min(n, (c+1)*size))
	})
}
