package catalog

import (
	"fmt"
	"strings"
)

// The cost model. Notation: V vocab_size, dm d_model, ff d_ff, h num_heads, kv d_kv,
// I = h·kv (the attention width), Le/Ld encoder/decoder layers, B relative-attention buckets,
// F = 2 for a relu FFN (wi, wo) and 3 for a gated one (wi_0, wi_1, wo), L input length,
// T target length. docs/cost-model.md derives each formula.

// Params is the exact number of parameters:
//
//	P = V·dm·(1 if tied, 2 if untied)
//	  + Le·(4·dm·I + F·dm·ff + 2·dm)      // q,k,v,o; FFN; two RMS-norm scales
//	  + Ld·(8·dm·I + F·dm·ff + 3·dm)      // self and cross attention; FFN; three scales
//	  + 2·B·h + 2·dm                      // layer-0 relative bias per stack; final norms
//
// For the published shapes (relu, tied, B = 32) this is the formula of
// facts/catalog_facts.md §2.3 rule 8: t5-efficient-base has 222,903,552.
func (s Shape) Params() int64 {
	V, dm, ff, I := int64(s.VocabSize), int64(s.DModel), int64(s.DFF), int64(s.InnerDim())
	F := ffnMatrices(s)
	emb := V * dm
	if !s.TieWordEmbeddings {
		emb *= 2
	}
	enc := int64(s.NumLayers) * (4*dm*I + F*dm*ff + 2*dm)
	dec := int64(s.NumDecoderLayers) * (8*dm*I + F*dm*ff + 3*dm)
	return emb + enc + dec + 2*int64(s.RelativeAttentionNumBuckets)*int64(s.NumHeads) + 2*dm
}

func ffnMatrices(s Shape) int64 {
	if s.Gated() {
		return 3
	}
	return 2
}

// FLOPs is the forward cost of one sequence pair, counting 2 FLOPs per multiply-add of every
// matrix product (projections, attention scores and weighted sums, FFN, LM head). Element-wise
// work (norms, softmax, activations, the position bias) is left out: it is O(L·dm) against
// the products' O(L·dm²).
type FLOPs struct {
	InputLen  int `json:"input_len"`
	TargetLen int `json:"target_len"`
	// Encoder is the encoder's cost for the whole input:
	//	2·Le·(4·L·dm·I + 2·L²·I + F·L·dm·ff)
	Encoder int64 `json:"encoder"`
	// Decoder is the decoder's cost for the whole target with a KV cache, so each position
	// attends only to itself and earlier ones (masked products are not counted), including
	// the cross-attention K/V projections of the encoder output (once per request) and the
	// LM head:
	//	2·Ld·(4·T·dm·I + T·(T+1)·I + 2·T·dm·I + 2·L·dm·I + 2·T·L·I + F·T·dm·ff) + 2·T·dm·V
	Decoder int64 `json:"decoder"`
	// EncoderPerToken and DecoderPerToken divide by the input and target lengths.
	EncoderPerToken float64 `json:"encoder_per_token"`
	DecoderPerToken float64 `json:"decoder_per_token"`
	// Total is Encoder + Decoder.
	Total int64 `json:"total"`
}

// FLOPs returns the forward cost for an input of inputLen tokens and a target of targetLen
// tokens. Lengths are clamped to [0, MaxSeqLen], within which every count is exact.
func (s Shape) FLOPs(inputLen, targetLen int) FLOPs {
	L, T := int64(min(max(inputLen, 0), MaxSeqLen)), int64(min(max(targetLen, 0), MaxSeqLen))
	dm, ff, I, V := int64(s.DModel), int64(s.DFF), int64(s.InnerDim()), int64(s.VocabSize)
	F := ffnMatrices(s)
	enc := 2 * int64(s.NumLayers) * (4*L*dm*I + 2*L*L*I + F*L*dm*ff)
	dec := 2*int64(s.NumDecoderLayers)*(4*T*dm*I+T*(T+1)*I+2*T*dm*I+2*L*dm*I+2*T*L*I+F*T*dm*ff) + 2*T*dm*V
	f := FLOPs{InputLen: int(L), TargetLen: int(T), Encoder: enc, Decoder: dec, Total: enc + dec}
	if L > 0 {
		f.EncoderPerToken = float64(enc) / float64(L)
	}
	if T > 0 {
		f.DecoderPerToken = float64(dec) / float64(T)
	}
	return f
}

// DType is a storage type for weights.
type DType string

// The weight dtypes t5zoo stores and runs.
const (
	F32  DType = "f32"
	BF16 DType = "bf16"
	F16  DType = "f16"
	Int8 DType = "int8" // weight-only, symmetric, one float32 scale per output row
)

// DTypes lists the supported weight dtypes.
func DTypes() []DType { return []DType{F32, BF16, F16, Int8} }

// ParseDType accepts f32/float32, bf16/bfloat16, f16/float16/fp16 and int8.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32", "fp32":
		return F32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f16", "float16", "fp16":
		return F16, nil
	case "int8", "i8":
		return Int8, nil
	}
	return "", fmt.Errorf("catalog: unknown dtype %q (want f32, bf16, f16 or int8)", s)
}

// WeightBytes is the size of the weights in dtype dt, without file headers. f32 is 4·P,
// bf16 and f16 2·P; int8 stores every Matrix tensor as int8 plus one float32 scale per
// output row, and keeps the layer-norm scales and relative-attention bias in float32.
func (s Shape) WeightBytes(dt DType) int64 {
	switch dt {
	case BF16, F16:
		return 2 * s.Params()
	case Int8:
		var n int64
		for _, t := range s.Tensors() {
			if t.Matrix {
				n += t.Elements() + 4*int64(t.Shape[0])
			} else {
				n += 4 * t.Elements()
			}
		}
		return n
	default:
		return 4 * s.Params()
	}
}

// KVCache is the float32 attention cache a request holds while decoding.
type KVCache struct {
	// SelfPerTargetToken is the decoder self-attention K and V of one generated position
	// over all decoder layers: Ld·2·I·4 bytes.
	SelfPerTargetToken int64 `json:"self_per_target_token"`
	// CrossPerInputToken is the cross-attention K and V that one input token contributes,
	// computed once per request and kept for the whole decode: Ld·2·I·4 bytes.
	CrossPerInputToken int64 `json:"cross_per_input_token"`
}

// KVCacheBytes returns the per-token sizes of the decoder's caches in float32.
func (s Shape) KVCacheBytes() KVCache {
	per := int64(s.NumDecoderLayers) * 2 * int64(s.InnerDim()) * 4
	return KVCache{SelfPerTargetToken: per, CrossPerInputToken: per}
}

// RequestKVBytes is the cache one request holds at its longest: inputLen tokens of cross K/V
// and targetLen positions of self K/V.
func (c KVCache) RequestKVBytes(inputLen, targetLen int) int64 {
	return c.CrossPerInputToken*int64(inputLen) + c.SelfPerTargetToken*int64(targetLen)
}
