package infer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/t5zoo/t5zoo/backend/cpu"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// Machine is what this computer's cores can do on one kernel path, measured: the float32
// FMA peak (a register-only loop of independent multiply-adds on the path's widest vectors)
// and the streaming read bandwidth from RAM (vector loads over a buffer much larger than
// the last-level cache), both on Threads workers.
type Machine struct {
	Kernels    string  `json:"kernels"`
	Threads    int     `json:"threads"`
	PeakGFLOPS float64 `json:"peak_gflops"` // best of the repeats
	ReadGBps   float64 `json:"read_gbps"`   // best of the repeats
}

// MeasureOptions configure MeasureMachine; the zero value measures the fastest path on
// GOMAXPROCS workers.
type MeasureOptions struct {
	Threads int    // 0 means GOMAXPROCS
	Kernels string // "" means the fastest path
	// ReadBytes is the size of the buffer the bandwidth is read from; 0 means 512 MiB.
	ReadBytes int
	// Repeats is how many times each measurement runs (the best counts: other processes
	// only ever slow it down); 0 means 3.
	Repeats int
}

// MeasureMachine measures the FMA peak (about 0.1 s per repeat) and the read bandwidth
// (reads ReadBytes once per repeat). The buffer is freed before it returns.
func MeasureMachine(ctx context.Context, o MeasureOptions) (Machine, error) {
	path, err := kernels.ParsePath(o.Kernels)
	if err != nil {
		return Machine{}, err
	}
	ks, err := kernels.New(path)
	if err != nil {
		return Machine{}, err
	}
	if o.ReadBytes <= 0 {
		o.ReadBytes = 512 << 20
	}
	if o.Repeats <= 0 {
		o.Repeats = 3
	}
	pool := cpu.NewPool(o.Threads, cpu.DefaultSpinMicros)
	defer pool.Close()
	n := pool.Threads()
	res := Machine{Kernels: path.String(), Threads: n}

	// Peak: every worker runs the same number of iterations, about 0.1 s.
	var iters int
	for iters = 1 << 16; ; iters *= 2 {
		t0 := time.Now()
		ks.FMALoop(iters)
		if time.Since(t0) > 5*time.Millisecond {
			iters = int(float64(iters) * 0.1 / time.Since(t0).Seconds())
			break
		}
	}
	for range o.Repeats {
		if err := ctx.Err(); err != nil {
			return Machine{}, err
		}
		var flops atomic.Int64
		t0 := time.Now()
		pool.For(n, func(_, _ int) { flops.Add(ks.FMALoop(iters)) })
		res.PeakGFLOPS = max(res.PeakGFLOPS, float64(flops.Load())/time.Since(t0).Seconds()/1e9)
	}

	// Bandwidth: the buffer is touched first (page faults are not reads), then read in 64
	// chunks handed out to the workers.
	buf := make([]float32, o.ReadBytes/4)
	for i := range buf {
		buf[i] = 1
	}
	const chunks = 64
	per := len(buf) / chunks
	var sink atomic.Uint32
	for range o.Repeats {
		if err := ctx.Err(); err != nil {
			return Machine{}, err
		}
		t0 := time.Now()
		pool.For(chunks, func(_, i int) {
			if ks.StreamRead(buf[i*per:(i+1)*per]) == -1 {
				sink.Add(1)
			}
		})
		res.ReadGBps = max(res.ReadGBps, float64(4*per*chunks)/time.Since(t0).Seconds()/1e9)
	}
	if sink.Load() != 0 {
		return Machine{}, fmt.Errorf("infer: measure machine: impossible sum")
	}
	return res, nil
}

// DecodeStepBytes is the weight memory one decoder step reads: every decoder layer's
// matrices except the cross-attention keys and values (computed once per input), and the LM
// head.
func (m *Model) DecodeStepBytes() int64 { return m.t.DecodeStepBytes() }
