package zoo

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// boundedBuffer is an io.WriterAt over a fixed buffer that records the furthest byte
// written.
type boundedBuffer struct {
	b   []byte
	end int64
}

func (w *boundedBuffer) WriteAt(p []byte, off int64) (int, error) {
	n := copy(w.b[off:], p)
	w.end = max(w.end, off+int64(n))
	return n, nil
}

// FuzzDecodeChunk feeds arbitrary stored bytes to the chunk decoder of pulls, as a hostile
// registry would. Whatever the bytes, it must not panic, must never write past the chunk's
// length, must fail only with ErrCorrupt (the reader here cannot fail), and may succeed only
// with exactly the content the chunk's digest names. Seeds: a valid blob and the hostile
// frames of testdata/blobs (decompression bombs declaring a 32 MiB window or content size,
// a stream inflating past a 64 KiB chunk, a truncated header).
func FuzzDecodeChunk(f *testing.F) {
	content := bytes.Repeat([]byte("t5zoo chunk "), 500)
	enc, err := newCodec(defaultEncoding(), 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc.encode(nil, content), uint32(len(content)))
	seeds, _ := filepath.Glob("testdata/blobs/*.zst")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint32(64<<10))
	}
	c := &codec{}
	f.Fuzz(func(t *testing.T, blob []byte, length uint32) {
		n := int64(length%(1<<20)) + 1 // a chunk of 1 byte to 1 MiB
		want := content
		if int64(len(want)) != n {
			want = make([]byte, n) // zeros: what the RLE seeds inflate to
		}
		ch := Chunk{Digest: DigestOf(want), Length: n}
		dst := &boundedBuffer{b: make([]byte, n)}
		w := &chunkWriter{dst: dst, name: "fuzz", chunk: ch, h: sha256.New()}
		err := decodeChunk(c, bytes.NewReader(blob), w)
		if dst.end > n {
			t.Fatalf("wrote up to %d bytes of a %d-byte chunk", dst.end, n)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if !bytes.Equal(dst.b, want) {
			t.Fatal("decoded content differs from what the digest names")
		}
	})
}

// TestDecoderBoundsWindow decodes every chunk length that matters with blobs the writer's
// own encoder produced: the decoder's window bound (the chunk's length) must never refuse
// what t5zoo itself writes (EncodeAll declares windows within the content).
func TestDecoderBoundsWindow(t *testing.T) {
	enc, err := newCodec(defaultEncoding(), 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &codec{}
	for _, n := range []int{1, 100, 1023, 1024, 1025, 4097, 65535, 65536, 65537, 1 << 20, 8<<20 + 1} {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte(i * 7 / 5)
		}
		ch := Chunk{Digest: DigestOf(content), Length: int64(n)}
		dst := &boundedBuffer{b: make([]byte, n)}
		w := &chunkWriter{dst: dst, name: "x", chunk: ch, h: sha256.New()}
		if err := decodeChunk(c, bytes.NewReader(enc.encode(nil, content)), w); err != nil {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}
