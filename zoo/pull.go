package zoo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// DefaultConcurrency is how many chunks Pull and Push move at once when their options leave
// Concurrency zero.
const DefaultConcurrency = 8

// PullOptions configures Cache.Pull; the zero value works.
type PullOptions struct {
	// Concurrency is the number of chunks in flight; 0 means DefaultConcurrency.
	Concurrency int
	// Progress, if not nil, receives per-file progress (see Progress).
	Progress func(Progress)
	// Logger receives warnings (retries) and information (reuse, resume); nil discards.
	Logger *slog.Logger
	// Retry is the policy for transient failures; the zero value is the default policy.
	Retry RetryPolicy
	// StallTimeout aborts (and retries) a chunk transfer that receives no byte for this
	// long; 0 means 30s.
	StallTimeout time.Duration
}

func (o PullOptions) withDefaults() PullOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	o.Retry = o.Retry.withDefaults()
	return o
}

// FetchManifest reads and validates ref's manifest from store, retrying transient failures
// with retry's policy (log, if not nil, hears of them). It returns the manifest and the
// digest of its bytes.
func FetchManifest(ctx context.Context, store Store, ref Ref, retry RetryPolicy, log *slog.Logger) (*Manifest, Digest, error) {
	if log == nil {
		log = discardLogger()
	}
	m, data, err := fetchManifest(ctx, store, ref, retry, log)
	if err != nil {
		return nil, "", err
	}
	return m, DigestOf(data), nil
}

func fetchManifest(ctx context.Context, store Store, ref Ref, retry RetryPolicy, log *slog.Logger) (*Manifest, []byte, error) {
	var data []byte
	err := retry.do(ctx, log, "get manifest", func() (err error) {
		data, err = store.GetManifest(ctx, ref)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, nil, err
	}
	if m.Name != ref.Name {
		return nil, nil, fmt.Errorf("%w: the manifest stored as %s names %s", ErrBadManifest, ref, m.Ref())
	}
	return m, data, nil
}

// Pull makes ref whole in the cache, downloading from store what it lacks, and returns the
// local model. It takes ref's lock, so a concurrent pull of the same reference (another
// goroutine or process) waits and then finds the model present. A model already whole with
// the store's manifest is returned at once.
//
// Chunks are downloaded in parallel into a partial directory keyed by the manifest's digest,
// each verified against its digest as it is decompressed and recorded in a journal once
// written; a pull interrupted in any way (context, kill -9, lost connection) resumes from the
// journal, re-verifying the recorded chunks on disk instead of fetching them again. Files
// that whole local models already hold (same digest) are hard-linked or copied instead of
// downloaded. The model directory is renamed into place and the local manifest written last.
func (c *Cache) Pull(ctx context.Context, store Store, ref Ref, opts PullOptions) (*LocalModel, error) {
	lm, err := c.pull(ctx, store, ref, opts.withDefaults())
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return lm, nil
}

func (c *Cache) pull(ctx context.Context, store Store, ref Ref, opts PullOptions) (*LocalModel, error) {
	log := opts.Logger.With("ref", ref.String())
	m, data, err := fetchManifest(ctx, store, ref, opts.Retry, log)
	if err != nil {
		return nil, err
	}
	digest := DigestOf(data) // the local copy keeps the registry's bytes, so the same digest
	unlock, err := c.lock(ctx, ref, log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if have, err := c.Model(ref); err == nil && have.Digest == digest {
		log.Info("up to date", "dir", have.Dir)
		pr := newProgressReporter(opts.Progress, m.Files)
		pr.start()
		for _, f := range m.Files {
			pr.add(f.Path, f.Size)
		}
		return have, nil
	}
	j := &pullJob{cache: c, store: store, ref: ref, m: m, digest: digest, data: data, opts: opts, log: log,
		progress: newProgressReporter(opts.Progress, m.Files)}
	return j.run(ctx)
}

// pullJob is one pull, under ref's lock.
type pullJob struct {
	cache    *Cache
	store    Store
	ref      Ref
	m        *Manifest
	digest   Digest
	data     []byte // the manifest's bytes
	opts     PullOptions
	log      *slog.Logger
	progress *progressReporter
	codec    *codec

	dir     string // partial/<hex>
	files   string // partial/<hex>/files
	journal *journal
}

// chunkRef is one chunk of one file of the manifest.
type chunkRef struct {
	file  File
	chunk Chunk
}

func (j *pullJob) run(ctx context.Context) (*LocalModel, error) {
	j.codec = &codec{} // decoding only
	j.dir = j.cache.path(partialDirPathSpec{j.digest})
	j.files = filepath.Join(j.dir, "files")
	claims, err := readJournal(filepath.Join(j.dir, "journal"))
	if err != nil {
		return nil, err
	}
	// Files that whole local models hold already; the rest is chunk work.
	sources := j.reuseSources(ctx)
	var claimed, todo []chunkRef
	for _, f := range j.m.Files {
		if _, ok := sources[f.Path]; ok {
			continue
		}
		for _, ch := range f.Chunks {
			if claims[journalEntry{f.Path, ch.Offset, ch.Digest}] {
				claimed = append(claimed, chunkRef{f, ch})
			} else {
				todo = append(todo, chunkRef{f, ch})
			}
		}
	}
	// Before anything is written: a pull that cannot fit fails now, not at 99%.
	if err := j.checkSpace(todo); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.files, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(j.dir, "ref"), []byte(j.ref.String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	if j.journal, err = openJournal(filepath.Join(j.dir, "journal")); err != nil {
		return nil, err
	}
	defer j.journal.Close()
	j.progress.start()

	reused := j.reuse(ctx, sources)
	for _, f := range j.m.Files {
		if _, ok := sources[f.Path]; ok && !reused[f.Path] {
			todo = append(todo, chunkRefs(f)...) // the local copy could not be used after all
		}
	}
	handles, err := j.openFiles(reused)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range handles {
			f.Close()
		}
	}()
	// Journal entries were appended without syncing the data they describe, so each is
	// checked against the disk: what a crash lost is fetched again.
	bad, err := j.recheck(ctx, handles, claimed)
	if err != nil {
		return nil, err
	}
	todo = append(todo, bad...)
	if len(claimed) > 0 {
		j.log.Info("resuming", "chunks_on_disk", len(claimed)-len(bad), "chunks_to_fetch", len(todo))
	}
	if err := j.fetchAll(ctx, handles, todo); err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadManifest) {
			// The registry's copy is broken: nothing here will become a model.
			os.RemoveAll(j.dir)
		}
		return nil, err
	}
	for path, f := range handles {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("sync %s: %w", path, err)
		}
	}
	return j.install()
}

