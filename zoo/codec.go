package zoo

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// encoding is a setting of the blob encoder. Readers accept any zstd stream; the setting is
// the writer's choice, fixed so that equal chunks compress to equal objects (with the same
// klauspost/compress release). Nothing relies on that: a blob is identified and verified by
// the digest of its uncompressed bytes.
type encoding struct {
	level zstd.EncoderLevel
	// entropyLiterals Huffman-codes blocks that have no matches (all literals), which is
	// what weights are: without it zstd stores them raw.
	entropyLiterals bool
}

// defaultEncoding is chosen by measurement (BENCHMARKS.md, "Registry (zoo)"): Huffman coding
// the literals saves 7.5% of float32 and 22% of bfloat16 weights, and no level saves more;
// SpeedDefault does it as fast as SpeedFastest (a little faster in the medians), several
// times faster than the higher levels.
func defaultEncoding() encoding { return encoding{level: zstd.SpeedDefault, entropyLiterals: true} }

func (e encoding) String() string {
	s := e.level.String()
	if e.entropyLiterals {
		s += "+literals"
	}
	return s
}

// codec compresses and decompresses blobs. The zero value decompresses only.
type codec struct {
	enc      *zstd.Encoder // nil: decoding only
	decoders sync.Pool     // *zstd.Decoder, reset per stream
}

// newCodec returns a codec writing e, for up to concurrency simultaneous encodes.
func newCodec(e encoding, concurrency int) (*codec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(e.level),
		zstd.WithAllLitEntropyCompression(e.entropyLiterals),
		zstd.WithEncoderConcurrency(max(concurrency, 1)), // concurrent EncodeAll calls; output unaffected
		zstd.WithEncoderCRC(false),                       // the sha256 of the content is checked instead
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("zoo: zstd encoder: %w", err)
	}
	return &codec{enc: enc}, nil
}

// encode appends the compressed form of src to dst.
func (c *codec) encode(dst, src []byte) []byte { return c.enc.EncodeAll(src, dst[:0]) }

// decoder returns a streaming decoder of r for content of at most limit bytes (a chunk's
// length). A frame may declare a window, or (single-segment) a content size, of at most
// twice limit (and at least zstd's 1 KiB minimum): encoders round a window up to a power of
// two that holds the content (klauspost's EncodeAll declares 2 KiB for 1024 bytes), so
// every honest blob fits, and the decoder refuses a larger claim before it allocates the
// window. One decoder so holds at most 2·limit bytes of history plus its block buffers,
// whatever the stream says; the content itself is cut off at limit by the caller. Release
// the decoder with putDecoder.
func (c *codec) decoder(r io.Reader, limit int64) (*zstd.Decoder, error) {
	window := uint64(max(2*limit, zstd.MinWindowSize))
	// In streaming mode MaxMemory caps the window too; both are set so that neither of the
	// decoder's checks (frame header, first block) lets a larger one through.
	bounds := []zstd.DOption{zstd.WithDecoderMaxWindow(window), zstd.WithDecoderMaxMemory(window)}
	if d, ok := c.decoders.Get().(*zstd.Decoder); ok {
		if err := d.ResetWithOptions(r, bounds...); err != nil {
			d.Close()
			return nil, err
		}
		return d, nil
	}
	return zstd.NewReader(r, append([]zstd.DOption{
		zstd.WithDecoderConcurrency(1), // synchronous; chunks run in parallel instead
		zstd.WithDecoderLowmem(true),
		zstd.IgnoreChecksum(true), // the caller checks the sha256 of the content
	}, bounds...)...)
}

func (c *codec) putDecoder(d *zstd.Decoder) {
	if d.Reset(nil) == nil {
		c.decoders.Put(d)
	} else {
		d.Close()
	}
}

// errSource marks an error of the reader under a decoder (the network, the disk), as opposed
// to an error in the compressed bytes themselves: the first may be retried, the second is a
// corrupt blob.
type errSource struct{ err error }

func (e *errSource) Error() string { return e.err.Error() }
func (e *errSource) Unwrap() error { return e.err }

// sourceReader tags the errors of r (other than io.EOF) as *errSource.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &errSource{err}
	}
	return n, err
}

// classifyDecodeError turns an error out of a decoder into the source's own error (to be
// retried or reported as is), or a corrupt-blob error.
func classifyDecodeError(d Digest, err error) error {
	if err == nil {
		return nil
	}
	var src *errSource
	if errors.As(err, &src) {
		return src.err
	}
	var de *DigestError
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("%w %s: the stream declares a window or size larger than its chunk: %w", ErrCorrupt, d.Short(), err)
	}
	return fmt.Errorf("%w %s: %w", ErrCorrupt, d.Short(), err)
}
