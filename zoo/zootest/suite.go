package zootest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/t5zoo/t5zoo/zoo"
)

// Harness is one fresh, empty store under test, with raw access to its objects for the
// tests that damage them.
type Harness struct {
	Store zoo.Store
	// PutRaw writes data at key (relative to the registry root), bypassing Store's checks.
	PutRaw func(t *testing.T, key string, data []byte)
	// DeleteRaw removes the object at key.
	DeleteRaw func(t *testing.T, key string)
}

// ChunkSize is the chunk length the suite pushes with: small, so that the test model spans
// many chunks.
const ChunkSize = 64 << 10

// fastRetry keeps failing tests fast.
var fastRetry = zoo.RetryPolicy{Attempts: 2, Base: time.Millisecond, Max: 5 * time.Millisecond}

// Run runs the conformance suite. model is a model directory to push (zoo's testdata holds
// the golden tiny checkpoint); newHarness returns a fresh store per subtest.
func Run(t *testing.T, model string, newHarness func(t *testing.T) Harness) {
	s := &suite{model: model, newHarness: newHarness}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Blobs", s.testBlobs},
		{"Manifests", s.testManifests},
		{"RoundTrip", s.testRoundTrip},
		{"Dedupe", s.testDedupe},
		{"ReuseLocalFiles", s.testReuseLocal},
		{"CorruptBlob", s.testCorruptBlob},
		{"MissingBlob", s.testMissingBlob},
		{"MissingModel", s.testMissingModel},
		{"ResumeAfterCancel", s.testResume},
		{"ConcurrentPulls", s.testConcurrentPulls},
		{"TagMoves", s.testTagMoves},
		{"VerifyAndRemove", s.testVerifyAndRemove},
		{"InflatingBlob", s.testInflatingBlob},
		{"WrongFileDigest", s.testWrongFileDigest},
		{"IdenticalManifests", s.testIdenticalManifests},
		{"RepairOnPull", s.testRepairOnPull},
		{"SharedFileDamaged", s.testSharedFileDamaged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t)
		})
	}
}

type suite struct {
	model      string
	newHarness func(t *testing.T) Harness
}

