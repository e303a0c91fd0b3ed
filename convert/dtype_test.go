package convert

import (
	"math"
	"testing"
)

func TestQuantizeInt8(t *testing.T) {
	w := []float32{0, 0, 0, 1, -0.5, 0.25, 127, -127, 63.5}
	q, s := QuantizeInt8(w, 3, 3)
	if s[0] != 0 || q[0] != 0 || q[1] != 0 || q[2] != 0 {
		t.Fatalf("zero row: %v %v", q[:3], s[0])
	}
	if s[1] != 1.0/127 || q[3] != 127 || q[4] != -64 || q[5] != 32 {
		t.Fatalf("row 1: q %v scale %g", q[3:6], s[1])
	}
	if s[2] != 1 || q[6] != 127 || q[7] != -127 || q[8] != 64 { // 63.5 ties to even 64
		t.Fatalf("row 2: q %v scale %g", q[6:], s[2])
	}
	d := DequantizeInt8(q, s, 3, 3)
	for i := range w {
		if math.Abs(float64(d[i]-w[i])) > float64(s[i/3])/2+1e-9 {
			t.Fatalf("element %d: %g vs %g", i, d[i], w[i])
		}
	}
}
