package zoo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// reuseCandidates finds, for each file of the manifest, the files of whole local models
// whose manifests list the same size and sha256 (e.g. the spiece.model every shape shares,
// or the model's own damaged copy when a pull repairs it), one path per inode. Nothing is
// trusted yet: reuseLocal verifies each before use. It writes nothing.
func (j *pullJob) reuseCandidates(ctx context.Context) map[string][]string {
	models, err := j.cache.List(ctx)
	if err != nil {
		return nil // reuse is an optimisation; a listing failure only costs bandwidth
	}
	type key struct {
		d    Digest
		size int64
	}
	want := map[key]bool{}
	for _, f := range j.m.Files {
		if f.Size > 0 {
			want[key{f.Digest, f.Size}] = true
		}
	}
	paths := map[key][]string{}
	infos := map[key][]os.FileInfo{}
	for _, lm := range models {
		for _, f := range lm.Manifest.Files {
			k := key{f.Digest, f.Size}
			if !want[k] {
				continue
			}
			p := filepath.Join(lm.Dir, f.Path)
			fi, err := os.Stat(p)
			if err != nil || slices.ContainsFunc(infos[k], func(o os.FileInfo) bool { return os.SameFile(o, fi) }) {
				continue
			}
			infos[k] = append(infos[k], fi)
			paths[k] = append(paths[k], p)
		}
	}
	cands := map[string][]string{}
	for _, f := range j.m.Files {
		if ps := paths[key{f.Digest, f.Size}]; len(ps) > 0 {
			cands[f.Path] = ps
		}
	}
	return cands
}

// salvageSource is a damaged local copy of a file, and which of its chunks are good.
type salvageSource struct {
	path string
	good []bool
}

// reuseLocal fills the partial directory from local copies. A copy that verifies whole
// (every chunk of this manifest, and the file's sha256) is hard-linked, or copied where a
// link fails; a copy is never linked unverified, so that damage in one model does not
// spread to the next (found: rm and pull re-linked a corrupt file another model shared).
// For a file whose copies are all damaged, the copy with the most good chunks is returned
// for salvage: its good chunks are copied, the rest fetched. The error is for a cancelled
// context.
func (j *pullJob) reuseLocal(ctx context.Context, cands map[string][]string) (reused map[string]bool, salvage map[string]salvageSource, err error) {
	reused, salvage = map[string]bool{}, map[string]salvageSource{}
	for _, f := range j.m.Files {
		var best salvageSource
		bestN := 0
		for _, src := range cands[f.Path] {
			fc, err := checkFile(ctx, src, f, nil)
			if err != nil {
				return nil, nil, err
			}
			if !fc.whole {
				j.log.Info("local copy is damaged; not linking it", "file", f.Path, "from", src, "problem", fc.problems[0])
				if n := fc.goodChunks(); n > bestN {
					best, bestN = salvageSource{src, fc.good}, n
				}
				continue
			}
			dst := filepath.Join(j.files, f.Path)
			os.Remove(dst)
			how := "link"
			err = os.Link(src, dst)
			if err != nil {
				how = "copy"
				err = copyVerified(ctx, src, dst, f)
			}
			if err != nil {
				os.Remove(dst)
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				j.log.Info("cannot reuse a local copy", "file", f.Path, "from", src, "err", err)
				continue
			}
			j.log.Info("reused local file", "file", f.Path, "from", src, "how", how)
			reused[f.Path] = true
			j.progress.add(f.Path, f.Size)
			break
		}
		if !reused[f.Path] && bestN > 0 {
			j.log.Info("salvaging the good chunks of a damaged local copy", "file", f.Path, "from", best.path,
				"good_chunks", bestN, "chunks", len(f.Chunks))
			salvage[f.Path] = best
		}
	}
	return reused, salvage, nil
}

// copyVerified copies src to dst, checking every chunk of f and the whole file on the way.
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
	whole := sha256.New()
	for _, ch := range f.Chunks {
		r := newVerifyReader(ctxReader{ctx, io.NewSectionReader(in, ch.Offset, ch.Length)}, ch.Digest, ch.Length)
		if _, err := io.Copy(io.MultiWriter(out, whole), r); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	if got := digestFromHash(whole); got != f.Digest {
		return fmt.Errorf("copy %s: %w", src, &DigestError{Want: f.Digest, Got: got, Size: f.Size})
	}
	return out.Close()
}

// copyChunk copies chunk ch of src into dst at its offset, checking its digest: a chunk
// salvaged from a damaged copy.
func copyChunk(ctx context.Context, src io.ReaderAt, dst io.WriterAt, ch Chunk) error {
	r := newVerifyReader(ctxReader{ctx, io.NewSectionReader(src, ch.Offset, ch.Length)}, ch.Digest, ch.Length)
	_, err := io.Copy(io.NewOffsetWriter(dst, ch.Offset), r)
	return err
}
