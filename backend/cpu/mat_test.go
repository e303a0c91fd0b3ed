package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/convert"
)

// dense is a Source over a row-major slice.
type dense struct {
	data []float32
	r, c int
}

func (d dense) Dims() (int, int) { return d.r, d.c }
func (d dense) Float32(r0 int, dst []float32) error {
	copy(dst, d.data[r0*d.c:])
	return nil
}

// quantized is a QuantizedSource.
type quantized struct {
	dense
	q      []int8
	scales []float32
}

func (q quantized) Int8(r0 int, dst []int8, scales []float32) error {
	copy(dst, q.q[r0*q.c:])
	copy(scales, q.scales[r0:])
	return nil
}

func randSlice(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func sets(t testing.TB) []kernels.Set {
	var out []kernels.Set
	for _, p := range kernels.Paths() {
		if s, err := kernels.New(p); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// effective returns the weights a dtype computes with (bf16 rounding, int8 q·scale).
func effective(w []float32, n, k int, dt DType) []float32 {
	out := make([]float32, len(w))
	switch dt {
	case BF16:
		for i, v := range w {
			out[i] = kernels.BF16(kernels.ToBF16(v))
		}
	case Int8:
		q, s := convert.QuantizeInt8(w, n, k)
		copy(out, convert.DequantizeInt8(q, s, n, k))
	default:
		copy(out, w)
	}
	return out
}

// TestGemm checks every path and dtype against a float64 reference, thread counts and
// batch composition against each other bit for bit, and the guard bands around dst.
func TestGemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, ks := range sets(t) {
		for _, dt := range []DType{F32, BF16, Int8} {
			cpus := map[int]*Backend{}
			for _, th := range []int{1, 3} {
				c := New(Options{Threads: th, Kernels: ks})
				t.Cleanup(func() { c.Close() })
				cpus[th] = c
			}
			for _, m := range []int{1, 2, 5, 12, 13, 40} {
				for _, n := range []int{1, 31, 33, 100} {
					for _, k := range []int{1, 3, 5, 64, 257} {
						w := randSlice(r, n*k)
						pw, err := cpus[1].prepare(dense{w, n, k}, dt)
						if err != nil {
							t.Fatal(err)
						}
						pw3, _ := cpus[3].prepare(dense{w, n, k}, dt)
						eff := effective(w, n, k, dt)
						lda, ldc := k+2, n+3
						a := randSlice(r, m*lda)
						for _, op := range []kernels.Op{kernels.Store, kernels.Add, kernels.ReLU} {
							name := fmt.Sprintf("%s/%s m=%d n=%d k=%d op=%d", ks.Path(), dt, m, n, k, op)
							c0 := randSlice(r, m*ldc+4)
							got1 := append([]float32(nil), c0...)
							got3 := append([]float32(nil), c0...)
							cpus[1].Gemm(got1, ldc, a, lda, m, pw, op, cpus[1].Pool())
							cpus[3].Gemm(got3, ldc, a, lda, m, pw3, op, cpus[3].Pool())
							for i := range m {
								for j := range ldc {
									idx := i*ldc + j
									if j >= n {
										if got1[idx] != c0[idx] {
											t.Fatalf("%s: wrote past row %d's %d columns", name, i, n)
										}
										continue
									}
									var want, bound float64
									for kk := range k {
										p := float64(a[i*lda+kk]) * float64(eff[j*k+kk])
										want += p
										bound += math.Abs(p)
									}
									tol := 2e-6 * bound
									if dt == Int8 {
										// Activations are quantized too: |error| ≤ Σ|w|·scale_a/2.
										var amax, wsum float64
										for kk := range k {
											amax = max(amax, math.Abs(float64(a[i*lda+kk])))
											wsum += math.Abs(float64(eff[j*k+kk]))
										}
										tol += wsum*amax/127/2 + 1e-6
									}
									switch op {
									case kernels.Add:
										want += float64(c0[idx])
										tol += 1e-6 * math.Abs(float64(c0[idx]))
									case kernels.ReLU:
										want = max(want, 0)
									}
									if math.Abs(float64(got1[idx])-want) > tol {
										t.Fatalf("%s: dst[%d][%d] = %v, want %v ± %g", name, i, j, got1[idx], want, tol)
									}
								}
							}
							for i := m * ldc; i < len(c0); i++ {
								if got1[i] != c0[i] {
									t.Fatalf("%s: wrote past dst", name)
								}
							}
							for i := range got1 {
								if math.Float32bits(got1[i]) != math.Float32bits(got3[i]) {
									t.Fatalf("%s: 1 and 3 threads differ at %d", name, i)
								}
							}
							// Each row alone gives the same bits as in the batch.
							if op == kernels.Store {
								for i := range m {
									one := make([]float32, n)
									cpus[1].MulT(one, a[i*lda:i*lda+k], 1, pw, op)
									for j := range n {
										if math.Float32bits(one[j]) != math.Float32bits(got1[i*ldc+j]) {
											t.Fatalf("%s: row %d alone differs at column %d", name, i, j)
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestPackRow checks Row against the source for every dtype, and that an int8 source is
// packed unchanged.
func TestPackRow(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n, k := 70, 37
	w := randSlice(r, n*k)
	q, s := convert.QuantizeInt8(w, n, k)
	for _, dt := range []DType{F32, BF16, Int8} {
		c := New(Options{})
		defer c.Close()
		for _, src := range []Source{dense{w, n, k}, quantized{dense{w, n, k}, q, s}} {
			p, err := c.prepare(src, dt)
			if err != nil {
				t.Fatal(err)
			}
			eff := effective(w, n, k, dt) // int8: the same q and scales either way
			row := make([]float32, k)
			for j := range n {
				p.Row(j, row)
				for kk := range k {
					if row[kk] != eff[j*k+kk] {
						t.Fatalf("%s %T: row %d[%d] = %v, want %v", dt, src, j, kk, row[kk], eff[j*k+kk])
					}
				}
			}
		}
	}
}

func TestPackStridedT(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n, k, off, lda := 45, 9, 3, 50
	a := randSlice(r, k*lda) // Wᵀ: k rows of n from column off, lda apart
	p := PackStridedT(make([]float32, PackedLen(n, k)), a[off:], lda, n, k)
	tr := make([]float32, n*(off+k)) // W itself: n rows of k from column off
	for j := range n {
		for kk := range k {
			tr[j*(off+k)+off+kk] = a[kk*lda+off+j]
		}
	}
	q := PackStrided(make([]float32, PackedLen(n, k)), tr[off:], off+k, n, k)
	for i := range p.f32 {
		if p.f32[i] != q.f32[i] {
			t.Fatalf("PackStridedT and PackStrided of the transpose differ at %d", i)
		}
	}
	row := make([]float32, k)
	for j := range n {
		q.Row(j, row)
		for kk := range k {
			if row[kk] != a[kk*lda+off+j] {
				t.Fatalf("row %d[%d] = %v, want %v", j, kk, row[kk], a[kk*lda+off+j])
			}
		}
	}
}

func TestPool(t *testing.T) {
	p := NewPool(3, 50)
	defer p.Close()
	for _, n := range []int{0, 1, 2, 7, 1000} {
		seen := make([]atomic.Int32, n)
		p.For(n, func(w, i int) {
			seen[i].Add(1)
			// A job inside a job runs on the caller.
			p.For(2, func(int, int) {})
		})
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Fatalf("n=%d: item %d ran %d times", n, i, c)
			}
		}
	}
	// Concurrent jobs from several goroutines.
	var wg sync.WaitGroup
	var total atomic.Int64
	for range 4 {
		wg.Go(func() {
			for range 200 {
				p.For(10, func(int, int) { total.Add(1) })
			}
		})
	}
	wg.Wait()
	if total.Load() != 4*200*10 {
		t.Fatalf("ran %d items, want %d", total.Load(), 4*200*10)
	}
	// Parked workers wake up.
	q := NewPool(2, -1)
	defer q.Close()
	for range 50 {
		var n atomic.Int32
		q.For(64, func(int, int) { n.Add(1) })
		if n.Load() != 64 {
			t.Fatal("lost items after parking")
		}
	}
}

// countJob counts how often each item runs and which workers ran items (cpu.Job).
type countJob struct {
	seen    []atomic.Int32
	workers [8]atomic.Int32
	inner   *Pool
}

func (j *countJob) Item(w, i int) {
	j.seen[i].Add(1)
	j.workers[w].Add(1)
	if j.inner != nil {
		j.inner.Do(3, &countJob{seen: make([]atomic.Int32, 3)}) // a job inside a job runs on the caller
	}
}

// TestPoolDo checks Do as TestPool checks For, and that a warm Do allocates nothing.
func TestPoolDo(t *testing.T) {
	p := NewPool(3, 50)
	defer p.Close()
	for _, n := range []int{0, 1, 2, 7, 1000} {
		j := &countJob{seen: make([]atomic.Int32, n), inner: p}
		p.Do(n, j)
		for i := range j.seen {
			if c := j.seen[i].Load(); c != 1 {
				t.Fatalf("n=%d: item %d ran %d times", n, i, c)
			}
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				j := &countJob{seen: make([]atomic.Int32, 10)}
				p.Do(10, j)
				for i := range j.seen {
					if j.seen[i].Load() != 1 {
						t.Errorf("concurrent Do: item %d ran %d times", i, j.seen[i].Load())
					}
				}
			}
		})
	}
	wg.Wait()
	j := &countJob{seen: make([]atomic.Int32, 64)}
	if a := testing.AllocsPerRun(100, func() { p.Do(64, j) }); a != 0 {
		t.Errorf("Do allocates %.1f times per call", a)
	}
	p.Close()
	j = &countJob{seen: make([]atomic.Int32, 5)}
	p.Do(5, j) // after Close: on the caller
	if j.workers[0].Load() != 5 {
		t.Errorf("after Close, worker 0 ran %d of 5 items", j.workers[0].Load())
	}
}
