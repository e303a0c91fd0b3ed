package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// vecInputs returns test vectors of every length up to 80 and a vocabulary-sized one, at
// every alignment offset 0..7, with guard values after the end.
func vecInputs(r *rand.Rand, scale float64) [][]float32 {
	var out [][]float32
	for _, n := range append([]int{0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 80}, 32128) {
		off := r.IntN(8)
		buf := make([]float32, off+n+4)
		for i := range buf {
			buf[i] = float32(r.NormFloat64() * scale)
		}
		out = append(out, buf[off:off+n])
	}
	return out
}

func TestExpAccuracy(t *testing.T) {
	var worst float64
	for x := float32(-87); x <= 88; x += 0.0137 {
		got := float64(Exp(x))
		want := math.Exp(float64(x))
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Errorf("Exp max relative error %.3g > 3e-7", worst)
	}
	t.Logf("Exp max relative error %.3g", worst)
	if Exp(-1000) > 2e-38 || Exp(float32(math.Inf(-1))) > 2e-38 {
		t.Errorf("Exp of very negative inputs: %v, %v", Exp(-1000), Exp(float32(math.Inf(-1))))
	}
}

func TestVecKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	gen := Set{}
	for _, s := range paths(t) {
		for _, x := range vecInputs(r, 3) {
			name := fmt.Sprintf("%s n=%d", s.Path(), len(x))
			n := len(x)
			guard := x[:n+4][n:]
			saved := append([]float32(nil), guard...)
			if n > 0 {
				if got, want := s.Max(x), gen.Max(x); got != want {
					t.Fatalf("%s: Max %v, want %v", name, got, want)
				}
			}
			if got, want := s.AbsMax(x), gen.AbsMax(x); got != want {
				t.Fatalf("%s: AbsMax %v, want %v", name, got, want)
			}
			// ExpSum into a copy, and sum only.
			e := make([]float32, n+1)
			e[n] = 42
			var shift float32
			if n > 0 {
				shift = s.Max(x)
			}
			sum := s.ExpSum(e, x, shift)
			var want float64
			for i, v := range x {
				w := math.Exp(float64(v - shift))
				want += w
				if math.Abs(float64(e[i])-w) > 3e-7*w+1e-38 {
					t.Fatalf("%s: ExpSum[%d] = %v, want %v", name, i, e[i], w)
				}
			}
			if e[n] != 42 || math.Abs(sum-want) > 1e-6*want || math.Abs(s.ExpSum(nil, x, shift)-sum) > 1e-9*sum {
				t.Fatalf("%s: ExpSum sum %v, want %v", name, sum, want)
			}
			var ss float64
			for _, v := range x {
				ss += float64(v) * float64(v)
			}
			if got := s.SumSquares(x); math.Abs(got-ss) > 1e-12*ss {
				t.Fatalf("%s: SumSquares %v, want %v", name, got, ss)
			}
			// Exact kernels: the same bits as the generic code.
			w := vecInputs(r, 1)[0][:0]
			for range n {
				w = append(w, float32(r.Float64()+0.5))
			}
			d1, d2 := make([]float32, n), make([]float32, n)
			s.RMSScale(d1, x, w, 0.37)
			gen.RMSScale(d2, x, w, 0.37)
			y := append([]float32(nil), w...)
			a1, a2 := append([]float32(nil), x...), append([]float32(nil), x...)
			s.Add(a1, y)
			gen.Add(a2, y)
			s.Scale(a1, 1.7)
			gen.Scale(a2, 1.7)
			for i := range n {
				if math.Float32bits(d1[i]) != math.Float32bits(d2[i]) || math.Float32bits(a1[i]) != math.Float32bits(a2[i]) {
					t.Fatalf("%s: RMSScale/Add/Scale differ from generic at %d", name, i)
				}
			}
			// GELU against the float64 tanh formula.
			g1 := append([]float32(nil), x...)
			s.GELUTanh(g1, nil)
			g2 := append([]float32(nil), x...)
			s.GELUTanh(g2, y)
			for i, v := range x {
				xv := float64(v)
				want := 0.5 * xv * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(xv+0.044715*xv*xv*xv)))
				if math.Abs(float64(g1[i])-want) > 2e-6*(1+math.Abs(want)) || math.Abs(float64(g2[i])-float64(g1[i])*float64(y[i])) > 1e-6*(1+math.Abs(want)) {
					t.Fatalf("%s: GELUTanh(%v) = %v (gated %v), want %v", name, v, g1[i], g2[i], want)
				}
			}
			// Quantization: the same bytes as the generic code, with this path's offset.
			q1, q2 := make([]byte, n+5), make([]byte, n+5)
			s1, s2 := s.QuantizeRow(q1[:n+3], x), gen.QuantizeRow(q2[:n+3], x)
			var xor byte
			if s.I8Offset() {
				xor = 0x80
			}
			if s1 != s2 {
				t.Fatalf("%s: QuantizeRow scale %v, generic %v", name, s1, s2)
			}
			for i := range n + 3 {
				if q1[i] != q2[i]^xor {
					t.Fatalf("%s: QuantizeRow[%d] = %#x, generic %#x", name, i, q1[i], q2[i])
				}
			}
			if q1[n+3] != 0 || q1[n+4] != 0 {
				t.Fatalf("%s: QuantizeRow wrote past dst", name)
			}
			for i, v := range guard {
				if math.Float32bits(v) != math.Float32bits(saved[i]) {
					t.Fatalf("%s: a kernel wrote past the input", name)
				}
			}
		}
	}
}

func TestStreamAndPeak(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, s := range paths(t) {
		for _, x := range vecInputs(r, 1) {
			var want float64
			for _, v := range x {
				want += float64(v)
			}
			if got := float64(s.StreamRead(x)); math.Abs(got-want) > 1e-4*float64(len(x)+1) {
				t.Fatalf("%s n=%d: StreamRead %v, want %v", s.Path(), len(x), got, want)
			}
		}
		if s.FMALoop(10) <= 0 || s.FMALoop(0) != 0 {
			t.Fatalf("%s: FMALoop counts", s.Path())
		}
	}
}

func TestArgmax(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, s := range paths(t) {
		for _, x := range vecInputs(r, 1) {
			if len(x) == 0 {
				continue
			}
			want := 0
			for i, v := range x {
				if v > x[want] {
					want = i
				}
			}
			if got := s.Argmax(x); got != want {
				t.Fatalf("%s n=%d: Argmax %d, want %d", s.Path(), len(x), got, want)
			}
			// Ties pick the first.
			y := append([]float32(nil), x...)
			y[len(y)-1] = y[want]
			if got := s.Argmax(y); got != want {
				t.Fatalf("%s n=%d: Argmax with a tie %d, want %d", s.Path(), len(y), got, want)
			}
		}
	}
}
