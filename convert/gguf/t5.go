package gguf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
	"github.com/t5zoo/t5zoo/convert/spm"
)

// Arch is the general.architecture of a T5 encoder-decoder in llama.cpp (LLM_ARCH_T5).
const Arch = "t5"

// T5TensorName maps a Hugging Face T5ForConditionalGeneration state-dict name to the GGUF
// tensor name llama.cpp's T5 loader reads (gguf-py tensor_mapping.py, MODEL_ARCH.T5). The
// embedding aliases (encoder/decoder.embed_tokens) map to token_embd like shared.weight.
func T5TensorName(hf string) (string, error) {
	switch hf {
	case "shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight":
		return "token_embd.weight", nil
	case "lm_head.weight":
		return "output.weight", nil
	case "encoder.final_layer_norm.weight":
		return "enc.output_norm.weight", nil
	case "decoder.final_layer_norm.weight":
		return "dec.output_norm.weight", nil
	}
	stack, rest, ok := strings.Cut(hf, ".block.")
	if !ok || (stack != "encoder" && stack != "decoder") {
		return "", fmt.Errorf("gguf: %q is not a T5 tensor", hf)
	}
	num, rest, ok := strings.Cut(rest, ".")
	if n, err := strconv.Atoi(num); !ok || err != nil || n < 0 || strconv.Itoa(n) != num {
		return "", fmt.Errorf("gguf: %q is not a T5 tensor", hf)
	}
	var table map[string]string
	prefix := "enc.blk." + num + "."
	if stack == "encoder" {
		table = t5EncoderNames
	} else {
		table = t5DecoderNames
		prefix = "dec.blk." + num + "."
	}
	if g, ok := table[rest]; ok {
		return prefix + g + ".weight", nil
	}
	return "", fmt.Errorf("gguf: %q is not a T5 tensor", hf)
}

// Per-block names, after "{encoder,decoder}.block.N.", without ".weight" on the GGUF side.
var (
	t5EncoderNames = map[string]string{
		"layer.0.SelfAttention.q.weight":                       "attn_q",
		"layer.0.SelfAttention.k.weight":                       "attn_k",
		"layer.0.SelfAttention.v.weight":                       "attn_v",
		"layer.0.SelfAttention.o.weight":                       "attn_o",
		"layer.0.SelfAttention.relative_attention_bias.weight": "attn_rel_b",
		"layer.0.layer_norm.weight":                            "attn_norm",
		"layer.1.DenseReluDense.wi.weight":                     "ffn_up",
		"layer.1.DenseReluDense.wi_0.weight":                   "ffn_gate",
		"layer.1.DenseReluDense.wi_1.weight":                   "ffn_up",
		"layer.1.DenseReluDense.wo.weight":                     "ffn_down",
		"layer.1.layer_norm.weight":                            "ffn_norm",
	}
	t5DecoderNames = map[string]string{
		"layer.0.SelfAttention.q.weight":                         "attn_q",
		"layer.0.SelfAttention.k.weight":                         "attn_k",
		"layer.0.SelfAttention.v.weight":                         "attn_v",
		"layer.0.SelfAttention.o.weight":                         "attn_o",
		"layer.0.SelfAttention.relative_attention_bias.weight":   "attn_rel_b",
		"layer.0.layer_norm.weight":                              "attn_norm",
		"layer.1.EncDecAttention.q.weight":                       "cross_attn_q",
		"layer.1.EncDecAttention.k.weight":                       "cross_attn_k",
		"layer.1.EncDecAttention.v.weight":                       "cross_attn_v",
		"layer.1.EncDecAttention.o.weight":                       "cross_attn_o",
		"layer.1.EncDecAttention.relative_attention_bias.weight": "cross_attn_rel_b",
		"layer.1.layer_norm.weight":                              "cross_attn_norm",
		"layer.2.DenseReluDense.wi.weight":                       "ffn_up",
		"layer.2.DenseReluDense.wi_0.weight":                     "ffn_gate",
		"layer.2.DenseReluDense.wi_1.weight":                     "ffn_up",
		"layer.2.DenseReluDense.wo.weight":                       "ffn_down",
		"layer.2.layer_norm.weight":                              "ffn_norm",
	}
)

// TokenType is llama.cpp's token type (tokenizer.ggml.token_type, gguf-py TokenType).
type TokenType int32

// The token types.
const (
	TokenNormal      TokenType = 1
	TokenUnknown     TokenType = 2
	TokenControl     TokenType = 3
	TokenUserDefined TokenType = 4
	TokenUnused      TokenType = 5
	TokenByte        TokenType = 6
)

