package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/convert/gguf"
)

func TestExportCLI(t *testing.T) {
	src := "../../testdata/golden/tiny-relu/checkpoint"
	hf := filepath.Join(t.TempDir(), "hf")
	if _, _, err := runCLI(t, "", "export", src, hf); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "spiece.model"} {
		if _, err := os.Stat(filepath.Join(hf, f)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "m.gguf")
	if _, _, err := runCLI(t, "", "export", src, out, "--format", "gguf", "--dtype", "f16"); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, bad := range [][]string{
		{"export", src, out, "--format", "onnx"},
		{"export", src, hf, "--dtype", "f16"},
		{"export", src, out, "--format", "gguf", "--dtype", "int4"},
		{"export", "no-such-dir", out},
	} {
		if _, _, err := runCLI(t, "", bad...); err == nil {
			t.Errorf("%v: no error", bad)
		} else if strings.Contains(err.Error(), "panic") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}
