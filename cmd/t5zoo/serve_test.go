package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

const serveTestKey = "serve-test-key-0123456789"

// startServe runs `t5zoo serve args...` in-process until the test ends and returns its
// address and a function returning its log so far.
func startServe(t *testing.T, args ...string) (addr string, logs func() string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	root := newRootCmd()
	pr, pw := io.Pipe()
	root.SetErr(pw)
	root.SetOut(io.Discard)
	root.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...))
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	var mu sync.Mutex
	var all strings.Builder
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`msg=serving addr=(\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			all.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return addr, func() string {
		mu.Lock()
		defer mu.Unlock()
		return all.String()
	}, stop
}

// TestServeCommand starts the serve verb on a cache whose registry holds the golden model,
// with an API key: it answers inference with the key, lets another cache pull through it
// (T5ZOO_REGISTRY=http://...), logs its environment without the key, and shuts down on
// cancellation.
func TestServeCommand(t *testing.T) {
	home := t.TempDir()
	t.Setenv("T5ZOO_HOME", home)
	t.Setenv("T5ZOO_REGISTRY", "")
	t.Setenv("T5ZOO_API_KEYS", serveTestKey+":admin")
	t.Setenv("T5ZOO_API_KEYS_FILE", "")
	cache, err := zoo.OpenCache(home)
	if err != nil {
		t.Fatal(err)
	}
	ref := zoo.MustParseRef("test/tiny:v1")
	if _, err := zoo.Push(t.Context(), cache.Registry(), "../../testdata/golden/tiny-relu/checkpoint", ref, zoo.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	addr, logs, stop := startServe(t, "--max-loaded", "1", "--memory-budget", "1GiB", "--keep-alive", "1m",
		"--model", "dir="+filepath.Clean("../../testdata/golden/tiny-gated/checkpoint"))

	c, err := api.NewClient("http://"+addr, api.ClientOptions{APIKey: serveTestKey})
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"test/tiny:v1", "dir"} {
		var got api.GenerateResponse
		err = c.Generate(t.Context(), &api.GenerateRequest{Model: model, Input: "translate English to German: The house is wonderful."},
			func(r api.GenerateResponse) error { got = r; return nil })
		if err != nil || !got.Done || len(got.Results) != 1 {
			t.Fatalf("generate on %s: %+v %v", model, got, err)
		}
	}
	ps, err := c.Ps(t.Context())
	if err != nil || len(ps.Models) != 1 || ps.MaxLoaded != 1 || ps.MemoryBudget != 1<<30 {
		t.Errorf("ps %+v %v (want one model loaded of --max-loaded 1, budget 1GiB)", ps, err)
	}
	noKey, _ := api.NewClient("http://"+addr, api.ClientOptions{})
	if _, err := noKey.Ps(t.Context()); err == nil || err.(*api.StatusError).StatusCode != 401 {
		t.Errorf("without a key: %v", err)
	}

	// Pull through the server into another cache, with the CLI.
	t.Setenv("T5ZOO_HOME", t.TempDir())
	t.Setenv("T5ZOO_REGISTRY", "http://"+addr)
	t.Setenv("T5ZOO_API_KEY", serveTestKey)
	out, _, err := runCLI(t, "", "pull", "test/tiny:v1")
	if err != nil || !strings.Contains(out, "pulled test/tiny:v1") {
		t.Fatalf("pull through the server: %q %v", out, err)
	}
	b, _ := os.ReadFile(filepath.Join(os.Getenv("T5ZOO_HOME"), "models/test/tiny/_tags/v1/model.safetensors"))
	want, _ := os.ReadFile("../../testdata/golden/tiny-relu/checkpoint/model.safetensors")
	if len(b) == 0 || string(b) != string(want) {
		t.Error("the pulled weights differ")
	}
	if _, _, err := runCLI(t, "", "push", "../../testdata/golden/tiny-relu/checkpoint", "test/other:v1"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("push to the server's registry: %v", err)
	}

	if err := stop(); err != nil {
		t.Errorf("serve after cancellation: %v", err)
	}
	l := logs()
	for _, want := range []string{"msg=environment", "T5ZOO_API_KEYS=(set)", "route=/api/generate", "msg=\"shut down\""} {
		if !strings.Contains(l, want) {
			t.Errorf("the log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, serveTestKey) {
		t.Error("the log contains the API key")
	}
}

func TestServeFlags(t *testing.T) {
	t.Setenv("T5ZOO_HOME", t.TempDir())
	t.Setenv("T5ZOO_API_KEYS", "")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"budget", []string{"--memory-budget", "lots"}, "", "--memory-budget"},
		{"body", []string{"--max-body", "0"}, "", "--max-body"},
		{"model", []string{"--model", "nodir"}, "", "want NAME=DIR"},
		{"model dir", []string{"--model", "x=/does/not/exist"}, "", "not a directory"},
		{"keys", nil, "short-key", "T5ZOO_API_KEYS: serve: API key 1"},
		{"keys file", []string{"--api-keys-file", "/does/not/exist"}, "", "API keys file"},
		{"addr", []string{"--addr", "256.0.0.1:x"}, "", "serve:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("T5ZOO_API_KEYS", tc.env)
			_, _, err := runCLI(t, "", append([]string{"serve"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want an error with %q", err, tc.want)
			}
			if tc.env != "" && err != nil && strings.Contains(err.Error(), tc.env) {
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
}
