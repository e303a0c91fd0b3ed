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
