package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// TestOpenAPICoversRoutes checks that /api/openapi.json describes every route the router
// has, with its method, and nothing else.
func TestOpenAPICoversRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	status, _, body := do(t, http.MethodGet, ts.URL+"/api/openapi.json", "")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &doc) != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("GET /api/openapi.json: %d %.200s", status, body)
	}
	param := regexp.MustCompile(`[:*]([A-Za-z_]+)`)
	routes := ts.Handler().(*gin.Engine).Routes()
	seen := map[string]bool{}
	for _, r := range routes {
		p := param.ReplaceAllString(r.Path, "{$1}")
		m := strings.ToLower(r.Method)
		seen[p+" "+m] = true
		if _, ok := doc.Paths[p][m]; !ok {
			t.Errorf("route %s %s (%s) is not in openapi.json", r.Method, r.Path, p)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !seen[p+" "+m] {
				t.Errorf("openapi.json documents %s %s, which is not a route", strings.ToUpper(m), p)
			}
		}
	}
	if len(routes) < 20 {
		t.Errorf("only %d routes", len(routes))
	}
}

// TestRoutes exercises the routes that do not run a model, over a real socket.
func TestRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		contains                 string // in the body, or the error code
	}{
		{"healthz", "GET", "/healthz", "", 200, `"ok"`},
		{"readyz", "GET", "/readyz", "", 200, `"ok"`},
		{"catalog", "GET", "/api/catalog", "", 200, `"t5-efficient-base-nl36"`},
		{"catalog filtered", "GET", "/api/catalog?where=params%3C20M&where=size%3Dtiny&sort=-layers", "", 200, `"t5-efficient-tiny"`},
		{"catalog bad filter", "GET", "/api/catalog?where=wings%3E2", "", 400, "invalid_request"},
		{"catalog bad sort", "GET", "/api/catalog?sort=wings", "", 400, "invalid_request"},
		{"catalog bad length", "GET", "/api/catalog?input_len=-1", "", 400, "invalid_request"},
		{"shape", "GET", "/api/catalog/google/t5-efficient-base-nl36?input_len=256", "", 200, `"params":`},
		{"shape from grammar", "GET", "/api/catalog/small-nl20-dm768", "", 200, `"published":false`},
		{"shape unknown", "GET", "/api/catalog/t5-efficient-huge", "", 404, "not_found"},
		{"models empty", "GET", "/api/models", "", 200, `"name":"long"`},
		{"ps empty", "GET", "/api/ps", "", 200, `"models":[]`},
		{"unload not loaded", "POST", "/api/unload", `{"model":"` + reluRef + `"}`, 404, "not_found"},
		{"delete missing", "DELETE", "/api/models/acme/nothing:v1", "", 404, "not_found"},
		{"delete bad name", "DELETE", "/api/models/Bad%20Name", "", 400, "invalid_request"},
		{"pull missing", "POST", "/api/pull", `{"model":"acme/nothing"}`, 404, "not_found"},
		{"pull bad ref", "POST", "/api/pull", `{"model":"../x"}`, 400, "invalid_request"},
		{"generate unknown model", "POST", "/api/generate", `{"model":"acme/nothing","input":"x"}`, 404, "not_found"},
		{"generate no model", "POST", "/api/generate", `{"input":"x"}`, 400, "invalid_request"},
		{"generate unknown field", "POST", "/api/generate", `{"model":"` + reluRef + `","input":"x","max_tokens":3}`, 400, "invalid_request"},
		{"generate two inputs kinds", "POST", "/api/generate", `{"model":"` + reluRef + `","input":"x","input_ids":[[5,1]]}`, 400, "invalid_request"},
		{"generate bad JSON", "POST", "/api/generate", `{"model":`, 400, "invalid_request"},
		{"generate trailing data", "POST", "/api/generate", `{"model":"x"} {}`, 400, "invalid_request"},
		{"generate id out of vocab", "POST", "/api/generate", `{"model":"` + reluRef + `","input_ids":[[99999,1]]}`, 400, "invalid_request"},
		{"generate beams and sampling", "POST", "/api/generate", `{"model":"` + reluRef + `","input":"x","num_beams":2,"do_sample":true}`, 400, "invalid_request"},
		{"score no pairs", "POST", "/api/score", `{"model":"` + reluRef + `","pairs":[]}`, 400, "invalid_request"},
		{"encode ok", "POST", "/api/encode", `{"model":"` + reluRef + `","input":"hello"}`, 200, `"embeddings":[[`},
		{"no route", "GET", "/api/nothing", "", 404, "not_found"},
		{"wrong method", "GET", "/api/generate", "", 405, "method_not_allowed"},
		{"registry list", "GET", "/manifests/", "", 200, `"manifests":["test/tiny-gated:golden","test/tiny-relu:golden"]`},
		{"registry manifest", "GET", "/manifests/test/tiny-relu/_tags/golden", "", 200, `"schemaVersion": 1`},
		{"registry missing", "GET", "/manifests/test/none/_tags/x", "", 404, "not_found"},
		{"registry bad blob", "GET", "/blobs/sha256/zz", "", 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := do(t, tc.method, ts.URL+tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%d, want %d: %.300s", status, tc.status, body)
			}
			if status >= 400 {
				if code := errorCode(body); code != tc.contains {
					t.Errorf("error code %q, want %q: %s", code, tc.contains, body)
				}
				if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
					t.Errorf("error Content-Type %q", hdr.Get("Content-Type"))
				}
				return
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body lacks %s: %.400s", tc.contains, body)
			}
		})
	}
}

