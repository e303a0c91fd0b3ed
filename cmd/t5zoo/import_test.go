package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/convert/hub/hubtest"
)

// goldenRepo is the golden tiny-relu checkpoint as a Hub repository without
// model.safetensors, like most google/t5-efficient-* repositories.
func goldenRepo(t *testing.T, id string) hubtest.Repo {
	t.Helper()
	r, err := hubtest.LoadDir(id, "../../testdata/golden/tiny-relu/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	delete(r.Files, "model.safetensors")
	return r
}

func TestImportHF(t *testing.T) {
	hubSrv := hubtest.New(goldenRepo(t, "acme/tiny"), goldenRepo(t, "google/t5-efficient-tiny"))
	defer hubSrv.Close()
	home := t.TempDir()
	t.Setenv("T5ZOO_HOME", home)
	t.Setenv("T5ZOO_REGISTRY", "")
	t.Setenv("HF_ENDPOINT", hubSrv.URL)

	// The weights transfer is cut mid-body once: the client resumes it with a range request.
	hubSrv.Inject("acme/tiny", "pytorch_model.bin", hubtest.Fault{CutAfter: 1 << 20})
	out, _, err := runCLI(t, "", "import", "hf", "acme/tiny")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imported acme/tiny@main") || !strings.Contains(out, "as acme/tiny:latest") {
		t.Fatalf("output: %s", out)
	}
	ranged := false
	for _, r := range hubSrv.Requests() {
		ranged = ranged || strings.HasPrefix(r.Range, "bytes=") && strings.Contains(r.Path, "pytorch_model.bin")
	}
	if !ranged {
		t.Error("the cut transfer was not resumed with a range request")
	}
	// The download is gone after success; the model runs by name, pulled from the registry.
	if _, err := os.Stat(filepath.Join(home, "downloads", "hf", "acme", "tiny", "main")); !os.IsNotExist(err) {
		t.Errorf("download kept: %v", err)
	}
	got, _, err := runCLI(t, "", "run", "acme/tiny", "Yes", "--max-new-tokens", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := runCLI(t, "", "run", "../../testdata/golden/tiny-relu/checkpoint", "Yes", "--max-new-tokens", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("imported model differs:\n%s\n%s", got, want)
	}

	// Under a published catalog name only that shape is imported: the golden checkpoint is
	// not t5-efficient-tiny, and nothing is pushed; under another name it imports.
	_, _, err = runCLI(t, "", "import", "hf", "google/t5-efficient-tiny")
	if err == nil || !strings.Contains(err.Error(), "does not have the shape of t5-efficient-tiny") || !strings.Contains(err.Error(), "d_model 64, want 256") || !strings.Contains(err.Error(), "--as") {
		t.Fatalf("import of a checkpoint that is not its catalog shape: %v", err)
	}
	if out, _, _ := runCLI(t, "", "ls", "--remote"); strings.Contains(out, "t5-efficient-tiny") {
		t.Fatalf("a mismatched checkpoint was pushed:\n%s", out)
	}
	if _, _, err := runCLI(t, "", "import", "hf", "google/t5-efficient-tiny", "--as", "acme/not-tiny"); err != nil {
		t.Fatal(err)
	}

	// A published shape the registry lacks: pull says how to import it.
	_, _, err = runCLI(t, "", "pull", "mini")
	if err == nil || !strings.Contains(err.Error(), "t5zoo import hf google/t5-efficient-mini") {
		t.Fatalf("pull of a missing published shape: %v", err)
	}
	// An unpublished name is not offered an import.
	if _, _, err = runCLI(t, "", "pull", "--import", "base-nl37"); err == nil || strings.Contains(err.Error(), "import hf") {
		t.Fatalf("pull --import of an unpublished shape: %v", err)
	}

	// A lossy import below the parity gate is refused and pushes nothing, unless forced.
	gated, err := hubtest.LoadDir("acme/gated-t5", "../../testdata/golden/tiny-gated/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	hubSrv.AddRepo(gated)
	_, _, err = runCLI(t, "", "import", "hf", "acme/gated-t5", "--quantize", "int8")
	if err == nil || !strings.Contains(err.Error(), "nothing was pushed") {
		t.Fatalf("err = %v", err)
	}
	if out, _, _ := runCLI(t, "", "ls", "--remote"); strings.Contains(out, "acme/gated-t5") {
		t.Fatalf("refused import was pushed:\n%s", out)
	}
	if _, _, err := runCLI(t, "", "import", "hf", "acme/gated-t5", "--quantize", "int8", "--force", "--as", "acme/gated-t5:int8"); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := runCLI(t, "", "ls", "--remote"); !strings.Contains(out, "acme/gated-t5") {
		t.Fatalf("forced import missing:\n%s", out)
	}
}

func TestImportHFErrors(t *testing.T) {
	gated := goldenRepo(t, "acme/secret")
	gated.Gated = true
	hubSrv := hubtest.New(gated)
	defer hubSrv.Close()
	t.Setenv("T5ZOO_HOME", t.TempDir())
	t.Setenv("T5ZOO_REGISTRY", "")
	t.Setenv("HF_ENDPOINT", hubSrv.URL)
	t.Setenv("HF_TOKEN", "")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "hf", "acme/missing"}, "not found"},
		{[]string{"import", "hf", "acme/secret"}, "HF_TOKEN"},
		{[]string{"import", "hf", "acme/secret", "--as", "../evil"}, "malformed"},
		{[]string{"import", "hf", "acme/secret", "--quantize", "int4"}, "only int8"},
	} {
		_, _, err := runCLI(t, "", tt.args...)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
	// With the token the gated repository imports.
	t.Setenv("HF_TOKEN", hubSrv.Token)
	if _, _, err := runCLI(t, "", "import", "hf", "acme/secret"); err != nil {
		t.Fatal(err)
	}
}