// Vocab is a T5 SentencePiece (unigram) vocabulary as ExportT5 writes it. Build it with
// NewT5Vocab from a parsed spiece.model, or fill it from any other reader.
type Vocab struct {
	// Pieces are the SentencePiece pieces in id order.
	Pieces []spm.Piece
	// PrecompiledCharsmap is the normalizer's compiled character map (may be empty).
	PrecompiledCharsmap []byte
	// AddSpacePrefix and RemoveExtraWhitespaces are the normalizer's add_dummy_prefix and
	// remove_extra_whitespaces flags.
	AddSpacePrefix         bool
	RemoveExtraWhitespaces bool
	// ExtraIDs is the number of <extra_id_N> sentinels Hugging Face's T5Tokenizer appends
	// after the pieces, in reverse: <extra_id_N> has id len(Pieces)+ExtraIDs-1-N (100 for
	// every published T5).
	ExtraIDs int
}

// DefaultExtraIDs is T5Tokenizer's extra_ids default, the sentinel count of every T5.
const DefaultExtraIDs = 100

// NewT5Vocab returns the vocabulary of a unigram SentencePiece model with extraIDs sentinels.
func NewT5Vocab(m *spm.Model, extraIDs int) (Vocab, error) {
	if m.ModelType != spm.Unigram {
		return Vocab{}, fmt.Errorf("gguf: T5 vocabulary: SentencePiece model type %d, want unigram (%d)", m.ModelType, spm.Unigram)
	}
	if extraIDs < 0 {
		return Vocab{}, fmt.Errorf("gguf: T5 vocabulary: %d extra ids", extraIDs)
	}
	return Vocab{
		Pieces:                 m.Pieces,
		PrecompiledCharsmap:    m.PrecompiledCharsmap,
		AddSpacePrefix:         m.AddDummyPrefix,
		RemoveExtraWhitespaces: m.RemoveExtraWhitespaces,
		ExtraIDs:               extraIDs,
	}, nil
}

// Scores of the rows llama.cpp's converter (convert_hf_to_gguf.py, T5Model.set_vocab) adds
// after the SentencePiece pieces: added tokens and padding rows.
const (
	addedTokenScore = -1000.0
	padTokenScore   = -10000.0
)

// tokenType maps a piece type as T5Model.set_vocab does: user-defined pieces become NORMAL.
func tokenType(t spm.Type) TokenType {
	switch t {
	case spm.Unknown:
		return TokenUnknown
	case spm.Control:
		return TokenControl
	case spm.Unused:
		return TokenUnused
	case spm.Byte:
		return TokenByte
	}
	return TokenNormal
}

// tokens lays out the vocabulary over vocabSize rows: the pieces, the sentinels, then padding
// rows named [PAD<id>]. llama.cpp requires every token text to be unique.
func (v Vocab) tokens(vocabSize int) (texts []string, scores []float32, types []int32, err error) {
	n := len(v.Pieces)
	if v.ExtraIDs < 0 || n+v.ExtraIDs > vocabSize {
		return nil, nil, nil, fmt.Errorf("%d pieces + %d extra ids exceed vocab_size %d", n, v.ExtraIDs, vocabSize)
	}
	texts = make([]string, vocabSize)
	scores = make([]float32, vocabSize)
	types = make([]int32, vocabSize)
	for i, p := range v.Pieces {
		if !p.Type.Valid() {
			return nil, nil, nil, fmt.Errorf("piece %d (%q) has invalid type %d", i, p.Text, p.Type)
		}
		texts[i], scores[i], types[i] = p.Text, p.Score, int32(tokenType(p.Type))
	}
	for k := range v.ExtraIDs {
		id := n + v.ExtraIDs - 1 - k
		texts[id], scores[id], types[id] = fmt.Sprintf("<extra_id_%d>", k), addedTokenScore, int32(TokenUserDefined)
	}
	for id := n + v.ExtraIDs; id < vocabSize; id++ {
		texts[id], scores[id], types[id] = fmt.Sprintf("[PAD%d]", id), padTokenScore, int32(TokenUnused)
	}
	seen := make(map[string]int, vocabSize)
	for id, t := range texts {
		if t == "" {
			return nil, nil, nil, fmt.Errorf("token %d is empty", id)
		}
		if j, dup := seen[t]; dup {
			return nil, nil, nil, fmt.Errorf("token %q appears twice (ids %d and %d); llama.cpp requires unique tokens", t, j, id)
		}
		seen[t] = id
	}
	return texts, scores, types, nil
}

