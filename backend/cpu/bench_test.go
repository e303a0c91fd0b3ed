package cpu

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

var sink []float32

// BenchmarkSGEMM is the encoder's product on hot (cache- or L3-resident) packed weights:
// (M,K,N) = activations M×K times a K×N weight, in GFLOP/s, for 1 and 2 threads.
func BenchmarkSGEMM(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ks, _ := kernels.New(kernels.Best())
	for _, sh := range [][3]int{{512, 768, 3072}, {128, 512, 2048}, {1024, 256, 1024}, {1024, 1024, 256}} {
		m, k, n := sh[0], sh[1], sh[2]
		for _, dt := range []DType{F32, BF16, Int8} {
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%d,%d,%d/%dT", dt, m, k, n, th), func(b *testing.B) {
					c := New(Options{Threads: th, Kernels: ks})
					defer c.Close()
					w, _ := c.prepare(dense{randSlice(r, n*k), n, k}, dt)
					a := randSlice(r, m*k)
					dst := make([]float32, m*n)
					for b.Loop() {
						c.MulT(dst, a, m, w, kernels.Store)
					}
					b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					sink = dst
				})
			}
		}
	}
}

// BenchmarkGEMVCold is a decoder step's product with weights from RAM: each call uses the
// next of enough weight copies to fill 320 MiB (f32; the same count for the other dtypes),
// in GB/s of weights read.
func BenchmarkGEMVCold(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ks, _ := kernels.New(kernels.Best())
	const k, n = 768, 3072
	copies := (320 << 20) / (4 * n * k)
	src := dense{randSlice(r, n*k), n, k}
	for _, dt := range []DType{F32, BF16, Int8} {
		for _, m := range []int{1, 8} {
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/m%d/%dT", dt, m, th), func(b *testing.B) {
					c := New(Options{Threads: th, Kernels: ks})
					defer c.Close()
					ws := make([]*Packed, copies)
					for i := range ws {
						ws[i], _ = c.prepare(src, dt)
					}
					a := randSlice(r, m*k)
					dst := make([]float32, m*n)
					i := 0
					for b.Loop() {
						c.MulT(dst, a, m, ws[i%copies], kernels.Store)
						i++
					}
					b.ReportMetric(float64(ws[0].Bytes())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
					sink = dst
				})
			}
		}
	}
}

// BenchmarkGoals measures, in one process, the kernel figures of BENCHMARKS.md beside the
// machine limits they are compared with, on the fastest kernel path and 2 workers: the FMA
// peak and the streaming read bandwidth (kernels.Set.StreamRead over 512 MiB, best of
// three), SGEMM on the encoder's two reference shapes (M,K,N) with hot packed weights, and
// the decode GEMV (M = 1 and 8) with weights from RAM (each call the next of enough copies
// to fill 512 MiB of f32), each beside the read bandwidth measured around it.
func BenchmarkGoals(b *testing.B) {
	threads := 2
	ks, _ := kernels.New(kernels.Best())
	pool := NewPool(threads, DefaultSpinMicros)
	defer pool.Close()
	b.Run("peak", func(b *testing.B) {
		var flops int64
		for b.Loop() {
			var f atomic.Int64
			pool.For(threads, func(_, _ int) { f.Add(ks.FMALoop(1 << 20)) })
			flops += f.Load()
		}
		b.ReportMetric(float64(flops)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	buf := make([]float32, 512<<20/4)
	for i := range buf {
		buf[i] = 1
	}
	// read returns the streaming read bandwidth now, best of three passes over buf.
	read := func() float64 {
		per := len(buf) / 64
		var best float64
		for range 3 {
			t0 := time.Now()
			pool.For(64, func(_, i int) { ks.StreamRead(buf[i*per : (i+1)*per]) })
			best = max(best, float64(4*len(buf))/time.Since(t0).Seconds()/1e9)
		}
		return best
	}
	b.Run("read", func(b *testing.B) {
		var bw float64
		for b.Loop() {
			bw = max(bw, read())
		}
		b.ReportMetric(bw, "GB/s")
	})
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][3]int{{512, 768, 3072}, {128, 512, 2048}} {
		m, k, n := sh[0], sh[1], sh[2]
		b.Run(fmt.Sprintf("sgemm/%d,%d,%d", m, k, n), func(b *testing.B) {
			c := New(Options{Threads: threads, Kernels: ks})
			defer c.Close()
			w, _ := c.prepare(dense{randSlice(r, n*k), n, k}, F32)
			a := randSlice(r, m*k)
			dst := make([]float32, m*n)
			for b.Loop() {
				c.MulT(dst, a, m, w, kernels.Store)
			}
			b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
	const k, n = 768, 3072
	src := dense{randSlice(r, n*k), n, k}
	copies := (512 << 20) / (4 * n * k)
	for _, dt := range []DType{F32, BF16, Int8} {
		for _, m := range []int{1, 8} {
			b.Run(fmt.Sprintf("gemv-cold/%s/m%d", dt, m), func(b *testing.B) {
				c := New(Options{Threads: threads, Kernels: ks})
				defer c.Close()
				ws := make([]*Packed, copies)
				for i := range ws {
					ws[i], _ = c.prepare(src, dt)
				}
				a := randSlice(r, m*k)
				dst := make([]float32, m*n)
				// The host's memory bandwidth drifts (other machines share it): the read
				// bandwidth is measured just before and after, and the product is compared
				// with their mean.
				before := read()
				b.ResetTimer()
				i := 0
				for b.Loop() {
					c.MulT(dst, a, m, ws[i%copies], kernels.Store)
					i++
				}
				gbps := float64(ws[0].Bytes()) * float64(b.N) / b.Elapsed().Seconds() / 1e9
				bw := (before + read()) / 2
				b.ReportMetric(gbps, "GB/s")
				b.ReportMetric(bw, "readGB/s")
				b.ReportMetric(100*gbps/bw, "%read")
			})
		}
	}
}
