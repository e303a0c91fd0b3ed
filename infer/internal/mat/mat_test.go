package mat

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// refMulT is the reference loop of MulT's doc comment.
func refMulT(dst, a []float32, m int, w *Matrix) {
	for i := range m {
		for j := range w.Rows {
			var s float32
			for k := range w.Cols {
				s += float32(a[i*w.Cols+k] * w.Data[j*w.Cols+k])
			}
			dst[i*w.Rows+j] = s
		}
	}
}

// TestMulTExact checks MulT bit for bit against the reference loop across tile, block and
// kernel tails, worker counts, and that a row's result does not depend on the batch.
func TestMulTExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range []int{1, 2, 3, 5, 64, 65, 130} {
		for _, n := range []int{1, 3, 4, 7, 64, 67} {
			for _, k := range []int{1, 5, 255, 256, 257, 600} {
				a := randSlice(r, m*k)
				w := NewMatrix(randSlice(r, n*k), n, k)
				want := make([]float32, m*n)
				refMulT(want, a, m, w)
				for _, workers := range []int{1, 3} {
					got := make([]float32, m*n+1)
					got[m*n] = 42 // guard
					Go{Workers: workers}.MulT(got, a, m, w)
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("m=%d n=%d k=%d workers=%d: dst[%d] = %v, want %v", m, n, k, workers, i, got[i], want[i])
						}
					}
					if got[m*n] != 42 {
						t.Fatalf("m=%d n=%d k=%d: wrote past dst", m, n, k)
					}
				}
				// Row 0 alone equals row 0 of the batch.
				one := make([]float32, n)
				MulT(1, one, a[:k], 1, w)
				for j := range one {
					if one[j] != want[j] {
						t.Fatalf("m=%d n=%d k=%d: single-row result differs at %d", m, n, k, j)
					}
				}
			}
		}
	}
}

func TestMulTPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic on a short dst")
		}
	}()
	w := NewMatrix(make([]float32, 6), 2, 3)
	MulT(1, make([]float32, 3), make([]float32, 6), 2, w)
}

func TestForRange(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1001} {
		seen := make([]int, n)
		ForRange(3, n, 10, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i]++
			}
		})
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: item %d run %d times", n, i, c)
			}
		}
	}
}

var sink []float32

func BenchmarkMulT(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ m, n, k int }{
		{1, 512, 512}, {8, 512, 512}, {1, 2048, 512}, {128, 512, 512}, {128, 2048, 512}, {4, 32128, 512},
	} {
		b.Run(fmt.Sprintf("m%d_n%d_k%d", c.m, c.n, c.k), func(b *testing.B) {
			a := randSlice(r, c.m*c.k)
			w := NewMatrix(randSlice(r, c.n*c.k), c.n, c.k)
			dst := make([]float32, c.m*c.n)
			b.SetBytes(int64(4 * (c.n*c.k + c.m*c.k)))
			b.ReportAllocs()
			for b.Loop() {
				MulT(0, dst, a, c.m, w)
			}
			b.ReportMetric(float64(2*c.m*c.n*c.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			sink = dst
		})
	}
}
