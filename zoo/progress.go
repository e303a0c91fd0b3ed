package zoo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// Progress reports how far a transfer of one file has got. Pull, Push and Verify send one
// with Completed 0 for every file first, then one after every piece of work. A callback is
// never called concurrently with itself.
type Progress struct {
	File   string // the file's path in the model directory
	Digest Digest // the file's sha256
	Total  int64  // the file's size
	// Completed is the bytes in place: written, reused or checked (pull), read and stored
	// (push) or checked (verify). It can go back: a failed chunk's bytes are taken off before
	// it is retried, and a pull that finds a present model damaged starts its repair from 0.
	Completed int64
	// Fetched is the bytes of this file's content that this pull fetched from the store:
	// it grows by a chunk's length once that chunk's digest has matched, so each chunk
	// counts once however often it was retried, and it never decreases. Bytes the pull did
	// not move — files linked or copied from local models, chunks resumed from a partial
	// pull or salvaged from a damaged copy, a model already whole — are not in it. Always 0
	// in Push and Verify. Summing each file's last Fetched gives the bytes a pull moved.
	Fetched int64
}

// progressReporter serialises Progress updates from concurrent workers.
type progressReporter struct {
	mu    sync.Mutex
	fn    func(Progress)
	files map[string]*Progress
	order []string
}

func newProgressReporter(fn func(Progress), files []File) *progressReporter {
	p := &progressReporter{fn: fn, files: map[string]*Progress{}}
	for _, f := range files {
		p.files[f.Path] = &Progress{File: f.Path, Digest: f.Digest, Total: f.Size}
		p.order = append(p.order, f.Path)
	}
	return p
}

// start sends the initial report of every file.
func (p *progressReporter) start() {
	if p == nil || p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range p.order {
		p.fn(*p.files[name])
	}
}

// add moves a file's Completed by n (negative to roll back a failed chunk).
func (p *progressReporter) add(file string, n int64) {
	if p == nil || p.fn == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.files[file]
	pr.Completed = min(max(pr.Completed+n, 0), pr.Total)
	p.fn(*pr)
}

// fetched adds n to a file's Fetched (and nothing to Completed, which the transfer moved).
func (p *progressReporter) fetched(file string, n int64) {
	if p == nil || p.fn == nil || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.files[file]
	pr.Fetched += n
	p.fn(*pr)
}

// RetryPolicy is how Pull and Push retry a transfer that failed for a reason that may pass
// (a dropped connection, a server error). Errors that will not pass — ErrNotFound,
// ErrNoBucket, ErrAccessDenied, ErrCorrupt, a full disk, a cancelled context — are never
// retried. The zero value means the defaults documented on each field.
type RetryPolicy struct {
	Attempts int           // tries in all, first included; 0 means 5
	Base     time.Duration // wait before the second try, doubling after; 0 means 250ms
	Max      time.Duration // cap on one wait; 0 means 8s
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Base <= 0 {
		p.Base = 250 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 8 * time.Second
	}
	return p
}

// do runs fn until it succeeds, fails permanently, or the attempts run out; waits grow
// exponentially with "equal jitter" (half fixed, half random).
func (p RetryPolicy) do(ctx context.Context, log *slog.Logger, what string, fn func() error) error {
	p = p.withDefaults()
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !transient(ctx, err) {
			return err
		}
		if attempt >= p.Attempts {
			return fmt.Errorf("%s: giving up after %d attempts: %w", what, attempt, err)
		}
		wait := min(p.Base<<(attempt-1), p.Max)
		wait = wait/2 + rand.N(wait/2+1)
		log.Warn("retrying", "what", what, "attempt", attempt, "wait", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// permanentError marks an error that retrying cannot fix, such as a local write error.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// transient reports whether err may pass on a later try.
func transient(ctx context.Context, err error) bool {
	var perm *permanentError
	switch {
	case ctx.Err() != nil,
		errors.As(err, &perm),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrNotFound), errors.Is(err, ErrNoBucket), errors.Is(err, ErrAccessDenied),
		errors.Is(err, ErrCorrupt), errors.Is(err, ErrBadManifest), errors.Is(err, ErrBadRef),
		errors.Is(err, syscall.ENOSPC):
		return false
	}
	return true
}

// discardLogger is the logger of options that leave Logger nil.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
