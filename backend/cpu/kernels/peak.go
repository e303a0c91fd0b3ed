package kernels

// FMALoop runs iters iterations of a register-only loop of 16 independent fused
// multiply-adds on this path's widest vectors and returns the floating-point operations it
// performed (2 per lane): the machine's FMA peak, measured. The generic path runs a scalar
// Go loop of the same shape.
func (s Set) FMALoop(iters int) int64 {
	if iters <= 0 {
		return 0
	}
	return fmaLoop(s.path, iters)
}

// StreamRead reads x once with vector loads, as four concurrent sequential streams (its
// quarters; a packed weight's kernels read several panels at once too), and returns a value
// derived from it (a sum) so that the reads cannot be skipped: the machine's streaming read
// bandwidth, measured.
func (s Set) StreamRead(x []float32) float32 { return streamRead(s.path, x) }

func fmaLoopGeneric(iters int) int64 {
	var a [16]float32
	for range iters {
		for j := range a {
			a[j] = a[j]*0.5 + 0.25
		}
	}
	flops := int64(iters) * 16 * 2
	if a[0] == 42 { // keeps the loop's result alive (a[0] tends to 0.5)
		flops++
	}
	return flops
}

func streamGeneric(x []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(x) &^ 3
	for i := 0; i < n; i += 4 {
		s0 += x[i]
		s1 += x[i+1]
		s2 += x[i+2]
		s3 += x[i+3]
	}
	for _, v := range x[n:] {
		s0 += v
	}
	return s0 + s1 + s2 + s3
}
