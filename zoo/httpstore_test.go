package zoo_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/zoo"
	"github.com/t5zoo/t5zoo/zoo/zootest"
)

// readOverHTTP reads through an HTTPStore and writes to the store behind its server, so
// that the conformance suite (which pushes) exercises every read over HTTP.
type readOverHTTP struct {
	*zoo.HTTPStore
	w zoo.Store
}

func (s readOverHTTP) PutBlob(ctx context.Context, d zoo.Digest, r io.Reader, size int64) error {
	return s.w.PutBlob(ctx, d, r, size)
}

func (s readOverHTTP) PutManifest(ctx context.Context, ref zoo.Ref, data []byte) error {
	return s.w.PutManifest(ctx, ref, data)
}

func (s readOverHTTP) DeleteManifest(ctx context.Context, ref zoo.Ref) error {
	return s.w.DeleteManifest(ctx, ref)
}

// countingHandler counts responses by status.
type countingHandler struct {
	h         http.Handler
	redirects atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	c.h.ServeHTTP(rec, r)
	if rec.status == http.StatusTemporaryRedirect {
		c.redirects.Add(1)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// httpHarness serves the store of inner over HTTP (mounted below a path prefix, to check
// that bases with a path work).
func httpHarness(inner func(t *testing.T) zootest.Harness, redirects *atomic.Int64) func(t *testing.T) zootest.Harness {
	return func(t *testing.T) zootest.Harness {
		h := inner(t)
		ch := &countingHandler{h: zoo.NewRegistryHandler(h.Store, zoo.RegistryOptions{})}
		mux := http.NewServeMux()
		mux.Handle("/reg/", http.StripPrefix("/reg", ch))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		if redirects != nil {
			t.Cleanup(func() { redirects.Add(ch.redirects.Load()) })
		}
		hs, err := zoo.NewHTTPStore(srv.URL+"/reg/", zoo.HTTPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h.Store = readOverHTTP{HTTPStore: hs, w: h.Store}
		return h
	}
}

// TestZooHTTPStore runs the conformance suite with every read going over HTTP to a
// RegistryHandler in front of a local store.
func TestZooHTTPStore(t *testing.T) {
	t.Parallel()
	zootest.Run(t, testModel, httpHarness(localHarness, nil))
}

// TestZooHTTPStoreS3 runs the suite with the handler in front of MinIO, where blob GETs are
// redirected to presigned URLs.
func TestZooHTTPStoreS3(t *testing.T) {
	srv := miniotest.Start(t)
	var redirects atomic.Int64
	t.Run("Suite", func(t *testing.T) {
		zootest.Run(t, testModel, httpHarness(s3Harness(srv), &redirects))
	})
	if redirects.Load() == 0 {
		t.Error("no blob GET was redirected to a presigned URL")
	}
}

// TestZooHTTPStoreErrors checks the mapping of statuses to the sentinels, read-only writes,
// bad base URLs, the token, and that the token never follows a redirect to another host.
func TestZooHTTPStoreErrors(t *testing.T) {
	ctx := t.Context()
	local, err := zoo.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := zoo.MustParseRef("tiny-nl2:v1")
	pushed, err := zoo.Push(ctx, local, testModel, ref, zoo.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blob := pushed.Manifest.Files[0].Chunks[0].Digest

	// The bucket: records the Authorization header it receives.
	var bucketAuth atomic.Value
	bucketAuth.Store("")
	reg := zoo.NewRegistryHandler(local, zoo.RegistryOptions{})
	bucket := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucketAuth.Store(r.Header.Get("Authorization"))
		reg.ServeHTTP(w, r)
	}))
	defer bucket.Close()
	// The server: requires a key, redirects blob GETs to the bucket.
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer good":
		case "Bearer read-only-elsewhere":
			http.Error(w, `{"error":{"code":"forbidden","message":"no"}}`, http.StatusForbidden)
			return
		default:
			http.Error(w, `{"error":{"code":"unauthorized","message":"key"}}`, http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/_tags/nobucket"):
			http.Error(w, `{"error":{"code":"registry_no_bucket","message":"bucket zoo does not exist"}}`, http.StatusBadGateway)
		case strings.HasSuffix(r.URL.Path, "/_tags/denied"):
			http.Error(w, `{"error":{"code":"registry_access_denied","message":"bad creds"}}`, http.StatusBadGateway)
		case strings.HasSuffix(r.URL.Path, "/_tags/flaky"):
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case strings.HasPrefix(r.URL.Path, "/blobs/") && r.Method == http.MethodGet:
			http.Redirect(w, r, bucket.URL+r.URL.Path, http.StatusTemporaryRedirect)
		default:
			reg.ServeHTTP(w, r)
		}
	}))
	defer server.Close()

	open := func(token string) *zoo.HTTPStore {
		s, err := zoo.NewHTTPStore(server.URL, zoo.HTTPOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := open("good")
	if rc, err := good.GetBlob(ctx, blob); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, rc)
		rc.Close()
	}
	if a := bucketAuth.Load().(string); a != "" {
		t.Errorf("the redirect target received Authorization %q", a)
	}
	c, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lm, err := c.Pull(ctx, good, ref, zoo.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range lm.Manifest.Files {
		a, _ := os.ReadFile(filepath.Join(testModel, f.Path))
		b, _ := os.ReadFile(filepath.Join(lm.Dir, f.Path))
		if string(a) != string(b) {
			t.Errorf("%s differs after a pull over HTTP", f.Path)
		}
	}
	if refs, err := good.ListManifests(ctx); err != nil || len(refs) != 1 || refs[0] != ref {
		t.Errorf("ListManifests = %v, %v", refs, err)
	}

	for _, tc := range []struct {
		name  string
		store *zoo.HTTPStore
		tag   string
		want  error
	}{
		{"NoKey", open(""), "v1", zoo.ErrAccessDenied},
		{"WrongKey", open("bad"), "v1", zoo.ErrAccessDenied},
		{"Forbidden", open("read-only-elsewhere"), "v1", zoo.ErrAccessDenied},
		{"NotFound", good, "v2", zoo.ErrNotFound},
		{"NoBucket", good, "nobucket", zoo.ErrNoBucket},
		{"StoreDenied", good, "denied", zoo.ErrAccessDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.store.GetManifest(ctx, zoo.Ref{Name: ref.Name, Tag: tc.tag})
			if !errors.Is(err, tc.want) {
				t.Errorf("GetManifest: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := good.GetManifest(ctx, zoo.Ref{Name: ref.Name, Tag: "flaky"}); err == nil ||
		errors.Is(err, zoo.ErrNotFound) || errors.Is(err, zoo.ErrAccessDenied) || !strings.Contains(err.Error(), "overloaded") {
		t.Errorf("503: %v, want a plain (retryable) error with the body", err)
	}
	if _, err := good.StatBlob(ctx, zoo.DigestOf([]byte("absent"))); !errors.Is(err, zoo.ErrNotFound) {
		t.Errorf("StatBlob of a missing blob: %v", err)
	}
	if n, err := good.StatBlob(ctx, blob); err != nil || n <= 0 {
		t.Errorf("StatBlob = %d, %v", n, err)
	}
	for name, err := range map[string]error{
		"PutBlob":        good.PutBlob(ctx, blob, strings.NewReader("x"), 1),
		"PutManifest":    good.PutManifest(ctx, ref, []byte("{}")),
		"DeleteManifest": good.DeleteManifest(ctx, ref),
	} {
		if !errors.Is(err, zoo.ErrAccessDenied) {
			t.Errorf("%s: %v, want ErrAccessDenied", name, err)
		}
	}
	for _, base := range []string{"ftp://h", "http://", "http://h/?q=1", "http://u:p@h", "://x"} {
		if _, err := zoo.NewHTTPStore(base, zoo.HTTPOptions{}); err == nil {
			t.Errorf("NewHTTPStore(%q) accepted", base)
		}
	}
	// The handler refuses writes and unknown paths.
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/manifests/tiny/_tags/x"},
		{http.MethodDelete, "/manifests/t5-efficient-tiny-nl2/_tags/v1"},
		{http.MethodGet, "/blobs/sha256/xyz"},
		{http.MethodGet, "/etc/passwd"},
		{http.MethodGet, "/manifests/../../etc/_tags/x"},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, bucket.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s: %d, want a 4xx", tc.method, tc.path, resp.StatusCode)
		}
	}
}
