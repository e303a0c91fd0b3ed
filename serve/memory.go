package serve

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dustin/go-humanize"
)

// memory is the server's memory budget (Config.MemoryBudget) and what holds it: each
// resident model's fixed memory (its weights and tables, the working memory of its
// decoding batch and the scratch it keeps between calls, reserved at load) and the memory
// its requests hold while they run (the caches of the inputs decoding, and the scratch of
// encode and score calls), each priced by the engine before it is allocated. A request whose
// memory is not free waits for it until its deadline; one that could never fit gets 507.
//
// memory's mutex is a leaf: nothing is called while it is held, so the residency (under its
// own lock) and the Batchers (under theirs) may call into it.
type memory struct {
	budget int64 // 0: no bound (the usage is still counted)

	mu       sync.Mutex
	fixed    int64         // the models' reservations
	requests int64         // the requests' memory
	changed  chan struct{} // closed, and replaced, when memory is given back
	// short is set by a refused TryAcquire (a Batcher cannot wait): the residency then
	// evicts idle models in the background (evictIdle).
	short chan struct{}
}

func newMemory(budget int64) *memory {
	return &memory{budget: max(budget, 0), changed: make(chan struct{}), short: make(chan struct{}, 1)}
}

// fitsLocked reports whether n more bytes fit.
func (m *memory) fitsLocked(n int64) bool {
	return m.budget == 0 || m.fixed+m.requests+n <= m.budget
}

// reserveFixed takes n bytes for a model if they fit.
func (m *memory) reserveFixed(n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.fitsLocked(n) {
		return false
	}
	m.fixed += n
	return true
}

// releaseFixed gives back a model's reservation.
func (m *memory) releaseFixed(n int64) {
	m.mu.Lock()
	m.fixed -= n
	m.broadcastLocked()
	m.mu.Unlock()
}

func (m *memory) broadcastLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// free is what the budget has left; -1 without a budget.
func (m *memory) free() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.budget == 0 {
		return -1
	}
	return m.budget - m.fixed - m.requests
}

// usage returns the models' reservations and the requests' memory.
func (m *memory) usage() (fixed, requests int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fixed, m.requests
}

// release gives back n bytes a request took, waking the requests that wait for memory.
func (m *memory) release(n int64) {
	m.mu.Lock()
	m.requests -= n
	m.broadcastLocked()
	m.mu.Unlock()
}

// tryAcquire takes n bytes for a request if they are free now.
func (m *memory) tryAcquire(n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.fitsLocked(n) {
		select {
		case m.short <- struct{}{}:
		default:
		}
		return false
	}
	m.requests += n
	return true
}

// acquire takes n bytes for a request, waiting for them until ctx ends; evict is asked to
// unload idle models when they are not free. r's own reservation is what the request can
// never have: a need beyond the budget less it is ErrNoMemory at once.
func (m *memory) acquire(ctx context.Context, r *resident, what string, n int64, evict func(need int64)) (release func(), err error) {
	if m.budget > 0 && n > m.budget-r.fixed {
		return nil, fmt.Errorf("%w: %s needs %s of memory, and the budget of %s leaves %s beside %s",
			ErrNoMemory, what, humanize.IBytes(uint64(n)), humanize.IBytes(uint64(m.budget)),
			humanize.IBytes(uint64(max(0, m.budget-r.fixed))), r.name)
	}
	evicted := false
	for {
		m.mu.Lock()
		if m.fitsLocked(n) {
			m.requests += n
			m.mu.Unlock()
			r.inUse.Add(n)
			return sync.OnceFunc(func() {
				r.inUse.Add(-n)
				m.release(n)
			}), nil
		}
		changed := m.changed
		m.mu.Unlock()
		if !evicted && evict != nil {
			evicted = true
			evict(n)
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waited for %s of memory for %s: %w", ErrBusy, humanize.IBytes(uint64(n)), what, ctx.Err())
		}
	}
}

// modelMemory is a model's view of the budget, for its Batcher (infer.Memory): the charges
// of its decoding inputs, counted in the model's request memory too.
type modelMemory struct {
	m     *memory
	inUse *atomic.Int64
}

// TryAcquire implements infer.Memory.
func (mm modelMemory) TryAcquire(n int64) bool {
	if !mm.m.tryAcquire(n) {
		return false
	}
	mm.inUse.Add(n)
	return true
}

// Release implements infer.Memory.
func (mm modelMemory) Release(n int64) {
	mm.inUse.Add(-n)
	mm.m.release(n)
}
