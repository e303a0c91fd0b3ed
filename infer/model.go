package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/cpu"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/backend/plain"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/t5"
)

// ErrInvalidInput is wrapped by every error about a request's token ids or options (empty
// or over-long inputs, ids outside the vocabulary, impossible decoding options).
var ErrInvalidInput = t5.ErrInvalidInput

// ErrCheckpoint is wrapped by every error about a model directory's contents (missing,
// extra or mis-shaped tensors, unsupported dtypes).
var ErrCheckpoint = t5.ErrCheckpoint

// ErrNumerics is wrapped by the errors of a forward pass whose outputs are not finite (NaN or
// infinite logits or hidden states): a broken checkpoint, not a bad request.
var ErrNumerics = t5.ErrNumerics

// numericsError reports non-finite outputs of the named pass.
func numericsError(what string) error { return t5.NumericsError(what) }

// finite reports whether x is neither NaN nor infinite.
func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// EncoderOutput is one input after the encoder: its final hidden states and, for every
// decoder layer, the cross-attention keys and values computed from them once (t5).
type EncoderOutput = t5.EncoderOutput

// Sequence is one decoder hypothesis and its self-attention cache (t5).
type Sequence = t5.Sequence

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
	// Backend names the backend the model runs on: "cpu" (the default for "") or "plain",
	// the pure-Go reference twin (slow; for checking numerics).
	Backend string
	// Kernels names the CPU backend's kernel path: "generic", "avx2" or "avx512"; "" picks
	// the fastest this CPU runs. A path the CPU cannot run is an error.
	Kernels string
	// MemoryLimit bounds the memory the load may take (LoadBytes): a model that needs more
	// is refused, wrapping ErrMemory, before anything is allocated. 0 means the memory the
	// system can give now (SystemMemory); negative means no check.
	MemoryLimit int64
}

// Model is a loaded T5 model: the one T5 definition (package t5) bound on a backend, with
// decoding, scoring and encoding on top. Its methods are safe for concurrent use; the
// Sequences they create are not (one call at a time per Sequence). Close releases the
// weights and the workers.
type Model struct {
	t         *t5.Model
	be        backend.Backend
	shape     catalog.Shape
	gated     bool
	dtype     catalog.DType
	maxTokens int

	dModel, inner, dkv, heads, nDec int

	closed  sync.Once
	cleanup runtime.Cleanup
}

// Shape returns the model's hyper-parameters as read from config.json.
func (m *Model) Shape() catalog.Shape { return m.shape }

// DType returns the type the weight matrices are kept in.
func (m *Model) DType() catalog.DType { return m.dtype }

// Kernels names the code path the model runs: the CPU's kernel path ("generic", "avx2" or
// "avx512"), or "plain".
func (m *Model) Kernels() string { return m.be.Name() }

// Threads is the number of workers a product uses, the caller included.
func (m *Model) Threads() int { return m.be.Threads() }

// WeightBytes is the memory the packed weight matrices occupy (padding included), plus the
// float32 vectors (layer norms, position biases).
func (m *Model) WeightBytes() int64 { return m.t.WeightBytes() }

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

func newModel(ctx context.Context, shape catalog.Shape, src t5.Weights, opts LoadOptions) (*Model, error) {
	_, gated, err := shape.Activation()
	if err != nil {
		return nil, err
	}
	if err := checkLoadMemory(shape, opts); err != nil {
		return nil, err
	}
	dt, err := matDType(opts.DType)
	if err != nil {
		return nil, err
	}
	be, err := newBackend(opts)
	if err != nil {
		return nil, err
	}
	m := &Model{
		be:        be,
		shape:     shape,
		gated:     gated,
		dtype:     opts.DType,
		maxTokens: opts.MaxTokens,
		dModel:    shape.DModel,
		inner:     shape.InnerDim(),
		dkv:       shape.DKV,
		heads:     shape.NumHeads,
		nDec:      shape.NumDecoderLayers,
	}
	if m.maxTokens <= 0 {
		m.maxTokens = DefaultMaxTokens
	}
	m.t, err = t5.New(ctx, shape, be, src, t5.Options{DType: dt, MaxTokens: m.maxTokens})
	if err != nil {
		be.Close()
		if errors.Is(err, backend.ErrNoMemory) {
			return nil, fmt.Errorf("%w: %w", ErrMemory, err)
		}
		return nil, err
	}
	// Workers of a model dropped without Close are stopped when it is collected.
	m.cleanup = runtime.AddCleanup(m, func(be backend.Backend) { be.Close() }, m.be)
	return m, nil
}

