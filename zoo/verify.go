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
// wrapping ErrNotFound when ref is not whole in the cache, and otherwise the joined problems,
// each wrapping ErrCorrupt (a *DigestError, or a missing, unreadable or resized file), with
// the file and offset. Files are checked in parallel; progress, if not nil, hears of each
// file's bytes checked. Pull repairs what Verify finds.
func (c *Cache) Verify(ctx context.Context, ref Ref, progress func(Progress)) error {
	lm, err := c.Model(ref)
	if err != nil {
		return fmt.Errorf("verify %s: %w", ref, err)
	}
	pr := newProgressReporter(progress, lm.Manifest.Files)
	pr.start()
	all, err := checkModel(ctx, lm, pr)
	if err != nil {
		return fmt.Errorf("verify %s: %w", ref, err)
	}
	if len(all) > maxVerifyProblems {
		all = append(all[:maxVerifyProblems], fmt.Errorf("and %d more problems", len(all)-maxVerifyProblems))
	}
	if len(all) > 0 {
		return fmt.Errorf("verify %s: %w", ref, errors.Join(all...))
	}
	return nil
}

// checkModel checks every file of lm in parallel and returns the problems found; the error
// is for a cancelled context.
func checkModel(ctx context.Context, lm *LocalModel, pr *progressReporter) ([]error, error) {
	problems := make([][]error, len(lm.Manifest.Files))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultConcurrency)
	for i, f := range lm.Manifest.Files {
		g.Go(func() error {
			fc, err := checkFile(ctx, filepath.Join(lm.Dir, f.Path), f, pr)
			problems[i] = fc.problems
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var all []error
	for _, ps := range problems {
		all = append(all, ps...)
	}
	return all, nil
}

// fileCheck is what checkFile found of a local file against a manifest's File.
type fileCheck struct {
	good     []bool  // per chunk: present and with its digest
	whole    bool    // the file has the manifest's size and digest: every chunk is good
	problems []error // what is wrong, each wrapping ErrCorrupt, with the file and offset
}

func (fc fileCheck) goodChunks() int {
	n := 0
	for _, g := range fc.good {
		if g {
			n++
		}
	}
	return n
}

// checkFile reads p once, checking each chunk of f that the file holds and the whole file.
// Problems with the content are in the result; the error is for a cancelled context.
func checkFile(ctx context.Context, p string, f File, pr *progressReporter) (fileCheck, error) {
	fc := fileCheck{good: make([]bool, len(f.Chunks))}
	bad := func(format string, args ...any) {
		fc.problems = append(fc.problems, fmt.Errorf("%s%s: %w", f.Path, fmt.Sprintf(format, args...), ErrCorrupt))
	}
	in, err := os.Open(p)
	if err != nil {
		bad(": cannot open (%v)", err)
		return fc, nil
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		bad(": not a regular file (%v)", err)
		return fc, nil
	}
	size := fi.Size()
	if size != f.Size {
		bad(": size %d, want %d", size, f.Size)
	}
	whole := sha256.New()
	for i, ch := range f.Chunks {
		if err := ctx.Err(); err != nil {
			return fc, err
		}
		if ch.Offset+ch.Length > size {
			continue // reported with the size
		}
		r := newVerifyReader(ctxReader{ctx, io.NewSectionReader(in, ch.Offset, ch.Length)}, ch.Digest, ch.Length)
		if _, err := io.Copy(whole, r); err != nil {
			if ctx.Err() != nil {
				return fc, ctx.Err()
			}
			fc.problems = append(fc.problems, fmt.Errorf("%s chunk at offset %d: %w", f.Path, ch.Offset, corrupt(err)))
		} else {
			fc.good[i] = true
		}
		pr.add(f.Path, ch.Length)
	}
	if len(fc.problems) == 0 {
		if got := digestFromHash(whole); got != f.Digest {
			fc.problems = append(fc.problems, fmt.Errorf("%s: %w", f.Path, &DigestError{Want: f.Digest, Got: got, Size: f.Size}))
		} else {
			fc.whole = true
		}
	}
	return fc, nil
}

// corrupt makes a local read error a problem of the file (ErrCorrupt), as a digest mismatch
// already is.
func corrupt(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}
