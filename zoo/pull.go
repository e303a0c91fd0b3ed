package zoo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Defaults of PullOptions.
const (
	// DefaultConcurrency is how many chunks Pull and Push move at once when their options
	// leave Concurrency zero.
	DefaultConcurrency = 8
	// DefaultStallTimeout is PullOptions.StallTimeout when zero.
	DefaultStallTimeout = 30 * time.Second
	// DefaultMinRate is PullOptions.MinRate when zero, in bytes per second: a transfer
	// slower than this over a whole StallTimeout is treated as stalled.
	DefaultMinRate = 1 << 10
)

// PullOptions configures Cache.Pull; the zero value works.
//
// Memory: each chunk in flight holds one zstd window, which a blob may not declare larger
// than twice its chunk's length, plus the decoder's block buffers (under 1 MiB), and no more
// whatever the blob holds: the transfers of a pull hold at most Concurrency × (2 × largest
// chunk length + 1 MiB) — with 8 in flight and 16 MiB chunks, 264 MiB at worst; t5zoo writes
// an 8 MiB window, so about 72 MiB in practice. A blob that inflates past its chunk's length
// is corrupt as soon as it does, and one that declares a larger window fails before the
// window is allocated.
type PullOptions struct {
	// Concurrency is the number of chunks in flight; 0 means DefaultConcurrency.
	Concurrency int
	// Progress, if not nil, receives per-file progress (see Progress). It must not block:
	// the workers wait for it.
	Progress func(Progress)
	// Logger receives warnings (retries, repairs) and information (reuse, resume); nil
	// discards.
	Logger *slog.Logger
	// Retry is the policy for transient failures; the zero value is the default policy.
	Retry RetryPolicy
	// StallTimeout aborts, and retries, a chunk transfer that receives no byte for this
	// long, and a manifest fetch that does not complete in this long (a manifest is at most
	// MaxManifestSize, and a few KiB as a rule); it is also the window of MinRate. 0 means
	// DefaultStallTimeout.
	StallTimeout time.Duration
	// MinRate aborts, and retries, a chunk transfer that receives fewer than MinRate bytes
	// a second (of stored, compressed bytes) over a window of StallTimeout: a peer trickling
	// a byte a second is a stall too. 0 means DefaultMinRate; negative means no minimum.
	MinRate int64
	// Timeout, if positive, bounds the whole pull, waiting for another pull's lock
	// included; the pull then fails with an error wrapping context.DeadlineExceeded, and
	// what it downloaded stays for the next pull to resume. 0 means no limit.
	Timeout time.Duration
}

func (o PullOptions) withDefaults() PullOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	switch {
	case o.MinRate == 0:
		o.MinRate = DefaultMinRate
	case o.MinRate < 0:
		o.MinRate = 0
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	o.Retry = o.Retry.withDefaults()
	return o
}

// FetchManifest reads and validates ref's manifest from store, retrying transient failures
// with retry's policy (log, if not nil, hears of them); an attempt that does not complete
// within DefaultStallTimeout is a stall, and retried. It returns the manifest and the digest
// of its bytes.
func FetchManifest(ctx context.Context, store Store, ref Ref, retry RetryPolicy, log *slog.Logger) (*Manifest, Digest, error) {
	if log == nil {
		log = discardLogger()
	}
	m, data, err := fetchManifest(ctx, store, ref, retry, DefaultStallTimeout, log)
	if err != nil {
		return nil, "", err
	}
	return m, DigestOf(data), nil
}

func fetchManifest(ctx context.Context, store Store, ref Ref, retry RetryPolicy, stall time.Duration, log *slog.Logger) (*Manifest, []byte, error) {
	var data []byte
	err := retry.do(ctx, log, "get manifest", func() (err error) {
		// GetManifest returns the bytes whole, so the attempt as a whole has the limit.
		actx, cancel := context.WithTimeoutCause(ctx, stall, fmt.Errorf("%w: manifest not received within %s", errStalled, stall))
		defer cancel()
		data, err = store.GetManifest(actx, ref)
		return explain(actx, err)
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

// errPullTimeout is the cause of a pull ended by PullOptions.Timeout.
var errPullTimeout = errors.New("zoo: pull timeout")

// Pull makes ref whole in the cache, downloading from store what it lacks, and returns the
// local model. It takes ref's lock, so a concurrent pull of the same reference (another
// goroutine or process) waits and then finds the model present, and the lock of the
// manifest's digest, so that pulls of two tags holding the same manifest share one download.
//
// A model already whole with the store's manifest is re-hashed as Verify does and, if that
// finds damage, repaired: the damaged chunks are fetched again (the good ones copied), and
// the repaired model replaces the damaged one.
//
// Chunks are downloaded in parallel into a partial directory keyed by the manifest's digest,
// each verified against its digest as it is decompressed and recorded in a journal once
// written; a pull interrupted in any way (context, kill -9, lost connection, Timeout)
// resumes from the journal, re-verifying the recorded chunks on disk instead of fetching them
// again. Files that local models hold (same digest) are hard-linked or copied instead of
// downloaded, once they verify whole. Every file's sha256 is checked before the model
// appears: the model directory is renamed into place and the local manifest written last.
func (c *Cache) Pull(ctx context.Context, store Store, ref Ref, opts PullOptions) (*LocalModel, error) {
	opts = opts.withDefaults()
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, opts.Timeout, errPullTimeout)
		defer cancel()
	}
	lm, err := c.pull(ctx, store, ref, opts)
	if err != nil {
		if opts.Timeout > 0 && context.Cause(ctx) == errPullTimeout {
			if !errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
			}
			return nil, fmt.Errorf("pull %s: not finished within %s: %w", ref, opts.Timeout, err)
		}
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return lm, nil
}

func (c *Cache) pull(ctx context.Context, store Store, ref Ref, opts PullOptions) (*LocalModel, error) {
	log := opts.Logger.With("ref", ref.String())
	m, data, err := fetchManifest(ctx, store, ref, opts.Retry, opts.StallTimeout, log)
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
		pr := newProgressReporter(opts.Progress, m.Files)
		pr.start()
		problems, err := checkModel(ctx, have, pr)
		if err != nil {
			return nil, err
		}
		if len(problems) == 0 {
			log.Info("up to date", "dir", have.Dir)
			return have, nil
		}
		log.Warn("the local copy is damaged; repairing it", "dir", have.Dir, "problems", len(problems), "first", problems[0])
	}
	// Pulls of other tags with the same manifest use the same partial directory: one at a
	// time, and the next finds the files of the first to link.
	unlockPartial, err := c.lockPartial(ctx, digest, log)
	if err != nil {
		return nil, err
	}
	defer unlockPartial()
	j := &pullJob{cache: c, store: store, ref: ref, m: m, digest: digest, data: data, opts: opts, log: log,
		progress: newProgressReporter(opts.Progress, m.Files)}
	return j.run(ctx)
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