func chunkRefs(f File) []chunkRef {
	crs := make([]chunkRef, len(f.Chunks))
	for i, ch := range f.Chunks {
		crs[i] = chunkRef{f, ch}
	}
	return crs
}

// openFiles opens (creating at full size) every file not reused.
func (j *pullJob) openFiles(reused map[string]bool) (map[string]*os.File, error) {
	handles := map[string]*os.File{}
	for _, f := range j.m.Files {
		if reused[f.Path] {
			continue
		}
		p := filepath.Join(j.files, f.Path)
		h, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			for _, h := range handles {
				h.Close()
			}
			return nil, err
		}
		handles[f.Path] = h
		if fi, err := h.Stat(); err == nil && fi.Size() != f.Size {
			if err := h.Truncate(f.Size); err != nil {
				return nil, fmt.Errorf("allocate %s: %w", p, err)
			}
		}
	}
	return handles, nil
}

// recheck hashes the journaled chunks on disk and returns those that do not match.
func (j *pullJob) recheck(ctx context.Context, handles map[string]*os.File, claimed []chunkRef) ([]chunkRef, error) {
	var mu sync.Mutex
	var bad []chunkRef
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(j.opts.Concurrency)
	for _, cr := range claimed {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			r := io.NewSectionReader(handles[cr.file.Path], cr.chunk.Offset, cr.chunk.Length)
			if _, err := io.Copy(io.Discard, newVerifyReader(r, cr.chunk.Digest, cr.chunk.Length)); err != nil {
				j.log.Info("journaled chunk is not on disk; fetching it again", "file", cr.file.Path, "offset", cr.chunk.Offset, "err", err)
				mu.Lock()
				bad = append(bad, cr)
				mu.Unlock()
				return nil
			}
			j.progress.add(cr.file.Path, cr.chunk.Length)
			return nil
		})
	}
	return bad, g.Wait()
}

// checkSpace fails early, with ENOSPC, when the chunks left to fetch cannot fit.
func (j *pullJob) checkSpace(todo []chunkRef) error {
	var need int64
	for _, cr := range todo {
		need += cr.chunk.Length
	}
	free, err := j.cache.diskFree(j.cache.root)
	if err != nil || need == 0 {
		return nil // unknown: the writes will tell
	}
	const margin = 64 << 20 // room for manifests, journals and the file system's own needs
	if uint64(need)+margin > free {
		return fmt.Errorf("not enough disk space in %s: need %s more, %s free: %w",
			j.cache.root, formatBytes(need+margin), formatBytes(int64(free)), syscall.ENOSPC)
	}
	return nil
}

