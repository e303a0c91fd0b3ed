package serve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
)

// loadOpenAPI loads and validates serve/openapi.json (the document the server embeds),
// examples included.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context(), openapi3.EnableExamplesValidation(), openapi3.EnableSchemaPatternValidation(), openapi3.EnableMultiError()); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// streamSchemas are the schemas of a stream's parts named by a media type's extensions.
type streamSchemas struct {
	part, err *openapi3.Schema
	last      string // a last event that is no JSON ("[DONE]")
	lines     bool   // NDJSON, else server-sent events
}

func streamSchemasOf(t *testing.T, doc *openapi3.T, mt *openapi3.MediaType) *streamSchemas {
	t.Helper()
	if mt.Schema == nil || mt.Schema.Value == nil {
		return nil
	}
	ext := mt.Schema.Value.Extensions
	lookup := func(key string) *openapi3.Schema {
		p, _ := ext[key].(string)
		if p == "" {
			return nil
		}
		s := doc.Components.Schemas[strings.TrimPrefix(p, "#/components/schemas/")]
		if s == nil || s.Value == nil {
			t.Fatalf("%s: %q names no schema", key, p)
		}
		return s.Value
	}
	ss := &streamSchemas{part: lookup("x-event-schema"), err: lookup("x-error-schema")}
	if ss.part == nil {
		ss.part, ss.lines = lookup("x-line-schema"), true
	}
	if ss.part == nil {
		return nil
	}
	ss.last, _ = ext["x-last-event"].(string)
	return ss
}

// check validates each event's data or line of a stream body against its schema.
func (ss *streamSchemas) check(body string) error {
	var parts []string
	var names []string
	if ss.lines {
		for l := range strings.SplitSeq(strings.TrimRight(body, "\n"), "\n") {
			parts, names = append(parts, l), append(names, "")
		}
	} else {
		for ev := range strings.SplitSeq(strings.TrimRight(body, "\n"), "\n\n") {
			var name, data string
			for l := range strings.SplitSeq(ev, "\n") {
				switch {
				case strings.HasPrefix(l, "event: "):
					name = strings.TrimPrefix(l, "event: ")
				case strings.HasPrefix(l, "data: "):
					data = strings.TrimPrefix(l, "data: ")
				default:
					return fmt.Errorf("line %q is not an event's", l)
				}
			}
			parts, names = append(parts, data), append(names, name)
		}
	}
	if len(parts) == 0 {
		return fmt.Errorf("an empty stream")
	}
	for i, p := range parts {
		if ss.last != "" && p == ss.last && i == len(parts)-1 {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(p), &v); err != nil {
			return fmt.Errorf("part %d %q: %w", i, p, err)
		}
		schema := ss.part
		if names[i] == "error" || strings.HasPrefix(p, `{"error":`) {
			if i != len(parts)-1 || ss.err == nil {
				return fmt.Errorf("part %d: an error that does not end the stream: %s", i, p)
			}
			schema = ss.err
		}
		if err := schema.VisitJSON(v, openapi3.VisitAsResponse()); err != nil {
			return fmt.Errorf("part %d %s: %w", i, p, err)
		}
	}
	if ss.last != "" && parts[len(parts)-1] != ss.last && names[len(parts)-1] != "error" && !strings.HasPrefix(parts[len(parts)-1], `{"error":`) {
		return fmt.Errorf("the stream does not end with %s", ss.last)
	}
	return nil
}

// TestOpenAPIDocument validates the document, every example against its schema (the
// examples of streams event by event, or line by line), and that every operation has an
// operationId of its own.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	ids := map[string]string{}
	streams := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share the operationId %s", where, other, op.OperationID)
			}
			ids[op.OperationID] = where
			for status, r := range op.Responses.Map() {
				for ct, mt := range r.Value.Content {
					ss := streamSchemasOf(t, doc, mt)
					if ss == nil {
						continue
					}
					streams++
					ex, ok := mt.Example.(string)
					if !ok {
						t.Errorf("%s %s %s: the example of a stream must be its text", where, status, ct)
						continue
					}
					if err := ss.check(ex); err != nil {
						t.Errorf("%s %s %s example: %v", where, status, ct, err)
					}
				}
			}
		}
	}
	if streams < 6 {
		t.Errorf("%d stream media types, want the pull's, generate's two, the completions' and the eval events' two", streams)
	}
}

