package serve_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/zoo"
)

// FuzzRequests posts arbitrary bodies to every route that decodes one: the server must
// answer each with a status below 500 (or the 503 of a full queue) and, for errors, the
// error format; it must never panic.
func FuzzRequests(f *testing.F) {
	for _, s := range []struct{ path, body string }{
		{"/api/generate", `{"model":"m","input":"translate English to German: The house is wonderful.","max_new_tokens":4}`},
		{"/api/generate", `{"model":"m","inputs":["a","b"],"num_beams":2,"num_return_sequences":2,"max_new_tokens":3}`},
		{"/api/generate", `{"model":"m","input_ids":[[5,6,1]],"do_sample":true,"top_k":3,"top_p":0.5,"seed":1,"stream":true,"max_new_tokens":3}`},
		{"/api/generate", `{"model":"m","input":"x","top_logprobs":3,"keep_alive":"5m","max_new_tokens":2}`},
		{"/api/score", `{"model":"m","pairs":[{"input":"a","target":"b"},{"input_ids":[5,1],"target_ids":[6,1]}]}`},
		{"/api/encode", `{"model":"m","inputs":["a"],"hidden":true}`},
		{"/v1/completions", `{"model":"m","prompt":["a","b"],"max_tokens":3,"n":2,"temperature":0.5,"logprobs":2,"echo":true,"stop":["x"]}`},
		{"/v1/completions", `{"model":"m","prompt":[[5,1]],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}}`},
		{"/api/pull", `{"model":"acme/none"}`},
		{"/api/unload", `{"model":"m"}`},
	} {
		f.Add(s.path, []byte(s.body))
	}
	cache, err := zoo.OpenCache(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	s, err := serve.New(serve.Config{
		Cache:  cache,
		Models: map[string]string{"m": goldenRelu},
		Limits: serve.Limits{MaxNewTokens: 8, MaxInputTokens: 32, MaxInputs: 4, MaxBodyBytes: 4096},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		switch path {
		case "/api/generate", "/api/score", "/api/encode", "/v1/completions", "/api/pull", "/api/unload":
		default:
			return
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, strings.NewReader(string(body)))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST %s %s: %d %s", path, body, w.Code, w.Body)
		}
		if w.Code >= 400 && errorCode(w.Body.Bytes()) == "" {
			t.Fatalf("POST %s %s: %d without the error format: %s", path, body, w.Code, w.Body)
		}
	})
}
