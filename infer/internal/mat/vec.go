package mat

// Dot returns Σ a[k]·b[k] over len(a) (b must be at least as long), in order, in float32.
func Dot(a, b []float32) float32 { return dot(0, a, b) }

// Axpy sets y[k] += alpha·x[k] over len(x) (y must be at least as long).
func Axpy(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for k, v := range x {
		y[k] += float32(alpha * v)
	}
}
