package infer

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/safetensors"
	"github.com/t5zoo/t5zoo/backend/cpu"
)

// tensors supplies a model's weights by HF name.
type tensors interface {
	// matrix returns the named rows×cols weight for packing.
	matrix(name string, rows, cols int) (cpu.Source, error)
	// vector returns a float32 copy of the named tensor, which must have the given shape.
	vector(name string, shape ...int) ([]float32, error)
}

// bind packs every weight the shape calls for. Within a layer q, k and v are packed as one
// matrix, and the cross-attention k and v of every decoder layer as one more, so that each is
// one product.
func (m *Model) bind(ctx context.Context, src tensors) error {
	s := m.shape
	d, inner, ff, V := s.DModel, m.inner, s.DFF, s.VocabSize
	var err error
	check := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	pack := func(parts ...string) *cpu.Packed {
		if err != nil {
			return nil
		}
		srcs := make([]cpu.Source, len(parts))
		for i, name := range parts {
			rows, cols := d, inner // o
			switch {
			case name == "shared.weight" || name == "lm_head.weight":
				rows, cols = V, d
			case hasSuffix(name, ".q.weight", ".k.weight", ".v.weight"):
				rows, cols = inner, d
			case hasSuffix(name, "wi.weight", "wi_0.weight", "wi_1.weight"):
				rows, cols = ff, d
			case hasSuffix(name, "wo.weight"):
				rows, cols = d, ff
			}
			var e error
			if srcs[i], e = src.matrix(name, rows, cols); e != nil {
				check(e)
				return nil
			}
		}
		var one cpu.Source = srcs[0]
		if len(srcs) > 1 {
			one = stack(srcs)
		}
		w, e := m.be.Prepare(one)
		check(e)
		return w
	}
	vec := func(name string, shape ...int) []float32 {
		if err != nil {
			return nil
		}
		v, e := src.vector(name, shape...)
		check(e)
		return v
	}
	ffnW := func(prefix string) ffn {
		p := prefix + ".DenseReluDense."
		if m.gated {
			return ffn{wi: pack(p + "wi_0.weight"), wi1: pack(p + "wi_1.weight"), wo: pack(p + "wo.weight")}
		}
		return ffn{wi: pack(p + "wi.weight"), wo: pack(p + "wo.weight")}
	}
	m.embed = pack("shared.weight")
	m.lmHead = m.embed
	if !s.TieWordEmbeddings {
		m.lmHead = pack("lm_head.weight")
	}
	buckets, heads := s.RelativeAttentionNumBuckets, s.NumHeads
	encBias := vec("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", buckets, heads)
	decBias := vec("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", buckets, heads)
	m.enc = make([]encoderLayer, s.NumLayers)
	for i := range m.enc {
		if e := ctx.Err(); e != nil {
			return e
		}
		p := fmt.Sprintf("encoder.block.%d.layer.", i)
		a := p + "0.SelfAttention."
		m.enc[i] = encoderLayer{
			attnNorm: vec(p+"0.layer_norm.weight", d),
			qkv:      pack(a+"q.weight", a+"k.weight", a+"v.weight"),
			o:        pack(a + "o.weight"),
			ffnNorm:  vec(p+"1.layer_norm.weight", d),
			ffn:      ffnW(p + "1"),
		}
	}
	m.encFinal = vec("encoder.final_layer_norm.weight", d)
	m.dec = make([]decoderLayer, s.NumDecoderLayers)
	for i := range m.dec {
		if e := ctx.Err(); e != nil {
			return e
		}
		p := fmt.Sprintf("decoder.block.%d.layer.", i)
		a, c := p+"0.SelfAttention.", p+"1.EncDecAttention."
		m.dec[i] = decoderLayer{
			selfNorm:  vec(p+"0.layer_norm.weight", d),
			qkv:       pack(a+"q.weight", a+"k.weight", a+"v.weight"),
			selfO:     pack(a + "o.weight"),
			crossNorm: vec(p+"1.layer_norm.weight", d),
			crossQ:    pack(c + "q.weight"),
			crossO:    pack(c + "o.weight"),
			crossKV:   pack(c+"k.weight", c+"v.weight"),
			ffnNorm:   vec(p+"2.layer_norm.weight", d),
			ffn:       ffnW(p + "2"),
		}
	}
	m.decFinal = vec("decoder.final_layer_norm.weight", d)
	if err != nil {
		return err
	}
	m.encBias, m.decBias = encBias, decBias
	return nil
}

func hasSuffix(s string, suffixes ...string) bool {
	for _, x := range suffixes {
		if len(s) >= len(x) && s[len(s)-len(x):] == x {
			return true
		}
	}
	return false
}

// stacked is the vertical concatenation of sources with the same column count.
type stacked struct {
	parts []cpu.Source
	rows  int
	cols  int
}

func stack(parts []cpu.Source) cpu.Source {
	s := &stacked{parts: parts}
	quantized := true
	for _, p := range parts {
		r, c := p.Dims()
		s.rows += r
		s.cols = c
		_, q := p.(cpu.QuantizedSource)
		quantized = quantized && q
	}
	if quantized {
		return stackedQ{s}
	}
	return s
}

func (s *stacked) Dims() (int, int) { return s.rows, s.cols }

func (s *stacked) Float32(r0 int, dst []float32) error {
	n := len(dst) / s.cols
	for _, p := range s.parts {
		pr, _ := p.Dims()
		if r0 < pr && n > 0 {
			take := min(n, pr-r0)
			if err := p.Float32(r0, dst[:take*s.cols]); err != nil {
				return err
			}
			dst, n, r0 = dst[take*s.cols:], n-take, pr
		}
		r0 -= pr
	}
	return nil
}

// stackedQ is a stack of quantized sources (every part quantized).
type stackedQ struct{ *stacked }

func (s stackedQ) Int8(r0 int, q []int8, scales []float32) error {
	n := len(scales)
	for _, p := range s.parts {
		pr, _ := p.Dims()
		if r0 < pr && n > 0 {
			take := min(n, pr-r0)
			if err := p.(cpu.QuantizedSource).Int8(r0, q[:take*s.cols], scales[:take]); err != nil {
				return err
			}
			q, scales, n, r0 = q[take*s.cols:], scales[take:], n-take, pr
		}
		r0 -= pr
	}
	return nil
}

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

func (c *checkpointTensors) vector(name string, shape ...int) ([]float32, error) {
	if _, _, err := c.raw(name, shape); err != nil {
		return nil, err
	}
	v, _, err := c.ck.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return slices.Clone(v), nil
}

func (c *checkpointTensors) matrix(name string, rows, cols int) (cpu.Source, error) {
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

func (f fillTensors) matrix(name string, rows, cols int) (cpu.Source, error) {
	return fillRows{name: name, rows: rows, cols: cols, fill: f.fill}, nil
}

func (f fillTensors) vector(name string, shape ...int) ([]float32, error) {
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
