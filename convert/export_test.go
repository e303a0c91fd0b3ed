package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/gguf"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// Exporting a converted golden model gives back HF's own model.safetensors byte for byte:
// same tensor selection, order, header layout and data, so from_pretrained loads it as it
// loads HF's file.
func TestExportHFReproducesHFFile(t *testing.T) {
	for _, m := range []string{"tiny-relu", "tiny-gated"} {
		t.Run(m, func(t *testing.T) {
			conv, out := t.TempDir(), t.TempDir()
			if _, err := Convert(t.Context(), sourceDir(t, m, "pytorch_model.bin"), conv, Options{}); err != nil {
				t.Fatal(err)
			}
			if err := ExportHF(t.Context(), conv, out, HFOptions{}); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(out, SafetensorsFile))
			want, _ := os.ReadFile(filepath.Join(golden, m, "checkpoint", SafetensorsFile))
			if !bytes.Equal(got, want) {
				t.Fatal("exported model.safetensors differs from HF's")
			}
			if _, err := os.Stat(filepath.Join(out, MetaFile)); err == nil {
				t.Error("t5zoo.json exported")
			}
		})
	}
}

// An int8 model exports dequantized to float32.
func TestExportHFInt8(t *testing.T) {
	q, out := t.TempDir(), t.TempDir()
	if _, err := Convert(t.Context(), sourceDir(t, "tiny-relu", "model.safetensors"), q, Options{DType: catalog.Int8}); err != nil {
		t.Fatal(err)
	}
	if err := ExportHF(t.Context(), q, out, HFOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := Open(q)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, name := range a.Names() {
		st, _ := b.Stored(name)
		if st.DType != safetensors.F32 {
			t.Fatalf("%s exported as %s", name, st.DType)
		}
		x, _, _ := a.Float32(name)
		y, _, _ := b.Float32(name)
		if !equalF32(x, y) {
			t.Fatalf("%s differs after export", name)
		}
	}
}

func TestExportGGUF(t *testing.T) {
	src := filepath.Join(golden, "tiny-gated", "checkpoint")
	for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
		t.Run(string(dt), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "m.gguf")
			if err := ExportGGUF(t.Context(), src, out, GGUFOptions{DType: dt, Name: "tiny-gated"}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ck, err := Open(src)
			if err != nil {
				t.Fatal(err)
			}
			defer ck.Close()
			if len(f.Tensors) != len(ck.Shape.Tensors()) {
				t.Fatalf("%d tensors, want %d", len(f.Tensors), len(ck.Shape.Tensors()))
			}
			if dt == catalog.F32 {
				want, _, _ := ck.Float32("decoder.block.0.layer.1.EncDecAttention.k.weight")
				got, err := f.Float32s("dec.blk.0.cross_attn_k.weight")
				if err != nil || !equalF32(got, want) {
					t.Fatalf("cross_attn_k differs: %v", err)
				}
			}
		})
	}
}

// An export that fails part way leaves its target as it was: no half-written directory for a
// new target, the old files untouched for a forced one (finding 6 of issue 12).
func TestExportHFFailureLeavesTarget(t *testing.T) {
	src := sourceDir(t, "tiny-relu", "model.safetensors")
	// The last file the export copies cannot be read.
	if err := os.Mkdir(filepath.Join(src, "generation_config.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "new")
	if err := ExportHF(t.Context(), src, fresh, HFOptions{}); err == nil {
		t.Fatal("export with an unreadable tokenizer file succeeded")
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("failed export left %s (%v)", fresh, err)
	}
	if es, _ := os.ReadDir(filepath.Dir(fresh)); len(es) != 0 {
		t.Errorf("failed export left %d temporary entries", len(es))
	}

	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, "config.json"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ExportHF(t.Context(), src, old, HFOptions{Force: true}); err == nil {
		t.Fatal("forced export with an unreadable tokenizer file succeeded")
	}
	es, _ := os.ReadDir(old)
	if b, _ := os.ReadFile(filepath.Join(old, "config.json")); len(es) != 1 || string(b) != "old" {
		t.Errorf("failed forced export changed the target: %d entries, config %q", len(es), b)
	}

	if err := ExportHF(t.Context(), src, src, HFOptions{Force: true}); err == nil {
		t.Error("export over its own source succeeded")
	}
	if err := ExportHF(t.Context(), src, filepath.Join(src, "config.json"), HFOptions{Force: true}); err == nil {
		t.Error("export over a file succeeded")
	}
}

// A model llama.cpp would run with other position buckets than Hugging Face is refused
// before any file is written (finding 7 of issue 12).
func TestExportGGUFRefusesMaxDistance(t *testing.T) {
	src := sourceDir(t, "tiny-relu", "model.safetensors")
	editConfig(t, src, func(c map[string]any) { c["relative_attention_max_distance"] = 64 })
	out := filepath.Join(t.TempDir(), "m.gguf")
	err := ExportGGUF(t.Context(), src, out, GGUFOptions{})
	if err == nil || !strings.Contains(err.Error(), "relative_attention_max_distance = 64") {
		t.Fatalf("err = %v", err)
	}
	if es, _ := os.ReadDir(filepath.Dir(out)); len(es) != 0 {
		t.Errorf("refused export left %d files", len(es))
	}
}
