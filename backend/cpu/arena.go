package cpu

import (
	"github.com/t5zoo/t5zoo/backend"
	"sync"
)

// ErrNoMemory is wrapped by the errors of an allocation the operating system refused.
var ErrNoMemory = backend.ErrNoMemory

// arena owns the packed weights' memory: outside the Go heap where the OS allows
// (anonymous mappings), so that the weights neither count towards the garbage collector's
// heap goal (which would let garbage grow to the size of the model before a collection) nor
// get scanned, and are returned to the OS at once by free.
type arena struct {
	mu     sync.Mutex
	blocks [][]byte
	total  int64
}

func newArena() *arena { return &arena{} }

// alloc returns n zeroed bytes aligned to 64 bytes.
func (a *arena) alloc(n int) ([]byte, error) {
	b, err := mapAnon(n)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.blocks = append(a.blocks, b)
	a.total += int64(len(b))
	a.mu.Unlock()
	return b[:n:n], nil
}

func (a *arena) size() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

func (a *arena) free() error {
	a.mu.Lock()
	blocks := a.blocks
	a.blocks, a.total = nil, 0
	a.mu.Unlock()
	var first error
	for _, b := range blocks {
		if err := unmapAnon(b); err != nil && first == nil {
			first = err
		}
	}
	return first
}
