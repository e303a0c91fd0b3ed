package serve_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

const (
	readKey  = "read-key-0123456789abcdef"
	adminKey = "admin-key-0123456789abcdef"
	wrongKey = "wrong-key-0123456789abcdef"
)

// TestAuth checks the scopes of every kind of route, the answers to missing and wrong
// keys, the registry behind a key, and that no key reaches the log.
func TestAuth(t *testing.T) {
	keys, err := serve.ParseAPIKeys(readKey + "\n" + adminKey + ":admin\n")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *serve.Config) { c.Keys = keys })
	bearer := func(k string) []string { return []string{"Authorization", "Bearer " + k} }
	for _, tc := range []struct {
		name, method, path, body string
		header                   []string
		status                   int
	}{
		{"healthz open", "GET", "/healthz", "", nil, 200},
		{"readyz open", "GET", "/readyz", "", nil, 200},
		{"openapi open", "GET", "/api/openapi.json", "", nil, 200},
		{"metrics no key", "GET", "/metrics", "", nil, 401},
		{"metrics read", "GET", "/metrics", "", bearer(readKey), 200},
		{"catalog no key", "GET", "/api/catalog", "", nil, 401},
		{"catalog wrong key", "GET", "/api/catalog", "", bearer(wrongKey), 401},
		{"catalog not bearer", "GET", "/api/catalog", "", []string{"Authorization", "Basic " + readKey}, 401},
		{"catalog read", "GET", "/api/catalog", "", bearer(readKey), 200},
		{"generate read", "POST", "/api/generate", `{"model":"` + reluRef + `","input":"a","max_new_tokens":2}`, bearer(readKey), 200},
		{"completions read", "POST", "/v1/completions", `{"model":"` + reluRef + `","prompt":"a","max_tokens":2}`, bearer(readKey), 200},
		{"completions wrong key", "POST", "/v1/completions", `{"model":"` + reluRef + `","prompt":"a"}`, bearer(wrongKey), 401},
		{"pull read", "POST", "/api/pull", `{"model":"` + gatedRef + `"}`, bearer(readKey), 403},
		{"pull admin", "POST", "/api/pull", `{"model":"` + gatedRef + `"}`, bearer(adminKey), 200},
		{"unload read", "POST", "/api/unload", `{"model":"` + reluRef + `"}`, bearer(readKey), 403},
		{"delete read", "DELETE", "/api/models/" + gatedRef, "", bearer(readKey), 403},
		{"delete admin", "DELETE", "/api/models/" + gatedRef, "", bearer(adminKey), 200},
		{"admin reads", "GET", "/api/ps", "", bearer(adminKey), 200},
		{"registry no key", "GET", "/manifests/", "", nil, 401},
		{"registry read", "GET", "/manifests/", "", bearer(readKey), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := do(t, tc.method, ts.URL+tc.path, tc.body, tc.header...)
			if status != tc.status {
				t.Fatalf("%d, want %d: %.200s", status, tc.status, body)
			}
			switch status {
			case 401:
				if errorCode(body) != "unauthorized" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 answer %s, WWW-Authenticate %q", body, hdr.Get("WWW-Authenticate"))
				}
			case 403:
				if errorCode(body) != "forbidden" {
					t.Errorf("403 answer %s", body)
				}
			}
		})
	}

	// Pulling through the server's registry needs a key.
	for _, tc := range []struct {
		key  string
		want error
	}{{"", zoo.ErrAccessDenied}, {wrongKey, zoo.ErrAccessDenied}, {readKey, nil}} {
		hs, err := zoo.NewHTTPStore(ts.URL, zoo.HTTPOptions{Token: tc.key})
		if err != nil {
			t.Fatal(err)
		}
		cache, _ := zoo.OpenCache(t.TempDir())
		_, err = cache.Pull(t.Context(), hs, zoo.MustParseRef(reluRef), zoo.PullOptions{})
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("pull with key %q: %v, want %v", tc.key, err, tc.want)
		}
	}
	// The Go client sends its key.
	c, _ := api.NewClient(ts.URL, api.ClientOptions{APIKey: readKey})
	if _, err := c.Ps(t.Context()); err != nil {
		t.Errorf("client with a key: %v", err)
	}

	logs := ts.Log.String()
	if !strings.Contains(logs, "route=/api/generate") {
		t.Fatalf("the request log is missing: %.500s", logs)
	}
	for _, k := range []string{readKey, adminKey, wrongKey, "0123456789abcdef"} {
		if strings.Contains(logs, k) {
			t.Errorf("the log contains key material %q", k)
		}
	}
}

func TestParseAPIKeys(t *testing.T) {
	const k1, k2 = "k1-aaaaaaaaaaaaaaaa", "k2-bbbbbbbbbbbbbbbb"
	for _, tc := range []struct {
		name, in string
		want     []serve.APIKey
		err      string
	}{
		{"one", k1, []serve.APIKey{{Key: k1, Scope: serve.ScopeRead}}, ""},
		{"comma list", k1 + ":admin, " + k2 + ":read", []serve.APIKey{{Key: k1, Scope: serve.ScopeAdmin}, {Key: k2, Scope: serve.ScopeRead}}, ""},
		{"file", "# keys\n\n" + k1 + "\n" + k2 + ":admin\n", []serve.APIKey{{Key: k1, Scope: serve.ScopeRead}, {Key: k2, Scope: serve.ScopeAdmin}}, ""},
		{"empty", " \n# none\n", nil, ""},
		{"short", "zq9x:admin", nil, "API key 1: shorter than 16"},
		{"scope", k1 + "," + k2 + ":root", nil, `API key 2: scope "root"`},
		{"space", "k1-aaaa aaaaaaaaaaaa", nil, "API key 1: characters"},
		{"non-ASCII", "k1-aaaaaaaaaaaaaaaé", nil, "API key 1: characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := serve.ParseAPIKeys(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				for _, k := range []string{k1, k2, "zq9x", "aaaa"} {
					if strings.Contains(err.Error(), k) {
						t.Errorf("the error quotes the key: %v", err)
					}
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("%v, %v", got, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("key %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestAuthMetricsRoute makes sure the 401s are counted without a model label.
func TestAuthMetricsRoute(t *testing.T) {
	keys, _ := serve.ParseAPIKeys(readKey)
	ts := newTestServer(t, func(c *serve.Config) { c.Keys = keys })
	do(t, http.MethodPost, ts.URL+"/api/generate", `{"model":"`+reluRef+`","input":"a"}`)
	status, _, body := do(t, http.MethodGet, ts.URL+"/metrics", "", "Authorization", "Bearer "+readKey)
	if status != 200 || !strings.Contains(string(body), `t5zoo_http_requests_total{code="401",method="POST",model="",route="/api/generate"} 1`) {
		t.Errorf("metrics: %d %s", status, body)
	}
}
