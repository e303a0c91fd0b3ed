package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Store holds a sweep's cells: results JSON and per-example JSONL by key ("a/b/c.json",
// slash-separated, no "." or ".." elements). A local folder (DirStore) and an S3 prefix
// (zoo.S3Store's Objects) implement it.
type Store interface {
	// Get returns the object's bytes, or an error wrapping fs.ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores data under key, replacing any object there, atomically: a reader sees
	// the old bytes or the new, never a part.
	Put(ctx context.Context, key string, data []byte) error
	// List returns the keys under prefix ("" for all), sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// String says where the store is, for messages.
	String() string
}

// MaxObjectBytes bounds an object a Store reads: a results JSON is a few kB and the largest
// per-example file of the built-in tasks a few tens of MB, so a larger object is refused
// rather than read into memory (zoo.S3Objects keeps the same bound).
const MaxObjectBytes = 256 << 20

// CheckKey refuses a key a Store must not accept: empty, absolute, with a backslash, or
// with an empty, "." or ".." element.
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, `\`) {
		return fmt.Errorf("evaluate: bad store key %q", key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("evaluate: bad store key %q", key)
		}
	}
	return nil
}

// DirStore is a Store in a local folder: each key is a file under the root.
type DirStore struct{ root string }

// NewDirStore returns the store rooted at dir, creating the folder.
func NewDirStore(dir string) (*DirStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("evaluate: results folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("evaluate: results folder: %w", err)
	}
	return &DirStore{root: abs}, nil
}

func (s *DirStore) String() string { return s.root }

// Root is the store's folder.
func (s *DirStore) Root() string { return s.root }

func (s *DirStore) file(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Get reads the file of key.
func (s *DirStore) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := s.file(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("evaluate: read %s: %w", key, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxObjectBytes {
		return nil, fmt.Errorf("evaluate: read %s: %d bytes, more than %d bytes", key, st.Size(), MaxObjectBytes)
	}
	// Bounded again while reading: the file may grow after the Stat.
	data, err := io.ReadAll(io.LimitReader(f, MaxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("evaluate: read %s: %w", key, err)
	}
	if len(data) > MaxObjectBytes {
		return nil, fmt.Errorf("evaluate: read %s: more than %d bytes", key, MaxObjectBytes)
	}
	return data, nil
}

// Put writes a temporary file beside the target, syncs it and renames it into place.
func (s *DirStore) Put(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.file(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("evaluate: write %s: %w", key, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return fmt.Errorf("evaluate: write %s: %w", key, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("evaluate: write %s: %w", key, err)
	}
	return nil
}

// List walks the folder; temporary files of interrupted writes are not keys.
func (s *DirStore) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("evaluate: list %s: %w", s.root, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// ResultKeys returns the keys of the results JSON files in a store (not the JSONL).
func ResultKeys(ctx context.Context, s Store) ([]string, error) {
	keys, err := s.List(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if path.Ext(k) == ".json" {
			out = append(out, k)
		}
	}
	return out, nil
}
