package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Shape holds every hyper-parameter that fixes a T5 model's tensors and numerics. Field names
// follow Hugging Face's T5Config so that a config.json maps onto it one to one.
type Shape struct {
	DModel           int `json:"d_model"`
	DFF              int `json:"d_ff"`
	DKV              int `json:"d_kv"`
	NumHeads         int `json:"num_heads"`
	NumLayers        int `json:"num_layers"` // encoder blocks
	NumDecoderLayers int `json:"num_decoder_layers"`
	VocabSize        int `json:"vocab_size"` // embedding rows, not the tokenizer's size

	// FeedForwardProj is HF's "[gated-]ACT" string: "relu" (T5 v1.0, the published shapes) or
	// "gated-gelu" (T5 v1.1, Flan-T5); see Activation.
	FeedForwardProj string `json:"feed_forward_proj"`
	// TieWordEmbeddings shares the input embedding with the LM head and scales the decoder
	// output by d_model^-0.5 before it (mesh-tensorflow's convention, kept by HF).
	TieWordEmbeddings bool `json:"tie_word_embeddings"`

	RelativeAttentionNumBuckets  int     `json:"relative_attention_num_buckets"`
	RelativeAttentionMaxDistance int     `json:"relative_attention_max_distance"`
	LayerNormEpsilon             float64 `json:"layer_norm_epsilon"`
	DropoutRate                  float64 `json:"dropout_rate"`
	NPositions                   int     `json:"n_positions"` // nominal; T5 has no position table

	PadTokenID          int `json:"pad_token_id"`
	EOSTokenID          int `json:"eos_token_id"`
	DecoderStartTokenID int `json:"decoder_start_token_id"`
}

// ErrInvalidShape is returned (wrapped) for hyper-parameters no T5 model can have.
var ErrInvalidShape = errors.New("catalog: invalid shape")

// Limits on dimensions keep every cost computation exact in int64 (FLOPs up to MaxSeqLen
// tokens included) and reject typos such as nl100000 early. They are generous: the largest
// published shapes have d_ff 65536 (xxl), 128 heads and 64 layers per stack.
const (
	maxLayers = 256
	maxDim    = 1 << 17
	maxVocab  = 1 << 21
	// MaxSeqLen is the longest input or target the cost model prices.
	MaxSeqLen = 1 << 16
)

// DefaultShape returns the T5 v1.0 defaults shared by every published t5-efficient
// checkpoint (facts/catalog_facts.md §2.2), with the t5-efficient-small dimensions.
func DefaultShape() Shape {
	return Shape{
		DModel: 512, DFF: 2048, DKV: 64, NumHeads: 8, NumLayers: 6, NumDecoderLayers: 6,
		VocabSize:                    32128,
		FeedForwardProj:              "relu",
		TieWordEmbeddings:            true,
		RelativeAttentionNumBuckets:  32,
		RelativeAttentionMaxDistance: 128,
		LayerNormEpsilon:             1e-6,
		DropoutRate:                  0.1,
		NPositions:                   512,
		PadTokenID:                   0,
		EOSTokenID:                   1,
		DecoderStartTokenID:          0,
	}
}

// InnerDim is the width of the attention projections, num_heads·d_kv, which need not equal
// d_model.
func (s Shape) InnerDim() int { return s.NumHeads * s.DKV }

// Activation splits FeedForwardProj the way HF's T5Config does: "gated-gelu" is a gated FFN
// with the tanh-approximated GELU ("gelu_new", kept for backward compatibility by HF); any
// other "gated-ACT" or "ACT" names the activation directly.
func (s Shape) Activation() (act string, gated bool, err error) {
	parts := strings.Split(s.FeedForwardProj, "-")
	switch {
	case len(parts) == 1:
		act = parts[0]
	case len(parts) == 2 && parts[0] == "gated":
		act, gated = parts[1], true
	default:
		return "", false, fmt.Errorf("%w: feed_forward_proj %q is not ACT or gated-ACT", ErrInvalidShape, s.FeedForwardProj)
	}
	if s.FeedForwardProj == "gated-gelu" {
		act = "gelu_new"
	}
	switch act {
	case "relu", "gelu", "gelu_new", "silu":
		return act, gated, nil
	}
	return "", false, fmt.Errorf("%w: feed_forward_proj %q: activation %q not supported (relu, gelu, gelu_new, silu)", ErrInvalidShape, s.FeedForwardProj, act)
}

// Gated reports whether the FFN has two input projections (wi_0, wi_1). It is false for a
// malformed FeedForwardProj, which Validate reports.
func (s Shape) Gated() bool {
	_, g, _ := s.Activation()
	return g
}

