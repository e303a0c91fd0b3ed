package t5

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/catalog"
)

// ErrInvalidInput is wrapped by every error about a request's token ids or options (empty
// or over-long inputs, ids outside the vocabulary, impossible decoding options).
var ErrInvalidInput = errors.New("invalid input")

// ErrCheckpoint is wrapped by every error about a model's weights (missing, extra or
// mis-shaped tensors, unsupported dtypes).
var ErrCheckpoint = errors.New("invalid checkpoint")

// ErrNumerics is wrapped by the errors of a forward pass whose outputs are not finite (NaN or
// infinite logits or hidden states): a broken checkpoint, not a bad request.
var ErrNumerics = errors.New("model outputs are not finite")

// NumericsError reports non-finite outputs of the named pass.
func NumericsError(what string) error {
	return fmt.Errorf("%w: %s is NaN or infinite (the checkpoint's weights are broken)", ErrNumerics, what)
}

// Weights supplies a model's tensors by their HF names (those of catalog.Shape.Tensors()).
type Weights interface {
	// Matrix returns the named rows × cols weight, to prepare on the backend.
	Matrix(name string, rows, cols int) (backend.Source, error)
	// Vector returns a float32 copy of the named tensor, which must have the given shape.
	Vector(name string, shape ...int) ([]float32, error)
}

// Options configure New.
type Options struct {
	// DType is the type the weight matrices are prepared in.
	DType backend.DType
	// MaxTokens bounds the length of an encoder input and of a decoder sequence; it also
	// bounds the relative position tables. It must be positive.
	MaxTokens int
	// LoRA, when set, binds low-rank adapters from the weights (see LoRA): training then
	// updates the adapters only. The inference passes run the base model without them.
	LoRA *LoRA
}

// Model is a T5 model's weights bound on a backend, and its forward passes. Its methods are
// safe for concurrent use; the Sequences they create are not (one call at a time per
// Sequence). It does not own the backend: whoever made the backend closes it.
type Model struct {
	shape     catalog.Shape
	be        backend.Backend
	act       backend.Activation
	gated     bool
	dtype     backend.DType
	maxTokens int
	eps       float32

	dModel, inner, dkv, heads int

	embed   backend.Weight // shared.weight, vocab × d_model: the input embedding (and the LM head when tied)
	lmHead  backend.Weight
	lmScale float32 // d_model^-0.5 when tied, else 1

	encBucket []int32 // bucket of relative position r (key - query) at r+maxDist
	decBucket []int32
	maxDist   int       // relative positions are clamped to ±maxDist (beyond it buckets saturate)
	encBias   []float32 // relative attention bias as stored, [bucket][head]
	decBias   []float32
	encRel    backend.Tensor // heads × (2·maxDist+1): the bias of each clamped relative position
	decRel    backend.Tensor

	enc      []encoderLayer
	encFinal backend.Tensor
	dec      []decoderLayer
	decFinal backend.Tensor
	vecBytes int64 // the float32 vectors: layer norms and position biases as stored

	work workList // forward-pass scratch

	tl trainLayout // the trainable parameters, their bound weights and the LoRA adapters
}

type encoderLayer struct {
	attnNorm backend.Tensor
	qkv, o   backend.Weight // q, k, v stacked (3·inner × d_model); o
	ffnNorm  backend.Tensor
	ffn      ffn
}

type decoderLayer struct {
	selfNorm       backend.Tensor
	qkv, selfO     backend.Weight
	crossNorm      backend.Tensor
	crossQ, crossO backend.Weight
	crossKV        backend.Weight // cross-attention k then v, stacked (2·inner × d_model): applied to the encoder output once
	ffnNorm        backend.Tensor
	ffn            ffn
}

// ffn holds wi (wi_0 when gated), wi_1 (gated only) and wo.
type ffn struct{ wi, wi1, wo backend.Weight }

// New binds the weights of shape from src on be, in opts.DType, and tabulates the relative
// position biases.
func New(ctx context.Context, shape catalog.Shape, be backend.Backend, src Weights, opts Options) (*Model, error) {
	actName, gated, err := shape.Activation()
	if err != nil {
		return nil, err
	}
	act, err := backend.ParseActivation(actName)
	if err != nil {
		return nil, err
	}
	if opts.MaxTokens <= 0 {
		return nil, fmt.Errorf("t5: MaxTokens %d must be positive", opts.MaxTokens)
	}
	m := &Model{
		shape:     shape,
		be:        be,
		act:       act,
		gated:     gated,
		dtype:     opts.DType,
		maxTokens: opts.MaxTokens,
		eps:       float32(shape.LayerNormEpsilon),
		dModel:    shape.DModel,
		inner:     shape.InnerDim(),
		dkv:       shape.DKV,
		heads:     shape.NumHeads,
		lmScale:   1,
	}
	if shape.TieWordEmbeddings {
		m.lmScale = float32(math.Pow(float64(shape.DModel), -0.5))
	}
	if err := m.bind(ctx, src); err != nil {
		return nil, err
	}
	m.buildBuckets()
	if err := m.bindTrain(src, opts.LoRA); err != nil {
		return nil, err
	}
	return m, nil
}

// Shape returns the model's hyper-parameters.
func (m *Model) Shape() catalog.Shape { return m.shape }

// WeightBytes is the memory the prepared weight matrices occupy (padding included), plus
// the float32 vectors (layer norms, position biases as stored).
func (m *Model) WeightBytes() int64 { return m.be.WeightBytes() + m.vecBytes }

// TableBytes is the memory of the position tables derived from the biases: the bias of each
// clamped relative position per head, and the bucket of each.
func (m *Model) TableBytes() int64 {
	n := int64(2*m.maxDist + 1)
	return 4 * (2*int64(m.heads)*n + 2*n)
}

