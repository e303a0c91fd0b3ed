package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/zoo"
)

// hostileArchives are the pytorch_model.bin files of convert/pytorch's hostile tests (its fuzz
// seeds): a storage offset of 2^63-1, a zip entry claiming 1 TiB, a deflate bomb, a size
// product that overflows, a storage bigger than its tensors.
var hostileArchives = []string{"offset-maxint64", "entry-1tib", "deflate-bomb", "size-overflow", "storage-unviewed"}

// readFuzzSeed reads the []byte of a `go test fuzz v1` corpus file.
func readFuzzSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if !ok || !strings.HasPrefix(lit, "[]byte(") || !strings.HasSuffix(lit, ")") {
		t.Fatalf("%s: not a []byte fuzz seed", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lit, "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// writeSafetensorsModel writes config.json and model.safetensors of shape, every weight
// value(name, i).
func writeSafetensorsModel(t *testing.T, dir string, shape catalog.Shape, value func(name string, i int) float32) {
	t.Helper()
	if err := convert.WriteFilled(t.Context(), dir, shape, value); err != nil {
		t.Fatal(err)
	}
}

// TestServeSurvivesHostileCheckpoints starts the real binary under `ulimit -v 8G` and feeds it
// every malformed checkpoint we know of, from its registry and from --model directories
// whose files were swapped after the start check: each costs its request an error, the
// process lives, and a good model still answers.
func TestServeSurvivesHostileCheckpoints(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh for ulimit")
	}
	// Not under the race detector, whose shadow memory no 8 GiB address space holds.
	bin := buildBinary(t)
	home := t.TempDir()
	cache, err := zoo.OpenCache(home)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	spiece, err := os.ReadFile(filepath.Join(testModelDir, "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	push := func(name string, write func(dir string)) {
		dir := t.TempDir()
		write(dir)
		if _, err := os.Stat(filepath.Join(dir, "spiece.model")); err != nil {
			os.WriteFile(filepath.Join(dir, "spiece.model"), spiece, 0o644)
		}
		if _, err := zoo.Push(ctx, cache.Registry(), dir, zoo.MustParseRef(name), zoo.PushOptions{}); err != nil {
			t.Fatalf("push %s: %v", name, err)
		}
	}
	small := catalog.DefaultShape()
	small.DModel, small.DFF, small.DKV, small.NumHeads, small.NumLayers, small.NumDecoderLayers, small.VocabSize = 32, 64, 8, 4, 1, 1, 2176
	ripple := func(_ string, i int) float32 { return float32(i%7-3) * 0.02 }
	push("good", func(dir string) {
		for _, f := range []string{"config.json", "model.safetensors", "spiece.model"} {
			b, _ := os.ReadFile(filepath.Join(testModelDir, f))
			os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
	})
	push("heads", func(dir string) { // legal field by field: 4096 heads, max_distance 131072
		s := small
		s.NumHeads, s.DKV, s.RelativeAttentionMaxDistance = 4096, 1, 131072
		writeSafetensorsModel(t, dir, s, ripple)
	})
	push("huge-ffn", func(dir string) { // a config whose weights could never fit (and the file lacks them)
		writeSafetensorsModel(t, dir, small, ripple)
		s := small
		s.DModel, s.DFF = 1<<17, 1<<17
		cfg, _ := json.Marshal(s.HFConfig())
		os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
	})
	push("nan", func(dir string) {
		writeSafetensorsModel(t, dir, small, func(name string, i int) float32 {
			if strings.HasSuffix(name, "final_layer_norm.weight") {
				return float32(math.NaN())
			}
			return ripple(name, i)
		})
	})
	push("garbage-spiece", func(dir string) {
		writeSafetensorsModel(t, dir, small, ripple)
		os.WriteFile(filepath.Join(dir, "spiece.model"), bytes.Repeat([]byte{0xff, 0x01}, 999), 0o644)
	})
	push("truncated", func(dir string) {
		writeSafetensorsModel(t, dir, small, ripple)
		p := filepath.Join(dir, "model.safetensors")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, b[:len(b)/2], 0o644)
	})

	// --model directories: good at the start check, hostile by their first use.
	var modelFlags []string
	pt := map[string]string{}
	for _, name := range hostileArchives {
		dir := t.TempDir()
		for _, f := range []string{"config.json", "model.safetensors", "spiece.model"} {
			b, _ := os.ReadFile(filepath.Join(testModelDir, f))
			os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		pt["pt-"+name] = dir
		modelFlags = append(modelFlags, "--model", "pt-"+name+"="+dir)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := append([]string{"-c", `ulimit -v 8388608 && exec "$0" "$@"`, bin, "serve", "--addr", addr, "--no-import"}, modelFlags...)
	srv := exec.CommandContext(ctx, "sh", args...)
	srv.Env = append(os.Environ(), "T5ZOO_HOME="+home, "T5ZOO_REGISTRY=")
	logs := &syncBuffer{}
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		srv.Process.Kill()
		<-exited
	})
	url := "http://" + addr
	client := &http.Client{Timeout: 60 * time.Second}
	post := func(model, body string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/generate", strings.NewReader(`{"model":"`+model+`",`+body+`}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			select {
			case err := <-exited:
				t.Fatalf("the server died on %s: %v\n%s", model, err, logs.String())
			default:
			}
			t.Fatalf("%s: %v", model, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the server did not start: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Swap the --model directories' weights for the hostile archives.
	for _, name := range hostileArchives {
		dir := pt["pt-"+name]
		os.Remove(filepath.Join(dir, "model.safetensors"))
		seed := readFuzzSeed(t, filepath.Join("..", "..", "convert", "pytorch", "testdata", "fuzz", "FuzzArchive", name))
		if err := os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), seed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func(when string) {
		if status, body := post("good", `"input":"translate English to German: hello","max_new_tokens":3`); status != http.StatusOK {
			t.Fatalf("the good model %s: %d %s", when, status, body)
		}
	}
	good("at the start")
	cases := []struct {
		model  string
		status int
	}{
		{"heads", http.StatusOK},
		{"huge-ffn", http.StatusInsufficientStorage}, // priced before any allocation
		{"nan", http.StatusInternalServerError},
		{"garbage-spiece", http.StatusUnprocessableEntity},
		{"truncated", http.StatusUnprocessableEntity},
	}
	for _, name := range hostileArchives {
		cases = append(cases, struct {
			model  string
			status int
		}{"pt-" + name, http.StatusUnprocessableEntity})
	}
	for _, tc := range cases {
		status, body := post(tc.model, `"input_ids":[[5,6,1]],"max_new_tokens":2`)
		if status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.model, status, body, tc.status)
		}
		good("after " + tc.model)
	}
	select {
	case err := <-exited:
		t.Fatalf("the server exited: %v\n%s", err, logs.String())
	default:
	}
}

// syncBuffer is a bytes.Buffer safe for the writes of a child process's output copier and
// the reads of a failing test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
