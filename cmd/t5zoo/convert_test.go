package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/convert"
)

func TestConvertCLI(t *testing.T) {
	// A source with only pytorch_model.bin converts exactly.
	src := t.TempDir()
	for _, f := range []string{"config.json", "pytorch_model.bin", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/golden/tiny-relu/checkpoint", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, f), b, 0o644)
	}
	dst := filepath.Join(t.TempDir(), "out")
	out, _, err := runCLI(t, "", "convert", src, dst, "--name", "tiny-relu")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "parity PASS: max |Δlogit| 0,") {
		t.Fatalf("output:\n%s", out)
	}
	meta, err := convert.ReadMeta(dst)
	if err != nil || meta == nil || meta.Parity == nil || !meta.Parity.Passed || meta.Name != "tiny-relu" {
		t.Fatalf("meta %+v, %v", meta, err)
	}
	// The result runs.
	if _, _, err := runCLI(t, "", "run", dst, "Yes", "--max-new-tokens", "3"); err != nil {
		t.Fatal(err)
	}

	// int8 of the untied gated model falls below the gate: an error that writes nothing
	// (the verdict goes to stderr) unless forced, which records the verdict.
	gated := "../../testdata/golden/tiny-gated/checkpoint"
	q := filepath.Join(t.TempDir(), "q")
	_, errOut, err := runCLI(t, "", "convert", gated, q, "--quantize", "int8")
	if err == nil || !strings.Contains(err.Error(), "fails the parity gate") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(errOut, "parity FAIL") {
		t.Errorf("stderr: %s", errOut)
	}
	if _, err := os.Stat(q); !os.IsNotExist(err) {
		t.Fatalf("a refused conversion wrote %s: %v", q, err)
	}
	if left, _ := os.ReadDir(filepath.Dir(q)); len(left) != 0 {
		t.Fatalf("a refused conversion left %v", left)
	}
	if _, _, err := runCLI(t, "", "convert", gated, q, "--quantize", "int8", "--force", "--json"); err != nil {
		t.Fatal(err)
	}
	if meta, _ := convert.ReadMeta(q); meta == nil || meta.Parity == nil || meta.Parity.Passed || meta.Quantization == nil {
		t.Fatalf("meta %+v", meta)
	}

	// A non-empty target is refused untouched; --force replaces it whole.
	if _, _, err := runCLI(t, "", "convert", src, q); err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("convert into a non-empty target: %v", err)
	}
	if meta, _ := convert.ReadMeta(q); meta == nil || meta.Quantization == nil {
		t.Fatalf("the refused target changed: %+v", meta)
	}
	os.WriteFile(filepath.Join(q, "pytorch_model.bin"), []byte("stale"), 0o644)
	replaced := t.TempDir()
	copyDir(t, q, replaced)
	if _, _, err := runCLI(t, "", "convert", src, replaced, "--force"); err != nil {
		t.Fatal(err)
	}
	if meta, _ := convert.ReadMeta(replaced); meta == nil || meta.Quantization != nil || meta.DType != "f32" {
		t.Fatalf("replaced target: %+v", meta)
	}
	if _, err := os.Stat(filepath.Join(replaced, "pytorch_model.bin")); !os.IsNotExist(err) {
		t.Fatalf("a stale file of the replaced model stayed: %v", err)
	}

	// Push refuses the failed conversion unless forced; it also checks tensors against the
	// config.
	t.Setenv("T5ZOO_HOME", t.TempDir())
	t.Setenv("T5ZOO_REGISTRY", "")
	if _, _, err := runCLI(t, "", "push", q, "acme/q"); err == nil || !strings.Contains(err.Error(), "failed parity check") {
		t.Fatalf("push of a failed conversion: %v", err)
	}
	if _, _, err := runCLI(t, "", "push", q, "acme/q", "--force"); err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	for _, f := range []string{"model.safetensors", "spiece.model"} {
		b, _ := os.ReadFile(filepath.Join(dst, f))
		os.WriteFile(filepath.Join(broken, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(broken, "config.json"), []byte(`{"d_model": 32, "vocab_size": 2176}`), 0o644)
	if _, _, err := runCLI(t, "", "push", broken, "acme/broken"); err == nil || !strings.Contains(err.Error(), "the config needs") {
		t.Fatalf("push of mismatched tensors: %v", err)
	}

	for _, bad := range [][]string{
		{"convert", gated, q, "--dtype", "f64"},
		{"convert", gated, q, "--quantize", "int4"},
		{"convert", gated, q, "--quantize", "int8", "--dtype", "bf16"},
		{"convert", t.TempDir(), q},
	} {
		if _, _, err := runCLI(t, "", bad...); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
