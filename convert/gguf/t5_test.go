package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/pytorch"
	"github.com/t5zoo/t5zoo/convert/safetensors"
	"github.com/t5zoo/t5zoo/convert/spm"
)

const goldenDir = "../../testdata/golden"

type golden struct {
	shape catalog.Shape
	st    *safetensors.File
	vocab Vocab
	spm   *spm.Model
	dir   string
}

func loadGolden(t testing.TB, name string) golden {
	t.Helper()
	dir := filepath.Join(goldenDir, name, "checkpoint")
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	shape, err := catalog.ParseHFConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := spm.Open(filepath.Join(dir, "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	vocab, err := NewT5Vocab(m, DefaultExtraIDs)
	if err != nil {
		t.Fatal(err)
	}
	return golden{shape: shape, st: st, vocab: vocab, spm: m, dir: dir}
}

func export(t testing.TB, g golden, src TensorSource, opts ExportOptions) ([]byte, *File) {
	t.Helper()
	var buf bytes.Buffer
	n, err := ExportT5(t.Context(), &buf, g.shape, src, g.vocab, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("ExportT5 returned %d for %d bytes", n, buf.Len())
	}
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), f
}

func lookupUint(t *testing.T, f *File, key string) uint64 {
	t.Helper()
	v, ok := f.Lookup(key)
	if !ok || v.Type() != TypeUint32 {
		t.Fatalf("%s: %v (present %v), want a uint32", key, v, ok)
	}
	u, _ := v.Uint()
	return u
}

// checkMetadata compares the metadata with the config and vocabulary (docs/gguf.md).
func checkMetadata(t *testing.T, f *File, g golden, ft FileType) {
	s := g.shape
	for key, want := range map[string]uint64{
		"general.file_type":                   uint64(ft),
		"general.quantization_version":        2,
		"t5.context_length":                   512,
		"t5.embedding_length":                 uint64(s.DModel),
		"t5.feed_forward_length":              uint64(s.DFF),
		"t5.block_count":                      uint64(s.NumLayers),
		"t5.decoder_block_count":              uint64(s.NumDecoderLayers),
		"t5.attention.head_count":             uint64(s.NumHeads),
		"t5.attention.key_length":             uint64(s.DKV),
		"t5.attention.value_length":           uint64(s.DKV),
		"t5.attention.relative_buckets_count": 32,
		"t5.decoder_start_token_id":           0,
		"tokenizer.ggml.eos_token_id":         1,
		"tokenizer.ggml.unknown_token_id":     2,
		"tokenizer.ggml.padding_token_id":     0,
	} {
		if got := lookupUint(t, f, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	for _, key := range []string{"t5.attention.layer_norm_epsilon", "t5.attention.layer_norm_rms_epsilon"} {
		v, _ := f.Lookup(key)
		if x, ok := v.Any().(float32); !ok || x != float32(1e-6) {
			t.Errorf("%s = %v, want float32 1e-6", key, v)
		}
	}
	for key, want := range map[string]string{"general.architecture": "t5", "general.type": "model", "tokenizer.ggml.model": "t5", "tokenizer.ggml.pre": "default"} {
		v, _ := f.Lookup(key)
		if s, ok := v.Str(); !ok || s != want {
			t.Errorf("%s = %v, want %q", key, v, want)
		}
	}
	for key, want := range map[string]bool{"tokenizer.ggml.add_space_prefix": true, "tokenizer.ggml.remove_extra_whitespaces": true, "tokenizer.ggml.add_eos_token": true} {
		v, _ := f.Lookup(key)
		if b, ok := v.Bool(); !ok || b != want {
			t.Errorf("%s = %v, want %v", key, v, want)
		}
	}
	tv, _ := f.Lookup("tokenizer.ggml.tokens")
	tokens, _ := ArrayOf[string](tv)
	sv, _ := f.Lookup("tokenizer.ggml.scores")
	scores, _ := ArrayOf[float32](sv)
	yv, _ := f.Lookup("tokenizer.ggml.token_type")
	types, _ := ArrayOf[int32](yv)
	if len(tokens) != s.VocabSize || len(scores) != s.VocabSize || len(types) != s.VocabSize {
		t.Fatalf("%d tokens, %d scores, %d types; want %d", len(tokens), len(scores), len(types), s.VocabSize)
	}
	// testdata/golden/README.md: 2,000 pieces, <extra_id_N> = 2000 + 99 - N, rows 2100..2175
	// unused.
	for id, p := range g.spm.Pieces {
		if tokens[id] != p.Text || math.Float32bits(scores[id]) != math.Float32bits(p.Score) || types[id] != int32(tokenType(p.Type)) {
			t.Fatalf("token %d = %q %g %d, want %+v", id, tokens[id], scores[id], types[id], p)
		}
	}
	for _, c := range []struct {
		id    int
		text  string
		score float32
		typ   TokenType
	}{
		{0, "<pad>", 0, TokenControl}, {1, "</s>", 0, TokenControl}, {2, "<unk>", 0, TokenUnknown},
		{2099, "<extra_id_0>", -1000, TokenUserDefined}, {2000, "<extra_id_99>", -1000, TokenUserDefined},
		{2050, "<extra_id_49>", -1000, TokenUserDefined},
		{2100, "[PAD2100]", -10000, TokenUnused}, {2175, "[PAD2175]", -10000, TokenUnused},
	} {
		if tokens[c.id] != c.text || scores[c.id] != c.score || types[c.id] != int32(c.typ) {
			t.Errorf("token %d = %q %g %d, want %q %g %d", c.id, tokens[c.id], scores[c.id], types[c.id], c.text, c.score, c.typ)
		}
	}
	cv, _ := f.Lookup("tokenizer.ggml.precompiled_charsmap")
	cm, ok := ArrayOf[uint8](cv)
	if !ok || !bytes.Equal(cm, g.spm.PrecompiledCharsmap) {
		t.Errorf("precompiled_charsmap: %v, %d bytes, want %d", ok, len(cm), len(g.spm.PrecompiledCharsmap))
	}
}

func TestExportGolden(t *testing.T) {
	for _, model := range []string{"tiny-relu", "tiny-gated"} {
		g := loadGolden(t, model)
		for _, typ := range []GGMLType{TypeF32, TypeF16, TypeBF16, TypeQ8_0} {
			for _, head := range []TiedHead{TiedHeadScaled, TiedHeadShared} {
				if head == TiedHeadShared && !g.shape.TieWordEmbeddings {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/head%d", model, typ, head), func(t *testing.T) {
					testExport(t, g, typ, head)
				})
			}
		}
	}
}

func testExport(t *testing.T, g golden, typ GGMLType, head TiedHead) {
	_, f := export(t, g, Safetensors(g.st), ExportOptions{Type: typ, TiedHead: head, Name: "golden"})
	ft, _ := fileType(typ)
	checkMetadata(t, f, g, ft)
	want := map[string]bool{}
	for _, ct := range g.shape.Tensors() {
		name, err := T5TensorName(ct.Name)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = true
		srcName := ct.Name
		if _, ok := g.st.Lookup(srcName); !ok {
			srcName = "encoder.embed_tokens.weight"
		}
		checkTensor(t, f, g, srcName, name, ct.Shape, typ, 1)
	}
	if g.shape.TieWordEmbeddings && head == TiedHeadScaled {
		want["output.weight"] = true
		// d_model 64: the scale 1/8 is a power of two, so the scaled weights are exact.
		checkTensor(t, f, g, "shared.weight", "output.weight", []int{g.shape.VocabSize, g.shape.DModel}, typ, 0.125)
	}
	if len(f.Tensors) != len(want) {
		var got []string
		for _, ti := range f.Tensors {
			got = append(got, ti.Name)
		}
		t.Errorf("tensors %v, want %d", got, len(want))
	}
	// llama.cpp's gated FFN needs ffn_gate; the relu FFN must not have one.
	_, hasGate := f.Tensor("enc.blk.0.ffn_gate.weight")
	if hasGate != g.shape.Gated() {
		t.Errorf("ffn_gate present = %v, gated = %v", hasGate, g.shape.Gated())
	}
}

// checkTensor compares a GGUF tensor with the source tensor converted independently.
func checkTensor(t *testing.T, f *File, g golden, srcName, name string, shape []int, typ GGMLType, scale float32) {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("no tensor %s", name)
	}
	wantType := typ
	switch {
	case len(shape) == 1:
		wantType = TypeF32
	case typ == TypeQ8_0 && shape[len(shape)-1]%32 != 0:
		wantType = TypeF16 // relative attention bias: [32 buckets, 4 heads]
	}
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		dims[len(shape)-1-i] = uint64(d)
	}
	if ti.Type != wantType || !slices.Equal(ti.Dims, dims) {
		t.Fatalf("%s: %s ne=%v, want %s ne=%v", name, ti.Type, ti.Dims, wantType, dims)
	}
	src, _, err := g.st.Float32s(srcName)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.TensorData(name)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(raw)) != ti.Size {
		t.Fatalf("%s: %d bytes, want %d", name, len(raw), ti.Size)
	}
	switch wantType {
	case TypeF32:
		for i, x := range src {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); math.Float32bits(got) != math.Float32bits(x*scale) {
				t.Fatalf("%s[%d] = %g, want %g (bit-identical)", name, i, got, x*scale)
			}
		}
	case TypeF16, TypeBF16:
		for i, x := range src {
			h := binary.LittleEndian.Uint16(raw[2*i:])
			var want uint16
			if wantType == TypeF16 {
				want = safetensors.F32ToF16(x * scale)
			} else {
				want = safetensors.F32ToBF16(x * scale)
			}
			if h != want {
				t.Fatalf("%s[%d] = %#04x, want %#04x (RNE of %g)", name, i, h, want, x*scale)
			}
		}
	case TypeQ8_0:
		scaled := make([]float32, len(src))
		for i, x := range src {
			scaled[i] = x * scale
		}
		want, err := QuantizeQ8_0(nil, scaled)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want) {
			t.Fatalf("%s: Q8_0 blocks differ", name)
		}
		deq, _ := f.Float32s(name)
		for i, x := range scaled {
			if math.Abs(float64(deq[i]-x)) > 0.01*math.Abs(float64(x))+0.02 {
				t.Fatalf("%s[%d]: %g dequantizes to %g", name, i, x, deq[i])
			}
		}
	}
}

