package zoo_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/zoo"
	"github.com/t5zoo/t5zoo/zoo/zootest"
)

// TestPullMinIOStopsMidPull kills the MinIO server in the middle of a pull: the pull fails
// with the connection error after its retries, leaves no model, and a pull after the server
// is back completes, fetching only the chunks the first did not finish.
func TestPullMinIOStopsMidPull(t *testing.T) {
	t.Parallel()
	srv := miniotest.Start(t)
	store := newS3Store(t, srv, srv.Bucket, "")
	res, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{ChunkSize: zootest.ChunkSize})
	if err != nil {
		t.Fatal(err)
	}
	counting := zootest.NewCountingStore(store)
	var once sync.Once
	counting.BeforeGet = func(ctx context.Context, n int) error {
		if n == 6 {
			once.Do(func() { srv.Stop(t) })
		}
		return nil
	}
	c, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	retry := zoo.RetryPolicy{Attempts: 3, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	_, err = c.Pull(t.Context(), counting, zoo.MustParseRef("tiny"), zoo.PullOptions{Concurrency: 2, Retry: retry})
	if err == nil {
		t.Fatal("pull succeeded with the server down")
	}
	for _, sentinel := range []error{zoo.ErrCorrupt, zoo.ErrNotFound, zoo.ErrAccessDenied} {
		if errors.Is(err, sentinel) {
			t.Fatalf("server down reported as %v: %v", sentinel, err)
		}
	}
	if msg := err.Error(); !strings.Contains(msg, "connection refused") || !strings.Contains(msg, "giving up after 3 attempts") {
		t.Fatalf("unclear error for a server that is down: %v", err)
	}
	if _, err := c.Model(zoo.MustParseRef("tiny")); err == nil {
		t.Fatal("a failed pull left a whole-looking model")
	}
	journaled := journalLines(filepath.Join(c.Root(), "partial", res.Digest.Hex(), "journal"))
	if journaled < 1 {
		t.Fatalf("no chunk journaled before the server went down")
	}

	srv.Restart(t)
	counting = zootest.NewCountingStore(store)
	lm, err := c.Pull(t.Context(), counting, zoo.MustParseRef("tiny"), zoo.PullOptions{Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	if want := res.Manifest.Chunks() - journaled; counting.Gets() != want {
		t.Fatalf("pull after restart made %d GETs; want %d", counting.Gets(), want)
	}
	if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(c.Root(), "partial")); len(entries) != 0 {
		t.Fatalf("partial left after a successful pull: %v", entries)
	}
}

func TestZooResolve(t *testing.T) {
	t.Parallel()
	store, err := zoo.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef("acme/tiny:v1"), zoo.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ := zoo.OpenCache(t.TempDir())
	if dir, err := c.Resolve(t.Context(), nil, testModel, zoo.PullOptions{}); err != nil || dir != testModel {
		t.Fatalf("a directory resolves to itself: %q, %v", dir, err)
	}
	if _, err := c.Resolve(t.Context(), nil, "acme/tiny:v1", zoo.PullOptions{}); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("without a store, an absent model: %v, want ErrNotFound", err)
	}
	dir, err := c.Resolve(t.Context(), store, "acme/tiny:v1", zoo.PullOptions{})
	if err != nil || dir != c.ModelDir(zoo.MustParseRef("acme/tiny:v1")) {
		t.Fatalf("resolve pulls: %q, %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	if again, err := c.Resolve(t.Context(), nil, "acme/tiny:v1", zoo.PullOptions{}); err != nil || again != dir {
		t.Fatalf("once pulled, resolve needs no store: %q, %v", again, err)
	}
	if _, err := c.Resolve(t.Context(), store, "../etc", zoo.PullOptions{}); !errors.Is(err, zoo.ErrBadRef) {
		t.Fatalf("a traversal name: %v, want ErrBadRef", err)
	}
}

func TestZooPushValidates(t *testing.T) {
	t.Parallel()
	store, _ := zoo.NewLocalStore(t.TempDir())
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "config.json"), []byte(`{"model_type": "bert"}`), 0o644)
	os.WriteFile(filepath.Join(broken, "model.safetensors"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(broken, "spiece.model"), []byte("x"), 0o644)
	noWeights := t.TempDir()
	b, _ := os.ReadFile(filepath.Join(testModel, "config.json"))
	os.WriteFile(filepath.Join(noWeights, "config.json"), b, 0o644)
	hookErr := errors.New("tensor encoder.block.0.layer.0.SelfAttention.q.weight has shape [64 32], config says [64 64]")
	for _, tc := range []struct {
		name, dir string
		hook      func(context.Context, string) error
		want      string
	}{
		{"NotT5", broken, nil, "model_type"},
		{"NoWeights", noWeights, nil, "model.safetensors"},
		{"Hook", testModel, func(context.Context, string) error { return hookErr }, "SelfAttention"},
		{"NoDir", filepath.Join(broken, "nope"), nil, "config.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := zoo.Push(t.Context(), store, tc.dir, zoo.MustParseRef("acme/x"), zoo.PushOptions{Validate: tc.hook})
			if !errors.Is(err, zoo.ErrInvalidModel) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("push: %v; want ErrInvalidModel mentioning %q", err, tc.want)
			}
			if refs, _ := store.ListManifests(t.Context()); len(refs) != 0 {
				t.Fatalf("a refused push left manifests: %v", refs)
			}
		})
	}
}

