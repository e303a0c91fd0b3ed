package serve_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
)

// TestLimits sends requests over each limit: each gets its 4xx (or 503) with the error
// format.
func TestLimits(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{MaxBodyBytes: 2000, MaxInputs: 2, MaxInputTokens: 30, MaxNewTokens: 10}
	})
	long := strings.Repeat("word ", 40)
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"body", "/api/generate", `{"model":"` + reluRef + `","input":"` + strings.Repeat("x", 3000) + `"}`, 413, "body_too_large"},
		{"body openai", "/v1/completions", `{"model":"` + reluRef + `","prompt":"` + strings.Repeat("x", 3000) + `"}`, 413, "body_too_large"},
		{"inputs", "/api/generate", `{"model":"` + reluRef + `","inputs":["a","b","c"]}`, 400, "limit_exceeded"},
		{"input tokens", "/api/generate", `{"model":"` + reluRef + `","input":"` + long + `"}`, 400, "limit_exceeded"},
		{"input ids", "/api/encode", `{"model":"` + reluRef + `","input_ids":[[` + strings.Repeat("5,", 40) + `1]]}`, 400, "limit_exceeded"},
		{"max_new_tokens", "/api/generate", `{"model":"` + reluRef + `","input":"a","max_new_tokens":11}`, 400, "limit_exceeded"},
		{"max_tokens", "/v1/completions", `{"model":"` + reluRef + `","prompt":"a","max_tokens":11}`, 400, "limit_exceeded"},
		{"prompts", "/v1/completions", `{"model":"` + reluRef + `","prompt":["a","b","c"]}`, 400, "limit_exceeded"},
		{"score pairs", "/api/score", `{"model":"` + reluRef + `","pairs":[{"input":"a","target":"b"},{"input":"a","target":"b"},{"input":"a","target":"b"}]}`, 400, "limit_exceeded"},
		{"score target", "/api/score", `{"model":"` + reluRef + `","pairs":[{"input":"a","target":"` + long + `"}]}`, 400, "limit_exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, http.MethodPost, ts.URL+tc.path, tc.body)
			if status != tc.status || errorCode(body) != tc.code {
				t.Errorf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
}

// startStream posts a streaming generation of longInput by model (the long model or a copy) and returns once its first
// token event has arrived; the returned function reads the rest of the stream.
func startStream(t *testing.T, ts *testServer, model string, maxNew int, header ...string) (rest func() []sseEvent, cancel func()) {
	t.Helper()
	body, _ := json.Marshal(api.GenerateRequest{Model: model, Input: longInput, Stream: true, GenerateOptions: api.GenerateOptions{MaxNewTokens: maxNew}})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/api/generate", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "event: token\n" {
		t.Fatalf("first line %q, %v", first, err)
	}
	return func() []sseEvent {
			defer resp.Body.Close()
			var b strings.Builder
			b.WriteString(first)
			for {
				line, err := br.ReadString('\n')
				b.WriteString(line)
				if err != nil {
					break
				}
			}
			return readSSE(t, []byte(b.String()))
		}, func() {
			resp.Body.Close()
		}
}

// TestQueueFull fills the queue (one request) with a request whose model is being pulled:
// the next request is a 503 with Retry-After; once the first ends, requests pass again.
func TestQueueFull(t *testing.T) {
	var gs *gatedStore
	ts := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{MaxQueue: 1}
		gs = newGatedStore(c.Cache.Registry())
		c.Store = gs
	})
	first := make(chan error, 1)
	go func() {
		_, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: reluRef, Input: "a"})
		first <- err
	}()
	<-gs.waiting
	status, hdr, body := do(t, http.MethodPost, ts.URL+"/api/generate", `{"model":"`+longModel+`","input":"a"}`)
	if status != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "1" || errorCode(body) != "busy" {
		t.Errorf("second request: %d Retry-After %q %s", status, hdr.Get("Retry-After"), body)
	}
	err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: longModel, Input: "a"}, func(api.GenerateResponse) error { return nil })
	if se, ok := err.(*api.StatusError); !ok || se.StatusCode != 503 || se.RetryAfter != time.Second || se.Code != "busy" {
		t.Errorf("client: %v", err)
	}
	if n := metricValue(t, ts, "t5zoo_inference_requests_in_flight"); n != 1 {
		t.Errorf("%v requests in flight", n)
	}
	close(gs.gate)
	if err := <-first; err != nil {
		t.Errorf("the first request: %v", err)
	}
	if status, _, body := do(t, http.MethodPost, ts.URL+"/api/generate", `{"model":"`+longModel+`","input":"a"}`); status != http.StatusOK {
		t.Errorf("after the first request: %d %s", status, body)
	}
}

// TestRequestTimeout checks the per-request timeout: before the first byte it is a 504, in
// a stream an error event.
func TestRequestTimeout(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{RequestTimeout: 300 * time.Millisecond, MaxNewTokens: 4000, MaxInputTokens: 4000}
	})
	// Load the model first, within the timeout.
	if _, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: longModel, Input: "a"}); err != nil {
		t.Fatal(err)
	}
	// Beam search streams nothing before the end: the timeout is an ordinary answer.
	status, _, body := do(t, http.MethodPost, ts.URL+"/api/generate", `{"model":"`+longModel+`","input":"`+longInput+`","num_beams":4,"max_new_tokens":4000,"stream":true}`)
	if status != http.StatusGatewayTimeout || errorCode(body) != "timeout" {
		t.Errorf("beam search past the timeout: %d %s", status, body)
	}
	rest, _ := startStream(t, ts, longModel, 4000)
	events := rest()
	last := events[len(events)-1]
	if last.name != "error" || errorCode([]byte(last.data)) != "timeout" {
		t.Errorf("stream past the timeout ended with %+v", last)
	}
	if len(events) > 3000 {
		t.Errorf("%d events: the timeout did not stop the decoding", len(events))
	}
	// OpenAI streams carry the error as plain data, as OpenAI's do.
	status, _, body = do(t, http.MethodPost, ts.URL+"/v1/completions", `{"model":"`+longModel+`","prompt":"`+longInput+`","max_tokens":4000,"temperature":0,"stream":true}`)
	events = readSSE(t, body)
	if last := events[len(events)-1]; status != http.StatusOK || last.name != "" || errorCode([]byte(last.data)) != "timeout" {
		t.Errorf("completion stream past the timeout: %d, ended with %+v", status, last)
	}
}
