package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/hub/hubtest"
)

// randomPublished is a Hub repository holding the published catalog shape name with random
// weights (convert.WriteRandom) and the real T5 vocabulary: a checkpoint that passes the
// catalog check of an import by name. The smallest published shape, t5-efficient-tiny-nl2,
// is 11.9M parameters (48 MB in f32).
func randomPublished(t *testing.T, name string) hubtest.Repo {
	t.Helper()
	c, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Published(name)
	if !ok {
		t.Fatalf("%s is not published", name)
	}
	dir := t.TempDir()
	if err := convert.WriteRandom(t.Context(), dir, e.Shape(), 1); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(t5Tokenizer, "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spiece.model"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := hubtest.LoadDir(e.HFRepo, dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRunByName: run (and score) of a published shape that neither the cache nor the
// registry has imports it from the Hub, pushes it and runs it; the next run uses the cache.
func TestRunByName(t *testing.T) {
	hubSrv := hubtest.New(randomPublished(t, "t5-efficient-tiny-nl2"))
	defer hubSrv.Close()
	zooHome(t)
	t.Setenv("HF_ENDPOINT", hubSrv.URL)
	// pull alone does not import, but says how.
	if _, _, err := runCLI(t, "", "pull", "tiny-nl2"); err == nil || !strings.Contains(err.Error(), "t5zoo import hf google/t5-efficient-tiny-nl2") {
		t.Fatalf("pull: %v", err)
	}
	out, errOut, err := runCLI(t, "", "run", "tiny-nl2", "Hello", "--max-new-tokens", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("stdout holds more than the generation: %q", out)
	}
	for _, want := range []string{"importing google/t5-efficient-tiny-nl2", "parity PASS", "imported google/t5-efficient-tiny-nl2@main", "as t5-efficient-tiny-nl2:latest"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if rout, _, err := runCLI(t, "", "ls", "--remote"); err != nil || !strings.Contains(rout, "t5-efficient-tiny-nl2:latest") {
		t.Errorf("not in the registry: %v\n%s", err, rout)
	}
	before := len(hubSrv.Requests())
	if _, errOut, err := runCLI(t, "", "score", "t5-efficient-tiny-nl2", "--input", "Hello", "--target", "World"); err != nil || strings.Contains(errOut, "importing") {
		t.Fatalf("score after the import: %v\n%s", err, errOut)
	}
	if n := len(hubSrv.Requests()); n != before {
		t.Errorf("the second use asked the Hub %d times", n-before)
	}
}

// TestRunByNameOffline: with the Hub unreachable, run of a published shape says so at once
// and gives the commands that get the model another way.
func TestRunByNameOffline(t *testing.T) {
	zooHome(t)
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1")
	start := time.Now()
	_, _, err := runCLI(t, "", "run", "t5-efficient-tiny", "Hello")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"could not be reached", "t5zoo import hf google/t5-efficient-tiny", "T5ZOO_REGISTRY", "t5zoo convert", "t5zoo push", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	// pull --import says the same.
	if _, _, err := runCLI(t, "", "pull", "--import", "t5-efficient-tiny"); err == nil || !strings.Contains(err.Error(), "could not be reached") {
		t.Errorf("pull --import offline: %v", err)
	}
}

// TestModelPaths: a MODEL that looks like a path is one: a missing one says so, and a
// directory that is not a model names what it lacks.
func TestModelPaths(t *testing.T) {
	zooHome(t)
	t.Setenv("HF_ENDPOINT", "http://127.0.0.1:1") // nothing here may reach a Hub
	empty := t.TempDir()
	noTok := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(testModelDir, f))
		os.WriteFile(filepath.Join(noTok, f), b, 0o644)
	}
	in := "--input"
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "./nope", "x"}, []string{"./nope does not exist"}},
		{[]string{"run", "/no/such/model", "x"}, []string{"/no/such/model does not exist"}},
		{[]string{"score", "./nope", in, "a", "--target", "b"}, []string{"./nope does not exist"}},
		{[]string{"tokenize", "./nope"}, []string{"./nope does not exist"}},
		{[]string{"export", "./nope", filepath.Join(t.TempDir(), "o")}, []string{"./nope does not exist"}},
		{[]string{"run", empty, "x"}, []string{"has no config.json", "model.safetensors", "pytorch_model.bin", "spiece.model"}},
		{[]string{"run", noTok, "x"}, []string{"has no spiece.model"}},
		{[]string{"score", empty, in, "a", "--target", "b"}, []string{"has no config.json"}},
		{[]string{"tokenize", empty}, []string{"has no spiece.model"}},
		{[]string{"run", filepath.Join(testModelDir, "config.json"), "x"}, []string{"is a file"}},
		// A name with a slash that is neither in the registry nor a directory says both.
		{[]string{"run", "acme/nope", "x"}, []string{"not found", "acme/nope does not exist as a directory"}},
		{[]string{"run", "Not A Name", "x"}, []string{"neither a model directory nor a registry name"}},
	} {
		_, _, err := runCLI(t, "", tt.args...)
		if err == nil {
			t.Errorf("%v: no error", tt.args)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %v\nlacks %q", tt.args, err, w)
			}
		}
	}
}

// TestServeModelCheck: serve refuses to start with a --model directory that is not a model.
func TestServeModelCheck(t *testing.T) {
	zooHome(t)
	mismatched := t.TempDir()
	for _, f := range []string{"model.safetensors", "spiece.model"} {
		b, _ := os.ReadFile(filepath.Join(testModelDir, f))
		os.WriteFile(filepath.Join(mismatched, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(mismatched, "config.json"), []byte(`{"d_model": 32, "vocab_size": 2176}`), 0o644)
	badTok := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, _ := os.ReadFile(filepath.Join(testModelDir, f))
		os.WriteFile(filepath.Join(badTok, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(badTok, "spiece.model"), []byte("not a sentencepiece model"), 0o644)
	for _, tt := range []struct {
		dir  string
		want string
	}{
		{t.TempDir(), "has no config.json"},
		{mismatched, "the config needs"},
		{badTok, "spiece.model"},
	} {
		done := make(chan error, 1)
		go func() {
			_, _, err := runCLI(t, "", "serve", "--addr", "127.0.0.1:0", "--model", "m="+tt.dir)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "--model m=") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: %v, want %q", tt.dir, err, tt.want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("serve started with --model m=%s", tt.dir)
		}
	}
}

// TestShowCatalogHint: show of a catalog shape the registry lacks says how to get it.
func TestShowCatalogHint(t *testing.T) {
	zooHome(t)
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"mini", []string{"nor in the local cache", "t5zoo pull --import t5-efficient-mini", "t5zoo import hf google/t5-efficient-mini"}},
		{"t5-efficient-mini:bf16", []string{"t5zoo import hf google/t5-efficient-mini --as t5-efficient-mini:bf16"}},
		{"base-nl37", []string{"no published checkpoint", "t5zoo catalog show t5-efficient-base-nl37"}},
	} {
		_, _, err := runCLI(t, "", "show", tt.name)
		if err == nil {
			t.Errorf("show %s: no error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("show %s: %v\nlacks %q", tt.name, err, w)
			}
		}
	}
}