// Validate reports the first hyper-parameter no T5 model can have.
func (s Shape) Validate() error {
	checks := []struct {
		name   string
		v, max int
	}{
		{"d_model", s.DModel, maxDim},
		{"d_ff", s.DFF, maxDim},
		{"d_kv", s.DKV, maxDim},
		{"num_heads", s.NumHeads, maxDim},
		{"num_layers", s.NumLayers, maxLayers},
		{"num_decoder_layers", s.NumDecoderLayers, maxLayers},
		{"vocab_size", s.VocabSize, maxVocab},
		{"relative_attention_num_buckets", s.RelativeAttentionNumBuckets, maxDim},
		{"relative_attention_max_distance", s.RelativeAttentionMaxDistance, maxDim},
	}
	for _, c := range checks {
		if c.v < 1 || c.v > c.max {
			return fmt.Errorf("%w: %s = %d, want 1..%d", ErrInvalidShape, c.name, c.v, c.max)
		}
	}
	if s.InnerDim() > maxDim {
		return fmt.Errorf("%w: num_heads·d_kv = %d, want at most %d", ErrInvalidShape, s.InnerDim(), maxDim)
	}
	if s.RelativeAttentionNumBuckets%2 != 0 {
		// HF halves the buckets for the bidirectional encoder.
		return fmt.Errorf("%w: relative_attention_num_buckets = %d must be even", ErrInvalidShape, s.RelativeAttentionNumBuckets)
	}
	if !(s.LayerNormEpsilon > 0 && s.LayerNormEpsilon < 1) {
		return fmt.Errorf("%w: layer_norm_epsilon = %g, want in (0, 1)", ErrInvalidShape, s.LayerNormEpsilon)
	}
	if !(s.DropoutRate >= 0 && s.DropoutRate < 1) {
		return fmt.Errorf("%w: dropout_rate = %g, want in [0, 1)", ErrInvalidShape, s.DropoutRate)
	}
	for _, id := range []struct {
		name string
		v    int
	}{{"pad_token_id", s.PadTokenID}, {"eos_token_id", s.EOSTokenID}, {"decoder_start_token_id", s.DecoderStartTokenID}} {
		if id.v < 0 || id.v >= s.VocabSize {
			return fmt.Errorf("%w: %s = %d outside the vocabulary (0..%d)", ErrInvalidShape, id.name, id.v, s.VocabSize-1)
		}
	}
	if _, _, err := s.Activation(); err != nil {
		return err
	}
	return nil
}

// HFConfig is the config.json that Hugging Face's T5ForConditionalGeneration reads, with the
// keys HF derives (dense_act_fn, is_gated_act) and the bookkeeping ones it writes.
type HFConfig struct {
	Architectures     []string `json:"architectures"`
	ModelType         string   `json:"model_type"`
	Shape                      // the hyper-parameters, inlined
	DenseActFn        string   `json:"dense_act_fn"`
	IsGatedAct        bool     `json:"is_gated_act"`
	IsEncoderDecoder  bool     `json:"is_encoder_decoder"`
	InitializerFactor float64  `json:"initializer_factor"`
	UseCache          bool     `json:"use_cache"`
	TorchDtype        string   `json:"torch_dtype"`
}

// HFConfig returns the full config.json for s as HF transformers writes it for a float32
// T5ForConditionalGeneration.
func (s Shape) HFConfig() HFConfig {
	act, gated, _ := s.Activation()
	return HFConfig{
		Architectures:     []string{"T5ForConditionalGeneration"},
		ModelType:         "t5",
		Shape:             s,
		DenseActFn:        act,
		IsGatedAct:        gated,
		IsEncoderDecoder:  true,
		InitializerFactor: 1.0,
		UseCache:          true,
		TorchDtype:        "float32",
	}
}

// ParseHFConfig reads a Hugging Face T5 config.json. Absent keys take T5Config's defaults
// (an absent or null num_decoder_layers equals num_layers, as in HF); the result is validated.
func ParseHFConfig(data []byte) (Shape, error) {
	// T5Config's own defaults (transformers configuration_t5.py), which differ from the
	// published checkpoints' only in that nothing here is a checkpoint's choice.
	s := DefaultShape()
	s.NumDecoderLayers = -1
	var raw struct {
		ModelType string `json:"model_type"`
		Shape
	}
	raw.Shape = s
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return Shape{}, fmt.Errorf("parse config.json: %w", err)
	}
	if dec.More() {
		return Shape{}, errors.New("parse config.json: trailing data after the JSON object")
	}
	if raw.ModelType != "" && raw.ModelType != "t5" {
		return Shape{}, fmt.Errorf("parse config.json: model_type %q is not t5", raw.ModelType)
	}
	s = raw.Shape
	if s.NumDecoderLayers == -1 {
		s.NumDecoderLayers = s.NumLayers
	}
	if err := s.Validate(); err != nil {
		return Shape{}, fmt.Errorf("parse config.json: %w", err)
	}
	return s, nil
}