// TestExportPyTorchSameBytes: the state dict and the safetensors file of each golden
// checkpoint hold the same weights, so their exports are identical byte for byte.
func TestExportPyTorchSameBytes(t *testing.T) {
	for _, model := range []string{"tiny-relu", "tiny-gated"} {
		g := loadGolden(t, model)
		pt, err := pytorch.Open(filepath.Join(g.dir, "pytorch_model.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer pt.Close()
		for _, typ := range []GGMLType{TypeF32, TypeQ8_0} {
			a, _ := export(t, g, Safetensors(g.st), ExportOptions{Type: typ})
			b, _ := export(t, g, PyTorch(pt), ExportOptions{Type: typ})
			if !bytes.Equal(a, b) {
				t.Errorf("%s %s: exports from model.safetensors and pytorch_model.bin differ", model, typ)
			}
		}
	}
}

func TestExportWriteFile(t *testing.T) {
	g := loadGolden(t, "tiny-gated")
	w, err := BuildT5(g.shape, Safetensors(g.st), g.vocab, ExportOptions{Type: TypeBF16})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tiny-gated.gguf")
	if err := w.WriteFile(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkMetadata(t, f, g, FileTypeMostlyBF16)
	if _, ok := f.Tensor("output.weight"); !ok {
		t.Error("untied model without output.weight")
	}
}

func TestT5TensorName(t *testing.T) {
	for hf, want := range map[string]string{
		"shared.weight":                   "token_embd.weight",
		"decoder.embed_tokens.weight":     "token_embd.weight",
		"lm_head.weight":                  "output.weight",
		"encoder.final_layer_norm.weight": "enc.output_norm.weight",
		"decoder.final_layer_norm.weight": "dec.output_norm.weight",
		"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": "enc.blk.0.attn_rel_b.weight",
		"encoder.block.11.layer.1.DenseReluDense.wi.weight":                    "enc.blk.11.ffn_up.weight",
		"encoder.block.3.layer.1.DenseReluDense.wi_0.weight":                   "enc.blk.3.ffn_gate.weight",
		"encoder.block.3.layer.1.DenseReluDense.wi_1.weight":                   "enc.blk.3.ffn_up.weight",
		"decoder.block.2.layer.1.EncDecAttention.o.weight":                     "dec.blk.2.cross_attn_o.weight",
		"decoder.block.2.layer.1.layer_norm.weight":                            "dec.blk.2.cross_attn_norm.weight",
		"decoder.block.2.layer.2.DenseReluDense.wo.weight":                     "dec.blk.2.ffn_down.weight",
		"decoder.block.2.layer.2.layer_norm.weight":                            "dec.blk.2.ffn_norm.weight",
	} {
		if got, err := T5TensorName(hf); err != nil || got != want {
			t.Errorf("T5TensorName(%q) = %q, %v; want %q", hf, got, err, want)
		}
	}
	for _, bad := range []string{"", "encoder.block.x.layer.0.layer_norm.weight", "encoder.block.01.layer.0.layer_norm.weight",
		"encoder.block.-1.layer.0.layer_norm.weight", "encoder.block.0.layer.2.layer_norm.weight", "middle.block.0.layer.0.layer_norm.weight", "encoder.block.0"} {
		if _, err := T5TensorName(bad); err == nil {
			t.Errorf("T5TensorName(%q) succeeded", bad)
		}
	}
}

// mapSource is a TensorSource over F32 tensors in memory.
type mapSource struct {
	dtype  map[string]safetensors.DType
	shapes map[string][]int
	data   map[string][]byte
}

func (m mapSource) Names() []string {
	var names []string
	for n := range m.shapes {
		names = append(names, n)
	}
	return names
}

func (m mapSource) TensorInfo(name string) (safetensors.DType, []int, bool) {
	s, ok := m.shapes[name]
	return m.dtype[name], s, ok
}

func (m mapSource) TensorData(name string) ([]byte, error) { return m.data[name], nil }

func goldenMap(t *testing.T, g golden) mapSource {
	m := mapSource{map[string]safetensors.DType{}, map[string][]int{}, map[string][]byte{}}
	for _, ti := range g.st.Tensors {
		b, _ := g.st.Bytes(ti.Name)
		m.dtype[ti.Name], m.shapes[ti.Name], m.data[ti.Name] = ti.DType, ti.Shape, b
	}
	return m
}

func TestExportErrors(t *testing.T) {
	g := loadGolden(t, "tiny-relu")
	build := func(s catalog.Shape, src TensorSource, v Vocab, opts ExportOptions) error {
		_, err := BuildT5(s, src, v, opts)
		return err
	}
	// Every case starts from the golden checkpoint and breaks one thing.
	cases := map[string]func(s *catalog.Shape, m mapSource, v *Vocab, o *ExportOptions){
		"missing tensor": func(_ *catalog.Shape, m mapSource, _ *Vocab, _ *ExportOptions) {
			delete(m.shapes, "decoder.block.1.layer.2.DenseReluDense.wo.weight")
		},
		"wrong shape": func(_ *catalog.Shape, m mapSource, _ *Vocab, _ *ExportOptions) {
			m.shapes["encoder.block.0.layer.0.SelfAttention.q.weight"] = []int{64, 32}
		},
		"integer dtype": func(_ *catalog.Shape, m mapSource, _ *Vocab, _ *ExportOptions) {
			m.dtype["encoder.final_layer_norm.weight"] = safetensors.I32
		},
		"extra tensor": func(_ *catalog.Shape, m mapSource, _ *Vocab, _ *ExportOptions) {
			m.shapes["encoder.block.2.layer.0.layer_norm.weight"] = []int{64}
		},
		"config says fewer layers": func(s *catalog.Shape, _ mapSource, _ *Vocab, _ *ExportOptions) { s.NumLayers = 1 },
		"gated silu":               func(s *catalog.Shape, _ mapSource, _ *Vocab, _ *ExportOptions) { s.FeedForwardProj = "gated-silu" },
		"invalid shape":            func(s *catalog.Shape, _ mapSource, _ *Vocab, _ *ExportOptions) { s.DModel = 0 },
		"vocab too big":            func(_ *catalog.Shape, _ mapSource, v *Vocab, _ *ExportOptions) { v.ExtraIDs = 200 },
		"duplicate token": func(_ *catalog.Shape, _ mapSource, v *Vocab, _ *ExportOptions) {
			v.Pieces = slices.Clone(v.Pieces)
			v.Pieces[5].Text = "<extra_id_3>"
		},
		"bad piece type": func(_ *catalog.Shape, _ mapSource, v *Vocab, _ *ExportOptions) {
			v.Pieces = slices.Clone(v.Pieces)
			v.Pieces[5].Type = 0
		},
		"unsupported type": func(_ *catalog.Shape, _ mapSource, _ *Vocab, o *ExportOptions) { o.Type = TypeQ4_K },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			s, m, v, o := g.shape, goldenMap(t, g), g.vocab, ExportOptions{}
			breakIt(&s, m, &v, &o)
			err := build(s, m, v, o)
			if err == nil || !strings.HasPrefix(err.Error(), "gguf: export t5: ") {
				t.Fatalf("BuildT5 = %v", err)
			}
			t.Log(err)
		})
	}
	if _, err := NewT5Vocab(&spm.Model{ModelType: spm.BPE, Pieces: g.spm.Pieces}, 100); err == nil {
		t.Error("NewT5Vocab accepted a BPE model")
	}
	if _, err := NewT5Vocab(g.spm, -1); err == nil {
		t.Error("NewT5Vocab accepted -1 extra ids")
	}
	// An alias stands in for shared.weight.
	m := goldenMap(t, g)
	m.shapes["decoder.embed_tokens.weight"], m.dtype["decoder.embed_tokens.weight"], m.data["decoder.embed_tokens.weight"] =
		m.shapes["shared.weight"], m.dtype["shared.weight"], m.data["shared.weight"]
	delete(m.shapes, "shared.weight")
	if err := build(g.shape, m, g.vocab, ExportOptions{}); err != nil {
		t.Errorf("export with decoder.embed_tokens.weight only: %v", err)
	}
}

// BuildT5 refuses a config that llama.cpp would load and run differently from Hugging Face
// (finding 7 of issue 12: relative_attention_max_distance has no GGUF key and llama.cpp
// hard-codes 128), and accepts the variants it does represent.
func TestExportLlamaCppLimits(t *testing.T) {
	g := loadGolden(t, "tiny-relu")
	setBuckets := func(n int) func(*catalog.Shape, mapSource) {
		return func(s *catalog.Shape, m mapSource) {
			s.RelativeAttentionNumBuckets = n
			for _, name := range []string{"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"} {
				m.shapes[name] = []int{n, s.NumHeads}
			}
		}
	}
	refused := map[string]struct {
		edit func(*catalog.Shape, mapSource)
		want string
	}{
		"max distance 64":  {func(s *catalog.Shape, _ mapSource) { s.RelativeAttentionMaxDistance = 64 }, "relative_attention_max_distance = 64"},
		"max distance 256": {func(s *catalog.Shape, _ mapSource) { s.RelativeAttentionMaxDistance = 256 }, "hard-codes 128"},
		"2 buckets":        {setBuckets(2), "relative_attention_num_buckets = 2"},
		"n_positions 2^33": {func(s *catalog.Shape, _ mapSource) { s.NPositions = 1 << 33 }, "n_positions"},
		"gated relu":       {func(s *catalog.Shape, _ mapSource) { s.FeedForwardProj = "gated-relu" }, "feed_forward_proj"},
		"plain gelu":       {func(s *catalog.Shape, _ mapSource) { s.FeedForwardProj = "gelu" }, "feed_forward_proj"},
	}
	for name, c := range refused {
		t.Run(name, func(t *testing.T) {
			s, m := g.shape, goldenMap(t, g)
			c.edit(&s, m)
			_, err := BuildT5(s, m, g.vocab, ExportOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("BuildT5 = %v, want an error containing %q", err, c.want)
			}
		})
	}
	accepted := map[string]func(*catalog.Shape, mapSource){
		"64 buckets":             setBuckets(64),
		"layer_norm_epsilon":     func(s *catalog.Shape, _ mapSource) { s.LayerNormEpsilon = 1e-5 },
		"decoder_start_token_id": func(s *catalog.Shape, _ mapSource) { s.DecoderStartTokenID = 3 },
		"no n_positions":         func(s *catalog.Shape, _ mapSource) { s.NPositions = 0 },
	}
	for name, edit := range accepted {
		t.Run(name, func(t *testing.T) {
			s, m := g.shape, goldenMap(t, g)
			edit(&s, m)
			if _, err := BuildT5(s, m, g.vocab, ExportOptions{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
