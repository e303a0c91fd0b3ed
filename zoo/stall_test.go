package zoo_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/zoo"
	"github.com/t5zoo/t5zoo/zoo/zootest"
)

// Behaviours of the hostile registry, per response.
const (
	serveOK           = ""
	stallNoHeaders    = "no-headers"    // accept the request, answer nothing
	stallAfterHeaders = "after-headers" // send the status and headers, then nothing
	stallMidBody      = "mid-body"      // send half the body, then nothing
	trickle           = "trickle"       // send the body a byte at a time, every 10ms
)

// hostileRegistry serves a real registry over HTTP but answers some requests badly: behave
// says how, given the request and the 1-based count of requests of its kind (manifest or
// blob) so far. Stalled handlers hold until the client goes away or the test ends.
type hostileRegistry struct {
	reg    http.Handler
	behave func(r *http.Request, kind string, n int) string
	done   chan struct{}
	// stalled receives a value (without blocking) each time a handler starts stalling.
	stalled chan struct{}

	mu     sync.Mutex
	counts map[string]int
}

func newHostileRegistry(t *testing.T, store zoo.Store, behave func(r *http.Request, kind string, n int) string) (*zoo.HTTPStore, *hostileRegistry) {
	t.Helper()
	h := &hostileRegistry{reg: zoo.NewRegistryHandler(store, zoo.RegistryOptions{}), behave: behave,
		done: make(chan struct{}), stalled: make(chan struct{}, 100), counts: map[string]int{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(h.done) }) // runs first: the stalled handlers return
	hs, err := zoo.NewHTTPStore(srv.URL, zoo.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return hs, h
}

func (h *hostileRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := "other"
	switch {
	case strings.HasPrefix(r.URL.Path, "/manifests/"):
		kind = "manifest"
	case strings.HasPrefix(r.URL.Path, "/blobs/"):
		kind = "blob"
	}
	h.mu.Lock()
	h.counts[kind]++
	n := h.counts[kind]
	h.mu.Unlock()
	mode := h.behave(r, kind, n)
	if mode == serveOK {
		h.reg.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	h.reg.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	stall := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case h.stalled <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-h.done:
		}
	}
	if mode == stallNoHeaders {
		stall()
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.Code)
	switch mode {
	case stallAfterHeaders:
		stall()
	case stallMidBody:
		w.Write(body[:len(body)/2])
		stall()
	case trickle:
		for i := range body {
			w.Write(body[i : i+1])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-h.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

func (h *hostileRegistry) count(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[kind]
}

// pushedLocal returns a local registry holding the test model as tiny, and the push.
func pushedLocal(t *testing.T) (*zoo.LocalStore, *zoo.PushResult) {
	t.Helper()
	store, err := zoo.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{ChunkSize: zootest.ChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	return store, res
}

// TestPullHostileRegistry pulls over HTTP from a registry that stalls or trickles, at every
// stage of every transfer, the manifest's included: each pull must end within its stall
// timeout per attempt with an error that says what happened, or, when the registry
// misbehaves only once, succeed.
func TestPullHostileRegistry(t *testing.T) {
	t.Parallel()
	always := func(kind, mode string) func(*http.Request, string, int) string {
		return func(_ *http.Request, k string, _ int) string {
			if k == kind {
				return mode
			}
			return serveOK
		}
	}
	once := func(kind, mode string) func(*http.Request, string, int) string {
		return func(_ *http.Request, k string, n int) string {
			if k == kind && n == 1 {
				return mode
			}
			return serveOK
		}
	}
	const stallTimeout = 100 * time.Millisecond
	for _, tc := range []struct {
		name   string
		behave func(*http.Request, string, int) string
		want   string // in the error, or one of several joined by "|"; "" means the pull succeeds
	}{
		{"ManifestNoHeaders", always("manifest", stallNoHeaders), "stalled"},
		{"ManifestAfterHeaders", always("manifest", stallAfterHeaders), "stalled"},
		{"ManifestMidBody", always("manifest", stallMidBody), "stalled"},
		{"ManifestTrickle", always("manifest", trickle), "stalled"},
		{"BlobNoHeaders", always("blob", stallNoHeaders), "stalled"},
		{"BlobAfterHeaders", always("blob", stallAfterHeaders), "stalled"},
		// Half a small blob, then silence: stalled, or too slow if the half came late in
		// the window.
		{"BlobMidBody", always("blob", stallMidBody), "stalled|too slow"},
		// 100 bytes a second stays under a minimum rate of 4 KiB/s.
		{"BlobTrickle", always("blob", trickle), "too slow"},
		{"ManifestStallsOnce", once("manifest", stallMidBody), ""},
		{"BlobTricklesOnce", once("blob", trickle), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			local, _ := pushedLocal(t)
			store, _ := newHostileRegistry(t, local, tc.behave)
			c, _ := zoo.OpenCache(t.TempDir())
			// A pull that does not notice the stall ends here, with the wrong error.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			start := time.Now()
			// A pull meant to succeed gets more tries: on a loaded machine (the whole suite
			// under -race on 2 cores) a healthy local transfer can go silent for longer than
			// this test's 100 ms stall timer, and that must not read as the registry's fault.
			attempts := 2
			if tc.want == "" {
				attempts = 6
			}
			stall := stallTimeout
			if tc.name == "BlobTrickle" {
				// A trickle of a byte every 10 ms must not go silent for half the rate window,
				// however loaded the machine (the suite runs CPU-bound packages beside this one
				// under -race), or the watch rightly calls it stalled rather than too slow.
				stall = 400 * time.Millisecond
			}
			lm, err := c.Pull(ctx, store, zoo.MustParseRef("tiny"), zoo.PullOptions{
				StallTimeout: stall,
				MinRate:      4 << 10,
				Retry:        zoo.RetryPolicy{Attempts: attempts, Base: time.Millisecond, Max: 5 * time.Millisecond},
			})
			took := time.Since(start)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
					t.Fatal(err)
				}
				return
			}
			said := false
			for _, w := range strings.Split(tc.want, "|") {
				said = said || err != nil && strings.Contains(err.Error(), w)
			}
			if !said || !strings.Contains(err.Error(), "giving up after 2 attempts") {
				t.Fatalf("pull from a registry that stalls: %v; want an error saying %q after 2 attempts", err, tc.want)
			}
			if errors.Is(err, zoo.ErrCorrupt) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a stall reported as %v", err)
			}
			if took > 3*time.Second {
				t.Errorf("the pull took %s to give up on a stall of %s per attempt", took, stall)
			}
		})
	}
}

