package plain

import (
	"errors"
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/convert"
)

// weight is a prepared weight: rows × cols, row-major, unpacked. F32 and BF16 keep float32
// rows (BF16 values rounded to bfloat16 and widened back, which is exact); Int8 keeps the
// int8 rows and one scale per row.
type weight struct {
	owner      *Backend
	dt         backend.DType
	rows, cols int
	f          []float32 // F32, BF16
	q          []int8    // Int8
	scale      []float32 // Int8, one per row
}

// Dims returns the weight's rows (outputs) and columns (inputs).
func (w *weight) Dims() (rows, cols int) { return w.rows, w.cols }

// DType returns the weight's type.
func (w *weight) DType() backend.DType { return w.dt }

// Bytes is the memory the weight's values occupy: 4 bytes a value for F32 and BF16 (kept
// widened), 1 a value plus 4 a row for Int8.
func (w *weight) Bytes() int64 {
	return int64(4*len(w.f) + len(w.q) + 4*len(w.scale))
}

// loadRows is how many rows Prepare reads from a Source at once.
const loadRows = 64

// Prepare makes a weight of src in type dt.
func (b *Backend) Prepare(src backend.Source, dt backend.DType) (backend.Weight, error) {
	b.live("Prepare")
	n, k := src.Dims()
	if n <= 0 || k <= 0 {
		return nil, fmt.Errorf("plain: cannot prepare a %d×%d weight", n, k)
	}
	if n > math.MaxInt/4/k {
		return nil, fmt.Errorf("plain: a %d×%d weight: %w", n, k, backend.ErrNoMemory)
	}
	w := &weight{owner: b, dt: dt, rows: n, cols: k}
	if err := w.load(src); err != nil {
		return nil, err
	}
	b.bytes.Add(w.Bytes())
	return w, nil
}

// Reload rewrites w's values from src, which must have w's dimensions. On an error w is
// unchanged.
func (b *Backend) Reload(w backend.Weight, src backend.Source) error {
	b.live("Reload")
	pw := b.weight("Reload", w)
	if n, k := src.Dims(); n != pw.rows || k != pw.cols {
		return fmt.Errorf("plain: reload of a %d×%d weight from a %d×%d source", pw.rows, pw.cols, n, k)
	}
	return pw.load(src)
}

// WeightBytes is the memory all prepared weights occupy.
func (b *Backend) WeightBytes() int64 { return b.bytes.Load() }

// weight returns w as this backend's weight, or panics.
func (b *Backend) weight(op string, w backend.Weight) *weight {
	pw, ok := w.(*weight)
	if !ok || pw == nil {
		panic(fmt.Sprintf("plain: %s: weight is not a plain weight (%T)", op, w))
	}
	if pw.owner != b {
		panic(fmt.Sprintf("plain: %s: weight belongs to another plain backend", op))
	}
	return pw
}

// load reads w's values from src (of w's dimensions) into new storage and installs it only
// when every row has been read.
func (w *weight) load(src backend.Source) error {
	n, k := w.rows, w.cols
	switch w.dt {
	case backend.F32, backend.BF16:
		f := make([]float32, n*k)
		for r0 := 0; r0 < n; r0 += loadRows {
			r1 := min(n, r0+loadRows)
			if err := src.Float32(r0, f[r0*k:r1*k]); err != nil {
				return fmt.Errorf("plain: rows %d..%d of a %d×%d weight: %w", r0, r1, n, k, err)
			}
		}
		if w.dt == backend.BF16 {
			for i, v := range f {
				f[i] = widenBF16(toBF16(v))
			}
		}
		w.f = f
	case backend.Int8:
		q, scale := make([]int8, n*k), make([]float32, n)
		qs, quantized := src.(backend.QuantizedSource)
		var rows []float32
		if !quantized {
			rows = make([]float32, min(n, loadRows)*k)
		}
		for r0 := 0; r0 < n; r0 += loadRows {
			r1 := min(n, r0+loadRows)
			if quantized {
				if err := qs.Int8(r0, q[r0*k:r1*k], scale[r0:r1]); err != nil {
					return fmt.Errorf("plain: int8 rows %d..%d of a %d×%d weight: %w", r0, r1, n, k, err)
				}
				continue
			}
			blk := rows[:(r1-r0)*k]
			if err := src.Float32(r0, blk); err != nil {
				return fmt.Errorf("plain: rows %d..%d of a %d×%d weight: %w", r0, r1, n, k, err)
			}
			for r := r0; r < r1; r++ {
				qr, sr := convert.QuantizeInt8(blk[(r-r0)*k:(r-r0+1)*k], 1, k)
				copy(q[r*k:(r+1)*k], qr)
				scale[r] = sr[0]
			}
		}
		w.q, w.scale = q, scale
	default:
		return errors.New("plain: unknown weight type " + w.dt.String())
	}
	return nil
}

// toBF16 rounds f to the nearest bfloat16, ties to even (torch's .to(torch.bfloat16)); NaN
// stays a quiet NaN. The same rule as backend/cpu/kernels.ToBF16.
func toBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// widenBF16 widens a bfloat16 exactly to float32.
func widenBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
