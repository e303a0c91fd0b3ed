package infer

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer/internal/mat"
)

// ErrInvalidInput is wrapped by every error about a request's token ids or options (empty
// or over-long inputs, ids outside the vocabulary, impossible decoding options).
var ErrInvalidInput = errors.New("infer: invalid input")

// ErrCheckpoint is wrapped by every error about a model directory's contents (missing,
// extra or mis-shaped tensors, unsupported dtypes).
var ErrCheckpoint = errors.New("infer: invalid checkpoint")

// DefaultMaxTokens is the MaxTokens a zero LoadOptions gets.
const DefaultMaxTokens = 2048

// LoadOptions configure Load. The zero value works.
type LoadOptions struct {
	// Threads bounds the goroutines one matrix product or attention pass uses; 0 means
	// GOMAXPROCS.
	Threads int
	// MaxTokens bounds the length of an encoder input, of a scoring target and of a
	// generation (MaxNewTokens); longer requests are errors. 0 means DefaultMaxTokens.
	MaxTokens int
}

// Model is a loaded T5 model. Its methods are safe for concurrent use; the Sequences they
// create are not (one call at a time per Sequence). Close releases the mapped weights.
type Model struct {
	shape     catalog.Shape
	act       func(float32) float32
	gated     bool
	be        mat.Backend
	workers   int
	maxTokens int

	dModel, inner, dkv, heads int

	embed   []float32 // vocab × d_model, the shared input embedding
	lmHead  mat.Weight
	lmScale float32 // d_model^-0.5 when tied, else 1

	encBias, decBias []float32 // relative attention bias, [head][bucket]
	encBucket        []int32   // bucket of relative position r (key - query) at r+maxDist
	decBucket        []int32
	maxDist          int // relative positions are clamped to ±maxDist (beyond it buckets saturate)

	enc      []encoderLayer
	encFinal []float32
	dec      []decoderLayer
	decFinal []float32

	ck *convert.Checkpoint // holds the mapped weight files
}

type attention struct{ q, k, v, o mat.Weight }

// ffn holds wi (wi_0 when gated), wi_1 (gated only) and wo.
type ffn struct{ wi, wi1, wo mat.Weight }

type encoderLayer struct {
	attnNorm []float32
	attn     attention
	ffnNorm  []float32
	ffn      ffn
}

type decoderLayer struct {
	selfNorm  []float32
	self      attention
	crossNorm []float32
	cross     attention
	ffnNorm   []float32
	ffn       ffn
}

// Shape returns the model's hyper-parameters as read from config.json.
func (m *Model) Shape() catalog.Shape { return m.shape }

// Close releases the memory-mapped weight files. The Model and everything obtained from it
// must not be used afterwards.
func (m *Model) Close() error {
	if m.ck == nil {
		return nil
	}
	err := m.ck.Close()
	m.ck = nil
	return err
}

// Load reads the model in dir through convert.Open: config.json (HF T5Config keys, HF
// defaults for absent ones) and model.safetensors (or its shards, or pytorch_model.bin). F32
// weights are used in place from the mapped files when aligned; F16 and BF16 ones are
// widened, int8 ones dequantized. A missing, unexpected or mis-shaped tensor is an error that
// names it.
func Load(ctx context.Context, dir string, opts LoadOptions) (*Model, error) {
	ck, err := convert.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %w", dir, ErrCheckpoint, err)
	}
	shape := ck.Shape
	act, gated, err := shape.Activation()
	if err != nil {
		ck.Close()
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	m := &Model{
		shape:     shape,
		act:       activation(act),
		gated:     gated,
		workers:   mat.Workers(opts.Threads),
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
	m.be = mat.Go{Workers: m.workers}
	if shape.TieWordEmbeddings {
		m.lmScale = float32(math.Pow(float64(shape.DModel), -0.5))
	}
	m.ck = ck
	if err := m.bind(ctx, ck); err != nil {
		m.Close()
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	m.buildBuckets()
	return m, nil
}
