package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/backend/cpu"
)

// ErrInvalidInput is wrapped by every error about a request's token ids or options (empty
// or over-long inputs, ids outside the vocabulary, impossible decoding options).
var ErrInvalidInput = errors.New("infer: invalid input")

// ErrCheckpoint is wrapped by every error about a model directory's contents (missing,
// extra or mis-shaped tensors, unsupported dtypes).
var ErrCheckpoint = errors.New("infer: invalid checkpoint")

// ErrNumerics is wrapped by the errors of a forward pass whose outputs are not finite (NaN or
// infinite logits or hidden states): a broken checkpoint, not a bad request.
var ErrNumerics = errors.New("infer: model outputs are not finite")

// numericsError reports non-finite outputs of the named pass.
func numericsError(what string) error {
	return fmt.Errorf("%w: %s is NaN or infinite (the checkpoint's weights are broken)", ErrNumerics, what)
}

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// DefaultMaxTokens is the MaxTokens a zero LoadOptions gets.
const DefaultMaxTokens = 2048

// LoadOptions configure Load and New. The zero value works.
type LoadOptions struct {
	// Threads is the number of workers a matrix product or attention pass uses, the caller
	// included; 0 means GOMAXPROCS. The workers persist for the model's life: between
	// products they spin briefly, then park.
	Threads int
	// MaxTokens bounds the length of an encoder input, of a scoring target and of a
	// generation (MaxNewTokens); longer requests are errors. 0 means DefaultMaxTokens.
	MaxTokens int
	// DType is the type the weight matrices are kept and multiplied in: catalog.F32,
	// catalog.BF16 (activations stay float32, weights are widened in registers) or
	// catalog.Int8 (weights per output row as convert.QuantizeInt8 does, activations
	// quantized per row on the fly). "" keeps the checkpoint's own type (float16 is
	// widened to float32). Layer norms and position biases stay float32.
	DType catalog.DType
	// Kernels names the kernel path: "generic", "avx2" or "avx512"; "" picks the fastest
	// this CPU runs. A path the CPU cannot run is an error.
	Kernels string
	// MemoryLimit bounds the memory the load may take (LoadBytes): a model that needs more
	// is refused, wrapping ErrMemory, before anything is allocated. 0 means the memory the
	// system can give now (SystemMemory); negative means no check.
	MemoryLimit int64
}

// Model is a loaded T5 model. Its methods are safe for concurrent use; the Sequences they
// create are not (one call at a time per Sequence). Close releases the weights and the
// workers.
type Model struct {
	shape     catalog.Shape
	actName   string
	act       func(float32) float32
	gated     bool
	be        *cpu.CPU
	ks        kernels.Set
	pool      *cpu.Pool
	dtype     catalog.DType
	maxTokens int

	dModel, inner, dkv, heads int

	embed   *cpu.Packed // shared.weight, vocab × d_model: the input embedding (and the LM head when tied)
	lmHead  *cpu.Packed
	lmScale float32 // d_model^-0.5 when tied, else 1

	encBucket []int32 // bucket of relative position r (key - query) at r+maxDist
	decBucket []int32
	maxDist   int       // relative positions are clamped to ±maxDist (beyond it buckets saturate)
	encBias   []float32 // relative attention bias as stored, [bucket][head]
	decBias   []float32
	encRel    []float32 // [head][2·maxDist+1]: the bias of each clamped relative position
	decRel    []float32

	enc      []encoderLayer
	encFinal []float32
	dec      []decoderLayer
	decFinal []float32

	work     workList  // forward-pass scratch
	attnJobs sync.Pool // *attnJob, the parallel attention passes' jobs
	normJobs sync.Pool // *normJob, the parallel RMS norms' jobs
	closed   sync.Once
	cleanup  runtime.Cleanup
}

type encoderLayer struct {
	attnNorm []float32
	qkv, o   *cpu.Packed // q, k, v stacked (3·inner × d_model); o
	ffnNorm  []float32
	ffn      ffn
}

type decoderLayer struct {
	selfNorm       []float32
	qkv, selfO     *cpu.Packed
	crossNorm      []float32
	crossQ, crossO *cpu.Packed
	crossKV        *cpu.Packed // cross-attention k then v, stacked (2·inner × d_model): applied to the encoder output once
	ffnNorm        []float32
	ffn            ffn
}

// ffn holds wi (wi_0 when gated), wi_1 (gated only) and wo.
type ffn struct{ wi, wi1, wo *cpu.Packed }

// Shape returns the model's hyper-parameters as read from config.json.
func (m *Model) Shape() catalog.Shape { return m.shape }

// DType returns the type the weight matrices are kept in.
func (m *Model) DType() catalog.DType { return m.dtype }

// Kernels names the kernel path the model runs ("generic", "avx2" or "avx512").
func (m *Model) Kernels() string { return m.ks.Path().String() }

// Threads is the number of workers a product uses, the caller included.
func (m *Model) Threads() int { return m.pool.Threads() }

