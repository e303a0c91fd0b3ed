package serve_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
)

// nativeError is the native API's error body, decoded strictly: "error" must be a string.
type nativeError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// openAIError is OpenAI's error body.
type openAIError struct {
	Error struct {
		Message *string `json:"message"`
		Type    *string `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// strictDecode decodes b into v refusing unknown fields.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// checkNativeError fails unless b is {"error": "<message>", "code": code}.
func checkNativeError(t *testing.T, b []byte, code string) {
	t.Helper()
	var e nativeError
	if err := strictDecode(b, &e); err != nil || e.Code != code || e.Error == "" {
		t.Errorf("native error body %s (%v), want {\"error\": <message>, \"code\": %q}", b, err, code)
	}
}

// checkOpenAIError fails unless b is OpenAI's {"error": {"message", "type", "param", "code"}}
// with the given type and code.
func checkOpenAIError(t *testing.T, b []byte, typ, code string) {
	t.Helper()
	var raw struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Errorf("OpenAI error body %s: %v", b, err)
		return
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw.Error[k]; !ok {
			t.Errorf("OpenAI error body %s lacks error.%s", b, k)
		}
	}
	var e openAIError
	if err := strictDecode(b, &e); err != nil || e.Error.Message == nil || *e.Error.Message == "" ||
		e.Error.Type == nil || *e.Error.Type != typ || e.Error.Code == nil || *e.Error.Code != code {
		t.Errorf("OpenAI error body %s (%v), want type %q, code %q", b, err, typ, code)
	}
}

// TestErrorBodies checks the shape of error answers on each family of routes: the native
// API's {"error": "<message>", "code"} (as Ollama-style clients read it) and, on /v1,
// OpenAI's {"error": {"message", "type", "param", "code"}}.
func TestErrorBodies(t *testing.T) {
	keys, err := serve.ParseAPIKeys(readKey + "\n" + adminKey + ":admin\n")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *serve.Config) { c.Keys = keys })
	bearer := []string{"Authorization", "Bearer " + readKey}
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
		code                     string
		openAIType               string // "" for a native route
	}{
		{"native no route", "GET", "/api/nothing", "", bearer, 404, "not_found", ""},
		{"native bad request", "POST", "/api/generate", `{"model":`, bearer, 400, "invalid_request", ""},
		{"native unknown model", "POST", "/api/generate", `{"model":"acme/nothing","input":"x"}`, bearer, 404, "not_found", ""},
		{"native unauthorized", "GET", "/api/catalog", "", nil, 401, "unauthorized", ""},
		{"native forbidden", "POST", "/api/unload", `{"model":"x"}`, bearer, 403, "forbidden", ""},
		{"native wrong method", "GET", "/api/generate", "", bearer, 405, "method_not_allowed", ""},
		{"native keep_alive NaN", "POST", "/api/generate", `{"model":"` + reluRef + `","input":"x","keep_alive":"NaN"}`, bearer, 400, "invalid_request", ""},
		{"native keep_alive huge", "POST", "/api/encode", `{"model":"` + reluRef + `","input":"x","keep_alive":1e300}`, bearer, 400, "invalid_request", ""},
		{"native keep_alive Inf", "POST", "/api/score", `{"model":"` + reluRef + `","pairs":[{"input":"a","target":"b"}],"keep_alive":"-Inf"}`, bearer, 400, "invalid_request", ""},
		{"openai bad request", "POST", "/v1/completions", `{"model":"` + reluRef + `","prompt":"x","n":0}`, bearer, 400, "invalid_request", "invalid_request_error"},
		{"openai limit", "POST", "/v1/completions", `{"model":"` + reluRef + `","prompt":"x","max_tokens":100000}`, bearer, 400, "limit_exceeded", "invalid_request_error"},
		{"openai unknown model", "POST", "/v1/completions", `{"model":"acme/nothing","prompt":"x"}`, bearer, 404, "not_found", "not_found_error"},
		{"openai unauthorized", "POST", "/v1/completions", `{"model":"x","prompt":"x"}`, nil, 401, "unauthorized", "authentication_error"},
		{"openai unknown model id", "GET", "/v1/models/acme/nothing:v1", "", bearer, 404, "not_found", "not_found_error"},
		{"openai no route", "GET", "/v1/nothing", "", bearer, 404, "not_found", "not_found_error"},
		{"openai wrong method", "GET", "/v1/completions", "", bearer, 405, "method_not_allowed", "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := do(t, tc.method, ts.URL+tc.path, tc.body, tc.header...)
			if status != tc.status {
				t.Fatalf("%d, want %d: %s", status, tc.status, body)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			if tc.openAIType == "" {
				checkNativeError(t, body, tc.code)
			} else {
				checkOpenAIError(t, body, tc.openAIType, tc.code)
			}
		})
	}
}

// TestStreamedErrorBodies checks the error that ends a stream after its first byte: the
// native body in an "error" event of /api/generate, OpenAI's body as plain data on /v1.
func TestStreamedErrorBodies(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{RequestTimeout: 300 * time.Millisecond, MaxNewTokens: 4000, MaxInputTokens: 4000}
	})
	if _, _, b := do(t, http.MethodPost, ts.URL+"/api/encode", `{"model":"`+longModel+`","input":"a"}`); errorCode(b) != "" {
		t.Fatalf("loading the model: %s", b)
	}
	rest, _ := startStream(t, ts, longModel, 4000)
	events := rest()
	last := events[len(events)-1]
	if last.name != "error" {
		t.Fatalf("stream ended with %+v", last)
	}
	checkNativeError(t, []byte(last.data), "timeout")

	status, _, body := do(t, http.MethodPost, ts.URL+"/v1/completions", `{"model":"`+longModel+`","prompt":"`+longInput+`","max_tokens":4000,"temperature":0,"stream":true}`)
	events = readSSE(t, body)
	last = events[len(events)-1]
	if status != http.StatusOK || last.name != "" {
		t.Fatalf("completion stream: %d, ended with %+v", status, last)
	}
	checkOpenAIError(t, []byte(last.data), "server_error", "timeout")
}

// readNDJSON splits an NDJSON body into its lines.
func readNDJSON(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	for line := range strings.SplitSeq(strings.TrimRight(string(body), "\n"), "\n") {
		if line == "" {
			t.Fatalf("empty line in NDJSON body %q", body)
		}
		out = append(out, line)
	}
	return out
}

// TestGenerateNDJSON checks the NDJSON stream of /api/generate that Accept:
// application/x-ndjson selects: a line per token, then the whole answer; an error after the
// first line is a last line with the native error body; the Go client reads it.
func TestGenerateNDJSON(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{RequestTimeout: 2 * time.Second, MaxNewTokens: 4000, MaxInputTokens: 4000}
	})
	req := api.GenerateRequest{Model: reluRef, Inputs: goldenTexts[:2], GenerateOptions: api.GenerateOptions{MaxNewTokens: 12, DoSample: true, Seed: 5, NumReturnSequences: 2}}
	var plain api.GenerateResponse
	if err := ts.Client.Generate(t.Context(), &req, func(r api.GenerateResponse) error { plain = r; return nil }); err != nil {
		t.Fatal(err)
	}
	req.Stream = true
	body, _ := json.Marshal(req)
	for _, accept := range []string{"application/x-ndjson", "application/x-ndjson, text/event-stream;q=0.5", "application/ndjson"} {
		status, hdr, raw := do(t, http.MethodPost, ts.URL+"/api/generate", string(body), "Accept", accept)
		if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/x-ndjson") {
			t.Fatalf("Accept %s: %d %s: %.200s", accept, status, hdr.Get("Content-Type"), raw)
		}
		lines := readNDJSON(t, raw)
		texts := map[[2]int]string{}
		for _, l := range lines[:len(lines)-1] {
			var r api.GenerateResponse
			if err := strictDecode([]byte(l), &r); err != nil || r.Token == nil || r.Done {
				t.Fatalf("line %s: %v", l, err)
			}
			texts[[2]int{r.Token.Input, r.Token.Sequence}] += r.Token.Text
		}
		var done api.GenerateResponse
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &done); err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(done)
		b, _ := json.Marshal(plain)
		if string(a) != string(b) {
			t.Errorf("last line differs from the plain answer:\n%s\n%s", a, b)
		}
		for i, g := range done.Results {
			for j, h := range g.Hypotheses {
				if texts[[2]int{i, j}] != h.Text {
					t.Errorf("input %d seq %d: streamed %q, final %q", i, j, texts[[2]int{i, j}], h.Text)
				}
			}
		}
	}
	// Without the header (or with another type) the stream stays server-sent events.
	for _, accept := range []string{"", "*/*", "text/event-stream", "application/json"} {
		status, hdr, _ := do(t, http.MethodPost, ts.URL+"/api/generate", string(body), "Accept", accept)
		if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
			t.Errorf("Accept %q: %d %s", accept, status, hdr.Get("Content-Type"))
		}
	}

	// The Go client asks for NDJSON and reads it, errors included.
	c, err := api.NewClient(ts.URL, api.ClientOptions{NDJSON: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var final api.GenerateResponse
	if err := c.Generate(t.Context(), &req, func(r api.GenerateResponse) error { n++; final = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if a, b := must(json.Marshal(final)), must(json.Marshal(plain)); n < 3 || string(a) != string(b) {
		t.Errorf("client: %d lines, last %s, want %s", n, a, b)
	}
	if _, _, b := do(t, http.MethodPost, ts.URL+"/api/encode", `{"model":"`+longModel+`","input":"a"}`); errorCode(b) != "" {
		t.Fatalf("loading the model: %s", b)
	}
	// 16 samples of up to 4000 tokens: several times the 2 s timeout on any machine (one
	// greedy sequence took under 2 s on a quiet one).
	long := api.GenerateRequest{Model: longModel, Input: longInput, Stream: true, GenerateOptions: api.GenerateOptions{MaxNewTokens: 4000, DoSample: true, NumReturnSequences: 16, Seed: 1}}
	lb, _ := json.Marshal(long)
	status, _, raw := do(t, http.MethodPost, ts.URL+"/api/generate", string(lb), "Accept", "application/x-ndjson")
	lines := readNDJSON(t, raw)
	if status != http.StatusOK || len(lines) < 2 {
		t.Fatalf("%d, %d lines", status, len(lines))
	}
	checkNativeError(t, []byte(lines[len(lines)-1]), "timeout")
	err = c.Generate(t.Context(), &long, func(api.GenerateResponse) error { return nil })
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != "timeout" || se.StatusCode != http.StatusOK {
		t.Errorf("client past the timeout: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
