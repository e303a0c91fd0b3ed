package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs the parts of one job on persistent worker goroutines and the caller. Between
// jobs a worker spins for a bounded time (waking a parked goroutine costs about 20 µs on
// the project machine, as long as a small product), then parks. Work is handed out item by
// item through an atomic counter, and a job finishes without waiting for workers that had
// not joined it, so a worker descheduled by another process delays nothing but its own item.
//
// One job runs at a time; a job submitted while another runs (another request, or a job
// inside a job) runs on the calling goroutine alone.
type Pool struct {
	n    int
	spin time.Duration
	mu   sync.Mutex // held while a job runs

	// state: bits 0-15 workers inside the job, bit 16 sealed (no more joining), bits 32-63 the
	// job's generation.
	state atomic.Uint64
	fn    func(worker int)
	// The job of Do while it runs (Do's loop, bound once as doFn, reads them), so that a
	// product hands its items to the workers without allocating.
	doJob  Job
	doN    int64
	doNext atomic.Int64
	doFn   func(worker int)
	closed atomic.Bool
	wake   []chan struct{}
	parked []atomic.Bool
	wg     sync.WaitGroup
}

const (
	refMask = 1<<16 - 1
	sealed  = 1 << 16
)

// NewPool starts threads-1 workers (threads 0 means GOMAXPROCS) that spin spinMicros
// microseconds (negative: not at all) before they park.
func NewPool(threads, spinMicros int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{n: threads, spin: time.Duration(max(spinMicros, 0)) * time.Microsecond}
	p.state.Store(sealed)
	p.doFn = p.doLoop
	p.wake = make([]chan struct{}, threads)
	p.parked = make([]atomic.Bool, threads)
	for w := 1; w < threads; w++ {
		p.wake[w] = make(chan struct{}, 1)
		p.wg.Add(1)
		go p.worker(w)
	}
	return p
}

// Threads is the number of workers of a job, the caller included.
func (p *Pool) Threads() int { return p.n }

// Close stops the workers. Jobs submitted afterwards run on the caller.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	for w := 1; w < p.n; w++ {
		close(p.wake[w])
	}
	p.wg.Wait()
}

// runLocked calls fn(worker) on the caller (worker 0) and on every worker that joins before
// the caller's fn returns, with p.mu held by the caller. fn must take its work from a shared
// counter (see Do), so that any subset of workers completes the job; runLocked returns when
// every joined worker has returned.
func (p *Pool) runLocked(fn func(worker int)) {
	p.fn = fn
	gen := p.state.Load()>>32 + 1
	p.state.Store(gen << 32) // open: no workers, not sealed
	for w := 1; w < p.n; w++ {
		if p.parked[w].Load() {
			select {
			case p.wake[w] <- struct{}{}:
			default:
			}
		}
	}
	fn(0)
	s := p.state.Or(sealed) | sealed
	for s&refMask != 0 {
		runtime.Gosched()
		s = p.state.Load()
	}
	p.fn = nil
}

// Job is work cut into numbered items that may run in any order on any worker.
type Job interface {
	Item(worker, i int)
}

// Do runs j.Item(worker, i) for every i in [0, n), items handed out in order one at a time,
// without allocating: the hot path of a decoder step calls it tens of times a token, and
// every allocation there is garbage the collector must later find.
func (p *Pool) Do(n int, j Job) {
	if n <= 0 {
		return
	}
	if n == 1 || p.n == 1 || p.closed.Load() || !p.mu.TryLock() {
		for i := range n {
			j.Item(0, i)
		}
		return
	}
	p.doJob, p.doN = j, int64(n)
	p.doNext.Store(0)
	p.runLocked(p.doFn)
	p.doJob = nil
	p.mu.Unlock()
}

func (p *Pool) doLoop(w int) {
	for {
		i := p.doNext.Add(1) - 1
		if i >= p.doN {
			return
		}
		p.doJob.Item(w, int(i))
	}
}

// DoRecycled runs p.Do(n, job) on a *J taken from free (a sync.Pool of *J) rather than a new
// one: the job must be on the heap for the workers to see it, and a hot path that builds
// one a call would make garbage every call. The *J is zeroed before it goes back.
func DoRecycled[J any, PJ interface {
	*J
	Job
}](p *Pool, free *sync.Pool, n int, job J) {
	pj, _ := free.Get().(PJ)
	if pj == nil {
		pj = PJ(new(J))
	}
	*pj = job
	p.Do(n, pj)
	var zero J
	*pj = zero
	free.Put(pj)
}

// For runs body(worker, i) for every i in [0, n), items handed out in order one at a time
// (Do with a function; the closure a caller builds is the only allocation).
func (p *Pool) For(n int, body func(worker, i int)) { p.Do(n, funcJob(body)) }

// funcJob is a function as a Job.
type funcJob func(worker, i int)

// Item calls f.
func (f funcJob) Item(worker, i int) { f(worker, i) }

func (p *Pool) worker(w int) {
	defer p.wg.Done()
	var last uint64 // the newest job seen; jobs start at generation 1
	start := time.Now()
	for i := 0; ; i++ {
		if p.closed.Load() {
			return
		}
		s := p.state.Load()
		if s>>32 != last {
			if s&sealed != 0 {
				last = s >> 32 // finished without us
				continue
			}
			if p.state.CompareAndSwap(s, s+1) {
				last = s >> 32
				p.fn(w)
				p.state.Add(^uint64(0)) // leave: refs-1
				start, i = time.Now(), 0
			}
			continue
		}
		if i&255 == 255 && time.Since(start) >= p.spin {
			// Park; runLocked wakes parked workers after opening a job, and the state is read
			// again after parked is set so that no job is missed.
			p.parked[w].Store(true)
			if s := p.state.Load(); s>>32 == last && !p.closed.Load() {
				if _, ok := <-p.wake[w]; !ok {
					return
				}
			}
			p.parked[w].Store(false)
			start, i = time.Now(), 0
		}
	}
}
