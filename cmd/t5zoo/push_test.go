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

// TestPushCLIChecksCatalogShape pushes the test model (2+2 layers, d_model 64) under the
// published shape name t5-efficient-tiny (4+4 layers, d_model 256): push refuses it, saying
// how it differs, and stores nothing. (Found: it was accepted.) Under a name of its own it
// goes.
func TestPushCLIChecksCatalogShape(t *testing.T) {
	zooHome(t)
	for _, name := range []string{"t5-efficient-tiny", "google/t5-efficient-tiny:v1", "tiny-nl2"} {
		_, _, err := runCLI(t, "", "push", testModelDir, name)
		if err == nil || !strings.Contains(err.Error(), "does not have the shape of t5-efficient-tiny") ||
			!strings.Contains(err.Error(), "d_model 64, want 256") {
			t.Errorf("push as %s: %v; want a refusal naming the differences", name, err)
		}
	}
	out, _ := mustRun(t, "ls", "--remote", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("refused pushes left manifests: %s", out)
	}
	mustRun(t, "push", testModelDir, "acme/tiny-nl2")
}
