package cpu

import (
	"fmt"
	"unsafe"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/convert"
)

const panel = kernels.Panel

// Packed is a weight of N rows (outputs) and K columns (inputs) in the panel layout of
// package kernels: ceil(N/32) panels, zero-padded past N (and for int8 past K to a
// multiple of 4).
type Packed struct {
	dt     DType
	n, k   int
	panels int
	kq     int       // int8: groups of four inputs
	f32    []float32 // [panel][k][32]
	bf16   []uint16  // [panel][k][32]
	i8     []int8    // [panel][kq][32][4]
	scale  []float32 // int8: per output row, panels·32 values
	corr   []int32   // int8: 128·Σ_k q per output row (for the offset activations of VNNI)
}

// Dims returns the weight's rows (outputs) and columns (inputs).
func (w *Packed) Dims() (rows, cols int) { return w.n, w.k }

// DType returns the packed type.
func (w *Packed) DType() DType { return w.dt }

// Bytes is the packed size, padding included.
func (w *Packed) Bytes() int64 {
	return int64(4*len(w.f32) + 2*len(w.bf16) + len(w.i8) + 4*len(w.scale) + 4*len(w.corr))
}

// Row writes row j of the weight (as float32: exact for f32 and bf16, q·scale for int8) into
// dst[:K]; the model's embedding lookups read the tied weight this way.
func (w *Packed) Row(j int, dst []float32) {
	if j < 0 || j >= w.n || len(dst) < w.k {
		panic(fmt.Sprintf("infer: mat: row %d of a %d×%d weight into %d values", j, w.n, w.k, len(dst)))
	}
	p, l := j/panel, j%panel
	switch w.dt {
	case F32:
		base := w.f32[p*w.k*panel:]
		for k := range w.k {
			dst[k] = base[k*panel+l]
		}
	case BF16:
		base := w.bf16[p*w.k*panel:]
		for k := range w.k {
			dst[k] = kernels.BF16(base[k*panel+l])
		}
	case Int8:
		base := w.i8[p*w.kq*4*panel:]
		s := w.scale[j]
		for k := range w.k {
			dst[k] = float32(base[(k/4)*4*panel+l*4+k%4]) * s
		}
	}
}

