package catalog

import (
	"fmt"
	"strings"
	"testing"
)

// testShapes covers the four FFN/embedding combinations, d_kv·heads ≠ d_model and unequal
// stacks.
func testShapes(t *testing.T) map[string]Shape {
	t.Helper()
	base, _ := BaseShape(Base)
	gated := base
	gated.FeedForwardProj, gated.TieWordEmbeddings = "gated-gelu", false
	odd := DefaultShape()
	odd.DModel, odd.DFF, odd.DKV, odd.NumHeads, odd.NumLayers, odd.NumDecoderLayers = 96, 200, 24, 5, 3, 7
	oddGatedTied := odd
	oddGatedTied.FeedForwardProj = "gated-silu"
	reluUntied := odd
	reluUntied.TieWordEmbeddings = false
	reluUntied.RelativeAttentionNumBuckets = 16
	return map[string]Shape{"base": base, "gated-untied": gated, "odd": odd, "odd-gated-tied": oddGatedTied, "relu-untied": reluUntied}
}

func TestParamsT5Base(t *testing.T) {
	// t5-base / t5-efficient-base: 222,903,552 (HF model.num_parameters(); facts/catalog_facts.md §1.2).
	s, _ := BaseShape(Base)
	if got := s.Params(); got != 222_903_552 {
		t.Fatalf("t5-efficient-base params = %d, want 222903552", got)
	}
	// tiny-nl32: 66,986,752, a model.num_parameters() output found in a GitHub project (same source).
	n, err := ParseName("tiny-nl32")
	if err != nil {
		t.Fatal(err)
	}
	s, _ = n.Shape()
	if got := s.Params(); got != 66_986_752 {
		t.Fatalf("t5-efficient-tiny-nl32 params = %d, want 66986752", got)
	}
}

// The closed-form count must equal the sum over the tensor list, which is built layer by
// layer from HF's module structure.
func TestParamsEqualsTensorSum(t *testing.T) {
	for name, s := range testShapes(t) {
		t.Run(name, func(t *testing.T) {
			var sum int64
			for _, ts := range s.Tensors() {
				sum += ts.Elements()
			}
			if sum != s.Params() {
				t.Fatalf("tensor sum %d != Params() %d", sum, s.Params())
			}
		})
	}
}

// matmul is one matrix product (m×k)·(k×n): m·k·n multiply-adds.
type matmul struct {
	what    string
	m, k, n int64
}

// architectureMatmuls walks the T5 forward pass as an engine runs it: the encoder over the
// whole input, the cross-attention K/V projections once, then the decoder one target token
// at a time with a KV cache, head by head. It shares no formula with Shape.FLOPs.
func architectureMatmuls(s Shape, L, T int) []matmul {
	dm, ff, kv, V := int64(s.DModel), int64(s.DFF), int64(s.DKV), int64(s.VocabSize)
	I := int64(s.NumHeads) * kv
	var ops []matmul
	add := func(what string, m, k, n int64) { ops = append(ops, matmul{what, m, k, n}) }
	ffn := func(stack string, rows int64) {
		add(stack+" wi", rows, dm, ff)
		if s.Gated() {
			add(stack+" wi_1", rows, dm, ff)
		}
		add(stack+" wo", rows, ff, dm)
	}
	l := int64(L)
	for range s.NumLayers {
		for _, p := range []string{"q", "k", "v"} {
			add("enc "+p, l, dm, I)
		}
		for range s.NumHeads {
			add("enc scores", l, kv, l)
			add("enc attn·v", l, l, kv)
		}
		add("enc o", l, I, dm)
		ffn("enc", l)
	}
	for range s.NumDecoderLayers {
		add("cross k", l, dm, I)
		add("cross v", l, dm, I)
	}
	for step := range int64(T) {
		keys := step + 1 // this token and the cached ones
		for range s.NumDecoderLayers {
			for _, p := range []string{"q", "k", "v"} {
				add("self "+p, 1, dm, I)
			}
			for range s.NumHeads {
				add("self scores", 1, kv, keys)
				add("self attn·v", 1, keys, kv)
			}
			add("self o", 1, I, dm)
			add("cross q", 1, dm, I)
			for range s.NumHeads {
				add("cross scores", 1, kv, l)
				add("cross attn·v", 1, l, kv)
			}
			add("cross o", 1, I, dm)
			ffn("dec", 1)
		}
		add("lm_head", 1, dm, V)
	}
	return ops
}

