package convert

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

const golden = "../testdata/golden/"

// sourceDir makes a model directory holding only the given files of a golden checkpoint.
func sourceDir(t *testing.T, model string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range append([]string{"config.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"}, files...) {
		b, err := os.ReadFile(filepath.Join(golden, model, "checkpoint", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Converting pytorch_model.bin to f32 reproduces HF's own model.safetensors bit for bit.
func TestPytorchToSafetensorsIsExact(t *testing.T) {
	for _, m := range []string{"tiny-relu", "tiny-gated"} {
		t.Run(m, func(t *testing.T) {
			src := sourceDir(t, m, "pytorch_model.bin")
			dst := t.TempDir()
			meta, err := Convert(t.Context(), src, dst, Options{Name: m})
			if err != nil {
				t.Fatal(err)
			}
			if meta.DType != catalog.F32 || meta.Quantization != nil || len(meta.Provenance.Sources) != 2 || meta.Provenance.Sources[1].Name != "pytorch_model.bin" {
				t.Fatalf("meta %+v", meta)
			}
			got, err := safetensors.Open(filepath.Join(dst, SafetensorsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			want, err := safetensors.Open(filepath.Join(golden, m, "checkpoint", SafetensorsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			if len(got.Tensors) != len(want.Tensors) {
				t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
			}
			for _, wt := range want.Tensors {
				a, err := got.Bytes(wt.Name)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := want.Bytes(wt.Name)
				if !bytes.Equal(a, b) {
					t.Errorf("%s differs", wt.Name)
				}
			}
			for _, f := range []string{"spiece.model", "config.json", MetaFile} {
				if _, err := os.Stat(filepath.Join(dst, f)); err != nil {
					t.Errorf("missing %s: %v", f, err)
				}
			}
			// The written directory is itself a valid checkpoint that reads back the same.
			ck, err := Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			ck.Close()
		})
	}
}

func TestConvertDTypes(t *testing.T) {
	src := sourceDir(t, "tiny-gated", "model.safetensors")
	orig, err := Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	for _, dt := range []catalog.DType{catalog.BF16, catalog.F16, catalog.Int8} {
		t.Run(string(dt), func(t *testing.T) {
			dst := t.TempDir()
			meta, err := Convert(t.Context(), src, dst, Options{DType: dt})
			if err != nil {
				t.Fatal(err)
			}
			ck, err := Open(dst)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if ck.Meta == nil || ck.Meta.DType != dt {
				t.Fatalf("meta %+v", ck.Meta)
			}
			quantized := 0
			for _, tn := range ck.Shape.Tensors() {
				want, _, err := orig.Float32(tn.Name)
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := ck.Float32(tn.Name)
				if err != nil {
					t.Fatal(err)
				}
				stored, _ := ck.Stored(tn.Name)
				switch {
				case dt == catalog.Int8 && tn.Matrix:
					quantized++
					if stored.DType != safetensors.I8 {
						t.Fatalf("%s stored as %s", tn.Name, stored.DType)
					}
					// Each element is within half a quantization step of the original.
					_, scales := QuantizeInt8(want, tn.Shape[0], tn.Shape[1])
					for i := range want {
						if d := math.Abs(float64(got[i] - want[i])); d > float64(scales[i/tn.Shape[1]])/2*(1+1e-6) {
							t.Fatalf("%s[%d]: %g vs %g", tn.Name, i, got[i], want[i])
						}
					}
				case dt == catalog.Int8:
					if stored.DType != safetensors.F32 || !equalF32(got, want) {
						t.Fatalf("%s: non-matrix changed (%s)", tn.Name, stored.DType)
					}
				default:
					cvt := map[catalog.DType]func(float32) float32{
						catalog.BF16: func(f float32) float32 { return safetensors.BF16ToF32(safetensors.F32ToBF16(f)) },
						catalog.F16:  func(f float32) float32 { return safetensors.F16ToF32(safetensors.F32ToF16(f)) },
					}[dt]
					for i := range want {
						if got[i] != cvt(want[i]) {
							t.Fatalf("%s[%d]: %g, want %g", tn.Name, i, got[i], cvt(want[i]))
						}
					}
				}
			}
			if dt == catalog.Int8 && (meta.Quantization == nil || meta.Quantization.Tensors != quantized || quantized == 0) {
				t.Fatalf("quantization %+v, counted %d", meta.Quantization, quantized)
			}
			// A quantized model cannot be converted again.
			if dt == catalog.Int8 {
				if _, err := Convert(t.Context(), dst, t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "already quantized") {
					t.Fatalf("reconvert: %v", err)
				}
			}
		})
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// editConfig rewrites config.json of dir with fn applied to its keys.
func editConfig(t *testing.T, dir string, fn func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	fn(cfg)
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rewriteSafetensors rewrites dir/model.safetensors with edit applied to a copy of the
// golden tensors.
func rewriteSafetensors(t *testing.T, dir, model string, edit func(w *safetensors.Writer, name string, info safetensors.TensorInfo, b []byte) bool) {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(golden, model, "checkpoint", SafetensorsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w safetensors.Writer
	for _, info := range f.Tensors {
		b, _ := f.Bytes(info.Name)
		if edit(&w, info.Name, info, b) {
			continue
		}
		if err := w.Add(info.Name, info.DType, info.Shape, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFile(filepath.Join(dir, SafetensorsFile)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointErrors(t *testing.T) {
	keep := func(*safetensors.Writer, string, safetensors.TensorInfo, []byte) bool { return false }
	tests := []struct {
		name   string
		model  string
		config func(map[string]any)
		edit   func(w *safetensors.Writer, name string, info safetensors.TensorInfo, b []byte) bool
		want   string
	}{
		{"config contradicts tensors", "tiny-relu", func(c map[string]any) { c["d_model"] = 32 }, keep, `tensor "shared.weight" has shape [2176 64], the config needs [2176 32]`},
		{"too few layers in config", "tiny-relu", func(c map[string]any) { c["num_layers"] = 1 }, keep, `unexpected tensor "encoder.block.1.`},
		{"too many layers in config", "tiny-relu", func(c map[string]any) { c["num_decoder_layers"] = 3 }, keep, `missing tensor "decoder.block.2.`},
		{"gated config on relu tensors", "tiny-relu", func(c map[string]any) { c["feed_forward_proj"] = "gated-gelu" }, keep, "missing tensor"},
		{"missing tensor", "tiny-relu", nil, func(_ *safetensors.Writer, n string, _ safetensors.TensorInfo, _ []byte) bool {
			return n == "encoder.block.1.layer.1.DenseReluDense.wo.weight"
		}, `missing tensor "encoder.block.1.layer.1.DenseReluDense.wo.weight"`},
		{"extra tensor", "tiny-relu", nil, func(w *safetensors.Writer, n string, info safetensors.TensorInfo, b []byte) bool {
			if n == "shared.weight" {
				w.Add("encoder.block.0.layer.0.SelfAttention.q.bias", safetensors.F32, []int{64}, make([]byte, 256))
			}
			return false
		}, `unexpected tensor "encoder.block.0.layer.0.SelfAttention.q.bias"`},
		{"wrong dtype", "tiny-relu", nil, func(w *safetensors.Writer, n string, info safetensors.TensorInfo, b []byte) bool {
			if n != "encoder.final_layer_norm.weight" {
				return false
			}
			w.Add(n, safetensors.I32, info.Shape, b)
			return true
		}, "dtype I32"},
		{"tied lm_head differs", "tiny-relu", nil, func(w *safetensors.Writer, n string, info safetensors.TensorInfo, b []byte) bool {
			if n == "shared.weight" {
				w.Add("lm_head.weight", info.DType, info.Shape, make([]byte, len(b)))
			}
			return false
		}, `"lm_head.weight" differs from shared.weight, but tie_word_embeddings is true`},
		{"int8 without scales", "tiny-relu", nil, func(w *safetensors.Writer, n string, info safetensors.TensorInfo, b []byte) bool {
			if n != "encoder.block.0.layer.0.SelfAttention.q.weight" {
				return false
			}
			w.Add(n, safetensors.I8, info.Shape, make([]byte, len(b)/4))
			return true
		}, "needs F32 scales"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := sourceDir(t, tt.model)
			rewriteSafetensors(t, dir, tt.model, tt.edit)
			if tt.config != nil {
				editConfig(t, dir, tt.config)
			}
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %s", err, tt.want)
			}
			if !strings.Contains(err.Error(), "model.safetensors") && !strings.Contains(err.Error(), "missing tensor") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

// A checkpoint that stores the embedding only under an alias name, and copies of it under
// the others, resolves to shared.weight.
func TestTiedAliasesResolve(t *testing.T) {
	dir := sourceDir(t, "tiny-relu")
	rewriteSafetensors(t, dir, "tiny-relu", func(w *safetensors.Writer, n string, info safetensors.TensorInfo, b []byte) bool {
		if n != "shared.weight" {
			return false
		}
		w.Add("encoder.embed_tokens.weight", info.DType, info.Shape, b)
		w.Add("decoder.embed_tokens.weight", info.DType, info.Shape, b)
		w.Add("lm_head.weight", info.DType, info.Shape, b)
		return true
	})
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if st, _ := ck.Stored("shared.weight"); st.Name != "encoder.embed_tokens.weight" {
		t.Fatalf("shared.weight resolved to %q", st.Name)
	}
}

func TestNoWeights(t *testing.T) {
	dir := sourceDir(t, "tiny-relu")
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "holds none of") {
		t.Fatalf("err = %v", err)
	}
}