// push pushes dir as ref with the suite's settings.
func push(t *testing.T, store zoo.Store, dir, ref string) *zoo.PushResult {
	t.Helper()
	res, err := zoo.Push(t.Context(), store, dir, zoo.MustParseRef(ref), zoo.PushOptions{ChunkSize: ChunkSize, Concurrency: 4, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func openCache(t *testing.T) *zoo.Cache {
	t.Helper()
	c, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pull(ctx context.Context, c *zoo.Cache, store zoo.Store, ref string) (*zoo.LocalModel, error) {
	return c.Pull(ctx, store, zoo.MustParseRef(ref), zoo.PullOptions{Concurrency: 4, Retry: fastRetry})
}

// variant copies the suite's model to a temporary directory with its weights changed, so
// that it shares every file but model.safetensors with the original.
func (s *suite) variant(t *testing.T, seed byte) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(s.model)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.model, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "model.safetensors" {
			b = slices.Clone(b)
			for i := len(b) - 4096; i < len(b); i++ {
				b[i] ^= seed // the tail is tensor data; the header stays valid
			}
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sameFiles fails unless every file of want's manifest is byte-identical in got and src.
func sameFiles(t *testing.T, src string, lm *zoo.LocalModel) {
	t.Helper()
	for _, f := range lm.Manifest.Files {
		a, err := os.ReadFile(filepath.Join(src, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(lm.Dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s differs after the round trip (%d vs %d bytes)", f.Path, len(a), len(b))
		}
	}
}

// nothingLeft fails if the cache holds any trace of ref but its lock.
func nothingLeft(t *testing.T, c *zoo.Cache, ref string) {
	t.Helper()
	r := zoo.MustParseRef(ref)
	if _, err := c.Model(r); !errors.Is(err, zoo.ErrNotFound) {
		t.Errorf("local manifest of %s present after a failed pull (%v)", r, err)
	}
	if _, err := os.Stat(c.ModelDir(r)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("model directory of %s left behind", r)
	}
	if entries, _ := os.ReadDir(filepath.Join(c.Root(), "partial")); len(entries) > 0 {
		t.Errorf("partial download left behind: %v", entries)
	}
}

func compress(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func (s *suite) testBlobs(t *testing.T) {
	h := s.newHarness(t)
	ctx := t.Context()
	content := []byte("the same bytes in every store")
	d := zoo.DigestOf(content)
	if _, err := h.Store.StatBlob(ctx, d); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("stat of a missing blob: %v, want ErrNotFound", err)
	}
	if _, err := h.Store.GetBlob(ctx, d); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("get of a missing blob: %v, want ErrNotFound", err)
	}
	stored := compress(t, content)
	for range 2 { // a second put of the same blob is harmless
		if err := h.Store.PutBlob(ctx, d, bytes.NewReader(stored), int64(len(stored))); err != nil {
			t.Fatal(err)
		}
	}
	size, err := h.Store.StatBlob(ctx, d)
	if err != nil || size != int64(len(stored)) {
		t.Fatalf("stat: %d, %v; want %d", size, err, len(stored))
	}
	rc, err := h.Store.GetBlob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, stored) {
		t.Fatalf("get returned %d bytes (%v), want the %d stored", len(got), err, len(stored))
	}
}

func (s *suite) testManifests(t *testing.T) {
	h := s.newHarness(t)
	ctx := t.Context()
	if refs, err := h.Store.ListManifests(ctx); err != nil || len(refs) != 0 {
		t.Fatalf("empty store lists %v, %v", refs, err)
	}
	ref := zoo.MustParseRef("acme/tiny-sst2:v1")
	if _, err := h.Store.GetManifest(ctx, ref); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("missing manifest: %v, want ErrNotFound", err)
	}
	if err := h.Store.DeleteManifest(ctx, ref); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("delete of a missing manifest: %v, want ErrNotFound", err)
	}
	// Names that are prefixes of each other, and tags beside deeper names, must not collide.
	names := []string{"acme/tiny-sst2:v1", "acme:v1", "acme/tiny-sst2/extra:v1", "tiny", "acme/tiny-sst2:latest"}
	for _, n := range names {
		push(t, h.Store, s.model, n)
	}
	refs, err := h.Store.ListManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range refs {
		got = append(got, r.String())
	}
	want := []string{"acme/tiny-sst2/extra:v1", "acme/tiny-sst2:latest", "acme/tiny-sst2:v1", "acme:v1", "t5-efficient-tiny:latest"}
	if !slices.Equal(got, want) {
		t.Fatalf("ListManifests = %v, want %v", got, want)
	}
	data, err := h.Store.GetManifest(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := zoo.ParseManifest(data)
	if err != nil || m.Ref() != ref {
		t.Fatalf("manifest of %s: %v, %v", ref, m, err)
	}
	if err := h.Store.DeleteManifest(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.GetManifest(ctx, ref); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("deleted manifest: %v, want ErrNotFound", err)
	}
	if refs, _ := h.Store.ListManifests(ctx); len(refs) != len(want)-1 {
		t.Fatalf("after delete: %v", refs)
	}
}

func (s *suite) testRoundTrip(t *testing.T) {
	h := s.newHarness(t)
	store := NewCountingStore(h.Store)
	// Files that are not part of a model are skipped.
	dir := s.variant(t, 0)
	for _, junk := range []string{"pytorch_model.bin", ".gitattributes"} {
		if err := os.WriteFile(filepath.Join(dir, junk), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := push(t, store, dir, "tiny-nl2:rt")
	m := res.Manifest
	if _, ok := m.File("pytorch_model.bin"); ok {
		t.Fatal("pytorch_model.bin was pushed")
	}
	if m.Chunks() < 20 || res.ChunksUploaded != len(m.Blobs()) {
		t.Fatalf("%d chunks, %d uploaded, %d distinct blobs", m.Chunks(), res.ChunksUploaded, len(m.Blobs()))
	}
	c := openCache(t)
	var mu sync.Mutex
	last := map[string]zoo.Progress{}
	lm, err := c.Pull(t.Context(), store, zoo.MustParseRef("t5-efficient-tiny-nl2:rt"), zoo.PullOptions{
		Concurrency: 4,
		Progress: func(p zoo.Progress) {
			mu.Lock()
			last[p.File] = p
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, s.model, lm)
	if len(lm.Manifest.Files) != len(m.Files) || lm.Digest != res.Digest {
		t.Fatalf("pulled manifest %s differs from pushed %s", lm.Digest, res.Digest)
	}
	for _, f := range m.Files {
		if p := last[f.Path]; p.Completed != f.Size || p.Total != f.Size || p.Digest != f.Digest {
			t.Errorf("last progress of %s: %+v, want %d of %d", f.Path, p, f.Size, f.Size)
		}
	}
	if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
		t.Fatal(err)
	}
	if store.Gets() != m.Chunks() {
		t.Fatalf("%d GETs for %d chunks", store.Gets(), m.Chunks())
	}
	// Pulling again finds the model whole and fetches nothing.
	store.Reset()
	if _, err := pull(t.Context(), c, store, "tiny-nl2:rt"); err != nil || store.Gets() != 0 {
		t.Fatalf("second pull: %v, %d GETs", err, store.Gets())
	}
}

func (s *suite) testDedupe(t *testing.T) {
	h := s.newHarness(t)
	store := NewCountingStore(h.Store)
	a := push(t, store, s.model, "acme/a")
	spiece, _ := a.Manifest.File("spiece.model")
	store.Reset()
	b := push(t, store, s.variant(t, 0x5a), "acme/b")
	for _, ch := range spiece.Chunks {
		if n := store.PutsOf(ch.Digest); n != 0 {
			t.Errorf("spiece.model chunk at %d uploaded %d more times", ch.Offset, n)
		}
	}
	weights, _ := b.Manifest.File("model.safetensors")
	if b.ChunksUploaded == 0 || b.ChunksUploaded >= len(weights.Chunks) {
		t.Errorf("second model uploaded %d chunks; want only the changed ones of %d", b.ChunksUploaded, len(weights.Chunks))
	}
	store.Reset()
	again := push(t, store, s.model, "acme/a")
	if store.Puts() != 0 || again.ChunksUploaded != 0 {
		t.Fatalf("re-push uploaded %d blobs", store.Puts())
	}
}

func (s *suite) testReuseLocal(t *testing.T) {
	h := s.newHarness(t)
	store := NewCountingStore(h.Store)
	push(t, store, s.model, "acme/a")
	push(t, store, s.variant(t, 0x11), "acme/b")
	c := openCache(t)
	la, err := pull(t.Context(), c, store, "acme/a")
	if err != nil {
		t.Fatal(err)
	}
	store.Reset()
	lb, err := pull(t.Context(), c, store, "acme/b")
	if err != nil {
		t.Fatal(err)
	}
	spiece, _ := lb.Manifest.File("spiece.model")
	for _, ch := range spiece.Chunks {
		if store.GetsOf(ch.Digest) != 0 {
			t.Fatalf("spiece.model was downloaded again although acme/a holds it")
		}
	}
	fa, _ := os.Stat(filepath.Join(la.Dir, "spiece.model"))
	fb, _ := os.Stat(filepath.Join(lb.Dir, "spiece.model"))
	if !os.SameFile(fa, fb) {
		t.Errorf("spiece.model is not shared between the two local models")
	}
	if err := c.Verify(t.Context(), lb.Ref, nil); err != nil {
		t.Fatal(err)
	}

	// A local copy damaged since its pull is not a source: a third model downloads it.
	push(t, store, s.variant(t, 0x22), "acme/c")
	p := filepath.Join(la.Dir, "spiece.model")
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	store.Reset()
	lc, err := pull(t.Context(), c, store, "acme/c")
	if err != nil {
		t.Fatal(err)
	}
	if store.GetsOf(spiece.Chunks[0].Digest) == 0 {
		t.Error("a damaged local spiece.model was reused")
	}
	if err := c.Verify(t.Context(), lc.Ref, nil); err != nil {
		t.Fatal(err)
	}
}

// middleChunk returns a chunk in the middle of the model's weights.
func middleChunk(t *testing.T, m *zoo.Manifest) zoo.Chunk {
	t.Helper()
	f, ok := m.File("model.safetensors")
	if !ok || len(f.Chunks) < 3 {
		t.Fatalf("model.safetensors has too few chunks")
	}
	return f.Chunks[len(f.Chunks)/2]
}

func (s *suite) testCorruptBlob(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stored func(t *testing.T, orig []byte) []byte
		digest bool // a *DigestError is expected (valid zstd of other bytes)
	}{
		{"OtherContent", func(t *testing.T, orig []byte) []byte {
			other := slices.Clone(orig)
			other[len(other)/2] ^= 1
			return compress(t, other)
		}, true},
		{"Truncated", func(t *testing.T, orig []byte) []byte { return compress(t, orig[:len(orig)-1]) }, true},
		{"NotZstd", func(t *testing.T, orig []byte) []byte { return []byte("this is not a zstd stream") }, false},
		{"BadZstdFrame", func(t *testing.T, orig []byte) []byte {
			b := compress(t, orig)
			return b[:len(b)/2]
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := s.newHarness(t)
			res := push(t, h.Store, s.model, "tiny")
			ch := middleChunk(t, res.Manifest)
			w, _ := os.ReadFile(filepath.Join(s.model, "model.safetensors"))
			h.PutRaw(t, zoo.BlobKey(ch.Digest), tc.stored(t, w[ch.Offset:ch.Offset+ch.Length]))
			c := openCache(t)
			_, err := pull(t.Context(), c, h.Store, "tiny")
			if !errors.Is(err, zoo.ErrCorrupt) {
				t.Fatalf("pull of a corrupt blob: %v, want ErrCorrupt", err)
			}
			var de *zoo.DigestError
			if tc.digest && (!errors.As(err, &de) || de.Want != ch.Digest) {
				t.Fatalf("want a *DigestError for %s, got %v", ch.Digest, err)
			}
			if !strings.Contains(err.Error(), "model.safetensors") {
				t.Errorf("error does not say which file: %v", err)
			}
			nothingLeft(t, c, "tiny")
		})
	}
}

func (s *suite) testMissingBlob(t *testing.T) {
	h := s.newHarness(t)
	res := push(t, h.Store, s.model, "tiny")
	ch := middleChunk(t, res.Manifest)
	h.DeleteRaw(t, zoo.BlobKey(ch.Digest))
	c := openCache(t)
	_, err := pull(t.Context(), c, h.Store, "tiny")
	if !errors.Is(err, zoo.ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("pull with a missing blob: %v", err)
	}
	nothingLeft(t, c, "tiny")
}

func (s *suite) testMissingModel(t *testing.T) {
	h := s.newHarness(t)
	c := openCache(t)
	if _, err := pull(t.Context(), c, h.Store, "acme/nothing-here"); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("pull of an unknown model: %v, want ErrNotFound", err)
	}
	nothingLeft(t, c, "acme/nothing-here")
}

func (s *suite) testResume(t *testing.T) {
	h := s.newHarness(t)
	res := push(t, h.Store, s.model, "tiny")
	total := res.Manifest.Chunks()
	const done = 7
	c := openCache(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	store := NewCountingStore(h.Store)
	store.BeforeGet = func(ctx context.Context, n int) error {
		if n > done {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	// One chunk at a time, so that exactly `done` chunks finish before the cancel.
	_, err := c.Pull(ctx, store, zoo.MustParseRef("tiny"), zoo.PullOptions{Concurrency: 1, Retry: fastRetry})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v", err)
	}
	if _, err := c.Model(zoo.MustParseRef("tiny")); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatal("a cancelled pull left a whole-looking model")
	}
	store = NewCountingStore(h.Store)
	lm, err := pull(t.Context(), c, store, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	if store.Gets() != total-done {
		t.Fatalf("resumed pull made %d GETs; want %d (%d chunks, %d done before)", store.Gets(), total-done, total, done)
	}
	sameFiles(t, s.model, lm)
	nothingLeftButModel(t, c)
}

// nothingLeftButModel fails if partial downloads remain.
func nothingLeftButModel(t *testing.T, c *zoo.Cache) {
	t.Helper()
	if entries, _ := os.ReadDir(filepath.Join(c.Root(), "partial")); len(entries) > 0 {
		t.Errorf("partial download left behind: %v", entries)
	}
}

func (s *suite) testConcurrentPulls(t *testing.T) {
	h := s.newHarness(t)
	res := push(t, h.Store, s.model, "tiny")
	store := NewCountingStore(h.Store)
	store.BeforeGet = func(ctx context.Context, n int) error {
		time.Sleep(time.Millisecond) // long enough that the pulls overlap
		return nil
	}
	c := openCache(t)
	var wg sync.WaitGroup
	dirs := make([]string, 4)
	errs := make([]error, 4)
	for i := range dirs {
		wg.Go(func() {
			lm, err := pull(t.Context(), c, store, "tiny")
			errs[i] = err
			if err == nil {
				dirs[i] = lm.Dir
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if dirs[i] != dirs[0] {
			t.Fatalf("pulls returned %s and %s", dirs[0], dirs[i])
		}
	}
	if store.Gets() != res.Manifest.Chunks() {
		t.Fatalf("4 concurrent pulls made %d GETs for %d chunks", store.Gets(), res.Manifest.Chunks())
	}
}

func (s *suite) testTagMoves(t *testing.T) {
	h := s.newHarness(t)
	store := NewCountingStore(h.Store)
	push(t, store, s.model, "acme/m")
	c := openCache(t)
	if _, err := pull(t.Context(), c, store, "acme/m"); err != nil {
		t.Fatal(err)
	}
	v2 := s.variant(t, 0x77)
	res := push(t, store, v2, "acme/m")
	store.Reset()
	lm, err := pull(t.Context(), c, store, "acme/m")
	if err != nil {
		t.Fatal(err)
	}
	if lm.Digest != res.Digest {
		t.Fatalf("pulled %s, want the new manifest %s", lm.Digest, res.Digest)
	}
	sameFiles(t, v2, lm)
	weights, _ := lm.Manifest.File("model.safetensors")
	if store.Gets() != len(weights.Chunks) {
		t.Errorf("moving the tag fetched %d chunks; want only the %d of the changed file", store.Gets(), len(weights.Chunks))
	}
	if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testVerifyAndRemove(t *testing.T) {
	h := s.newHarness(t)
	push(t, h.Store, s.model, "tiny")
	c := openCache(t)
	lm, err := pull(t.Context(), c, h.Store, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(lm.Dir, "model.safetensors")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = c.Verify(t.Context(), lm.Ref, nil)
	var de *zoo.DigestError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("verify of a damaged file: %v", err)
	}
	if err := c.Remove(t.Context(), lm.Ref); err != nil {
		t.Fatal(err)
	}
	nothingLeft(t, c, "tiny")
	if err := c.Remove(t.Context(), lm.Ref); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("second rm: %v, want ErrNotFound", err)
	}
	if err := c.Verify(t.Context(), lm.Ref, nil); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("verify of a removed model: %v, want ErrNotFound", err)
	}
}

// damage flips one byte of the file p in place (same inode, same size), as a failing disk or
// a stray write would.
func damage(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if os.IsPermission(err) {
		os.Chmod(p, 0o644)
		f, err = os.OpenFile(p, os.O_RDWR, 0)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// bomb is a zstd frame of a few kilobytes that declares a 32 MiB window and inflates to 32
// MiB of zeros (RLE blocks), written by hand (RFC 8878 §3.1.1).
func bomb() []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 15 << 3} // magic; no content size; window 2^(10+15)
	const blocks = 256
	for i := range blocks {
		h := uint32(1<<1 | (128<<10)<<3) // RLE, 128 KiB
		if i == blocks-1 {
			h |= 1 // last
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

func (s *suite) testInflatingBlob(t *testing.T) {
	h := s.newHarness(t)
	res := push(t, h.Store, s.model, "tiny")
	ch := middleChunk(t, res.Manifest)
	h.PutRaw(t, zoo.BlobKey(ch.Digest), bomb())
	c := openCache(t)
	_, err := pull(t.Context(), c, h.Store, "tiny")
	if !errors.Is(err, zoo.ErrCorrupt) || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("pull of a blob that inflates past its chunk: %v, want ErrCorrupt naming the file", err)
	}
	nothingLeft(t, c, "tiny")
}

// testWrongFileDigest serves a manifest whose chunks are right but whose file digest is not:
// the pull fails as corrupt and no model appears.
func (s *suite) testWrongFileDigest(t *testing.T) {
	h := s.newHarness(t)
	push(t, h.Store, s.model, "tiny")
	data, err := h.Store.GetManifest(t.Context(), zoo.MustParseRef("tiny"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := zoo.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	bogus := zoo.DigestOf([]byte("not the weights"))
	for i := range m.Files {
		if m.Files[i].Path == "model.safetensors" {
			m.Files[i].Digest = bogus
		}
	}
	m.Tag = "bad"
	if data, err = m.Marshal(); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.PutManifest(t.Context(), m.Ref(), data); err != nil {
		t.Fatal(err)
	}
	c := openCache(t)
	_, err = pull(t.Context(), c, h.Store, "tiny:bad")
	var de *zoo.DigestError
	if !errors.Is(err, zoo.ErrCorrupt) || !errors.As(err, &de) || de.Want != bogus || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("pull of a manifest with a wrong file digest: %v; want a *DigestError for %s naming the file", err, bogus)
	}
	nothingLeft(t, c, "tiny:bad")
}

// testIdenticalManifests pulls two tags that hold the same manifest bytes, twice each, at
// once: every pull succeeds, and the chunks are downloaded once between them.
func (s *suite) testIdenticalManifests(t *testing.T) {
	h := s.newHarness(t)
	res := push(t, h.Store, s.model, "acme/m:1")
	if err := h.Store.PutManifest(t.Context(), zoo.MustParseRef("acme/m:2"), mustManifest(t, h.Store, "acme/m:1")); err != nil {
		t.Fatal(err)
	}
	store := NewCountingStore(h.Store)
	store.BeforeGet = func(ctx context.Context, n int) error {
		time.Sleep(time.Millisecond) // long enough that the pulls overlap
		return nil
	}
	c := openCache(t)
	refs := []string{"acme/m:1", "acme/m:2", "acme/m:1", "acme/m:2"}
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Go(func() { _, errs[i] = pull(t.Context(), c, store, ref) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d of %s: %v", i, refs[i], err)
		}
	}
	for _, ref := range refs[:2] {
		lm, err := c.Model(zoo.MustParseRef(ref))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, s.model, lm)
	}
	if store.Gets() != res.Manifest.Chunks() {
		t.Errorf("4 pulls of two tags of one manifest made %d GETs for %d chunks", store.Gets(), res.Manifest.Chunks())
	}
	nothingLeftButModel(t, c)
}

func mustManifest(t *testing.T, store zoo.Store, ref string) []byte {
	t.Helper()
	data, err := store.GetManifest(t.Context(), zoo.MustParseRef(ref))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testRepairOnPull damages a whole local model and pulls it again: the pull fetches exactly
// the damaged chunks and leaves the model intact.
func (s *suite) testRepairOnPull(t *testing.T) {
	h := s.newHarness(t)
	res := push(t, h.Store, s.model, "tiny")
	weights, _ := res.Manifest.File("model.safetensors")
	config, _ := res.Manifest.File("config.json")
	mid := middleChunk(t, res.Manifest)
	last := weights.Chunks[len(weights.Chunks)-1]
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []zoo.Digest // the chunks the repair fetches
	}{
		{"FlippedByte", func(t *testing.T, dir string) {
			damage(t, filepath.Join(dir, "model.safetensors"), mid.Offset+mid.Length/2)
		}, []zoo.Digest{mid.Digest}},
		{"Truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			os.Chmod(p, 0o644)
			if err := os.Truncate(p, last.Offset+1); err != nil {
				t.Fatal(err)
			}
		}, []zoo.Digest{last.Digest}},
		{"Removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "config.json")); err != nil {
				t.Fatal(err)
			}
		}, []zoo.Digest{config.Chunks[0].Digest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openCache(t)
			lm, err := pull(t.Context(), c, h.Store, "tiny")
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, lm.Dir)
			if err := c.Verify(t.Context(), lm.Ref, nil); err == nil {
				t.Fatal("verify finds no damage")
			}
			store := NewCountingStore(h.Store)
			lm, err = pull(t.Context(), c, store, "tiny")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
				t.Fatalf("after the repairing pull: %v", err)
			}
			sameFiles(t, s.model, lm)
			for _, d := range tc.want {
				if store.GetsOf(d) != 1 {
					t.Errorf("damaged chunk %s fetched %d times", d.Short(), store.GetsOf(d))
				}
			}
			if store.Gets() != len(tc.want) {
				t.Errorf("the repair made %d GETs; want %d, the damaged chunks", store.Gets(), len(tc.want))
			}
			nothingLeftButModel(t, c)
		})
	}
}

// testSharedFileDamaged damages a file that two local models share by hard link: removing
// and pulling one of them must not link the damaged copy back in, and pulling the other
// then repairs it from the good copy.
func (s *suite) testSharedFileDamaged(t *testing.T) {
	h := s.newHarness(t)
	resA := push(t, h.Store, s.model, "acme/a")
	push(t, h.Store, s.variant(t, 0x33), "acme/b")
	c := openCache(t)
	la, err := pull(t.Context(), c, h.Store, "acme/a")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := pull(t.Context(), c, h.Store, "acme/b")
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := filepath.Join(la.Dir, "spiece.model"), filepath.Join(lb.Dir, "spiece.model")
	if !sameFile(t, pa, pb) {
		t.Fatal("spiece.model is not shared by the two models")
	}
	spiece, _ := resA.Manifest.File("spiece.model")
	ch := spiece.Chunks[len(spiece.Chunks)/2]
	damage(t, pa, ch.Offset)
	if err := c.Remove(t.Context(), la.Ref); err != nil {
		t.Fatal(err)
	}
	store := NewCountingStore(h.Store)
	la, err = pull(t.Context(), c, store, "acme/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(t.Context(), la.Ref, nil); err != nil {
		t.Fatalf("rm and pull linked a damaged copy back: %v", err)
	}
	for _, other := range spiece.Chunks {
		if want := map[bool]int{true: 1, false: 0}[other == ch]; store.GetsOf(other.Digest) != want {
			t.Errorf("spiece.model chunk at %d fetched %d times, want %d", other.Offset, store.GetsOf(other.Digest), want)
		}
	}
	if err := c.Verify(t.Context(), lb.Ref, nil); err == nil {
		t.Fatal("the damage does not show in the model that shares the file")
	}
	store.Reset()
	if lb, err = pull(t.Context(), c, store, "acme/b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(t.Context(), lb.Ref, nil); err != nil {
		t.Fatalf("pull did not repair the other model: %v", err)
	}
	if store.Gets() != 0 {
		t.Errorf("repairing from a good local copy made %d GETs", store.Gets())
	}
	if !sameFile(t, pa, filepath.Join(lb.Dir, "spiece.model")) {
		t.Error("the repaired spiece.model is not linked to the good copy")
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}
