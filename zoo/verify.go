package zoo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

// maxVerifyProblems bounds the problems one Verify reports.
const maxVerifyProblems = 20

// Verify re-reads ref's local model and checks every file against its manifest: size, the
// digest of every chunk and of the whole file. It returns nil for an intact model, an error
// wrapping ErrNotFound when ref is not whole in the cache, and otherwise the joined problems
// (each a *DigestError, or a missing or resized file, wrapped with the file and offset).
// Files are checked in parallel; progress, if not nil, hears of each file's bytes checked.
func (c *Cache) Verify(ctx context.Context, ref Ref, progress func(Progress)) error {
	lm, err := c.Model(ref)
	if err != nil {
		return fmt.Errorf("verify %s: %w", ref, err)
	}
	pr := newProgressReporter(progress, lm.Manifest.Files)
	pr.start()
	problems := make([][]error, len(lm.Manifest.Files))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultConcurrency)
	for i, f := range lm.Manifest.Files {
		g.Go(func() error {
			var err error
			problems[i], err = verifyFile(ctx, filepath.Join(lm.Dir, f.Path), f, pr)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("verify %s: %w", ref, err)
	}
	var all []error
	for _, ps := range problems {
		all = append(all, ps...)
	}
	if len(all) > maxVerifyProblems {
		all = append(all[:maxVerifyProblems], fmt.Errorf("and %d more problems", len(all)-maxVerifyProblems))
	}
	if len(all) > 0 {
		return fmt.Errorf("verify %s: %w", ref, errors.Join(all...))
	}
	return nil
}

// verifyFile reads p once, checking each chunk and the whole file. Problems with the content
// are returned as the first result; the error is for a cancelled context.
func verifyFile(ctx context.Context, p string, f File, pr *progressReporter) ([]error, error) {
	in, err := os.Open(p)
	if err != nil {
		return []error{fmt.Errorf("%s: %w", f.Path, localError("open", err))}, nil
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return []error{fmt.Errorf("%s: %w", f.Path, err)}, nil
	}
	if fi.Size() != f.Size {
		return []error{fmt.Errorf("%s: %w: size %d, want %d", f.Path, ErrCorrupt, fi.Size(), f.Size)}, nil
	}
	var problems []error
	whole := sha256.New()
	for _, ch := range f.Chunks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r := newVerifyReader(io.TeeReader(io.NewSectionReader(in, ch.Offset, ch.Length), whole), ch.Digest, ch.Length)
		if _, err := io.Copy(io.Discard, r); err != nil {
			problems = append(problems, fmt.Errorf("%s chunk at offset %d: %w", f.Path, ch.Offset, err))
		}
		pr.add(f.Path, ch.Length)
	}
	if got := digestFromHash(whole); got != f.Digest {
		problems = append(problems, fmt.Errorf("%s: %w", f.Path, &DigestError{Want: f.Digest, Got: got, Size: f.Size}))
	}
	return problems, nil
}