// TestPullTimeout bounds a whole pull: a registry that sends steadily but slowly (not a
// stall) is cut off by PullOptions.Timeout with an error that says so, and the partial
// download stays for the next pull to resume.
func TestPullTimeout(t *testing.T) {
	t.Parallel()
	local, res := pushedLocal(t)
	store, _ := newHostileRegistry(t, local, func(_ *http.Request, kind string, n int) string {
		if kind == "blob" && n > 2 {
			return trickle
		}
		return serveOK
	})
	c, _ := zoo.OpenCache(t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := c.Pull(ctx, store, zoo.MustParseRef("tiny"), zoo.PullOptions{Concurrency: 1, Timeout: timeout, MinRate: -1})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "within 300ms") || ctx.Err() != nil {
		t.Fatalf("a pull past its timeout: %v; want context.DeadlineExceeded saying \"within 300ms\"", err)
	}
	if took > timeout+time.Second {
		t.Errorf("the pull ended %s after it started, its timeout %s", took, timeout)
	}
	if n := journalLines(filepath.Join(c.Root(), "partial", res.Digest.Hex(), "journal")); n != 2 {
		t.Errorf("%d chunks journaled; want the 2 fetched before the slow ones", n)
	}
}

// blockingStore serves blobs whose bodies stop after a few bytes from the n-th GET on, and
// block until they are closed: they ignore the context, as a reader from a stuck file
// system or a careless Store might.
type blockingStore struct {
	zoo.Store
	after int

	mu       sync.Mutex
	gets     int
	blocking chan struct{} // receives when a body starts blocking
	release  chan struct{} // closed at the end of the test
}

type blockingBody struct {
	io.Reader
	once   sync.Once
	closed chan struct{}
	store  *blockingStore
}

func (b *blockingBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		select {
		case b.store.blocking <- struct{}{}:
		default:
		}
		select {
		case <-b.closed:
			return n, errors.New("read on a closed body")
		case <-b.store.release:
		}
	}
	return n, err
}

