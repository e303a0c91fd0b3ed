// Package cpu is the CPU backend (backend.Backend): weights packed once at load time into
// the panel layout of package kernels (float32, bfloat16 or per-row int8), in memory outside
// the Go heap; a driver that runs the kernel tiles over an activations × weightᵀ product on
// a pool of persistent workers; attention built on the same tiles over keys and values
// packed per head; RMS norm, softmax with the position bias, GELU and int8 quantization on
// the vector kernels, the ReLU and the residual additions fused into the products' stores.
// Its tensors are Go memory, so Download is a copy and Logits writes the caller's rows
// directly.
//
// Every weight is used the way PyTorch's nn.Linear stores it: an out×in row-major matrix W,
// applied as y = x·Wᵀ.
//
// Determinism promise: each output element is one chain over the inner dimension in
// increasing order (kernels.TileF32), whatever the number of rows, the tiling or the number
// of workers, so a row's (and an attention group's) result never depends on the other rows
// of the batch or on the thread count: batched and unbatched calls give the same bits. The
// AVX2 and AVX-512 paths give the same bits as each other; the generic path rounds
// differently (fused multiply-adds where the assembly has them, within 2 ulp elsewhere).
//
// A backward pass (fine-tuning) adds its operations beside these, on the same tiles: dX is a
// product with the packed weight, dW a product of activations that a second packing of the
// incoming gradient turns into the same kernel calls.
package cpu

import (
	"github.com/t5zoo/t5zoo/backend"
	"sync"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// DType is the storage type of packed weights (backend.DType).
type DType = backend.DType

// The packed weight types.
const (
	F32  = backend.F32
	BF16 = backend.BF16
	Int8 = backend.Int8
)

// Source is a row-major rows×cols matrix to pack (backend.Source).
type Source = backend.Source

// QuantizedSource is a Source stored as int8 rows with per-row scales (backend.QuantizedSource).
type QuantizedSource = backend.QuantizedSource

// Options configure New. The zero value runs the generic kernels on GOMAXPROCS workers.
type Options struct {
	// Threads is the number of workers a product uses, the caller included; 0 means
	// GOMAXPROCS.
	Threads int
	// Kernels is the kernel path; the zero Set is the generic Go code.
	Kernels kernels.Set
	// SpinMicros is how long an idle worker spins waiting for the next product before it
	// parks; 0 means DefaultSpinMicros, a negative value parks at once.
	SpinMicros int
}

// DefaultSpinMicros is the default spin of an idle worker: long enough to span the gaps
// between the products of one decoder step, short enough not to hold a core between steps.
const DefaultSpinMicros = 200

// Backend is the CPU backend (backend.Backend) on the kernels of package kernels. Its
// methods are safe for concurrent use; Close releases the packed weights and stops the
// workers.
type Backend struct {
	k        kernels.Set
	pool     *Pool
	arena    *arena
	quant    sync.Pool // *quantBuf, the scratch of int8 products
	jobs     sync.Pool // *gemmJob, the parallel products' jobs
	attnJobs sync.Pool // *attnJob
	normJobs sync.Pool // *normJob
	actJobs  sync.Pool // *actJob
	attn     scratchList
}

var _ backend.Backend = (*Backend)(nil)

// New returns a CPU backend with its own workers.
func New(o Options) *Backend {
	spin := o.SpinMicros
	if spin == 0 {
		spin = DefaultSpinMicros
	}
	return &Backend{k: o.Kernels, pool: NewPool(o.Threads, spin), arena: newArena()}
}

// Name is the kernel path ("generic", "avx2" or "avx512").
func (c *Backend) Name() string { return c.k.Path().String() }

// Threads is the number of workers a product uses, the caller included.
func (c *Backend) Threads() int { return c.pool.Threads() }

// Kernels returns the kernel Set the backend runs.
func (c *Backend) Kernels() kernels.Set { return c.k }

// Pool returns the backend's workers.
func (c *Backend) Pool() *Pool { return c.pool }

// Close stops the workers and frees every packed weight; nothing prepared by c may be used
// afterwards.
func (c *Backend) Close() error {
	c.pool.Close()
	return c.arena.free()
}

// WeightBytes reports the memory the packed weights occupy.
func (c *Backend) WeightBytes() int64 { return c.arena.size() }