// TiedHead says how ExportT5 writes the LM head of a model with tied embeddings.
type TiedHead int

const (
	// TiedHeadScaled writes output.weight = shared.weight · d_model^-0.5, so that llama.cpp,
	// whose T5 graph applies no rescaling, produces the logits of Hugging Face (which scales
	// the decoder output by d_model^-0.5 before the tied head). It costs one more
	// vocab × d_model matrix.
	TiedHeadScaled TiedHead = iota
	// TiedHeadShared writes no output.weight: llama.cpp then uses token_embd as the head, as
	// for checkpoints its own converter produces. Greedy and beam outputs are unchanged but
	// every logit is d_model^0.5 times Hugging Face's.
	TiedHeadShared
)

// ExportOptions configures ExportT5. The zero value writes float32 tensors and a scaled head.
type ExportOptions struct {
	// Type is the type of the 2-D weights: TypeF32 (the zero value), TypeF16, TypeBF16 or
	// TypeQ8_0. 1-D tensors (the layer norms) are always F32, as llama.cpp's converter writes
	// them; a Q8_0 matrix whose rows are not a multiple of 32 falls back to F16, as there.
	Type GGMLType
	// TiedHead applies to models with tie_word_embeddings (see TiedHead).
	TiedHead TiedHead
	// Name is written as general.name when not empty.
	Name string
	// Logger receives one debug line per tensor; nil discards.
	Logger *slog.Logger
}

func fileType(t GGMLType) (FileType, error) {
	switch t {
	case TypeF32:
		return FileTypeAllF32, nil
	case TypeF16:
		return FileTypeMostlyF16, nil
	case TypeBF16:
		return FileTypeMostlyBF16, nil
	case TypeQ8_0:
		return FileTypeMostlyQ8_0, nil
	}
	return 0, fmt.Errorf("tensor type %s not supported for export (F32, F16, BF16, Q8_0)", t)
}

// tensorType chooses a tensor's type as convert_hf_to_gguf.py does: 1-D tensors and norms
// stay F32; a matrix whose rows do not split into Q8_0 blocks falls back to F16.
func tensorType(gguf string, shape []int, want GGMLType) GGMLType {
	if len(shape) <= 1 || strings.HasSuffix(gguf, "_norm.weight") {
		return TypeF32
	}
	if bs := want.BlockSize(); bs > 1 && shape[len(shape)-1]%bs != 0 {
		return TypeF16
	}
	return want
}

// ExportT5 writes the T5 model described by shape, with weights from src and the vocabulary
// vocab, to w as a GGUF file that llama.cpp loads as architecture t5. It returns the number
// of bytes written. See BuildT5 for what is checked; docs/gguf.md lists the mapping.
func ExportT5(ctx context.Context, w io.Writer, shape catalog.Shape, src TensorSource, vocab Vocab, opts ExportOptions) (int64, error) {
	gw, err := BuildT5(shape, src, vocab, opts)
	if err != nil {
		return 0, err
	}
	n, err := gw.Write(ctx, w)
	if err != nil {
		return n, fmt.Errorf("gguf: export t5: %w", err)
	}
	return n, nil
}

// BuildT5 prepares the GGUF Writer of a T5 export (ExportT5 writes it; use WriteFile for an
// atomic file). It checks everything before any byte is written: the shape is valid and
// llama.cpp runs it as Hugging Face does (its FFN is relu or gated gelu_new, its
// relative_attention_max_distance is llama.cpp's fixed 128, it has at least 4 buckets); every tensor the shape needs is in src
// (shared.weight or one of its aliases) with the expected shape and a float dtype; src holds
// no tensor a T5 of this shape lacks; the vocabulary fits vocab_size with unique tokens.
// Tensor data is read and converted from src one tensor at a time when the file is written.
func BuildT5(shape catalog.Shape, src TensorSource, vocab Vocab, opts ExportOptions) (*Writer, error) {
	gw, err := buildT5(shape, src, vocab, opts)
	if err != nil {
		return nil, fmt.Errorf("gguf: export t5: %w", err)
	}
	return gw, nil
}

