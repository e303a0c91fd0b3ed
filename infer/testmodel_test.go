package infer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// randomSpec describes a random-weight model for self-consistency tests.
type randomSpec struct {
	shape  catalog.Shape
	dtype  safetensors.DType // F32, F16 or BF16
	shards int               // 0 or 1: model.safetensors; more: an index and that many shards
	// zeroEOS zeroes the output-embedding row of </s>, so that greedy decoding never stops
	// early and beam search never finishes a hypothesis before max_length.
	zeroEOS bool
}

// testOptions applies the backend named by T5ZOO_BACKEND and the kernel path named by
// T5ZOO_KERNEL (scripts/test runs the engine tests once per backend and path) and skips the
// test if this CPU cannot run it.
func testOptions(t testing.TB, o LoadOptions) LoadOptions {
	t.Helper()
	if b := os.Getenv("T5ZOO_BACKEND"); b != "" {
		o.Backend = b
		if b == "plain" {
			return o
		}
	}
	if p := os.Getenv("T5ZOO_KERNEL"); p != "" {
		path, err := kernels.ParsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		if !kernels.Supported(path) {
			t.Skipf("T5ZOO_KERNEL=%s: this CPU or build cannot run it", p)
		}
		o.Kernels = p
	}
	return o
}

// skipOnPlain skips a test of the memory model under T5ZOO_BACKEND=plain: the prices and the
// allocation budget are those of the CPU backend's layout (packed panels, per-worker
// attention scratch, recycled jobs), which the plain reference backend, written for
// readability, does not share.
func skipOnPlain(t *testing.T) {
	t.Helper()
	if os.Getenv("T5ZOO_BACKEND") == "plain" {
		t.Skip("memory prices are the CPU backend's; the plain backend checks numerics")
	}
}

// smallShape has d_kv·num_heads (60) ≠ d_model (48) and more encoder than decoder layers.
func smallShape() catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads = 48, 72, 20, 3
	s.NumLayers, s.NumDecoderLayers = 3, 2
	s.VocabSize = 300
	s.RelativeAttentionMaxDistance = 20 // short inputs reach the saturated buckets
	return s
}

// randomTensors draws the weights of spec.shape (every tensor of shape.Tensors()) as
// convert.RandomWeights draws them: HF's initialisation, the same weights every run.
func randomTensors(spec randomSpec, seed uint64) map[string][]float32 {
	fill := convert.RandomWeights(spec.shape, seed)
	out := make(map[string][]float32)
	for _, tn := range spec.shape.Tensors() {
		v := make([]float32, tn.Elements())
		if err := fill(tn.Name, 0, v); err != nil {
			panic(err) // a tensor of the shape's own list: a bug in RandomWeights
		}
		out[tn.Name] = v
	}
	if spec.zeroEOS {
		head := "shared.weight"
		if !spec.shape.TieWordEmbeddings {
			head = "lm_head.weight"
		}
		d, eos := spec.shape.DModel, spec.shape.EOSTokenID
		clear(out[head][eos*d : (eos+1)*d])
	}
	return out
}

// encodeAs converts float32 values to dtype's little-endian bytes (rounding to nearest
// even for F16 and BF16).
func encodeAs(dtype safetensors.DType, v []float32) []byte {
	switch dtype {
	case safetensors.F16:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], f32ToF16(x))
		}
		return b
	case safetensors.BF16:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			u := math.Float32bits(x)
			u += 0x7fff + (u>>16)&1
			binary.LittleEndian.PutUint16(b[2*i:], uint16(u>>16))
		}
		return b
	}
	return safetensors.Float32Bytes(v)
}

// f32ToF16 rounds a finite float32 of magnitude below 65504 to binary16 by searching the
// exactly representable neighbours (tests only; values are small).
func f32ToF16(x float32) uint16 {
	best, bestErr := uint16(0), math.Inf(1)
	// Start from a truncated guess and check neighbours.
	bits := math.Float32bits(x)
	sign := uint16(bits>>16) & 0x8000
	e := int(bits>>23&0xff) - 127 + 15
	var guess uint16
	switch {
	case e >= 31:
		guess = 0x7bff
	case e <= 0:
		guess = uint16(math.Abs(float64(x)) / math.Ldexp(1, -24))
	default:
		guess = uint16(e)<<10 | uint16(bits>>13&0x3ff)
	}
	for c := int(guess) - 2; c <= int(guess)+2; c++ {
		if c < 0 || c > 0x7bff {
			continue
		}
		h := uint16(c) | sign
		if err := math.Abs(float64(safetensors.F16ToF32(h)) - float64(x)); err < bestErr {
			best, bestErr = h, err
		}
	}
	return best
}

// writeModel writes a model directory for spec and returns its path.
func writeModel(t testing.TB, spec randomSpec, tensors map[string][]float32) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := json.MarshalIndent(spec.shape.HFConfig(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	shapes := make(map[string][]int)
	for _, tn := range spec.shape.Tensors() {
		shapes[tn.Name] = tn.Shape
	}
	dtype := spec.dtype
	if dtype == "" {
		dtype = safetensors.F32
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	shards := max(spec.shards, 1)
	writers := make([]safetensors.Writer, shards)
	weightMap := make(map[string]string)
	for i, name := range names {
		w := &writers[i%shards]
		shape, ok := shapes[name]
		switch {
		case strings.HasSuffix(name, "embed_tokens.weight") || name == "lm_head.weight":
			shape = shapes["shared.weight"]
		case !ok || product(shape) != len(tensors[name]):
			shape = []int{len(tensors[name])} // an extra or mis-sized tensor added by a test
		}
		if err := w.Add(name, dtype, shape, encodeAs(dtype, tensors[name])); err != nil {
			t.Fatal(err)
		}
		weightMap[name] = fmt.Sprintf("model-%05d-of-%05d.safetensors", i%shards+1, shards)
	}
	if spec.shards <= 1 {
		writers[0].SetMetadata("format", "pt")
		if err := writers[0].WriteFile(filepath.Join(dir, "model.safetensors")); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for i := range writers {
		if err := writers[i].WriteFile(filepath.Join(dir, fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, shards))); err != nil {
			t.Fatal(err)
		}
	}
	index, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// randomInputs returns n inputs of lengths 1..maxLen with ids in [2, vocab), ending in </s>.
func randomInputs(seed uint64, n, maxLen, vocab, eos int) [][]int {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([][]int, n)
	for i := range out {
		l := 1 + r.IntN(maxLen)
		ids := make([]int, l)
		for j := range ids {
			ids[j] = 2 + r.IntN(vocab-2)
		}
		ids[l-1] = eos
		out[i] = ids
	}
	return out
}

func product(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
