package zoo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Why a transfer was aborted by its watch; both are transient (retried).
var (
	errStalled = errors.New("transfer stalled")
	errTooSlow = errors.New("transfer too slow")
)

// transferWatch aborts a transfer that stalls (no byte for stall) or crawls (fewer than
// minRate bytes a second, averaged over each window of stall), by cancelling its context
// with the reason as the cause. A peer that trickles a byte a second keeps a plain idle
// timer happy forever; the rate window catches it.
type transferWatch struct {
	cancel   context.CancelCauseFunc
	stall    time.Duration
	minRate  int64        // bytes/s; 0: no minimum
	minBytes int64        // minRate over one window
	n        atomic.Int64 // bytes seen in the current window
	start    time.Time
	last     atomic.Int64 // when the last byte came, in nanoseconds since start

	mu     sync.Mutex
	idle   *time.Timer
	window *time.Timer // nil without a minimum rate
}

func newTransferWatch(stall time.Duration, minRate int64, cancel context.CancelCauseFunc) *transferWatch {
	w := &transferWatch{cancel: cancel, stall: stall, start: time.Now()}
	if minRate > 0 {
		w.minRate = minRate
		w.minBytes = max(1, int64(float64(minRate)*stall.Seconds()))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idle = time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w: no data for %s", errStalled, stall)) })
	if w.minBytes > 0 {
		w.window = time.AfterFunc(stall, w.checkRate)
	}
	return w
}

func (w *transferWatch) checkRate() {
	got := w.n.Swap(0)
	// A peer silent for half the window is stalled, however much it sent before; one still
	// sending, too slowly, is too slow.
	if idle := time.Since(w.start) - time.Duration(w.last.Load()); got == 0 || idle >= w.stall/2 {
		w.cancel(fmt.Errorf("%w: no data for %s", errStalled, idle.Round(time.Millisecond)))
		return
	}
	if got < w.minBytes {
		w.cancel(fmt.Errorf("%w: %d bytes in %s, under the minimum of %s/s", errTooSlow, got, w.stall, formatBytes(w.minRate)))
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.window != nil {
		w.window.Reset(w.stall)
	}
}

// saw records n bytes received.
func (w *transferWatch) saw(n int) {
	if n <= 0 {
		return
	}
	w.n.Add(int64(n))
	w.last.Store(int64(time.Since(w.start)))
	w.mu.Lock()
	w.idle.Reset(w.stall)
	w.mu.Unlock()
}

func (w *transferWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idle.Stop()
	if w.window != nil {
		w.window.Stop()
		w.window = nil
	}
}

// explain returns the watch's reason when it is what ended the transfer under ctx, so that
// the error says "stalled" rather than "context canceled" (and is retried). When the
// caller's context ended, the error wraps its error, whatever the store's reader said
// (a body closed under it, for one).
func explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if c := context.Cause(ctx); errors.Is(c, errStalled) || errors.Is(c, errTooSlow) {
		return c
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// watchedReader reports the bytes it reads to a watch.
type watchedReader struct {
	r     io.Reader
	watch *transferWatch
}

func (r watchedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.watch.saw(n)
	return n, err
}

// closeOnDone closes rc once ctx ends, so that a body blocked in a read the context cannot
// reach (a Store that ignores ctx, a stuck file system) is unblocked too. The returned
// closer closes rc once, however often it and the context call it.
func closeOnDone(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	oc := &onceCloser{ReadCloser: rc}
	context.AfterFunc(ctx, func() { oc.Close() })
	return oc
}

type onceCloser struct {
	io.ReadCloser
	once sync.Once
	err  error
}

func (o *onceCloser) Close() error {
	o.once.Do(func() { o.err = o.ReadCloser.Close() })
	return o.err
}

// ctxReader fails reads once ctx has ended, so that long local reads (hashing, copying)
// stop promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fetchChunk streams one blob: GET → zstd decode → sha256 → WriteAt, never holding more than
// one window of it in memory, and a window no larger than the chunk (codec.decoder). Bytes
// are written before the digest is known, but a chunk counts as written (the journal) only
// once its digest matched.
func (j *pullJob) fetchChunk(ctx context.Context, dst *os.File, cr chunkRef) (err error) {
	// A transfer that stops moving, or crawls, is cancelled and, being transient, retried.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch := newTransferWatch(j.opts.StallTimeout, j.opts.MinRate, cancel)
	defer watch.stop()
	defer func() { err = explain(ctx, err) }()
	rc, err := j.store.GetBlob(ctx, cr.chunk.Digest)
	if err != nil {
		return err
	}
	body := closeOnDone(ctx, rc)
	defer body.Close()
	w := &chunkWriter{dst: dst, name: cr.file.Path, chunk: cr.chunk, h: sha256.New(),
		report: func(n int64) { j.progress.add(cr.file.Path, n) }}
	defer func() {
		if err != nil {
			w.flushProgress()
			j.progress.add(cr.file.Path, -w.n)
		}
	}()
	if err := decodeChunk(j.codec, watchedReader{body, watch}, w); err != nil {
		return err
	}
	startWriteback(dst, cr.chunk.Offset, cr.chunk.Length)
	return nil
}

// decodeChunk decodes the stored bytes r of w's chunk into w and checks the content's length
// and digest. Errors of r itself come back as they are (to be retried); anything wrong with
// the bytes is ErrCorrupt, reported as soon as the content passes the chunk's length.
func decodeChunk(c *codec, r io.Reader, w *chunkWriter) error {
	ch := w.chunk
	dec, err := c.decoder(sourceReader{r}, ch.Length)
	if err != nil {
		return classifyDecodeError(ch.Digest, err)
	}
	defer c.putDecoder(dec)
	if _, err := dec.WriteTo(w); err != nil {
		if w.err != nil {
			return w.err // the write side: a local error or too many bytes
		}
		return classifyDecodeError(ch.Digest, err)
	}
	w.flushProgress()
	if got := digestFromHash(w.h); w.n != ch.Length || got != ch.Digest {
		return &DigestError{Want: ch.Digest, Got: got, Size: w.n}
	}
	return nil
}

// chunkWriter receives a chunk's decompressed bytes: it hashes them and writes them at the
// chunk's offset, refusing more than the chunk's length.
type chunkWriter struct {
	dst      io.WriterAt
	name     string // of dst, for errors
	chunk    Chunk
	h        hash.Hash
	n        int64 // bytes written
	err      error // the first write-side error
	report   func(int64)
	reported int64
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.chunk.Length {
		w.h.Write(p)
		w.err = &DigestError{Want: w.chunk.Digest, Got: digestFromHash(w.h), Size: w.n + int64(len(p))}
		return 0, w.err
	}
	w.h.Write(p)
	if _, err := w.dst.WriteAt(p, w.chunk.Offset+w.n); err != nil {
		w.err = permanent(fmt.Errorf("write %s: %w", w.name, err))
		return 0, w.err
	}
	w.n += int64(len(p))
	if w.n-w.reported >= 1<<20 {
		w.flushProgress()
	}
	return len(p), nil
}

// flushProgress reports the bytes written since the last report.
func (w *chunkWriter) flushProgress() {
	if d := w.n - w.reported; d > 0 {
		if w.report != nil {
			w.report(d)
		}
		w.reported = w.n
	}
}
