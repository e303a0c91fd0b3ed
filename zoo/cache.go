package zoo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// Cache is the local side of the zoo, rooted at $T5ZOO_HOME (cmd/t5zoo's default
// ~/.t5zoo): pulled models as plain model directories, their manifests, partial pulls, locks
// and the default local registry (the tree is documented on pathFor). A model is whole
// exactly when its local manifest exists; everything else is work in progress.
//
// Methods are safe for concurrent use by goroutines and processes: pulls and removals of a
// reference hold a file lock on it.
type Cache struct {
	root string
	// diskFree reports free bytes on a directory's file system; tests replace it.
	diskFree func(dir string) (uint64, error)
}

// LocalModel is a whole model in the cache.
type LocalModel struct {
	Ref      Ref
	Dir      string    // the model directory
	Manifest *Manifest // the manifest it was pulled from
	Digest   Digest    // sha256 of the manifest's bytes
}

// OpenCache returns the cache rooted at dir, creating the directory if needed.
func OpenCache(dir string) (*Cache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("zoo: cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("zoo: cache: %w", err)
	}
	return &Cache{root: abs, diskFree: diskFree}, nil
}

// Root returns the cache's directory.
func (c *Cache) Root() string { return c.root }

// Registry returns the default local registry, $T5ZOO_HOME/registry.
func (c *Cache) Registry() *LocalStore {
	return &LocalStore{root: c.path(registryDirPathSpec{})}
}

// ModelDir returns where ref's model directory is (or would be) in the cache.
func (c *Cache) ModelDir(ref Ref) string { return c.path(modelDirPathSpec{ref}) }

func (c *Cache) path(spec any) string {
	return filepath.Join(c.root, filepath.FromSlash(pathFor(spec)))
}

// Model returns ref's whole local model, or an error wrapping ErrNotFound.
func (c *Cache) Model(ref Ref) (*LocalModel, error) {
	data, err := readFileLimit(c.path(manifestPathSpec{ref}), MaxManifestSize)
	if err != nil {
		return nil, localError(ref.String(), err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("local manifest of %s: %w", ref, err)
	}
	return &LocalModel{Ref: ref, Dir: c.ModelDir(ref), Manifest: m, Digest: DigestOf(data)}, nil
}

// List returns the whole local models, sorted by reference. Local manifests that do not
// parse are skipped.
func (c *Cache) List(ctx context.Context) ([]LocalModel, error) {
	refs, err := listManifestTree(ctx, c.root)
	if err != nil {
		return nil, err
	}
	var ms []LocalModel
	for _, r := range refs {
		if m, err := c.Model(r); err == nil {
			ms = append(ms, *m)
		}
	}
	return ms, nil
}

// Remove deletes ref's local model: first its manifest (so that it stops being whole at
// once), then its directory and any partial pull of it that no pull is using. It returns an
// error wrapping ErrNotFound when there was nothing to remove.
func (c *Cache) Remove(ctx context.Context, ref Ref) error {
	unlock, err := c.lock(ctx, ref, nil)
	if err != nil {
		return fmt.Errorf("rm %s: %w", ref, err)
	}
	defer unlock()
	found := false
	mpath := c.path(manifestPathSpec{ref})
	if err := os.Remove(mpath); err == nil {
		found = true
		removeEmptyParents(filepath.Dir(mpath), c.path(manifestsRootPathSpec{}))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rm %s: %w", ref, err)
	}
	dir := c.ModelDir(ref)
	if _, err := os.Stat(dir); err == nil {
		found = true
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("rm %s: %w", ref, err)
		}
		removeEmptyParents(filepath.Dir(dir), filepath.Join(c.root, "models"))
	}
	if n := c.removePartials(ref, ""); n > 0 {
		found = true
	}
	if !found {
		return fmt.Errorf("rm %s: not in the local cache: %w", ref, ErrNotFound)
	}
	return nil
}

// removePartials deletes the partial pulls of ref other than keep, returning how many. A
// partial directory that a pull is using (its lock is held: a pull of another tag with the
// same manifest) is left alone.
func (c *Cache) removePartials(ref Ref, keep string) int {
	root := filepath.Join(c.root, "partial")
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if dir == keep {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "ref"))
		if err != nil || strings.TrimSpace(string(b)) != ref.String() {
			continue
		}
		d, err := ParseDigest(digestPrefix + e.Name())
		if err != nil {
			continue
		}
		fl := flock.New(c.path(partialLockPathSpec{d}))
		if ok, err := fl.TryLock(); err != nil || !ok {
			continue
		}
		if os.RemoveAll(dir) == nil {
			n++
		}
		fl.Unlock()
	}
	return n
}

// lock takes the file lock of ref, waiting (until ctx ends) while another goroutine or
// process holds it.
func (c *Cache) lock(ctx context.Context, ref Ref, log *slog.Logger) (unlock func(), err error) {
	return c.lockFile(ctx, c.path(lockPathSpec{ref}), log, "waiting for another pull of the same model", "ref", ref.String())
}

// lockPartial takes the file lock of the partial directory of manifest, which pulls of
// every tag holding that manifest share.
func (c *Cache) lockPartial(ctx context.Context, manifest Digest, log *slog.Logger) (unlock func(), err error) {
	return c.lockFile(ctx, c.path(partialLockPathSpec{manifest}), log, "waiting for another pull of the same manifest", "manifest", manifest.Short())
}

// lockFile takes the flock of p, waiting until ctx ends; log, if not nil, hears of a wait.
// Goroutines of one process exclude each other too: each lock opens p anew, and flock(2)
// locks belong to the open file.
func (c *Cache) lockFile(ctx context.Context, p string, log *slog.Logger, waiting string, args ...any) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	fl := flock.New(p)
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if !ok {
		if log != nil {
			log.Warn(waiting, append(args, "lock", p)...)
		}
		if ok, err = fl.TryLockContext(ctx, 50*time.Millisecond); err != nil || !ok {
			return nil, fmt.Errorf("waiting for lock %s: %w", p, errors.Join(err, ctx.Err()))
		}
	}
	return func() { fl.Unlock() }, nil
}