func TestFLOPsCountsEveryMatmul(t *testing.T) {
	lengths := []struct{ L, T int }{{1, 1}, {7, 3}, {64, 17}, {203, 20}, {0, 5}, {9, 0}}
	for name, s := range testShapes(t) {
		for _, ln := range lengths {
			t.Run(fmt.Sprintf("%s/L%d_T%d", name, ln.L, ln.T), func(t *testing.T) {
				var enc, dec int64
				for _, op := range architectureMatmuls(s, ln.L, ln.T) {
					f := 2 * op.m * op.k * op.n
					if strings.HasPrefix(op.what, "enc ") {
						enc += f
					} else {
						dec += f
					}
				}
				got := s.FLOPs(ln.L, ln.T)
				if got.Encoder != enc || got.Decoder != dec || got.Total != enc+dec {
					t.Fatalf("FLOPs(%d, %d) = enc %d dec %d total %d; counted enc %d dec %d",
						ln.L, ln.T, got.Encoder, got.Decoder, got.Total, enc, dec)
				}
				if ln.L > 0 && got.EncoderPerToken != float64(enc)/float64(ln.L) {
					t.Errorf("EncoderPerToken = %g, want %g", got.EncoderPerToken, float64(enc)/float64(ln.L))
				}
				if ln.T > 0 && got.DecoderPerToken != float64(dec)/float64(ln.T) {
					t.Errorf("DecoderPerToken = %g, want %g", got.DecoderPerToken, float64(dec)/float64(ln.T))
				}
			})
		}
	}
}

func TestWeightBytes(t *testing.T) {
	s, _ := BaseShape(Base)
	P := s.Params()
	if got := s.WeightBytes(F32); got != 4*P {
		t.Errorf("f32 = %d, want %d", got, 4*P)
	}
	for _, dt := range []DType{BF16, F16} {
		if got := s.WeightBytes(dt); got != 2*P {
			t.Errorf("%s = %d, want %d", dt, got, 2*P)
		}
	}
	// int8, counted by hand for t5-efficient-base: matrices are everything but the
	// 12·2 + 12·3 + 2 = 62 norm vectors of 768 and the 2 bias tables of 32×12.
	vectors := int64(62*768 + 2*32*12)
	matrices := P - vectors
	// one scale per output row: shared 32128; per encoder layer q,k,v 768 each, o 768, wi
	// 3072, wo 768; per decoder layer twice the attention plus the FFN.
	rows := int64(32128 + 12*(4*768+3072+768) + 12*(8*768+3072+768))
	want := matrices + 4*rows + 4*vectors
	if got := s.WeightBytes(Int8); got != want {
		t.Errorf("int8 = %d, want %d", got, want)
	}
}

func TestKVCacheBytes(t *testing.T) {
	s, _ := BaseShape(Base)
	s.NumDecoderLayers = 2
	// two layers × (K and V) × 12 heads × 64 × 4 bytes
	want := int64(2 * 2 * 12 * 64 * 4)
	kv := s.KVCacheBytes()
	if kv.SelfPerTargetToken != want || kv.CrossPerInputToken != want {
		t.Fatalf("KVCacheBytes = %+v, want %d each", kv, want)
	}
	if got := kv.RequestKVBytes(10, 3); got != 13*want {
		t.Fatalf("RequestKVBytes(10, 3) = %d, want %d", got, 13*want)
	}
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"f32": F32, "float32": F32, "BF16": BF16, "bfloat16": BF16, "fp16": F16, "int8": Int8} {
		if got, err := ParseDType(in); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseDType("int4"); err == nil {
		t.Error("ParseDType(int4) succeeded")
	}
}