// oaCase is one request of TestOpenAPIResponses: the route (as the document writes its
// path), the request, and the status it must get.
type oaCase struct {
	route          string // "GET /api/catalog/{name}"
	path, body     string // path with query
	header         []string
	status         int
	params         map[string]string
	skipReqChecked bool // the request breaks the document on purpose (an error case)
}

// TestOpenAPIResponses sends requests to every route, answered with success and with
// errors, and validates each answer (status, headers, body; streams part by part) against
// the document with openapi3filter, and each successful request too.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, ct := range []string{"text/event-stream", "application/x-ndjson"} {
		if openapi3filter.RegisteredBodyDecoder(ct) == nil {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
			t.Cleanup(func() { openapi3filter.UnregisterBodyDecoder(ct) })
		}
	}
	keys, err := serve.ParseAPIKeys(readKey + "\n" + adminKey + ":admin\n")
	if err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(broken+"/config.json", []byte(`{"d_model": -1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *serve.Config) {
		c.Keys = keys
		c.Models["broken"] = broken
		c.Limits.MaxBodyBytes = 4096
		c.EvalData = evalData(t)
	})
	slow := newTestServer(t, func(c *serve.Config) {
		c.Limits = serve.Limits{RequestTimeout: 300 * time.Millisecond, MaxNewTokens: 4000, MaxInputTokens: 4000}
	})
	read := []string{"Authorization", "Bearer " + readKey}
	admin := []string{"Authorization", "Bearer " + adminKey}
	ndjson := append([]string{"Accept", "application/x-ndjson"}, read...)
	evil := append([]string{"Host", "evil.example"}, read...)

	// A blob of the relu model, for the registry's blob routes.
	_, _, mb := do(t, http.MethodGet, ts.URL+"/manifests/test/tiny-relu/_tags/golden", "", read...)
	var man struct {
		Files []struct {
			Digest string `json:"digest"`
		} `json:"files"`
	}
	if err := json.Unmarshal(mb, &man); err != nil || len(man.Files) == 0 {
		t.Fatalf("manifest %s: %v", mb, err)
	}
	blob := strings.TrimPrefix(man.Files[0].Digest, "sha256:")
	missing := strings.Repeat("0", 64)

	// An eval job that has ended, for the eval routes.
	_, _, jb := do(t, http.MethodPost, ts.URL+"/api/eval", `{"models":["`+longModel+`"],"tasks":["glue/sst2"],"modes":["rank"]}`, admin...)
	var job api.EvalJob
	if err := json.Unmarshal(jb, &job); err != nil || job.ID == "" {
		t.Fatalf("POST /api/eval: %s", jb)
	}
	waitFor(t, "the eval job", func() bool {
		_, _, b := do(t, http.MethodGet, ts.URL+"/api/eval/"+job.ID, "", read...)
		return json.Unmarshal(b, &job) == nil && api.EvalEnded(job.Status)
	})
	jobPath, jobParams := "/api/eval/"+job.ID, map[string]string{"id": job.ID}
	noJob, noJobParams := "/api/eval/20260101T000000.000Z-000000000000", map[string]string{"id": "20260101T000000.000Z-000000000000"}

	gen := `{"model":"` + reluRef + `","inputs":["` + goldenTexts[0] + `","` + goldenTexts[1] + `"],"max_new_tokens":5,"top_logprobs":2`
	comp := `{"model":"` + longModel + `","prompt":["a","b"],"max_tokens":6,"temperature":0,"n":2,"logprobs":2,"echo":true,"stop":["zz"]`
	cases := []oaCase{
		{route: "GET /healthz", path: "/healthz", status: 200},
		{route: "GET /healthz", path: "/healthz", header: evil, status: 403},
		{route: "GET /readyz", path: "/readyz", status: 200},
		{route: "GET /readyz", path: "/readyz", header: evil, status: 403},
		{route: "GET /metrics", path: "/metrics", header: read, status: 200},
		{route: "GET /metrics", path: "/metrics", status: 401},
		{route: "GET /api/openapi.json", path: "/api/openapi.json", status: 200},
		{route: "GET /api/openapi.json", path: "/api/openapi.json", header: evil, status: 403},
		{route: "GET /api/catalog", path: "/api/catalog?where=params%3C20M&where=size%3Dtiny&sort=-layers&input_len=256", header: read, status: 200},
		{route: "GET /api/catalog", path: "/api/catalog?where=wings%3E2", header: read, status: 400, skipReqChecked: true},
		{route: "GET /api/catalog", path: "/api/catalog", status: 401},
		{route: "GET /api/catalog/{name}", path: "/api/catalog/google/t5-efficient-base-nl36?input_len=256", params: map[string]string{"name": "google/t5-efficient-base-nl36"}, header: read, status: 200},
		{route: "GET /api/catalog/{name}", path: "/api/catalog/t5-efficient-huge", params: map[string]string{"name": "t5-efficient-huge"}, header: read, status: 404},
		{route: "GET /api/models", path: "/api/models", header: read, status: 200},
		{route: "GET /api/models", path: "/api/models", status: 401},
		{route: "POST /api/pull", path: "/api/pull", body: `{"model":"` + gatedRef + `"}`, header: admin, status: 200},
		{route: "POST /api/pull", path: "/api/pull", body: `{"model":"` + gatedRef + `","stream":false}`, header: admin, status: 200},
		{route: "POST /api/pull", path: "/api/pull", body: `{"model":"acme/nothing"}`, header: admin, status: 404},
		{route: "POST /api/pull", path: "/api/pull", body: `{"model":"../x"}`, header: admin, status: 400},
		{route: "POST /api/pull", path: "/api/pull", body: `{"model":"` + gatedRef + `"}`, header: read, status: 403},
		{route: "POST /api/pull", path: "/api/pull", body: `{"model":"` + gatedRef + `"}`, header: append([]string{"Content-Type", "text/plain"}, admin...), status: 415, skipReqChecked: true},
		{route: "POST /api/generate", path: "/api/generate", body: gen + `}`, header: read, status: 200},
		{route: "POST /api/generate", path: "/api/generate", body: gen + `,"stream":true}`, header: read, status: 200},
		{route: "POST /api/generate", path: "/api/generate", body: gen + `,"stream":true,"do_sample":true,"num_return_sequences":2}`, header: ndjson, status: 200},
		{route: "POST /api/generate", path: "/api/generate", body: `{"model":"` + reluRef + `","input":"x","max_tokens":3}`, header: read, status: 400, skipReqChecked: true},
		{route: "POST /api/generate", path: "/api/generate", body: `{"model":"acme/nothing","input":"x"}`, header: read, status: 404},
		{route: "POST /api/generate", path: "/api/generate", body: `{"model":"` + reluRef + `","input":"` + strings.Repeat("x", 5000) + `"}`, header: read, status: 413},
		{route: "POST /api/generate", path: "/api/generate", body: `{"model":"broken","input":"x"}`, header: read, status: 422},
		{route: "POST /api/score", path: "/api/score", body: `{"model":"` + gatedRef + `","pairs":[{"input":"a","target":"b"},{"input_ids":[5,1],"target_ids":[6,1]}]}`, header: read, status: 200},
		{route: "POST /api/score", path: "/api/score", body: `{"model":"` + gatedRef + `","pairs":[]}`, header: read, status: 400},
		{route: "POST /api/encode", path: "/api/encode", body: `{"model":"` + gatedRef + `","inputs":["a","b"],"hidden":true}`, header: read, status: 200},
		{route: "POST /api/encode", path: "/api/encode", body: `{"model":"` + gatedRef + `","input":"x","keep_alive":"NaN"}`, header: read, status: 400},
		{route: "GET /api/ps", path: "/api/ps", header: read, status: 200},
		{route: "GET /api/ps", path: "/api/ps", status: 401},
		{route: "POST /api/unload", path: "/api/unload", body: `{"model":"` + gatedRef + `"}`, header: admin, status: 200},
		{route: "POST /api/unload", path: "/api/unload", body: `{"model":"` + gatedRef + `"}`, header: admin, status: 404},
		{route: "DELETE /api/models/{name}", path: "/api/models/" + gatedRef, params: map[string]string{"name": gatedRef}, header: admin, status: 200},
		{route: "DELETE /api/models/{name}", path: "/api/models/" + gatedRef, params: map[string]string{"name": gatedRef}, header: admin, status: 404},
		{route: "DELETE /api/models/{name}", path: "/api/models/Bad%20Name", params: map[string]string{"name": "Bad Name"}, header: admin, status: 400},
		{route: "DELETE /api/models/{name}", path: "/api/models/" + reluRef, params: map[string]string{"name": reluRef}, header: read, status: 403},
		{route: "POST /api/eval", path: "/api/eval", body: `{"models":["` + longModel + `"],"tasks":["glue/sst2","super_glue"],"modes":["rank"],"limit":2,"batch":4}`, header: admin, status: 202},
		{route: "POST /api/eval", path: "/api/eval", body: `{"models":["` + longModel + `"],"tasks":["glue/sts"]}`, header: admin, status: 400},
		{route: "POST /api/eval", path: "/api/eval", body: `{"models":["` + longModel + `"],"tasks":["glue/sst2"]}`, header: read, status: 403},
		{route: "GET /api/eval", path: "/api/eval", header: read, status: 200},
		{route: "GET /api/eval", path: "/api/eval", status: 401},
		{route: "GET /api/eval/{id}", path: jobPath, params: jobParams, header: read, status: 200},
		{route: "GET /api/eval/{id}", path: noJob, params: noJobParams, header: read, status: 404},
		{route: "GET /api/eval/{id}/results", path: jobPath + "/results", params: jobParams, header: read, status: 200},
		{route: "GET /api/eval/{id}/results", path: noJob + "/results", params: noJobParams, header: read, status: 404},
		{route: "GET /api/eval/{id}/events", path: jobPath + "/events", params: jobParams, header: read, status: 200},
		{route: "GET /api/eval/{id}/events", path: jobPath + "/events", params: jobParams, header: append([]string{"Accept", "text/event-stream"}, read...), status: 200},
		{route: "GET /api/eval/{id}/events", path: noJob + "/events", params: noJobParams, header: read, status: 404},
		{route: "POST /api/eval/{id}/cancel", path: jobPath + "/cancel", body: `{}`, params: jobParams, header: admin, status: 200},
		{route: "POST /api/eval/{id}/cancel", path: noJob + "/cancel", body: `{}`, params: noJobParams, header: admin, status: 404},
		{route: "DELETE /api/eval/{id}", path: jobPath, params: jobParams, header: read, status: 403},
		{route: "DELETE /api/eval/{id}", path: jobPath, params: jobParams, header: admin, status: 200},
		{route: "DELETE /api/eval/{id}", path: jobPath, params: jobParams, header: admin, status: 404},
		{route: "GET /v1/models", path: "/v1/models", header: read, status: 200},
		{route: "GET /v1/models", path: "/v1/models", status: 401},
		{route: "GET /v1/models/{id}", path: "/v1/models/" + reluRef, params: map[string]string{"id": reluRef}, header: read, status: 200},
		{route: "GET /v1/models/{id}", path: "/v1/models/acme/nothing:v1", params: map[string]string{"id": "acme/nothing:v1"}, header: read, status: 404},
		{route: "POST /v1/completions", path: "/v1/completions", body: comp + `}`, header: read, status: 200},
		{route: "POST /v1/completions", path: "/v1/completions", body: comp + `,"stream":true,"stream_options":{"include_usage":true}}`, header: read, status: 200},
		{route: "POST /v1/completions", path: "/v1/completions", body: `{"model":"` + reluRef + `","prompt":"x","n":0}`, header: read, status: 400},
		{route: "POST /v1/completions", path: "/v1/completions", body: `{"model":"acme/nothing","prompt":"x"}`, header: read, status: 404},
		{route: "POST /v1/completions", path: "/v1/completions", body: `{"model":"x","prompt":"x"}`, status: 401},
		{route: "GET /blobs/sha256/{hex}", path: "/blobs/sha256/" + blob, params: map[string]string{"hex": blob}, header: read, status: 200},
		{route: "GET /blobs/sha256/{hex}", path: "/blobs/sha256/" + missing, params: map[string]string{"hex": missing}, header: read, status: 404},
		{route: "GET /blobs/sha256/{hex}", path: "/blobs/sha256/zz", params: map[string]string{"hex": "zz"}, header: read, status: 400, skipReqChecked: true},
		{route: "HEAD /blobs/sha256/{hex}", path: "/blobs/sha256/" + blob, params: map[string]string{"hex": blob}, header: read, status: 200},
		{route: "HEAD /blobs/sha256/{hex}", path: "/blobs/sha256/" + missing, params: map[string]string{"hex": missing}, status: 401},
		// The listing's path parameter is empty, which OpenAPI's path parameters cannot be
		// (its description says so): only the answer is checked.
		{route: "GET /manifests/{path}", path: "/manifests/", params: map[string]string{"path": ""}, header: read, status: 200, skipReqChecked: true},
		{route: "GET /manifests/{path}", path: "/manifests/test/tiny-relu/_tags/golden", params: map[string]string{"path": "test/tiny-relu/_tags/golden"}, header: read, status: 200},
		{route: "GET /manifests/{path}", path: "/manifests/test/none/_tags/x", params: map[string]string{"path": "test/none/_tags/x"}, header: read, status: 404},
		{route: "GET /manifests/{path}", path: "/manifests/", params: map[string]string{"path": ""}, status: 401},
		{route: "HEAD /manifests/{path}", path: "/manifests/test/tiny-relu/_tags/golden", params: map[string]string{"path": "test/tiny-relu/_tags/golden"}, header: read, status: 200},
		{route: "HEAD /manifests/{path}", path: "/manifests/test/none/_tags/x", params: map[string]string{"path": "test/none/_tags/x"}, header: read, status: 404},
	}
	tested := map[string][2]bool{} // route → answered with success, with an error
	run := func(t *testing.T, base string, tc oaCase) {
		t.Helper()
		method, tmpl, _ := strings.Cut(tc.route, " ")
		item := doc.Paths.Value(tmpl)
		if item == nil || item.GetOperation(method) == nil {
			t.Fatalf("%s is not in the document", tc.route)
		}
		op := item.GetOperation(method)
		req := newRequest(t, method, base+tc.path, tc.body, tc.header...)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status {
			t.Fatalf("%s %s: %d, want %d: %.300s", method, tc.path, resp.StatusCode, tc.status, body)
		}
		done := tested[tc.route]
		done[min(1, resp.StatusCode/400)] = true
		tested[tc.route] = done
		if op.Responses.Status(resp.StatusCode) == nil {
			t.Fatalf("%s %s: status %d is not documented", method, tc.path, resp.StatusCode)
		}
		route := &routers.Route{Spec: doc, Path: tmpl, PathItem: item, Method: method, Operation: op}
		// The request, as the client sent it (a fresh reader of the same body).
		req.Body = io.NopCloser(strings.NewReader(tc.body))
		u, _ := url.Parse(base + tc.path)
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: tc.params, QueryParams: u.Query(), Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
		if resp.StatusCode < 400 && !tc.skipReqChecked {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s %s: the request breaks the document: %v", method, tc.path, err)
			}
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s %s: answer %d %s breaks the document: %v\n%.500s", method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
		}
		if mt := op.Responses.Status(resp.StatusCode).Value.Content.Get(resp.Header.Get("Content-Type")); mt != nil && method != http.MethodHead {
			if ss := streamSchemasOf(t, doc, mt); ss != nil {
				if err := ss.check(string(body)); err != nil {
					t.Errorf("%s %s: stream: %v\n%.500s", method, tc.path, err, body)
				}
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.route+" "+fmt.Sprint(tc.status), func(t *testing.T) { run(t, ts.URL, tc) })
	}
	// Streams that fail after their first byte, and a timeout before it.
	if _, _, b := do(t, http.MethodPost, slow.URL+"/api/encode", `{"model":"`+longModel+`","input":"a"}`); errorCode(b) != "" {
		t.Fatalf("loading the model: %s", b)
	}
	long := `{"model":"` + longModel + `","input":"` + longInput + `","max_new_tokens":4000`
	for _, tc := range []oaCase{
		{route: "POST /api/generate", path: "/api/generate", body: long + `,"stream":true}`, status: 200},
		{route: "POST /api/generate", path: "/api/generate", body: long + `,"stream":true}`, header: []string{"Accept", "application/x-ndjson"}, status: 200},
		{route: "POST /api/generate", path: "/api/generate", body: long + `,"num_beams":4}`, status: 504},
		{route: "POST /v1/completions", path: "/v1/completions", body: `{"model":"` + longModel + `","prompt":"` + longInput + `","max_tokens":4000,"temperature":0,"stream":true}`, status: 200},
	} {
		t.Run("slow "+tc.route+" "+fmt.Sprint(tc.status), func(t *testing.T) { run(t, slow.URL, tc) })
	}
	// A draining server.
	ts.Close()
	for _, tc := range []oaCase{
		{route: "GET /readyz", path: "/readyz", status: 503},
		{route: "POST /api/generate", path: "/api/generate", body: gen + `}`, header: read, status: 503},
		{route: "POST /v1/completions", path: "/v1/completions", body: comp + `}`, header: read, status: 503},
	} {
		t.Run("draining "+tc.route, func(t *testing.T) { run(t, ts.URL, tc) })
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			route := method + " " + path
			if done := tested[route]; !done[0] || !done[1] {
				t.Errorf("%s: answered with success %v, with an error %v; want both tested", route, done[0], done[1])
			}
		}
	}
}