// newBackend makes the backend opts name.
func newBackend(opts LoadOptions) (backend.Backend, error) {
	switch opts.Backend {
	case "", "cpu":
		path, err := kernels.ParsePath(opts.Kernels)
		if err != nil {
			return nil, err
		}
		ks, err := kernels.New(path)
		if err != nil {
			return nil, err
		}
		return cpu.New(cpu.Options{Threads: opts.Threads, Kernels: ks}), nil
	case "plain":
		if opts.Kernels != "" {
			return nil, fmt.Errorf("%w: kernels %q: the plain backend has no kernel paths", ErrInvalidInput, opts.Kernels)
		}
		return plain.New(), nil
	}
	return nil, fmt.Errorf("%w: unknown backend %q (cpu or plain)", ErrInvalidInput, opts.Backend)
}

// checkIDs reports the first problem with one token sequence.
func (m *Model) checkIDs(what string, ids []int) error { return m.t.CheckIDs(what, ids) }

// checkInputs reports the first problem with a batch of encoder inputs.
func (m *Model) checkInputs(inputs [][]int) error { return m.t.CheckInputs(inputs) }

// RunEncoder encodes inputs (one batch; their lengths may differ) and computes each one's
// cross-attention keys and values for every decoder layer.
func (m *Model) RunEncoder(ctx context.Context, inputs [][]int) ([]*EncoderOutput, error) {
	if err := m.checkInputs(inputs); err != nil {
		return nil, err
	}
	sizes := make([]int, len(inputs))
	for i, in := range inputs {
		sizes[i] = len(in)
	}
	outs := make([]*EncoderOutput, 0, len(inputs))
	for _, c := range chunks(sizes, batchTokens) {
		o, err := m.t.RunEncoder(ctx, inputs[c[0]:c[1]])
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

// Step feeds tokens[i] to seqs[i] for every i in one decoder pass and returns the next-token
// logits, len(seqs) × vocab_size row-major, in logits if it has the capacity. The sequences
// may belong to different inputs and have different lengths; a sequence may appear only
// once. On error no sequence has changed.
func (m *Model) Step(ctx context.Context, seqs []*Sequence, tokens []int, logits []float32) ([]float32, error) {
	return m.t.Step(ctx, seqs, tokens, logits)
}

// Feed feeds tokens[i] (one or more ids) to seqs[i] in one decoder pass, with causal
// attention among the new tokens as in teacher forcing, and returns the logits after every
// fed token: a row per token, sequence after sequence, each vocab_size wide, in logits if it
// has the capacity. On error no sequence has changed.
func (m *Model) Feed(ctx context.Context, seqs []*Sequence, tokens [][]int, logits []float32) ([]float32, error) {
	return m.t.Feed(ctx, seqs, tokens, logits)
}

// Argmax returns the index of the first largest value of a logits row, the token greedy
// decoding picks; for callers that drive Step themselves.
func (m *Model) Argmax(logits []float32) int { return m.be.Argmax(logits) }

// logSumExp is log Σ exp(logits): the exponentials in float32, their sum in float64.
func (m *Model) logSumExp(logits []float32) float64 { return m.be.LogSumExp(logits) }

// logSoftmaxAt returns log_softmax(logits)[id].
func (m *Model) logSoftmaxAt(logits []float32, id int) float64 {
	return float64(logits[id]) - m.logSumExp(logits)
}

// argmax returns the index of the first largest value (scalar; tests use it as the
// reference of Model.Argmax).
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