// Prepare packs src in dt (backend.Backend). Int8 weights come from a QuantizedSource
// unchanged, or are quantized per row with convert.QuantizeInt8 (so they match a converted
// checkpoint).
func (c *Backend) Prepare(src Source, dt DType) (backend.Weight, error) {
	w, err := pack(src, dt, c.arena.alloc)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Reload repacks w in place from src (backend.Backend): the weights of a model in training.
func (c *Backend) Reload(w backend.Weight, src Source) error {
	p := w.(*Packed)
	if n, k := src.Dims(); n != p.n || k != p.k {
		return fmt.Errorf("cpu: reload a %d×%d weight from a %d×%d source", p.n, p.k, n, k)
	}
	return p.fill(src)
}

// PackStrided packs the n×k float32 weight W[j][kk] = a[j·lda+kk] into buf, which must hold
// PackedLen(n, k) values; the encoder's attention packs its keys this way, straight from the
// q/k/v product, a decoder cache its first feed, cross-attention its keys once.
func PackStrided(buf, a []float32, lda, n, k int) Packed {
	w := Packed{dt: F32, n: n, k: k, panels: (n + panel - 1) / panel}
	w.f32 = buf[:w.panels*k*panel]
	for p := range w.panels {
		dst := w.f32[p*k*panel : (p+1)*k*panel]
		cnt := min(panel, n-p*panel)
		for l := range cnt {
			row := a[(p*panel+l)*lda:]
			for kk, v := range row[:k] {
				dst[kk*panel+l] = v
			}
		}
		if cnt < panel {
			for kk := range k {
				clear(dst[kk*panel+cnt : (kk+1)*panel])
			}
		}
	}
	return w
}

// PackStridedT packs the n×k float32 weight W[j][kk] = a[kk·lda+j] (the k rows of a hold
// Wᵀ) into buf, which must hold PackedLen(n, k) values; the encoder's attention packs its
// values this way.
func PackStridedT(buf, a []float32, lda, n, k int) Packed {
	w := Packed{dt: F32, n: n, k: k, panels: (n + panel - 1) / panel}
	w.f32 = buf[:w.panels*k*panel]
	for p := range w.panels {
		dst := w.f32[p*k*panel : (p+1)*k*panel]
		cnt := min(panel, n-p*panel)
		for kk := range k {
			d := dst[kk*panel : (kk+1)*panel]
			copy(d, a[kk*lda+p*panel:kk*lda+p*panel+cnt])
			clear(d[cnt:])
		}
	}
	return w
}

// PackedLen is the float32 length PackStrided and PackStridedT need for an n×k weight.
func PackedLen(n, k int) int { return (n + panel - 1) / panel * panel * k }

// PackedBytes is the memory Prepare takes for an n×k weight in dt (Packed.Bytes of the
// result), so that a load can be priced before anything is allocated.
func PackedBytes(n, k int, dt DType) int64 {
	panels := int64((n + panel - 1) / panel)
	switch dt {
	case BF16:
		return 2 * panels * int64(k) * panel
	case Int8:
		return panels*int64((k+3)/4)*4*panel + 8*panels*panel
	}
	return 4 * panels * int64(k) * panel
}

func pack(src Source, dt DType, alloc func(int) ([]byte, error)) (*Packed, error) {
	n, k := src.Dims()
	if n <= 0 || k <= 0 {
		return nil, fmt.Errorf("infer: mat: cannot pack a %d×%d matrix", n, k)
	}
	w := &Packed{dt: dt, n: n, k: k, panels: (n + panel - 1) / panel}
	var allocErr error
	take := func(n int) []byte {
		b, err := alloc(n)
		if err != nil && allocErr == nil {
			allocErr = err
		}
		return b
	}
	switch dt {
	case F32:
		w.f32 = asF32(take(4 * w.panels * k * panel))
	case BF16:
		w.bf16 = asU16(take(2 * w.panels * k * panel))
	case Int8:
		w.kq = (k + 3) / 4
		w.i8 = asI8(take(w.panels * w.kq * 4 * panel))
		w.scale = asF32(take(4 * w.panels * panel))
		w.corr = asI32(take(4 * w.panels * panel))
	}
	if allocErr != nil {
		return nil, allocErr
	}
	if err := w.fill(src); err != nil {
		return nil, err
	}
	return w, nil
}

// fill writes src's values into w's panels (the padding stays zero).
func (w *Packed) fill(src Source) error {
	n, k, dt := w.n, w.k, w.dt
	rows := make([]float32, panel*k)
	switch dt {
	case F32, BF16:
		for p := range w.panels {
			r := min(panel, n-p*panel)
			if err := src.Float32(p*panel, rows[:r*k]); err != nil {
				return err
			}
			for l := range r {
				row := rows[l*k : (l+1)*k]
				if dt == F32 {
					dst := w.f32[p*k*panel:]
					for kk, v := range row {
						dst[kk*panel+l] = v
					}
				} else {
					dst := w.bf16[p*k*panel:]
					for kk, v := range row {
						dst[kk*panel+l] = kernels.ToBF16(v)
					}
				}
			}
		}
	case Int8:
		q := make([]int8, panel*k)
		qs, quantized := src.(QuantizedSource)
		for p := range w.panels {
			r := min(panel, n-p*panel)
			scales := w.scale[p*panel : p*panel+r]
			if quantized {
				if err := qs.Int8(p*panel, q[:r*k], scales); err != nil {
					return err
				}
			} else {
				if err := src.Float32(p*panel, rows[:r*k]); err != nil {
					return err
				}
				for l := range r {
					ql, sl := convert.QuantizeInt8(rows[l*k:(l+1)*k], 1, k)
					copy(q[l*k:(l+1)*k], ql)
					scales[l] = sl[0]
				}
			}
			dst := w.i8[p*w.kq*4*panel:]
			for l := range r {
				var sum int32
				for kk, v := range q[l*k : (l+1)*k] {
					dst[(kk/4)*4*panel+l*4+kk%4] = v
					sum += int32(v)
				}
				w.corr[p*panel+l] = 128 * sum
			}
		}
	default:
		return fmt.Errorf("cpu: unknown dtype %v", dt)
	}
	return nil
}

func asF32(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
func asU16(b []byte) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}
func asI8(b []byte) []int8 {
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}
func asI32(b []byte) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// prepare is Prepare with the concrete result, for this package's tests.
func (c *Backend) prepare(src Source, dt DType) (*Packed, error) { return pack(src, dt, c.arena.alloc) }