// TestModelLifecycle pulls (NDJSON progress), lists, loads, shows in ps, unloads and
// deletes a model.
func TestModelLifecycle(t *testing.T) {
	ts := newTestServer(t, nil)
	status, hdr, body := do(t, http.MethodPost, ts.URL+"/api/pull", `{"model":"`+gatedRef+`"}`)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("pull: %d %s", status, hdr.Get("Content-Type"))
	}
	var lines []api.ProgressResponse
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var p api.ProgressResponse
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, p)
	}
	last := lines[len(lines)-1]
	if len(lines) < 3 || last.Status != "success" || last.Model != gatedRef || !strings.HasPrefix(last.Digest, "sha256:") {
		t.Fatalf("pull lines %+v", lines)
	}
	files := map[string]bool{}
	for _, p := range lines[:len(lines)-1] {
		if p.Status != "pulling" || p.File == "" || p.Completed > p.Total {
			t.Errorf("progress line %+v", p)
		}
		if p.Completed == p.Total {
			files[p.File] = true
		}
	}
	if !files["model.safetensors"] || !files["spiece.model"] {
		t.Errorf("files completed: %v", files)
	}
	// Not streamed: one JSON answer; already whole, so nothing moves.
	status, _, body = do(t, http.MethodPost, ts.URL+"/api/pull", `{"model":"`+gatedRef+`","stream":false}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"success"`) || strings.Count(string(body), "\n") > 1 {
		t.Errorf("pull without stream: %d %s", status, body)
	}
	if n := metricValue(t, ts, "t5zoo_pull_bytes_total"); n <= 0 {
		t.Errorf("pull bytes %v", n)
	}

	models, err := ts.Client.List(t.Context())
	if err != nil || len(models.Models) != 2 || models.Models[0].Name != gatedRef || models.Models[0].Loaded || models.Models[0].Files < 3 {
		t.Fatalf("models %+v %v", models, err)
	}
	if _, err := ts.Client.Encode(t.Context(), &api.EncodeRequest{Model: gatedRef, Input: "x", KeepAlive: &api.Duration{Duration: -1}}); err != nil {
		t.Fatal(err)
	}
	ps, err := ts.Client.Ps(t.Context())
	if err != nil || len(ps.Models) != 1 {
		t.Fatalf("ps %+v %v", ps, err)
	}
	lm := ps.Models[0]
	if lm.Name != gatedRef || lm.WeightBytes <= 0 || lm.KVBytes <= 0 || lm.MemoryBytes != lm.WeightBytes+lm.KVBytes ||
		ps.MemoryBytes != lm.MemoryBytes || lm.KeepAlive.Duration >= 0 || lm.ExpiresAt != nil || lm.Requests != 0 {
		t.Errorf("ps %+v", ps)
	}
	if models, _ := ts.Client.List(t.Context()); !models.Models[0].Loaded {
		t.Error("a loaded model is not marked loaded")
	}
	if u, err := ts.Client.Unload(t.Context(), gatedRef); err != nil || u.Status != "unloaded" || u.Model != gatedRef {
		t.Errorf("unload %+v %v", u, err)
	}
	if ps, _ := ts.Client.Ps(t.Context()); len(ps.Models) != 0 || ps.MemoryBytes != 0 {
		t.Errorf("ps after unload %+v", ps)
	}
	if d, err := ts.Client.Delete(t.Context(), gatedRef); err != nil || d.Deleted != gatedRef {
		t.Errorf("delete %+v %v", d, err)
	}
	if models, _ := ts.Client.List(t.Context()); len(models.Models) != 1 {
		t.Errorf("models after delete %+v", models)
	}
	if n := metricValue(t, ts, "t5zoo_model_evictions_total", "model="+gatedRef, "reason=unload"); n != 1 {
		t.Errorf("evictions metric %v", n)
	}
}

