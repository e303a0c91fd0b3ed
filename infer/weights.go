package infer

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// checkpointTensors reads the tensors of a convert.Checkpoint; int8 scales come from a second
// handle on the weight files (convert.Checkpoint exposes only the config's tensors).
type checkpointTensors struct {
	ck     *convert.Checkpoint
	scales convert.Source // nil unless some matrix is int8
	shared safetensors.DType
}

func newCheckpointTensors(ck *convert.Checkpoint) (*checkpointTensors, error) {
	c := &checkpointTensors{ck: ck}
	st, _ := ck.Stored("shared.weight")
	c.shared = st.DType
	for _, t := range ck.Shape.Tensors() {
		if st, _ := ck.Stored(t.Name); st.DType == safetensors.I8 {
			src, err := convert.OpenSource(ck.Dir)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
			}
			c.scales = src
			break
		}
	}
	return c, nil
}

func (c *checkpointTensors) close() {
	if c.scales != nil {
		c.scales.Close()
	}
}

// dtype is the type the checkpoint's matrices are stored in, as a kernel type.
func (c *checkpointTensors) dtype() catalog.DType {
	switch c.shared {
	case safetensors.BF16:
		return catalog.BF16
	case safetensors.I8:
		return catalog.Int8
	}
	return catalog.F32
}

func (c *checkpointTensors) raw(name string, shape []int) (convert.TensorMeta, []byte, error) {
	st, ok := c.ck.Stored(name)
	if !ok || !slices.Equal(st.Shape, shape) {
		return st, nil, fmt.Errorf("%w: tensor %q: want shape %v", ErrCheckpoint, name, shape)
	}
	_, b, err := c.ck.Raw(name)
	if err != nil {
		return st, nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return st, b, nil
}

func (c *checkpointTensors) Vector(name string, shape ...int) ([]float32, error) {
	if _, _, err := c.raw(name, shape); err != nil {
		return nil, err
	}
	v, _, err := c.ck.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return slices.Clone(v), nil
}

func (c *checkpointTensors) Matrix(name string, rows, cols int) (backend.Source, error) {
	st, b, err := c.raw(name, []int{rows, cols})
	if err != nil {
		return nil, err
	}
	r := rawRows{name: name, dtype: st.DType, b: b, rows: rows, cols: cols}
	switch st.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16:
		return r, nil
	case safetensors.I8:
		sb, err := c.scales.Raw(st.Name + convert.ScaleSuffix)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
		scales, _, err := safetensors.Float32s(safetensors.F32, sb)
		if err != nil || len(scales) != rows {
			return nil, fmt.Errorf("%w: scales of %q: %d values for %d rows (%v)", ErrCheckpoint, name, len(scales), rows, err)
		}
		r.scales = slices.Clone(scales)
		return quantRows{r}, nil
	}
	return nil, fmt.Errorf("%w: tensor %q has dtype %s", ErrCheckpoint, name, st.DType)
}

// rawRows decodes rows of a stored matrix (little-endian F32, F16, BF16, or I8 with per-row
// scales) on demand.
type rawRows struct {
	name       string
	dtype      safetensors.DType
	b          []byte
	rows, cols int
	scales     []float32
}

func (r rawRows) Dims() (int, int) { return r.rows, r.cols }

func (r rawRows) Float32(r0 int, dst []float32) error {
	n := len(dst)
	if r0 < 0 || r0*r.cols+n > r.rows*r.cols {
		return fmt.Errorf("infer: rows %d+%d of %q out of range", r0, n/r.cols, r.name)
	}
	off := r0 * r.cols
	switch r.dtype {
	case safetensors.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.b[4*(off+i):]))
		}
	case safetensors.BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(r.b[2*(off+i):])) << 16)
		}
	case safetensors.F16:
		for i := range dst {
			dst[i] = safetensors.F16ToF32(binary.LittleEndian.Uint16(r.b[2*(off+i):]))
		}
	case safetensors.I8:
		for i := range dst {
			dst[i] = float32(int8(r.b[off+i])) * r.scales[(off+i)/r.cols]
		}
	}
	return nil
}

// quantRows is an int8 matrix, packed unchanged for int8 kernels.
type quantRows struct{ rawRows }

func (r quantRows) Int8(r0 int, q []int8, scales []float32) error {
	n := len(scales)
	if r0 < 0 || r0+n > r.rows || len(q) < n*r.cols {
		return fmt.Errorf("infer: rows %d+%d of %q out of range", r0, n, r.name)
	}
	copy(q, unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(r.b))), len(r.b))[r0*r.cols:(r0+n)*r.cols])
	copy(scales, r.scales[r0:r0+n])
	return nil
}

// fillTensors supplies tensors from a FillFunc.
type fillTensors struct {
	shape catalog.Shape
	fill  FillFunc
}

type fillRows struct {
	name       string
	rows, cols int
	fill       FillFunc
}

func (f fillRows) Dims() (int, int) { return f.rows, f.cols }

func (f fillRows) Float32(r0 int, dst []float32) error {
	if err := f.fill(f.name, r0, dst); err != nil {
		return fmt.Errorf("fill %s rows %d+%d: %w", f.name, r0, len(dst)/f.cols, err)
	}
	return nil
}

func (f fillTensors) Matrix(name string, rows, cols int) (backend.Source, error) {
	return fillRows{name: name, rows: rows, cols: cols, fill: f.fill}, nil
}

func (f fillTensors) Vector(name string, shape ...int) ([]float32, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	if err := f.fill(name, 0, v); err != nil {
		return nil, fmt.Errorf("fill %s: %w", name, err)
	}
	return v, nil
}
