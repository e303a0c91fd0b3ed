package zoo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// LocalStore is a registry in a local directory (the tree of pathFor). It is the embedded
// default registry, at $T5ZOO_HOME/registry. Writes are atomic: each object is written to a
// temporary file in its final directory, checked, synced and renamed into place.
type LocalStore struct {
	root string
}

// NewLocalStore returns a store rooted at dir. The directory is created on the first write;
// reading a store that does not exist yet finds nothing.
func NewLocalStore(dir string) (*LocalStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("zoo: local store %s: %w", dir, err)
	}
	return &LocalStore{root: abs}, nil
}

// Root returns the store's directory.
func (s *LocalStore) Root() string { return s.root }

// String describes the store for logs and messages.
func (s *LocalStore) String() string { return s.root }

func (s *LocalStore) path(spec any) string {
	return filepath.Join(s.root, filepath.FromSlash(pathFor(spec)))
}

// StatBlob implements Store.
func (s *LocalStore) StatBlob(ctx context.Context, d Digest) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.path(blobPathSpec{d}))
	if err != nil {
		return 0, localError("stat blob "+d.Short(), err)
	}
	return fi.Size(), nil
}

// GetBlob implements Store. The bytes are checked against d by the caller, as they are
// decompressed (see Store).
func (s *LocalStore) GetBlob(ctx context.Context, d Digest) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(blobPathSpec{d}))
	if err != nil {
		return nil, localError("get blob "+d.Short(), err)
	}
	return f, nil
}

// PutBlob implements Store. The stream is decompressed and hashed while it is written, and
// the blob is renamed into place only if exactly size bytes arrived and they decompress to
// content with digest d. A blob already present is left as it is.
func (s *LocalStore) PutBlob(ctx context.Context, d Digest, r io.Reader, size int64) error {
	if _, err := ParseDigest(string(d)); err != nil {
		return err
	}
	dst := s.path(blobPathSpec{d})
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	return writeAtomic(ctx, dst, func(f *os.File) error {
		counted := &countingWriter{w: f}
		dec, err := zstd.NewReader(io.TeeReader(io.LimitReader(sourceReader{r}, size+1), counted),
			zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxChunkLength), zstd.WithDecoderMaxMemory(MaxChunkLength+1<<20))
		if err != nil {
			return err
		}
		defer dec.Close()
		h := sha256.New()
		n, err := io.Copy(h, dec)
		if err != nil {
			return classifyDecodeError(d, err)
		}
		// The decoder stops at the end of the last frame; whatever follows is not a blob.
		if _, err := io.Copy(counted, io.LimitReader(r, size+1-counted.n)); err != nil {
			return err
		}
		if counted.n != size {
			return fmt.Errorf("put blob %s: got %d bytes, want %d", d.Short(), counted.n, size)
		}
		if got := digestFromHash(h); got != d {
			return &DigestError{Want: d, Got: got, Size: n}
		}
		return nil
	})
}

// GetManifest implements Store.
func (s *LocalStore) GetManifest(ctx context.Context, ref Ref) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := readFileLimit(s.path(manifestPathSpec{ref}), MaxManifestSize)
	if err != nil {
		return nil, localError("get manifest "+ref.String(), err)
	}
	return b, nil
}

// PutManifest implements Store.
func (s *LocalStore) PutManifest(ctx context.Context, ref Ref, data []byte) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	return writeAtomic(ctx, s.path(manifestPathSpec{ref}), func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// DeleteManifest implements Store.
func (s *LocalStore) DeleteManifest(ctx context.Context, ref Ref) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p := s.path(manifestPathSpec{ref})
	if err := os.Remove(p); err != nil {
		return localError("delete manifest "+ref.String(), err)
	}
	removeEmptyParents(filepath.Dir(p), s.path(manifestsRootPathSpec{}))
	return nil
}

// ListManifests implements Store.
func (s *LocalStore) ListManifests(ctx context.Context) ([]Ref, error) {
	return listManifestTree(ctx, s.root)
}

// listManifestTree lists the refs under root/manifests (a registry or the local cache).
func listManifestTree(ctx context.Context, root string) ([]Ref, error) {
	var refs []Ref
	base := filepath.Join(root, filepath.FromSlash(pathFor(manifestsRootPathSpec{})))
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return filepath.SkipDir
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			if r, ok := refFromManifestKey(filepath.ToSlash(rel)); ok {
				refs = append(refs, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, localError("list manifests", err)
	}
	slices.SortFunc(refs, func(a, b Ref) int { return cmp.Compare(a.String(), b.String()) })
	return refs, nil
}

// localError maps file-system errors to the package's sentinels.
func localError(op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: %w: %w", op, ErrAccessDenied, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// writeAtomic creates dst by writing a temporary file in dst's directory with write, then
// syncing it, renaming it to dst and syncing the directory. On any error the temporary file
// is removed and dst is untouched.
func writeAtomic(ctx context.Context, dst string, write func(*os.File) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// removeEmptyParents removes dir and its parents while they are empty, up to (not
// including) stop.
func removeEmptyParents(dir, stop string) {
	for dir != stop && len(dir) > len(stop) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func readFileLimit(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", p, limit)
	}
	return buf.Bytes(), nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
