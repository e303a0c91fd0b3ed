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

// export refuses a target that holds something unless --force, and then replaces it whole:
// nothing of the old target is left beside the new files (finding 6 of issue 12). An empty
// directory is fine.
func TestExportTargetRules(t *testing.T) {
	src := "../../testdata/golden/tiny-relu/checkpoint"
	ls := func(dir string) []string {
		t.Helper()
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}

	hf := t.TempDir() // exists, empty: fine
	if _, _, err := runCLI(t, "", "export", src, hf); err != nil {
		t.Fatalf("empty target: %v", err)
	}
	want := strings.Join(ls(hf), " ")
	for _, stale := range []string{"t5zoo.json", "model.safetensors.index.json"} {
		if err := os.WriteFile(filepath.Join(hf, stale), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := strings.Join(ls(hf), " ")
	if _, _, err := runCLI(t, "", "export", src, hf); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("non-empty target: err = %v, want one suggesting --force", err)
	}
	if got := strings.Join(ls(hf), " "); got != before {
		t.Fatalf("refused export changed the target: %s, was %s", got, before)
	}
	if _, _, err := runCLI(t, "", "export", src, hf, "--force"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ls(hf), " "); got != want {
		t.Fatalf("after --force the target holds %s, want exactly %s", got, want)
	}
	if leftovers := ls(filepath.Dir(hf)); len(leftovers) != 1 {
		t.Errorf("temporary siblings left: %v", leftovers)
	}

	out := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(out, []byte("an older file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "", "export", src, out, "--format", "gguf"); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("existing gguf file: err = %v, want one suggesting --force", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "an older file" {
		t.Fatal("refused export changed the file")
	}
	if _, _, err := runCLI(t, "", "export", src, out, "--format", "gguf", "--force"); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := runCLI(t, "", "export", src, hf, "--format", "gguf", "--force"); err == nil {
		t.Error("a gguf export over a directory succeeded")
	}
}
