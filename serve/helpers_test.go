package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// The golden checkpoints (testdata/golden), pushed to each test's registry under these
// names: real tokenizers, so texts go in and out.
const (
	goldenRelu  = "../testdata/golden/tiny-relu/checkpoint"
	goldenGated = "../testdata/golden/tiny-gated/checkpoint"
	reluRef     = "test/tiny-relu:golden"
	gatedRef    = "test/tiny-gated:golden"
	// longModel is a random model served from a directory (Config.Models) whose greedy
	// decoding of longInput runs to max_new_tokens without </s>.
	longModel = "long"
)

// longInput is an input for which longModel's greedy decoding does not stop early (checked
// by TestLongModelRunsLong).
const longInput = "summarize: the quick brown fox jumps over the lazy dog"

func TestMain(m *testing.M) {
	// gin's mode is process-wide: tests run it in test mode (no debug route listing).
	gin.SetMode(gin.TestMode)
	os.Exit(m.Run())
}

// logBuffer collects the server's log for tests that read it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testServer is a Server on a real socket with its cache, registry and log.
type testServer struct {
	*serve.Server
	URL    string
	Client *api.Client
	Cache  *zoo.Cache
	Log    *logBuffer
}

var (
	longDirOnce sync.Once
	longDir     string
	longDirErr  error
)

// longModelDir writes the random model of longModel once per test binary.
func longModelDir(t *testing.T) string {
	t.Helper()
	longDirOnce.Do(func() {
		dir, err := os.MkdirTemp("", "t5zoo-serve-long")
		if err != nil {
			longDirErr = err
			return
		}
		s := catalog.DefaultShape()
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers = 64, 128, 16, 4, 2, 2
		s.VocabSize = 2176          // the golden tokenizer's
		s.TieWordEmbeddings = false // tied random weights repeat the start token (pad) forever
		if longDirErr = convert.WriteRandom(context.Background(), dir, s, 7); longDirErr != nil {
			return
		}
		for _, f := range []string{"spiece.model", "tokenizer_config.json", "special_tokens_map.json"} {
			b, err := os.ReadFile(filepath.Join(goldenRelu, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
			}
			if err != nil {
				longDirErr = err
				return
			}
		}
		longDir = dir
	})
	if longDirErr != nil {
		t.Fatal(longDirErr)
	}
	return longDir
}

// newTestServer starts a server whose registry holds the two golden models and which
// serves longModel from a directory. edit, if not nil, changes the config first.
func newTestServer(t *testing.T, edit func(*serve.Config)) *testServer {
	t.Helper()
	cache, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for ref, dir := range map[string]string{reluRef: goldenRelu, gatedRef: goldenGated} {
		if _, err := zoo.Push(t.Context(), cache.Registry(), dir, zoo.MustParseRef(ref), zoo.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Parse(t5zoo.CatalogJSON())
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg := serve.Config{
		Cache:   cache,
		Catalog: cat,
		Models:  map[string]string{longModel: longModelDir(t)},
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	c, err := api.NewClient(hs.URL, api.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, URL: hs.URL, Client: c, Cache: cache, Log: logs}
}

// newRequest builds a request with a raw body (sent as application/json unless header says
// otherwise) and headers given as name, value pairs; "Host" sets the request's Host.
func newRequest(t *testing.T, method, url, body string, header ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	return req
}

// do sends a request with a raw body and headers (see newRequest) and returns the status,
// headers and body.
func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(newRequest(t, method, url, body, header...))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// errorCode returns the code of an error body, or "" if b is not one: the native API's
// ErrorBody, or the {"error": {"code", ...}} of the /v1 routes (OpenAIErrorBody) and of the
// registry routes.
func errorCode(b []byte) string {
	var e api.ErrorBody
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Code
	}
	var o api.OpenAIErrorBody
	if json.Unmarshal(b, &o) == nil && o.Error.Message != "" {
		return o.Error.Code
	}
	return ""
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data string
}

// readSSE parses a whole event stream.
func readSSE(t *testing.T, body []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var ev sseEvent
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.data != "" {
				out = append(out, ev)
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected line in event stream: %q", line)
		}
	}
	return out
}

// metricValue returns the sum of the samples of a metric whose label set contains every
// "label=value" given (histograms: name_count or name_sum).
func metricValue(t *testing.T, ts *testServer, name string, labels ...string) float64 {
	t.Helper()
	status, _, body := do(t, http.MethodGet, ts.URL+"/metrics", "")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	var sum float64
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var x float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &x); err == nil {
			sum += x
		}
	}
	return sum
}

// gatedStore is a registry whose manifest reads wait until the gate opens, so that a
// request loading a model stays in flight as long as a test needs.
type gatedStore struct {
	zoo.Store
	gate    chan struct{}
	waiting chan struct{} // receives a value when a read starts waiting
}

func newGatedStore(s zoo.Store) *gatedStore {
	return &gatedStore{Store: s, gate: make(chan struct{}), waiting: make(chan struct{}, 16)}
}

func (g *gatedStore) GetManifest(ctx context.Context, ref zoo.Ref) ([]byte, error) {
	g.waiting <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.GetManifest(ctx, ref)
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