func (b *blockingBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

func (s *blockingStore) GetBlob(ctx context.Context, d zoo.Digest) (io.ReadCloser, error) {
	s.mu.Lock()
	s.gets++
	n := s.gets
	s.mu.Unlock()
	rc, err := s.Store.GetBlob(ctx, d)
	if err != nil || n <= s.after {
		return rc, err
	}
	rc.Close()
	return &blockingBody{Reader: strings.NewReader("(\xb5/\xfd"), closed: make(chan struct{}), store: s}, nil
}

// TestPullCancelStalledTransfer cancels pulls whose transfer is stalled mid-body — over HTTP,
// and from a Store whose body ignores the context until it is closed: Pull returns well
// within a second, and the next pull resumes, fetching only what the first had not.
func TestPullCancelStalledTransfer(t *testing.T) {
	t.Parallel()
	const done = 3
	for _, tc := range []struct {
		name  string
		store func(t *testing.T, local zoo.Store) (zoo.Store, <-chan struct{})
	}{
		{"HTTP", func(t *testing.T, local zoo.Store) (zoo.Store, <-chan struct{}) {
			hs, h := newHostileRegistry(t, local, func(_ *http.Request, kind string, n int) string {
				if kind == "blob" && n > done {
					return stallMidBody
				}
				return serveOK
			})
			return hs, h.stalled
		}},
		{"BodyIgnoresContext", func(t *testing.T, local zoo.Store) (zoo.Store, <-chan struct{}) {
			s := &blockingStore{Store: local, after: done, blocking: make(chan struct{}, 100), release: make(chan struct{})}
			t.Cleanup(func() { close(s.release) })
			return s, s.blocking
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			local, res := pushedLocal(t)
			store, stalled := tc.store(t, local)
			c, _ := zoo.OpenCache(t.TempDir())
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := c.Pull(ctx, store, zoo.MustParseRef("tiny"), zoo.PullOptions{Concurrency: 1, StallTimeout: time.Minute})
				errc <- err
			}()
			select {
			case <-stalled:
			case err := <-errc:
				t.Fatalf("the pull ended before its transfer stalled: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the transfer never stalled")
			}
			cancel()
			start := time.Now()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled pull: %v, want context.Canceled", err)
				}
				if took := time.Since(start); took > 500*time.Millisecond {
					t.Errorf("Pull returned %s after its context was cancelled", took)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("Pull did not return within 3s of its context being cancelled")
			}
			if _, err := c.Model(zoo.MustParseRef("tiny")); err == nil {
				t.Fatal("a cancelled pull left a whole-looking model")
			}
			counting := zootest.NewCountingStore(local)
			lm, err := c.Pull(t.Context(), counting, zoo.MustParseRef("tiny"), zoo.PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want := res.Manifest.Chunks() - done; counting.Gets() != want {
				t.Errorf("the pull after the cancel made %d GETs; want %d", counting.Gets(), want)
			}
			if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(filepath.Join(c.Root(), "partial")); len(entries) != 0 {
				t.Errorf("partial left after a successful pull: %v", entries)
			}
		})
	}
}

// TestPullProgressFetched checks Progress.Fetched when the registry truncates the first GET
// of every blob: it never decreases, counts each chunk once (the retried ones included), ends
// at each file's size, and is 0 for what a pull does not fetch.
func TestPullProgressFetched(t *testing.T) {
	t.Parallel()
	local, _ := pushedLocal(t)
	store := &misbehavingStore{Store: local, mode: "truncate", seen: map[zoo.Digest]bool{}}
	c, _ := zoo.OpenCache(t.TempDir())
	var mu sync.Mutex
	last := map[string]zoo.Progress{}
	var positive atomic.Int64 // the sum of positive Completed deltas, what serve counted
	progress := func(p zoo.Progress) {
		mu.Lock()
		defer mu.Unlock()
		prev := last[p.File]
		if p.Fetched < prev.Fetched {
			t.Errorf("%s: Fetched went from %d to %d", p.File, prev.Fetched, p.Fetched)
		}
		if d := p.Completed - prev.Completed; d > 0 {
			positive.Add(d)
		}
		last[p.File] = p
	}
	retry := zoo.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}
	lm, err := c.Pull(t.Context(), store, zoo.MustParseRef("tiny"), zoo.PullOptions{Progress: progress, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	var fetched int64
	for _, f := range lm.Manifest.Files {
		if p := last[f.Path]; p.Fetched != f.Size || p.Completed != f.Size {
			t.Errorf("%s: last progress %+v; want Fetched and Completed %d", f.Path, p, f.Size)
		}
		fetched += last[f.Path].Fetched
	}
	if fetched != lm.Manifest.Size() {
		t.Errorf("Fetched sums to %d; the model has %d bytes", fetched, lm.Manifest.Size())
	}
	t.Logf("Fetched: %d bytes; positive Completed deltas: %d", fetched, positive.Load())

	// A second pull of the same model fetches nothing.
	clear(last)
	if _, err := c.Pull(t.Context(), store, zoo.MustParseRef("tiny"), zoo.PullOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	for _, f := range lm.Manifest.Files {
		if p := last[f.Path]; p.Fetched != 0 {
			t.Errorf("%s: Fetched %d by a pull of a model already whole", f.Path, p.Fetched)
		}
	}
}
