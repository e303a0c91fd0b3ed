package zoo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// reuseSource is a file of a whole local model with the content a manifest file wants.
type reuseSource struct {
	path string // in the other model's directory
	file File   // as that model's manifest lists it
}

// reuseSources finds, for each file of the manifest, a whole local model's file with the
// same size and sha256 (e.g. the spiece.model every shape shares). It writes nothing.
func (j *pullJob) reuseSources(ctx context.Context) map[string]reuseSource {
	sources := map[string]reuseSource{}
	models, err := j.cache.List(ctx)
	if err != nil {
		return sources // reuse is an optimisation; a listing failure only costs bandwidth
	}
	have := map[Digest]reuseSource{}
	for _, lm := range models {
		for _, f := range lm.Manifest.Files {
			if f.Size > 0 {
				have[f.Digest] = reuseSource{filepath.Join(lm.Dir, f.Path), f}
			}
		}
	}
	for _, f := range j.m.Files {
		if src, ok := have[f.Digest]; ok && src.file.Size == f.Size {
			sources[f.Path] = src
		}
	}
	return sources
}

// reuse fills the partial directory from sources: a hard link when the chunk lists are
// equal (the source was verified chunk by chunk when it was pulled), else a copy checked
// chunk by chunk against this manifest. It returns the paths it filled.
func (j *pullJob) reuse(ctx context.Context, sources map[string]reuseSource) map[string]bool {
	done := map[string]bool{}
	for _, f := range j.m.Files {
		src, ok := sources[f.Path]
		if !ok {
			continue
		}
		dst := filepath.Join(j.files, f.Path)
		os.Remove(dst)
		how := "link"
		err := errors.New("chunking differs")
		if fi, serr := os.Stat(src.path); serr != nil || fi.Size() != f.Size {
			// Damaged since it was pulled (verify would say so): not a source.
			j.log.Info("local copy has changed; downloading", "file", f.Path, "from", src.path)
			continue
		}
		if slices.Equal(src.file.Chunks, f.Chunks) {
			err = os.Link(src.path, dst)
		}
		if err != nil {
			how = "copy"
			err = copyVerified(ctx, src.path, dst, f)
		}
		if err != nil {
			os.Remove(dst)
			j.log.Info("cannot reuse a local copy; downloading", "file", f.Path, "from", src.path, "err", err)
			continue
		}
		j.log.Info("reused local file", "file", f.Path, "from", src.path, "how", how)
		done[f.Path] = true
		j.progress.add(f.Path, f.Size)
	}
	return done
}

// copyVerified copies src to dst, checking every chunk of f on the way.
func copyVerified(ctx context.Context, src, dst string, f File) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, ch := range f.Chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := newVerifyReader(io.NewSectionReader(in, ch.Offset, ch.Length), ch.Digest, ch.Length)
		if _, err := io.Copy(out, r); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	return out.Close()
}
