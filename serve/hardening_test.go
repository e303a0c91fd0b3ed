package serve_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/convert/hub/hubtest"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// rawPost sends a request on a new connection of its own, with the given headers and body
// as they are, and returns the connection.
func rawPost(t *testing.T, ts *testServer, path string, header map[string]string, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", path, strings.TrimPrefix(ts.URL, "http://"))
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestSlowSendersHoldNoSlot opens six connections that trickle their request bodies a byte
// at a time, on a server that admits two inference requests at once: ordinary requests are
// still answered at once (the bodies are read before a request takes a place), and the
// tricklers get 408 at the read timeout.
func TestSlowSendersHoldNoSlot(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{MaxQueue: 2, ReadTimeout: 1500 * time.Millisecond}
	})
	if _, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: reluRef, Input: "a"}); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"` + reluRef + `","input":"translate English to German: hello"}`
	var conns []net.Conn
	for range 6 {
		conns = append(conns, rawPost(t, ts, "/api/generate", map[string]string{
			"Content-Type": "application/json", "Content-Length": fmt.Sprint(len(body)),
		}, body[:1]))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			for i := 1; i < len(body)-1; i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := io.WriteString(c, body[i:i+1]); err != nil {
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(300 * time.Millisecond)
	for i := range 3 {
		start := time.Now()
		err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: reluRef, Input: "hello", GenerateOptions: api.GenerateOptions{MaxNewTokens: 3}},
			func(api.GenerateResponse) error { return nil })
		if err != nil {
			t.Fatalf("request %d beside six slow senders: %v", i, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("request %d took %v beside six slow senders", i, d)
		}
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("slow sender %d: %v", i, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout || errorCode(b) != "body_timeout" {
			t.Errorf("slow sender %d: %d %s", i, resp.StatusCode, b)
		}
	}
}

// TestNonReadingClientLosesItsSlot starts a stream of 64 samples with their top log-
// probabilities and reads none of it: once the socket buffers are full the server's writes
// time out, and the request leaves the batch and the queue (it held them until the client
// went away before).
func TestNonReadingClientLosesItsSlot(t *testing.T) {
	base := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{WriteTimeout: 300 * time.Millisecond, RequestTimeout: time.Minute, MaxNewTokens: 2000, MaxInputTokens: 2000}
	})
	// The same server behind small send buffers, so that the writes block after kilobytes,
	// not after the megabytes of an autotuned socket (slow to produce under -race).
	hs := httptest.NewUnstartedServer(base.Server.Handler())
	hs.Listener = smallSendBuffers{hs.Listener}
	hs.Start()
	t.Cleanup(hs.Close)
	ts := *base
	ts.URL = hs.URL
	body, _ := json.Marshal(api.GenerateRequest{Model: longModel, Input: longInput, Stream: true,
		GenerateOptions: api.GenerateOptions{MaxNewTokens: 2000, DoSample: true, NumReturnSequences: 64, TopLogprobs: 20, Seed: 1}})
	conn := rawPost(t, &ts, "/api/generate", map[string]string{"Content-Type": "application/json", "Content-Length": fmt.Sprint(len(body))}, string(body))
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	waitFor(t, "the stream to start", func() bool {
		return metricValue(t, &ts, "t5zoo_inference_requests_in_flight") == 1
	})
	start := time.Now()
	waitFor(t, "the request to lose its slot", func() bool {
		ps, err := ts.Client.Ps(t.Context())
		return err == nil && metricValue(t, &ts, "t5zoo_inference_requests_in_flight") == 0 &&
			len(ps.Models) == 1 && ps.Models[0].Decoding == 0 && ps.Models[0].Requests == 0
	})
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the request held its slot %v after its client stopped reading", d)
	}
}

// smallSendBuffers gives every accepted TCP connection a 4 KiB send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestBrowserPolicy checks the origin, host and media-type rules of a keyless server.
func TestBrowserPolicy(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.AllowOrigins = []string{"https://app.example"}
		c.AllowHosts = []string{"t5zoo.internal", ".lan"}
	})
	own := ts.URL
	gen := `{"model":"` + reluRef + `","input":"a","max_new_tokens":1}`
	for _, tc := range []struct {
		name        string
		method      string
		path, body  string
		header      []string
		status      int
		code, allow string
	}{
		{"no origin", "POST", "/api/generate", gen, nil, 200, "", ""},
		{"same origin", "POST", "/api/generate", gen, []string{"Origin", own}, 200, "", ""},
		{"foreign origin", "POST", "/api/generate", gen, []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed", ""},
		{"foreign origin read", "GET", "/api/ps", "", []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed", ""},
		{"null origin", "POST", "/api/generate", gen, []string{"Origin", "null"}, 403, "origin_not_allowed", ""},
		{"allowed origin", "POST", "/api/generate", gen, []string{"Origin", "https://app.example"}, 200, "", "https://app.example"},
		{"preflight", "OPTIONS", "/api/generate", "", []string{"Origin", "https://app.example", "Access-Control-Request-Method", "POST"}, 204, "", "https://app.example"},
		{"text/plain", "POST", "/api/generate", gen, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type", ""},
		{"form", "POST", "/api/unload", "model=x", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},
		{"json with charset", "POST", "/api/generate", gen, []string{"Content-Type", "application/json; charset=utf-8"}, 200, "", ""},
		{"rebound host", "GET", "/api/ps", "", []string{"Host", "attacker.example"}, 403, "origin_not_allowed", ""},
		{"localhost", "GET", "/api/ps", "", []string{"Host", "localhost:8080"}, 200, "", ""},
		{"allowed host", "GET", "/api/ps", "", []string{"Host", "t5zoo.internal:8080"}, 200, "", ""},
		{"allowed domain", "GET", "/api/ps", "", []string{"Host", "box.lan"}, 200, "", ""},
		{"ip address", "GET", "/api/ps", "", []string{"Host", "192.168.1.20:8080"}, 200, "", ""},
		{"delete without body", "DELETE", "/api/models/nope:1", "", nil, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, b := do(t, tc.method, ts.URL+tc.path, tc.body, tc.header...)
			if status != tc.status || errorCode(b) != tc.code {
				t.Errorf("%d %s, want %d %s", status, b, tc.status, tc.code)
			}
			if got := hdr.Get("Access-Control-Allow-Origin"); got != tc.allow {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.allow)
			}
		})
	}
}

// TestMetricLabelsBounded asks for many models that do not exist: none adds a series; the
// failures are counted under model="other".
func TestMetricLabelsBounded(t *testing.T) {
	ts := newTestServer(t, nil)
	for i := range 30 {
		do(t, http.MethodPost, ts.URL+"/api/generate", fmt.Sprintf(`{"model":"nobody/m%d:x","input":"a"}`, i))
	}
	req, _ := http.NewRequestWithContext(t.Context(), "FROB", ts.URL+"/api/ps", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	status, _, body := do(t, http.MethodGet, ts.URL+"/metrics", "")
	if status != http.StatusOK {
		t.Fatal(status)
	}
	if strings.Contains(string(body), "nobody/m") || strings.Contains(string(body), "FROB") {
		t.Error("a model name or method a client made up is a metric label")
	}
	if v := metricValue(t, ts, "t5zoo_model_loads_total", "model=other", "result=error"); v != 30 {
		t.Errorf("%v failed loads under model=other, want 30", v)
	}
}

// writeModelDir writes a float32 model of shape whose every weight is value(name, i).
func writeModelDir(t *testing.T, shape catalog.Shape, value func(name string, i int) float32) string {
	t.Helper()
	dir := t.TempDir()
	if err := convert.WriteFilled(t.Context(), dir, shape, value); err != nil {
		t.Fatal(err)
	}
	return dir
}

// smallTestShape is a small model of the golden tokenizer's vocabulary.
func smallTestShape() catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers = 32, 64, 8, 4, 1, 1
	s.VocabSize = 2176
	return s
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadModelsCostTheirRequests serves models that are broken in different ways beside a
// good one: each costs its requests a clear error (naming the file at fault, never the
// server's paths), the server stays up, and the good model still answers.
func TestBadModelsCostTheirRequests(t *testing.T) {
	ripple := func(_ string, i int) float32 { return float32(i%7-3) * 0.02 }
	nan := writeModelDir(t, smallTestShape(), func(name string, i int) float32 {
		if name == "decoder.final_layer_norm.weight" {
			return float32(math.NaN())
		}
		return ripple(name, i)
	})
	copyFile(t, filepath.Join(goldenRelu, "spiece.model"), filepath.Join(nan, "spiece.model"))
	garbageSpiece := writeModelDir(t, smallTestShape(), ripple)
	if err := os.WriteFile(filepath.Join(garbageSpiece, "spiece.model"), []byte("not a sentencepiece model\x00\x01\x02"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Legal field by field, and 8.6 GB of position-bias tables in the engine as it was.
	heads := smallTestShape()
	heads.NumHeads, heads.DKV, heads.RelativeAttentionMaxDistance = 4096, 1, 131072
	wide := writeModelDir(t, heads, ripple)
	noConfig := t.TempDir()

	models := map[string]string{"nan": nan, "garbage-spiece": garbageSpiece, "heads": wide, "no-config": noConfig}
	ts := newTestServer(t, func(c *serve.Config) {
		for k, v := range models {
			c.Models[k] = v
		}
		c.MemoryBudget = 512 << 20
	})
	for _, tc := range []struct {
		model, body  string
		status       int
		code, naming string
	}{
		{"nan", `"input":"hello"`, 500, "model_numerics", "NaN"},
		{"garbage-spiece", `"input_ids":[[5,1]]`, 422, "invalid_model", "spiece.model"},
		{"no-config", `"input_ids":[[5,1]]`, 422, "invalid_model", "config.json"},
		{"heads", `"input_ids":[[5,6,1]],"max_new_tokens":2`, 200, "", ""},
		{"nobody/absent:1", `"input":"x"`, 404, "not_found", ""},
	} {
		t.Run(tc.model, func(t *testing.T) {
			status, _, b := do(t, http.MethodPost, ts.URL+"/api/generate", `{"model":"`+tc.model+`",`+tc.body+`}`)
			if status != tc.status || errorCode(b) != tc.code || !strings.Contains(string(b), tc.naming) {
				t.Errorf("%d %s, want %d %s naming %q", status, b, tc.status, tc.code, tc.naming)
			}
			for _, dir := range append([]string{ts.Cache.Root()}, noConfig, nan) {
				if strings.Contains(string(b), dir) {
					t.Errorf("the answer shows the server's path %s: %s", dir, b)
				}
			}
		})
	}
	if err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: reluRef, Input: goldenTexts[0]}, func(api.GenerateResponse) error { return nil }); err != nil {
		t.Fatalf("the good model after the bad ones: %v", err)
	}
}

// TestRequestMemoryAccounted runs concurrent encode requests under a memory budget: /api/ps
// counts their memory while they run and nothing when they are done; the budget is never
// passed; one request that cannot fit beside its model gets 507 at once.
func TestRequestMemoryAccounted(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.MemoryBudget = 80 << 20
		c.Limits.MaxInputTokens = 512
	})
	if _, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: longModel, Input: "a"}); err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 512)
	for i := range ids {
		ids[i] = 5 + i%2000
	}
	batch := make([][]int, 16)
	for i := range batch {
		batch[i] = ids
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var peak, held int64
	var mu sync.Mutex
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ps, err := ts.Client.Ps(t.Context()); err == nil && len(ps.Models) > 0 {
				mu.Lock()
				peak = max(peak, ps.MemoryBytes)
				for _, m := range ps.Models {
					held = max(held, m.RequestBytes)
				}
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for range 8 {
		wg.Go(func() {
			if _, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: longModel, InputIDs: batch, Hidden: true}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if held == 0 {
		t.Error("/api/ps never counted the requests' memory")
	}
	if peak > 80<<20 {
		t.Errorf("memory in use reached %d, over the budget", peak)
	}
	ps, err := ts.Client.Ps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ps.Models[0].RequestBytes != 0 {
		t.Errorf("%d bytes still held after the requests", ps.Models[0].RequestBytes)
	}
	huge := make([][]int, 64)
	for i := range huge {
		huge[i] = ids
	}
	hb, _ := json.Marshal(api.EncodeRequest{Model: longModel, InputIDs: huge, Hidden: true})
	ts2 := newTestServer(t, func(c *serve.Config) {
		c.MemoryBudget = 24 << 20
		c.Limits.MaxInputTokens = 512
		c.Limits.MaxBodyBytes = 1 << 30
	})
	if status, _, b := do(t, http.MethodPost, ts2.URL+"/api/encode", string(hb)); status != http.StatusInsufficientStorage || errorCode(b) != "insufficient_memory" {
		t.Errorf("an encode larger than the budget: %d %s", status, b)
	}
}

// TestLoadVisibleAndCancellable holds a model's pull at its manifest: /api/ps shows it
// loading, an unload cancels it (the waiting request gets 409), and the next request loads
// it afresh.
func TestLoadVisibleAndCancellable(t *testing.T) {
	var gs *gatedStore
	ts := newTestServer(t, func(c *serve.Config) {
		gs = newGatedStore(c.Cache.Registry())
		c.Store = gs
	})
	errc := make(chan error, 1)
	go func() {
		_, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: reluRef, Input: "a"})
		errc <- err
	}()
	<-gs.waiting
	ps, err := ts.Client.Ps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Models) != 1 || ps.Models[0].State != "loading" || ps.Models[0].Load == nil {
		t.Fatalf("ps during the load: %+v", ps.Models)
	}
	if status, _, b := do(t, http.MethodPost, ts.URL+"/api/unload", `{"model":"`+reluRef+`"}`); status != http.StatusOK {
		t.Fatalf("unload of a loading model: %d %s", status, b)
	}
	err = <-errc
	var se *api.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusConflict || se.Code != "load_cancelled" {
		t.Errorf("the request waiting for the cancelled load: %v", err)
	}
	close(gs.gate)
	if _, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: reluRef, Input: "a"}); err != nil {
		t.Fatalf("after the cancelled load: %v", err)
	}
}

// TestFirstUseImportsFromHub asks the server for a published shape that neither its cache
// nor its registry has: it imports it from the Hub (converted with the parity gate, pushed),
// loads and answers it; with no Hub reachable, the answer says what to do instead.
func TestFirstUseImportsFromHub(t *testing.T) {
	cat, err := catalog.Parse(t5zoo.CatalogJSON())
	if err != nil {
		t.Fatal(err)
	}
	const name = "t5-efficient-tiny-nl2" // the smallest published shape
	e, ok := cat.Published(name)
	if !ok {
		t.Fatal(name + " is not published")
	}
	dir := t.TempDir()
	if err := convert.WriteRandom(t.Context(), dir, e.Shape(), 1); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "../infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer/spiece.model", filepath.Join(dir, "spiece.model"))
	repo, err := hubtest.LoadDir(e.HFRepo, dir)
	if err != nil {
		t.Fatal(err)
	}
	hubSrv := hubtest.New(repo)
	defer hubSrv.Close()
	ts := newTestServer(t, func(c *serve.Config) { c.Hub = &hub.Client{Endpoint: hubSrv.URL} })
	var got api.GenerateResponse
	if err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: name, Input: "summarize: a b c", GenerateOptions: api.GenerateOptions{MaxNewTokens: 2}},
		func(r api.GenerateResponse) error { got = r; return nil }); err != nil {
		t.Fatalf("first use of %s: %v", name, err)
	}
	if len(got.Results) != 1 || ts.Log.String() == "" || !strings.Contains(ts.Log.String(), "importing model from the Hub") {
		t.Errorf("answer %+v; log says no import", got)
	}
	if _, err := ts.Cache.Model(zoo.MustParseRef(name)); err != nil {
		t.Errorf("the imported model is not in the cache: %v", err)
	}

	offline := newTestServer(t, func(c *serve.Config) { c.Hub = &hub.Client{Endpoint: "http://127.0.0.1:1", MaxAttempts: 1} })
	status, _, b := do(t, http.MethodPost, offline.URL+"/api/generate", `{"model":"`+name+`","input":"x"}`)
	if status != http.StatusBadGateway || errorCode(b) != "hub_unreachable" || !strings.Contains(string(b), "t5zoo import hf "+e.HFRepo) {
		t.Errorf("offline: %d %s", status, b)
	}
}