func buildT5(s catalog.Shape, src TensorSource, vocab Vocab, opts ExportOptions) (*Writer, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := llamaCppCanRun(s); err != nil {
		return nil, err
	}
	ft, err := fileType(opts.Type)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	texts, scores, types, err := vocab.tokens(s.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("vocabulary: %w", err)
	}

	gw := &Writer{}
	var kvErr error
	add := func(key string, v Value) {
		if kvErr == nil {
			kvErr = gw.AddKV(key, v)
		}
	}
	ctxLen := s.NPositions
	if ctxLen <= 0 {
		ctxLen = 512 // T5Model.set_gguf_parameters' default when n_positions is absent
	}
	add("general.architecture", String(Arch))
	add("general.type", String("model"))
	if opts.Name != "" {
		add("general.name", String(opts.Name))
	}
	add("general.quantization_version", Uint32(2)) // GGML_QUANT_VERSION
	add("general.file_type", Uint32(uint32(ft)))
	add(Arch+".context_length", Uint32(uint32(ctxLen)))
	add(Arch+".embedding_length", Uint32(uint32(s.DModel)))
	add(Arch+".feed_forward_length", Uint32(uint32(s.DFF)))
	add(Arch+".block_count", Uint32(uint32(s.NumLayers)))
	add(Arch+".decoder_block_count", Uint32(uint32(s.NumDecoderLayers)))
	add(Arch+".attention.head_count", Uint32(uint32(s.NumHeads)))
	add(Arch+".attention.key_length", Uint32(uint32(s.DKV)))
	add(Arch+".attention.value_length", Uint32(uint32(s.DKV)))
	add(Arch+".attention.layer_norm_epsilon", Float32(float32(s.LayerNormEpsilon)))
	add(Arch+".attention.relative_buckets_count", Uint32(uint32(s.RelativeAttentionNumBuckets)))
	add(Arch+".attention.layer_norm_rms_epsilon", Float32(float32(s.LayerNormEpsilon)))
	add(Arch+".decoder_start_token_id", Uint32(uint32(s.DecoderStartTokenID)))
	add("tokenizer.ggml.model", String("t5"))
	add("tokenizer.ggml.pre", String("default"))
	add("tokenizer.ggml.tokens", Array(texts))
	add("tokenizer.ggml.scores", Array(scores))
	add("tokenizer.ggml.token_type", Array(types))
	add("tokenizer.ggml.add_space_prefix", Bool(vocab.AddSpacePrefix))
	add("tokenizer.ggml.remove_extra_whitespaces", Bool(vocab.RemoveExtraWhitespaces))
	if len(vocab.PrecompiledCharsmap) > 0 {
		add("tokenizer.ggml.precompiled_charsmap", Array(vocab.PrecompiledCharsmap))
	}
	add("tokenizer.ggml.eos_token_id", Uint32(uint32(s.EOSTokenID)))
	for id, p := range vocab.Pieces {
		if p.Type == spm.Unknown {
			add("tokenizer.ggml.unknown_token_id", Uint32(uint32(id)))
			break
		}
	}
	add("tokenizer.ggml.padding_token_id", Uint32(uint32(s.PadTokenID)))
	add("tokenizer.ggml.add_eos_token", Bool(true)) // T5Tokenizer appends </s>
	if kvErr != nil {
		return nil, kvErr
	}

	// Resolve every tensor before anything is written.
	aliases := s.Aliases()
	known := make(map[string]bool)
	for _, t := range s.Tensors() {
		known[t.Name] = true
	}
	for _, a := range aliases {
		known[a] = true
	}
	for _, name := range src.Names() {
		if !known[name] {
			return nil, fmt.Errorf("checkpoint tensor %q is not part of a T5 with this config (%d+%d layers, feed_forward_proj %q, tie_word_embeddings %v)",
				name, s.NumLayers, s.NumDecoderLayers, s.FeedForwardProj, s.TieWordEmbeddings)
		}
	}
	for _, t := range s.Tensors() {
		srcName := t.Name
		dtype, shape, ok := src.TensorInfo(srcName)
		if !ok && t.Name == "shared.weight" {
			for _, a := range aliases[:2] {
				if dtype, shape, ok = src.TensorInfo(a); ok {
					srcName = a
					break
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("checkpoint lacks tensor %q", t.Name)
		}
		if !slices.Equal(shape, t.Shape) {
			return nil, fmt.Errorf("tensor %q has shape %v, config wants %v", srcName, shape, t.Shape)
		}
		switch dtype {
		case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		default:
			return nil, fmt.Errorf("tensor %q has dtype %s, want a float type", srcName, dtype)
		}
		name, err := T5TensorName(t.Name)
		if err != nil {
			return nil, err
		}
		typ := tensorType(name, t.Shape, opts.Type)
		if err := addT5Tensor(gw, src, srcName, dtype, name, typ, t.Shape, 1, log); err != nil {
			return nil, err
		}
		if t.Name == "shared.weight" && s.TieWordEmbeddings && opts.TiedHead == TiedHeadScaled {
			// HF: sequence_output * model_dim**-0.5 before the tied lm_head.
			scale := float32(math.Pow(float64(s.DModel), -0.5))
			if err := addT5Tensor(gw, src, srcName, dtype, "output.weight", typ, t.Shape, scale, log); err != nil {
				return nil, err
			}
		}
	}
	return gw, nil
}

// LlamaCppMaxDistance is the relative_attention_max_distance llama.cpp's T5 uses for every
// model: llama_relative_position_bucket in src/llama-graph.cpp (ggml-org/llama.cpp commit
// 00395eb2) declares "const int64_t max_distance = 128; // TODO move to hparams if a T5
// variant appears that uses a different value", and neither gguf-py's Keys nor
// convert_hf_to_gguf.py's T5Model.set_gguf_parameters has a key for it.
const LlamaCppMaxDistance = 128

// llamaCppCanRun refuses a config that llama.cpp would load without complaint and then run
// differently from Hugging Face; each rule cites the llama.cpp source it comes from
// (docs/gguf.md, "What llama.cpp cannot represent"). What llama.cpp reads from a key —
// num_buckets, layer_norm_epsilon, d_kv (key_length, so num_heads·d_kv may differ from
// d_model), decoder depth, decoder_start_token_id, an untied lm_head (output) — passes.
func llamaCppCanRun(s catalog.Shape) error {
	// src/models/t5.cpp, build_ffn: ffn_gate present → LLM_FFN_GELU (ggml's tanh GELU, HF's
	// gelu_new) in parallel, absent → LLM_FFN_RELU; no other activation.
	act, gated, _ := s.Activation()
	if !(act == "relu" && !gated) && !(act == "gelu_new" && gated) {
		return fmt.Errorf("feed_forward_proj %q: llama.cpp's T5 graph runs relu (non-gated) or gelu_new (gated-gelu) FFNs only", s.FeedForwardProj)
	}
	if s.RelativeAttentionMaxDistance != LlamaCppMaxDistance {
		return fmt.Errorf("relative_attention_max_distance = %d: llama.cpp has no key for it and hard-codes %d (llama_relative_position_bucket), so the exported model would attend with other position buckets than Hugging Face's", s.RelativeAttentionMaxDistance, LlamaCppMaxDistance)
	}
	// llama_relative_position_bucket halves the buckets for the bidirectional encoder and
	// divides by half of that (max_exact): with 2 buckets max_exact is 0 and the bucket is
	// log(x/0) converted to int32, undefined behaviour in C.
	if s.RelativeAttentionNumBuckets < 4 {
		return fmt.Errorf("relative_attention_num_buckets = %d: llama.cpp's bucket function divides by zero below 4", s.RelativeAttentionNumBuckets)
	}
	// {arch}.context_length is a uint32 (gguf-py add_context_length).
	if s.NPositions > math.MaxUint32 {
		return fmt.Errorf("n_positions = %d does not fit GGUF's uint32 context_length", s.NPositions)
	}
	return nil
}

// addT5Tensor queues one tensor whose data is read from src and converted when written.
// Data whose dtype already matches the target (and scale is 1) is copied unchanged.
func addT5Tensor(gw *Writer, src TensorSource, srcName string, dtype safetensors.DType, name string, typ GGMLType, shape []int, scale float32, log *slog.Logger) error {
	log.Debug("gguf: tensor", "hf", srcName, "gguf", name, "type", typ.String(), "shape", shape, "scale", scale)
	return gw.AddTensorFunc(name, typ, shape, func(w io.Writer) error {
		raw, err := src.TensorData(srcName)
		if err != nil {
			return fmt.Errorf("read %q: %w", srcName, err)
		}
		if scale == 1 && ((dtype == safetensors.F32 && typ == TypeF32) ||
			(dtype == safetensors.F16 && typ == TypeF16) ||
			(dtype == safetensors.BF16 && typ == TypeBF16)) {
			_, err := w.Write(raw)
			return err
		}
		x, aliased, err := safetensors.Float32s(dtype, raw)
		if err != nil {
			return fmt.Errorf("decode %q: %w", srcName, err)
		}
		if scale != 1 {
			if aliased {
				x = slices.Clone(x)
			}
			for i := range x {
				x[i] *= scale
			}
		}
		out, err := EncodeFloat32s(nil, typ, x)
		if err != nil {
			return fmt.Errorf("encode %q: %w", srcName, err)
		}
		_, err = w.Write(out)
		return err
	})
}
