package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPushCLIValidates(t *testing.T) {
	zooHome(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "bert"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "spiece.model"), []byte("x"), 0o644)
	_, _, err := runCLI(t, "", "push", dir, "acme/bert")
	if err == nil || !strings.Contains(err.Error(), "invalid model directory") || !strings.Contains(err.Error(), "bert") {
		t.Fatalf("push of a non-T5 directory: %v", err)
	}
	_, _, err = runCLI(t, "", "push", testModelDir, "acme/x:bad/tag")
	if err == nil || !strings.Contains(err.Error(), "malformed reference") {
		t.Fatalf("push with a bad tag: %v", err)
	}
}

func TestPushCLISkipsOtherFiles(t *testing.T) {
	zooHome(t)
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "spiece.model"} {
		b, _ := os.ReadFile(filepath.Join(testModelDir, name))
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("weights"), 0o644)
	out, errOut := mustRun(t, "push", dir, "acme/tiny", "--chunk-mib", "1")
	if !strings.Contains(out, "3 files") || !strings.Contains(errOut, "pytorch_model.bin") {
		t.Fatalf("push: %q\nstderr: %q", out, errOut)
	}
	// Re-pushing uploads nothing.
	out, _ = mustRun(t, "push", dir, "acme/tiny:v2", "--chunk-mib", "1")
	if !strings.Contains(out, "0 chunks uploaded") {
		t.Fatalf("re-push: %q", out)
	}
}