// misbehavingStore serves the first GET of each blob badly, then well.
type misbehavingStore struct {
	zoo.Store
	mode string // "stall", "truncate" or "error"

	mu   sync.Mutex
	seen map[zoo.Digest]bool
}

func (m *misbehavingStore) GetBlob(ctx context.Context, d zoo.Digest) (io.ReadCloser, error) {
	m.mu.Lock()
	first := !m.seen[d]
	m.seen[d] = true
	m.mu.Unlock()
	rc, err := m.Store.GetBlob(ctx, d)
	if err != nil || !first {
		return rc, err
	}
	switch m.mode {
	case "error":
		rc.Close()
		return nil, errors.New("503 Service Unavailable: SlowDown")
	case "stall":
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(io.LimitReader(rc, 100), blockUntil(ctx)), rc}, nil
	default: // truncate
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(io.LimitReader(rc, 100), errReader{io.ErrUnexpectedEOF}), rc}, nil
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// blockUntil returns a reader that blocks until ctx ends, like a stalled connection.
func blockUntil(ctx context.Context) io.Reader {
	return readerFunc(func([]byte) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestPullMisbehavingPeer serves the first GET of every blob stalled, truncated or failed:
// each is retried, and the pull completes with every chunk verified.
func TestPullMisbehavingPeer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"stall", "truncate", "error"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			base, _ := zoo.NewLocalStore(t.TempDir())
			if _, err := zoo.Push(t.Context(), base, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{ChunkSize: zootest.ChunkSize}); err != nil {
				t.Fatal(err)
			}
			store := &misbehavingStore{Store: base, mode: mode, seen: map[zoo.Digest]bool{}}
			c, _ := zoo.OpenCache(t.TempDir())
			lm, err := c.Pull(t.Context(), store, zoo.MustParseRef("tiny"), zoo.PullOptions{
				StallTimeout: 50 * time.Millisecond,
				Retry:        zoo.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("StallGivesUp", func(t *testing.T) {
		t.Parallel()
		base, _ := zoo.NewLocalStore(t.TempDir())
		zoo.Push(t.Context(), base, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{})
		stalled := zootest.NewCountingStore(base)
		stalled.BeforeGet = func(ctx context.Context, n int) error { <-ctx.Done(); return ctx.Err() }
		c, _ := zoo.OpenCache(t.TempDir())
		_, err := c.Pull(t.Context(), stalled, zoo.MustParseRef("tiny"), zoo.PullOptions{
			StallTimeout: 20 * time.Millisecond,
			Retry:        zoo.RetryPolicy{Attempts: 2, Base: time.Millisecond},
		})
		if err == nil || !strings.Contains(err.Error(), "stalled") || !strings.Contains(err.Error(), "giving up after 2 attempts") {
			t.Fatalf("a server that never answers: %v", err)
		}
	})
}
