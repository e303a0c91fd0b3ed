package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/internal/miniotest"
)

// testModelDir is the golden tiny checkpoint that zoo's tests use.
const testModelDir = "../../testdata/golden/tiny-relu/checkpoint"

// zooHome points T5ZOO_HOME at a fresh directory and T5ZOO_REGISTRY at its default.
func zooHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("T5ZOO_HOME", home)
	t.Setenv("T5ZOO_REGISTRY", "")
	return home
}

func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	out, errOut, err := runCLI(t, "", args...)
	if err != nil {
		t.Fatalf("t5zoo %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out, errOut
}

// TestPullCLI goes through the verbs on the default local registry: push, ls --remote,
// pull, ls, show, verify, rm.
func TestPullCLI(t *testing.T) {
	home := zooHome(t)
	// The test model is not the published t5-efficient-tiny-nl2 (push would refuse it under
	// that name): it goes under a name of its own.
	out, errOut := mustRun(t, "push", testModelDir, "acme/tiny-nl2:golden")
	if !strings.Contains(out, "pushed acme/tiny-nl2:golden") || !strings.Contains(out, "6 files") {
		t.Fatalf("push output: %q", out)
	}
	if !strings.Contains(errOut, "push model.safetensors: done") {
		t.Errorf("push progress (not a terminal): %q", errOut)
	}
	out, _ = mustRun(t, "ls", "--remote")
	if !strings.Contains(out, "acme/tiny-nl2:golden") || !strings.Contains(out, "absent") {
		t.Fatalf("ls --remote: %q", out)
	}
	out, errOut = mustRun(t, "pull", "acme/tiny-nl2:golden")
	dir := filepath.Join(home, "models", "acme", "tiny-nl2", "_tags", "golden")
	if !strings.Contains(out, "pulled acme/tiny-nl2:golden") || !strings.Contains(out, dir) {
		t.Fatalf("pull output: %q", out)
	}
	if !strings.Contains(errOut, "pull spiece.model: done (264 KiB)") {
		t.Errorf("pull progress: %q", errOut)
	}
	for _, name := range []string{"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json"} {
		a, _ := os.ReadFile(filepath.Join(testModelDir, name))
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(a) != string(b) {
			t.Fatalf("%s differs after push and pull (%v)", name, err)
		}
	}
	out, _ = mustRun(t, "ls", "--json")
	var rows []modelRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Dir != dir || rows[0].Size != 1759637 {
		t.Fatalf("ls --json: %v %+v", err, rows)
	}
	out, _ = mustRun(t, "show", "acme/tiny-nl2:golden")
	for _, want := range []string{"pulled in " + dir, "1.7 MiB in 6 files", "spiece.model", "5ddcb5549f36f331716ff2fe6adc2419e293b07b1e36ed6f0d0951a9a7658b96"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	out, _ = mustRun(t, "verify")
	if !strings.Contains(out, "ok      acme/tiny-nl2:golden") {
		t.Fatalf("verify: %q", out)
	}
	// A pull with a timeout too short to finish says so and leaves no model.
	if _, _, err := runCLI(t, "", "pull", "--timeout", "1us", "acme/tiny-nl2:golden"); err == nil || !strings.Contains(err.Error(), "not finished within 1µs") {
		t.Errorf("pull --timeout 1us of a present model: %v", err)
	}
	mustRun(t, "rm", "acme/tiny-nl2:golden")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("rm left %s", dir)
	}
	if _, _, err := runCLI(t, "", "rm", "acme/tiny-nl2:golden"); err == nil || !strings.Contains(err.Error(), "not in the local cache") {
		t.Fatalf("second rm: %v", err)
	}
	mustRun(t, "rm", "--remote", "acme/tiny-nl2:golden")
	out, _ = mustRun(t, "ls", "--remote", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("ls --remote after rm --remote: %q", out)
	}
}

func TestPullCLIErrors(t *testing.T) {
	zooHome(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pull", "../etc/passwd"}, "malformed reference"},
		{[]string{"pull", "acme/none"}, "not found"},
		{[]string{"pull", "t5-efficient-bsae"}, "unknown size"},
		{[]string{"show", "acme/none"}, "nor in the local cache"},
		{[]string{"verify", "acme/none"}, "not found"},
	} {
		_, _, err := runCLI(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("t5zoo %s: %v; want an error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	t.Setenv("T5ZOO_REGISTRY", "ftp://x")
	if _, _, err := runCLI(t, "", "pull", "tiny"); err == nil || !strings.Contains(err.Error(), "T5ZOO_REGISTRY") {
		t.Errorf("a bad T5ZOO_REGISTRY: %v", err)
	}
}

// TestPullCLIS3 runs push, ls --remote and pull against MinIO configured through the
// environment, and checks the errors for wrong credentials and a missing bucket.
func TestPullCLIS3(t *testing.T) {
	srv := miniotest.Start(t)
	zooHome(t)
	t.Setenv("T5ZOO_REGISTRY", "s3://"+srv.Bucket+"/team/zoo")
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint())
	t.Setenv("AWS_ACCESS_KEY_ID", miniotest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.SecretKey)
	t.Setenv("AWS_REGION", "")
	out, _ := mustRun(t, "push", testModelDir, "acme/tiny:v1")
	if !strings.Contains(out, "s3://"+srv.Bucket+"/team/zoo at "+srv.Endpoint()) {
		t.Fatalf("push output: %q", out)
	}
	out, _ = mustRun(t, "ls", "--remote")
	if !strings.Contains(out, "acme/tiny:v1") {
		t.Fatalf("ls --remote: %q", out)
	}
	mustRun(t, "pull", "acme/tiny:v1")
	out, _ = mustRun(t, "ls", "--remote", "--json")
	if !strings.Contains(out, `"local": "pulled"`) {
		t.Fatalf("ls --remote --json after pull: %q", out)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, _, err := runCLI(t, "", "pull", "acme/tiny:v2"); err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("wrong credentials: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.SecretKey)
	t.Setenv("T5ZOO_REGISTRY", "s3://no-such-bucket")
	if _, _, err := runCLI(t, "", "pull", "acme/tiny:v1"); err == nil || !strings.Contains(err.Error(), "bucket does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
}