// fetchAll downloads the chunks in parallel.
func (j *pullJob) fetchAll(parent context.Context, handles map[string]*os.File, todo []chunkRef) error {
	g, ctx := errgroup.WithContext(parent)
	g.SetLimit(j.opts.Concurrency)
	for _, cr := range todo {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			what := fmt.Sprintf("%s chunk at offset %d (blob %s)", cr.file.Path, cr.chunk.Offset, cr.chunk.Digest.Short())
			err := j.opts.Retry.do(ctx, j.log, what, func() error {
				return j.fetchChunk(ctx, handles[cr.file.Path], cr)
			})
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					return fmt.Errorf("%s: blob missing from the registry %s: %w", what, describe(j.store), err)
				}
				return fmt.Errorf("%s: %w", what, err)
			}
			return j.journal.add(journalEntry{cr.file.Path, cr.chunk.Offset, cr.chunk.Digest})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return parent.Err()
}

// fetchChunk streams one blob: GET → zstd decode → sha256 → WriteAt, never holding more than
// a block of it in memory (the decoder writes each decoded block straight through). Bytes
// are written before the digest is known, but a chunk counts as written (the journal) only
// once its digest matched.
func (j *pullJob) fetchChunk(ctx context.Context, f *os.File, cr chunkRef) (err error) {
	// A transfer that stops moving is cancelled and, being transient, retried.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(j.opts.StallTimeout, func() { cancel(errStalled) })
	defer watchdog.Stop()
	defer func() {
		if err != nil && errors.Is(context.Cause(ctx), errStalled) {
			err = fmt.Errorf("%w: no data for %s", errStalled, j.opts.StallTimeout)
		}
	}()
	rc, err := j.store.GetBlob(ctx, cr.chunk.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	dec, err := j.codec.decoder(sourceReader{&progressReader{r: rc, watchdog: watchdog, timeout: j.opts.StallTimeout}})
	if err != nil {
		return classifyDecodeError(cr.chunk.Digest, err)
	}
	defer j.codec.putDecoder(dec)
	w := &chunkWriter{f: f, chunk: cr.chunk, h: sha256.New(), report: func(n int64) { j.progress.add(cr.file.Path, n) }}
	defer func() {
		if err != nil {
			w.flushProgress()
			j.progress.add(cr.file.Path, -w.n)
		}
	}()
	if _, err := dec.WriteTo(w); err != nil {
		if w.err != nil {
			return w.err // the write side: a local error or too many bytes
		}
		return classifyDecodeError(cr.chunk.Digest, err)
	}
	w.flushProgress()
	if got := digestFromHash(w.h); w.n != cr.chunk.Length || got != cr.chunk.Digest {
		return &DigestError{Want: cr.chunk.Digest, Got: got, Size: w.n}
	}
	startWriteback(f, cr.chunk.Offset, cr.chunk.Length)
	return nil
}

// errStalled is the cause of a transfer cancelled for receiving nothing for a while.
var errStalled = errors.New("transfer stalled")

// progressReader re-arms a watchdog each time bytes arrive.
type progressReader struct {
	r        io.Reader
	watchdog *time.Timer
	timeout  time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.watchdog.Reset(p.timeout)
	}
	return n, err
}

// chunkWriter receives a chunk's decompressed bytes: it hashes them and writes them at the
// chunk's offset, refusing more than the chunk's length.
type chunkWriter struct {
	f        *os.File
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
	if _, err := w.f.WriteAt(p, w.chunk.Offset+w.n); err != nil {
		w.err = permanent(fmt.Errorf("write %s: %w", w.f.Name(), err))
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
		w.report(d)
		w.reported = w.n
	}
}

// install moves the finished files into place and writes the local manifest last.
func (j *pullJob) install() (*LocalModel, error) {
	for _, f := range j.m.Files {
		p := filepath.Join(j.files, f.Path)
		fi, err := os.Stat(p)
		if err != nil || fi.Size() != f.Size {
			return nil, fmt.Errorf("internal error: %s incomplete after download (%v)", p, err)
		}
		if err := os.Chmod(p, 0o444); err != nil {
			return nil, err
		}
	}
	c, ref := j.cache, j.ref
	mpath := c.path(manifestPathSpec{ref})
	// An older version of ref stops being whole before its directory goes.
	if err := os.Remove(mpath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	dir := c.ModelDir(ref)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := syncDir(j.files); err != nil {
		return nil, err
	}
	if err := os.Rename(j.files, dir); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	if err := writeAtomic(context.Background(), mpath, func(f *os.File) error {
		_, err := f.Write(j.data)
		return err
	}); err != nil {
		return nil, err
	}
	j.journal.Close()
	os.RemoveAll(j.dir)
	c.removePartials(ref, "")
	j.log.Info("pulled", "dir", dir, "files", len(j.m.Files), "bytes", j.m.Size())
	return &LocalModel{Ref: ref, Dir: dir, Manifest: j.m, Digest: j.digest}, nil
}

// describe names a store in messages, when it can say more than its type.
func describe(s Store) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
