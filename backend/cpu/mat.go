// Package mat holds the engine's matrix products: weights packed once at load time into the
// panel layout of package kernels (float32, bfloat16 or per-row int8), in memory outside the
// Go heap, and a driver that runs the kernel tiles over an activations × weightᵀ product on a
// pool of persistent workers.
//
// Every weight is used the way PyTorch's nn.Linear stores it: an out×in row-major matrix W,
// applied as y = x·Wᵀ. The model computes nothing else with weights.
//
// Determinism: each output element is one chain over the inner dimension in increasing order
// (kernels.TileF32), whatever the number of rows m, the tiling or the number of workers, so
// a row's result never depends on the other rows of the batch or on the thread count.
package cpu

import (
	"fmt"
	"sync"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// DType is the storage type of packed weights.
type DType uint8

// The packed weight types.
const (
	F32  DType = iota // float32
	BF16              // bfloat16, widened exactly to float32 in the kernels
	Int8              // symmetric int8 per output row (convert.QuantizeInt8's scheme), activations quantized per row
)

// String returns "f32", "bf16" or "int8".
func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Source is a row-major rows×cols matrix to pack (an HF weight: one row per output feature).
type Source interface {
	Dims() (rows, cols int)
	// Float32 writes rows [r0, r0+len(dst)/cols) as float32 values into dst.
	Float32(r0 int, dst []float32) error
}

// QuantizedSource is a Source stored as int8 rows with one float32 scale per row (the
// scheme of convert.QuantizeInt8); Int8 weights are packed from it unchanged.
type QuantizedSource interface {
	Source
	// Int8 writes rows [r0, r0+len(scales)) into q (cols values each) and their scales.
	Int8(r0 int, q []int8, scales []float32) error
}

// Backend computes the model's matrix products.
type Backend interface {
	// Prepare packs a weight for MulT. It is called once per weight at load time.
	Prepare(src Source) (*Packed, error)
	// MulT sets dst (m×r) = op(dst, a (m×c) · wᵀ) for a weight of r×c. It panics if the
	// slices are too short for the dimensions.
	MulT(dst, a []float32, m int, w *Packed, op kernels.Op)
}

var _ Backend = (*CPU)(nil)

// Options configure NewCPU. The zero value packs float32 weights for the best kernel path
// on all CPUs.
type Options struct {
	// Threads is the number of workers a product uses, the caller included; 0 means
	// GOMAXPROCS.
	Threads int
	// DType is the type weights are packed in.
	DType DType
	// Kernels is the kernel path; the zero Set is the generic Go code.
	Kernels kernels.Set
	// SpinMicros is how long an idle worker spins waiting for the next product before it
	// parks; 0 means DefaultSpinMicros, a negative value parks at once.
	SpinMicros int
}

// DefaultSpinMicros is the default spin of an idle worker: long enough to span the gaps
// between the products of one decoder step, short enough not to hold a core between steps.
const DefaultSpinMicros = 200

// CPU is the Backend of package kernels. Its methods are safe for concurrent use; Close
// releases the packed weights and stops the workers.
type CPU struct {
	k     kernels.Set
	dt    DType
	pool  *Pool
	arena *arena
	quant sync.Pool // *quantBuf, the scratch of int8 products
	jobs  sync.Pool // *gemmJob, the parallel products' jobs
}

// NewCPU returns a CPU backend with its own workers.
func NewCPU(o Options) *CPU {
	spin := o.SpinMicros
	if spin == 0 {
		spin = DefaultSpinMicros
	}
	return &CPU{k: o.Kernels, dt: o.DType, pool: NewPool(o.Threads, spin), arena: newArena()}
}

// Kernels returns the kernel Set the backend runs.
func (c *CPU) Kernels() kernels.Set { return c.k }

// DType returns the type weights are packed in.
func (c *CPU) DType() DType { return c.dt }

// Pool returns the backend's workers, for the model's other parallel loops.
func (c *CPU) Pool() *Pool { return c.pool }

// Close stops the workers and frees every packed weight; nothing prepared by c may be used
// afterwards.
func (c *CPU) Close() error {
	c.pool.Close()
	return c.arena.free()
}

// Bytes reports the memory the packed weights occupy.
func (c *CPU) Bytes() int64 { return c.arena.size() }