// TestMetrics checks the metrics a generation leaves.
func TestMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	for range 2 {
		if err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: reluRef, Input: goldenTexts[0]}, func(api.GenerateResponse) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"t5zoo_http_requests_total", []string{"route=/api/generate", "code=200", "model=" + reluRef, "method=POST"}, 2},
		{"t5zoo_http_request_duration_seconds_count", []string{"route=/api/generate", "model=" + reluRef}, 2},
		{"t5zoo_input_tokens_total", []string{"model=" + reluRef}, 48},
		{"t5zoo_output_tokens_total", []string{"model=" + reluRef}, 2},
		{"t5zoo_batch_rows_count", []string{"model=" + reluRef}, 2},
		{"t5zoo_encode_batch_inputs_count", []string{"model=" + reluRef}, 2},
		{"t5zoo_model_loads_total", []string{"model=" + reluRef, "result=ok"}, 1},
		{"t5zoo_models_loaded", nil, 1},
		{"t5zoo_model_memory_bytes", nil, 1},
		{"t5zoo_pull_bytes_total", nil, 1},
		{"go_goroutines", nil, 1},
	} {
		if v := metricValue(t, ts, m.name, m.labels...); v < m.min {
			t.Errorf("%s%v = %v, want at least %v", m.name, m.labels, v, m.min)
		}
	}
	for _, m := range []string{"t5zoo_inference_requests_in_flight", "t5zoo_queue_depth"} {
		if v := metricValue(t, ts, m); v != 0 {
			t.Errorf("%s = %v when idle", m, v)
		}
	}
}

// blobless is a registry whose blobs are all missing: a pull of it fails after its progress
// has started.
type blobless struct{ zoo.Store }

func (blobless) GetBlob(ctx context.Context, d zoo.Digest) (io.ReadCloser, error) {
	return nil, fmt.Errorf("get blob %s: %w", d.Short(), zoo.ErrNotFound)
}

// TestPullErrorAfterProgress checks that a pull failing once its NDJSON stream has started
// ends the stream with an error line.
func TestPullErrorAfterProgress(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) { c.Store = blobless{c.Cache.Registry()} })
	status, hdr, body := do(t, http.MethodPost, ts.URL+"/api/pull", `{"model":"`+reluRef+`"}`)
	if status != http.StatusOK || hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%d %s: %s", status, hdr.Get("Content-Type"), body)
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], `"status":"pulling"`) || errorCode([]byte(lines[len(lines)-1])) != "not_found" {
		t.Errorf("stream %s", body)
	}
	// The Go client turns the error line into a StatusError.
	err := ts.Client.Pull(t.Context(), reluRef, func(api.ProgressResponse) error { return nil })
	if se, ok := err.(*api.StatusError); !ok || se.Code != "not_found" {
		t.Errorf("client: %v", err)
	}
}
