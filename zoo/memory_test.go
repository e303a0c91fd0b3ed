package zoo_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/zoo"
)

// hostileStore is a local registry holding one manifest, hostile:1, whose single file is
// chunks chunks of chunkLen bytes, each stored as the blob blob.
func hostileStore(t *testing.T, chunks int, chunkLen int64, blob []byte) *zoo.LocalStore {
	t.Helper()
	dir := t.TempDir()
	store, err := zoo.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := zoo.File{Path: "model.safetensors", Size: int64(chunks) * chunkLen, Digest: zoo.DigestOf([]byte("whole"))}
	for i := range chunks {
		d := zoo.DigestOf([]byte{byte(i)})
		f.Chunks = append(f.Chunks, zoo.Chunk{Digest: d, Offset: int64(i) * chunkLen, Length: chunkLen})
		p := filepath.Join(dir, filepath.FromSlash(zoo.BlobKey(d)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, blob, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &zoo.Manifest{SchemaVersion: zoo.ManifestSchemaVersion, MediaType: zoo.ManifestMediaType,
		Name: "hostile", Tag: "1", Created: time.Now().UTC().Truncate(time.Second), Files: []zoo.File{f}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutManifest(t.Context(), m.Ref(), data); err != nil {
		t.Fatal(err)
	}
	return store
}

// TestPullBoundsDecoderMemory pulls blobs of a few kilobytes that inflate far past the 64 KiB
// their chunks declare, eight at once: each must fail as corrupt without the decoder
// allocating more than the chunk's length. (Found: eight 9 KB blobs that decompress to 256
// MiB each drove a pull to 2.1 GB, the decoders allocating the windows the blobs declared.)
//
// Not parallel: it reads the process's allocation counter.
func TestPullBoundsDecoderMemory(t *testing.T) {
	const (
		chunks   = 8
		chunkLen = 64 << 10
		// The bound for the whole pull: each of the chunks in flight may hold a window of
		// chunkLen plus the decoder's block buffers (a few hundred KiB), and the test's own
		// bookkeeping is small. Today's decoders allocate 32 MiB each.
		limit = 16 << 20
	)
	for _, tc := range []struct {
		name string
		blob []byte
	}{
		// 32 MiB of zeros under a header that declares a 32 MiB window or content size.
		{"DeclaredWindow", rleFrame(32<<20, false, 128<<10, 256)},
		{"DeclaredContentSize", rleFrame(32<<20, true, 128<<10, 256)},
		// A window within the chunk's length, inflating to 256 MiB: decoding stops at 64 KiB.
		{"InflatesPastLength", rleFrame(chunkLen, false, chunkLen, 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := hostileStore(t, chunks, chunkLen, tc.blob)
			c, err := zoo.OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err = c.Pull(t.Context(), store, zoo.MustParseRef("hostile:1"), zoo.PullOptions{Concurrency: chunks})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, zoo.ErrCorrupt) {
				t.Fatalf("pull of inflating blobs: %v, want ErrCorrupt", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > limit {
				t.Errorf("the pull allocated %d MiB for %d chunks of %d KiB; want at most %d MiB",
					alloc>>20, chunks, chunkLen>>10, limit>>20)
			}
			if took > 5*time.Second {
				t.Errorf("the pull took %s to reject the blobs", took)
			}
			t.Logf("%s: %v (allocated %d KiB in %s)", tc.name, err, (after.TotalAlloc-before.TotalAlloc)>>10, took.Round(time.Millisecond))
		})
	}
}