// bind prepares every weight the shape calls for, by the names and shapes of
// shape.Tensors().
func (m *Model) bind(ctx context.Context, src Weights) error {
	s := m.shape
	type entry struct {
		rows, cols int
		matrix     bool
	}
	known := map[string]entry{}
	for _, t := range s.Tensors() {
		e := entry{rows: t.Shape[0], matrix: t.Matrix}
		if len(t.Shape) > 1 {
			e.cols = t.Shape[1]
		}
		known[t.Name] = e
	}
	var err error
	fail := func(e error) {
		if err == nil && e != nil {
			err = e
		}
	}
	// pack prepares the named matrices stacked vertically as one weight.
	pack := func(names ...string) backend.Weight {
		if err != nil {
			return nil
		}
		parts := make([]backend.Source, len(names))
		for i, name := range names {
			e, ok := known[name]
			if !ok || !e.matrix {
				fail(fmt.Errorf("%w: the shape has no matrix %q", ErrCheckpoint, name))
				return nil
			}
			var e2 error
			if parts[i], e2 = src.Matrix(name, e.rows, e.cols); e2 != nil {
				fail(e2)
				return nil
			}
		}
		one := parts[0]
		if len(parts) > 1 {
			one = stack(parts)
		}
		w, e := m.be.Prepare(one, m.dtype)
		fail(e)
		return w
	}
	// vec reads a float32 tensor and, when upload, puts it on the backend as a 1 × n tensor
	// (the layer norms).
	vec := func(name string, upload bool) ([]float32, backend.Tensor) {
		if err != nil {
			return nil, backend.Tensor{}
		}
		e, ok := known[name]
		if !ok || e.matrix {
			fail(fmt.Errorf("%w: the shape has no vector %q", ErrCheckpoint, name))
			return nil, backend.Tensor{}
		}
		shape := []int{e.rows}
		if e.cols > 0 {
			shape = append(shape, e.cols)
		}
		v, e2 := src.Vector(name, shape...)
		if e2 != nil {
			fail(e2)
			return nil, backend.Tensor{}
		}
		m.vecBytes += 4 * int64(len(v))
		if !upload {
			return v, backend.Tensor{}
		}
		t := m.be.Alloc(1, len(v))
		m.be.Upload(t, v)
		return v, t
	}
	norm := func(name string) backend.Tensor { _, t := vec(name, true); return t }
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
	m.encBias, _ = vec("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", false)
	m.decBias, _ = vec("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", false)
	m.enc = make([]encoderLayer, s.NumLayers)
	for i := range m.enc {
		if e := ctx.Err(); e != nil {
			return e
		}
		p := fmt.Sprintf("encoder.block.%d.layer.", i)
		a := p + "0.SelfAttention."
		m.enc[i] = encoderLayer{
			attnNorm: norm(p + "0.layer_norm.weight"),
			qkv:      pack(a+"q.weight", a+"k.weight", a+"v.weight"),
			o:        pack(a + "o.weight"),
			ffnNorm:  norm(p + "1.layer_norm.weight"),
			ffn:      ffnW(p + "1"),
		}
	}
	m.encFinal = norm("encoder.final_layer_norm.weight")
	m.dec = make([]decoderLayer, s.NumDecoderLayers)
	for i := range m.dec {
		if e := ctx.Err(); e != nil {
			return e
		}
		p := fmt.Sprintf("decoder.block.%d.layer.", i)
		a, c := p+"0.SelfAttention.", p+"1.EncDecAttention."
		m.dec[i] = decoderLayer{
			selfNorm:  norm(p + "0.layer_norm.weight"),
			qkv:       pack(a+"q.weight", a+"k.weight", a+"v.weight"),
			selfO:     pack(a + "o.weight"),
			crossNorm: norm(p + "1.layer_norm.weight"),
			crossQ:    pack(c + "q.weight"),
			crossO:    pack(c + "o.weight"),
			crossKV:   pack(c+"k.weight", c+"v.weight"),
			ffnNorm:   norm(p + "2.layer_norm.weight"),
			ffn:       ffnW(p + "2"),
		}
	}
	m.decFinal = norm("decoder.final_layer_norm.weight")
	return err
}

// stacked is the vertical concatenation of sources with the same column count.
type stacked struct {
	parts []backend.Source
	rows  int
	cols  int
}

// stack returns the vertical concatenation of sources with the same column count, as one
// source (quantized when every part is).
func stack(parts []backend.Source) backend.Source {
	s := &stacked{parts: parts}
	quantized := true
	for _, p := range parts {
		r, c := p.Dims()
		s.rows += r
		s.cols = c
		_, q := p.(backend.QuantizedSource)
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
			if err := p.(backend.QuantizedSource).Int8(r0, q[:take*s.cols], scales[:take]); err != nil {
				return err
			}
			q, scales, n, r0 = q[take*s.cols:], scales[take:], n-take, pr
		}
		r0 -= pr
	}
	return nil
}

// DecodeStepBytes is the weight memory one decoder step reads: every decoder layer's
// matrices except the cross-attention keys and values (computed once per input), and the LM
// head.
func (m *Model) DecodeStepBytes() int64 {
	var n int64
	for _, l := range m.dec {
		n += l.qkv.Bytes() + l.selfO.Bytes() + l.crossQ.Bytes() + l.crossO.Bytes()
		n += l.ffn.wi.Bytes() + l.ffn.wo.Bytes()
		if l.ffn.wi1 != nil {
			n += l.ffn.wi1.Bytes()
		}
	}
	return n + m.lmHead.Bytes()
}
