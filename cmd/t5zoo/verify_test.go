package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyCLIFindsDamage(t *testing.T) {
	home := zooHome(t)
	out, _ := mustRun(t, "verify")
	if !strings.Contains(out, "no local models") {
		t.Fatalf("verify of an empty cache: %q", out)
	}
	mustRun(t, "push", testModelDir, "acme/tiny")
	mustRun(t, "pull", "acme/tiny")
	p := filepath.Join(home, "models", "acme", "tiny", "_tags", "latest", "config.json")
	os.Chmod(p, 0o644)
	b, _ := os.ReadFile(p)
	b[10] ^= 1
	os.WriteFile(p, b, 0o644)
	out, _, err := runCLI(t, "", "verify")
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "config.json") {
		t.Fatalf("verify of a damaged model: %v\n%s", err, out)
	}
}

// variantModel copies the test model with the tail of its weights changed, so that it shares
// every other file (spiece.model, config.json, ...) with the test model.
func variantModel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(testModelDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "model.safetensors" {
			for i := len(b) - 64; i < len(b); i++ {
				b[i] ^= 0x5a // tensor data; the header stays valid
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// flipByte damages p in place (same inode, same size), as a failing disk would.
func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	os.Chmod(p, 0o644)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyCLIRepairs damages local models — the weights of one, and a spiece.model that
// two models share by hard link — runs verify, runs exactly the commands it printed, and
// verifies again: every model is intact. (Found: verify advised rm and pull, and pull
// linked the damaged shared file back in.)
func TestVerifyCLIRepairs(t *testing.T) {
	home := zooHome(t)
	mustRun(t, "push", testModelDir, "acme/a")
	mustRun(t, "push", variantModel(t), "acme/b:v1")
	mustRun(t, "pull", "acme/a")
	mustRun(t, "pull", "acme/b:v1")
	dirA := filepath.Join(home, "models", "acme", "a", "_tags", "latest")
	dirB := filepath.Join(home, "models", "acme", "b", "_tags", "v1")
	fa, _ := os.Stat(filepath.Join(dirA, "spiece.model"))
	fb, _ := os.Stat(filepath.Join(dirB, "spiece.model"))
	if !os.SameFile(fa, fb) {
		t.Fatal("the two models do not share spiece.model")
	}
	flipByte(t, filepath.Join(dirA, "spiece.model"), 1000)
	flipByte(t, filepath.Join(dirA, "model.safetensors"), 5000)

	out, _, err := runCLI(t, "", "verify")
	if err == nil || !strings.Contains(err.Error(), "repair") {
		t.Fatalf("verify of damaged models: %v\n%s", err, out)
	}
	var cmds [][]string
	for _, line := range strings.Split(out, "\n") {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "repair: "); ok {
			cmds = append(cmds, strings.Fields(cmd))
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("verify printed %d repair commands for 2 damaged models:\n%s", len(cmds), out)
	}
	for _, cmd := range cmds {
		if cmd[0] != "t5zoo" {
			t.Fatalf("repair command %q is not a t5zoo command", cmd)
		}
		mustRun(t, cmd[1:]...)
	}
	out, _ = mustRun(t, "verify")
	for _, want := range []string{"ok      acme/a:latest", "ok      acme/b:v1"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify after the repairs lacks %q:\n%s", want, out)
		}
	}
	for _, name := range []string{"model.safetensors", "spiece.model"} {
		a, _ := os.ReadFile(filepath.Join(testModelDir, name))
		b, _ := os.ReadFile(filepath.Join(dirA, name))
		if string(a) != string(b) {
			t.Errorf("%s of acme/a differs from the pushed one after the repair", name)
		}
	}
}
