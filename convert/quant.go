package convert

import "math"

// QuantizeInt8 quantizes a rows×cols matrix symmetrically per row (one output channel of an
// HF [out, in] weight per row): scale = max|row| / 127, q = round-half-even(x / scale)
// clamped to [-127, 127]. A row of zeros gets scale 0 and zeros.
func QuantizeInt8(w []float32, rows, cols int) (q []int8, scales []float32) {
	q = make([]int8, rows*cols)
	scales = make([]float32, rows)
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		var amax float32
		for _, x := range row {
			amax = max(amax, float32(math.Abs(float64(x))))
		}
		if amax == 0 {
			continue
		}
		scale := amax / 127
		scales[r] = scale
		inv := 1 / float64(scale)
		for c, x := range row {
			v := math.RoundToEven(float64(x) * inv)
			q[r*cols+c] = int8(max(-127, min(127, v)))
		}
	}
	return q, scales
}

// DequantizeInt8 expands an int8 matrix back to float32: q·scale of its row.
func DequantizeInt8(q []int8, scales []float32, rows, cols int) []float32 {
	out := make([]float32, rows*cols)
	for r := range rows {
		s := scales[r]
		for c := range cols {
			out[r*cols+c] = float32(q[r*cols+c]) * s
		}
	}
	return out
}
