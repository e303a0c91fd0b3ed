// Package plain is the reference backend: every operation of backend.Backend written as its
// definition reads, in straightforward loops over host memory, with no packing and no
// goroutines. It is the readable twin of backend/cpu and the backend a new one is checked
// against; it checks every operand (shapes, views against their buffers, ownership,
// overlaps) and panics with a message naming the operation and the operand.
//
// Numerics. Products and sums are float32, each product and each sum rounded to float32
// (written with explicit conversions, so that the compiler never fuses them into a
// multiply-add): a dot product is the chain acc = float32(acc + float32(a·b)) over the inner
// dimension in increasing order, which is what the generic path of backend/cpu computes.
// float64 appears exactly where the contract puts it: the mean of squares of RMSNorm, the
// softmax normaliser and the LogSumExp sum. Int8 products follow the CPU: activations
// quantized per row, an exact int32 dot product, one float scaling (see mulRow).
//
// Determinism. Every row's result (a group's, for Attention) depends only on that row's
// operands: batched and unbatched calls give the same bits, and there is one worker
// (Threads is 1). The arithmetic is the same on every architecture, bit for bit. The one
// exception is the transcendental functions of package math (Exp in the softmax, LogSumExp
// and silu, Log, Tanh, Erf): Go promises them within an ulp of float64, not the same last
// bit everywhere (amd64's Exp takes an FMA path where the CPU has one), so a float32 value
// rounded from one of them can differ between architectures when the float64 result lies
// within an ulp of a float32 rounding boundary, about once in 2^29 values.
package plain

import (
	"fmt"
	"sync/atomic"

	"github.com/t5zoo/t5zoo/backend"
)

// Backend is the plain reference backend. Its methods are safe for concurrent use.
type Backend struct {
	closed atomic.Bool
	bytes  atomic.Int64 // prepared weights
}

var _ backend.Backend = (*Backend)(nil)

// New returns a plain backend.
func New() *Backend { return new(Backend) }

// Name returns "plain".
func (b *Backend) Name() string { return "plain" }

// Threads returns 1: every operation runs on the caller alone.
func (b *Backend) Threads() int { return 1 }

// Close marks the backend closed; any later operation panics. The memory is the garbage
// collector's to take back.
func (b *Backend) Close() error {
	b.closed.Store(true)
	return nil
}

// live panics if b is closed.
func (b *Backend) live(op string) {
	if b.closed.Load() {
		panic(fmt.Sprintf("plain: %s after Close", op))
	}
}

// buffer is the storage of tensors: Tensor.Buf holds a *buffer.
type buffer struct {
	owner *Backend
	data  []float32
}

// Alloc returns a new zeroed rows × cols tensor (Stride = cols, Off = 0).
func (b *Backend) Alloc(rows, cols int) backend.Tensor {
	b.live("Alloc")
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("plain: Alloc of %d×%d", rows, cols))
	}
	return backend.Tensor{Rows: rows, Cols: cols, Stride: cols, Buf: &buffer{owner: b, data: make([]float32, rows*cols)}}
}

// Upload copies src (row-major, exactly dst.Rows × dst.Cols values) into dst.
func (b *Backend) Upload(dst backend.Tensor, src []float32) {
	b.live("Upload")
	b.check("Upload", "dst", dst)
	if len(src) != dst.Rows*dst.Cols {
		panic(fmt.Sprintf("plain: Upload: %d values into a %d×%d tensor", len(src), dst.Rows, dst.Cols))
	}
	for i := range dst.Rows {
		copy(row(dst, i), src[i*dst.Cols:(i+1)*dst.Cols])
	}
}

// Download copies src into dst (row-major, exactly src.Rows × src.Cols values).
func (b *Backend) Download(dst []float32, src backend.Tensor) {
	b.live("Download")
	b.check("Download", "src", src)
	if len(dst) != src.Rows*src.Cols {
		panic(fmt.Sprintf("plain: Download: a %d×%d tensor into %d values", src.Rows, src.Cols, len(dst)))
	}
	for i := range src.Rows {
		copy(dst[i*src.Cols:(i+1)*src.Cols], row(src, i))
	}
}

// check panics unless t is a view this backend can use: non-negative dimensions, a stride of
// at least Cols, and, when t has elements, a buffer of this backend that holds every one.
func (b *Backend) check(op, name string, t backend.Tensor) {
	if t.Rows < 0 || t.Cols < 0 || t.Off < 0 || t.Stride < t.Cols {
		panic(fmt.Sprintf("plain: %s: %s is a %d×%d view with stride %d at offset %d", op, name, t.Rows, t.Cols, t.Stride, t.Off))
	}
	if t.Buf == nil && t.Empty() {
		return // the zero Tensor, or a view of no elements
	}
	buf, ok := t.Buf.(*buffer)
	if !ok || buf == nil {
		panic(fmt.Sprintf("plain: %s: %s is not a plain tensor (Buf is %T)", op, name, t.Buf))
	}
	if buf.owner != b {
		panic(fmt.Sprintf("plain: %s: %s belongs to another plain backend", op, name))
	}
	if t.Empty() {
		return
	}
	if end := t.Off + (t.Rows-1)*t.Stride + t.Cols; end > len(buf.data) {
		panic(fmt.Sprintf("plain: %s: %s, a %d×%d view with stride %d at offset %d, ends at %d, past its buffer of %d values",
			op, name, t.Rows, t.Cols, t.Stride, t.Off, end, len(buf.data)))
	}
}

// row is row i of the checked tensor t.
func row(t backend.Tensor, i int) []float32 {
	s := t.Off + i*t.Stride
	return t.Buf.(*buffer).data[s : s+t.Cols : s+t.Cols]
}

// same reports whether a and b are the same view.
func same(a, b backend.Tensor) bool {
	return a.Buf == b.Buf && a.Off == b.Off && a.Stride == b.Stride && a.Rows == b.Rows && a.Cols == b.Cols
}

// overlap reports whether the checked views a and b share an element.
func overlap(a, b backend.Tensor) bool {
	if a.Empty() || b.Empty() || a.Buf != b.Buf {
		return false
	}
	aEnd, bEnd := a.Off+(a.Rows-1)*a.Stride+a.Cols, b.Off+(b.Rows-1)*b.Stride+b.Cols
	if aEnd <= b.Off || bEnd <= a.Off {
		return false
	}
	// Row i of a is [s, s+a.Cols); the rows r of b that can meet it start in
	// (s-b.Cols, s+a.Cols).
	for i := range a.Rows {
		s := a.Off + i*a.Stride
		lo := max(0, floorDiv(s-b.Cols-b.Off, b.Stride))
		hi := min(b.Rows-1, floorDiv(s+a.Cols-1-b.Off, b.Stride))
		for r := lo; r <= hi; r++ {
			t := b.Off + r*b.Stride
			if t < s+a.Cols && s < t+b.Cols {
				return true
			}
		}
	}
	return false
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// disjoint panics if the views a and b share an element.
func disjoint(op, na, nb string, a, b backend.Tensor) {
	if overlap(a, b) {
		panic(fmt.Sprintf("plain: %s: %s and %s overlap", op, na, nb))
	}
}

// sameOrDisjoint panics if a and b overlap without being the same view (an element-wise
// operation may work in place, never on shifted operands).
func sameOrDisjoint(op, na, nb string, a, b backend.Tensor) {
	if !same(a, b) && overlap(a, b) {
		panic(fmt.Sprintf("plain: %s: %s and %s overlap without being the same view", op, na, nb))
	}
}