// WeightBytes is the memory the packed weight matrices occupy (padding included), plus the
// float32 vectors (layer norms, position biases).
func (m *Model) WeightBytes() int64 {
	n := m.be.Bytes()
	vec := func(v []float32) { n += 4 * int64(len(v)) }
	for _, l := range m.enc {
		vec(l.attnNorm)
		vec(l.ffnNorm)
	}
	for _, l := range m.dec {
		vec(l.selfNorm)
		vec(l.crossNorm)
		vec(l.ffnNorm)
	}
	vec(m.encFinal)
	vec(m.decFinal)
	vec(m.encBias)
	vec(m.decBias)
	return n
}

// Close releases the weights and stops the workers. The Model and everything obtained from
// it must not be used afterwards.
func (m *Model) Close() error {
	var err error
	m.closed.Do(func() {
		m.cleanup.Stop()
		err = m.be.Close()
	})
	return err
}

// Load reads the model in dir through convert.Open: config.json (HF T5Config keys, HF
// defaults for absent ones) and model.safetensors (or its shards, or pytorch_model.bin),
// and packs every weight matrix for the kernels in opts.DType (by default the
// checkpoint's). The weight files are closed before Load returns: the packed copies replace
// them. A missing, unexpected or mis-shaped tensor is an error that names it.
func Load(ctx context.Context, dir string, opts LoadOptions) (*Model, error) {
	ck, err := convert.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %w", dir, ErrCheckpoint, err)
	}
	defer ck.Close()
	src, err := newCheckpointTensors(ck)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	defer src.close()
	if opts.DType == "" {
		opts.DType = src.dtype()
	}
	m, err := newModel(ctx, ck.Shape, src, opts)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return m, nil
}

// DefaultDType is the weight type Load gives the checkpoint in dir when LoadOptions.DType
// is empty: the type its matrices are stored in, f16 widened to f32. It reads only the
// checkpoint's headers.
func DefaultDType(dir string) (catalog.DType, error) {
	ck, err := convert.Open(dir)
	if err != nil {
		return "", fmt.Errorf("load %s: %w: %w", dir, ErrCheckpoint, err)
	}
	defer ck.Close()
	src, err := newCheckpointTensors(ck)
	if err != nil {
		return "", fmt.Errorf("load %s: %w", dir, err)
	}
	defer src.close()
	return src.dtype(), nil
}

// FillFunc writes rows [row0, row0+len(dst)/cols) of the named tensor, one of
// shape.Tensors() in HF's layout, as float32 into dst.
type FillFunc func(name string, row0 int, dst []float32) error

// New builds a model of the given shape from weights supplied in memory, row block by row
// block (so that no whole float32 tensor needs to exist at once), packed in opts.DType
// ("" means float32). Benchmarks build random-weight models of any catalog shape this way.
func New(ctx context.Context, shape catalog.Shape, fill FillFunc, opts LoadOptions) (*Model, error) {
	if err := shape.Validate(); err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	if opts.DType == "" {
		opts.DType = catalog.F32
	}
	m, err := newModel(ctx, shape, fillTensors{shape: shape, fill: fill}, opts)
	if err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	return m, nil
}

func newModel(ctx context.Context, shape catalog.Shape, src tensors, opts LoadOptions) (*Model, error) {
	actName, gated, err := shape.Activation()
	if err != nil {
		return nil, err
	}
	if err := checkLoadMemory(shape, opts); err != nil {
		return nil, err
	}
	var dt cpu.DType
	switch opts.DType {
	case catalog.F32:
		dt = cpu.F32
	case catalog.BF16:
		dt = cpu.BF16
	case catalog.Int8:
		dt = cpu.Int8
	default:
		return nil, fmt.Errorf("%w: weights in %q are not supported by the kernels (use f32, bf16 or int8)", ErrInvalidInput, opts.DType)
	}
	path, err := kernels.ParsePath(opts.Kernels)
	if err != nil {
		return nil, err
	}
	ks, err := kernels.New(path)
	if err != nil {
		return nil, err
	}
	m := &Model{
		shape:     shape,
		actName:   actName,
		act:       activation(actName),
		gated:     gated,
		ks:        ks,
		dtype:     opts.DType,
		maxTokens: opts.MaxTokens,
		dModel:    shape.DModel,
		inner:     shape.InnerDim(),
		dkv:       shape.DKV,
		heads:     shape.NumHeads,
		lmScale:   1,
	}
	if m.maxTokens <= 0 {
		m.maxTokens = DefaultMaxTokens
	}
	if shape.TieWordEmbeddings {
		m.lmScale = float32(math.Pow(float64(shape.DModel), -0.5))
	}
	m.be = cpu.NewCPU(cpu.Options{Threads: opts.Threads, DType: dt, Kernels: ks})
	m.pool = m.be.Pool()
	if err := m.bind(ctx, src); err != nil {
		m.be.Close()
		if errors.Is(err, cpu.ErrNoMemory) {
			return nil, fmt.Errorf("%w: %w", ErrMemory, err)
		}
		return nil, err
	}
	m.buildBuckets()
	// Workers of a model dropped without Close are stopped when it is collected.
	m.cleanup = runtime.AddCleanup(m, func(be *cpu.CPU) { be.Close() }, m.be)
	return m, nil
}
