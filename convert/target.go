package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrTargetExists is wrapped when an export's target already holds something and the export
// was not told to replace it (HFOptions.Force, GGUFOptions.Force).
var ErrTargetExists = errors.New("convert: export target exists")

// CheckDirTarget reports whether dst may receive a directory built from src (an export, a
// conversion): a missing path or an empty directory may; a non-empty directory only with
// force (ErrTargetExists otherwise); anything else (a file, a link) never, nor src itself or a
// directory that holds it.
func CheckDirTarget(src, dst string, force bool) error {
	_, err := checkDirTarget(src, dst, force)
	return err
}

func checkDirTarget(src, dst string, force bool) (exists bool, err error) {
	st, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return true, fmt.Errorf("target %s exists and is not a directory", dst)
	}
	if inside, err := within(src, dst); err == nil && inside {
		return true, fmt.Errorf("target %s is the source directory or holds it", dst)
	}
	if force {
		return true, nil
	}
	f, err := os.Open(dst)
	if err != nil {
		return true, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err == nil {
		return true, fmt.Errorf("%w: %s is not empty; replacing it needs force", ErrTargetExists, dst)
	} else if err != io.EOF {
		return true, err
	}
	return true, nil
}

// WriteDirTarget builds a directory from src with fill in a temporary sibling of dst and swaps
// it in whole (CheckDirTarget's rules), so that dst is never half written and never mixes old
// files with new ones. A failed or cancelled fill (a conversion below its quality gate, say)
// leaves dst as it was.
func WriteDirTarget(ctx context.Context, src, dst string, force bool, fill func(dir string) error) (err error) {
	exists, err := checkDirTarget(src, dst, force)
	if err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dst))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		// After a swap tmp holds the old target; after a failure, the partial export.
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = rerr
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !exists {
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
	} else if err := swapDirs(tmp, dst); err != nil {
		return err
	}
	return syncDir(parent)
}

// swapDirs exchanges the directories a and b: atomically where the platform can
// (exchangeDirs), otherwise by moving b aside, moving a into place and moving b's old
// contents to a's name (a failed second move puts b back).
func swapDirs(a, b string) error {
	if err := exchangeDirs(a, b); err == nil {
		return nil
	}
	aside, err := os.MkdirTemp(filepath.Dir(b), "."+filepath.Base(b)+".old-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(aside)
	prev := filepath.Join(aside, "prev")
	if err := os.Rename(b, prev); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		if rerr := os.Rename(prev, b); rerr != nil {
			return fmt.Errorf("%w (and restoring %s failed: %w; its files are in %s)", err, b, rerr, prev)
		}
		return err
	}
	return os.Rename(prev, a)
}

// syncDir makes renames in dir durable. EINVAL means the file system cannot sync a
// directory, which leaves nothing to do.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// checkFileTarget reports whether out may receive a file export: a missing path or an empty
// regular file may; a non-empty regular file only with force; a directory or anything else
// never.
func checkFileTarget(out string, force bool) error {
	st, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("target %s exists and is not a regular file", out)
	}
	if st.Size() > 0 && !force {
		return fmt.Errorf("%w: %s exists; replacing it needs force", ErrTargetExists, out)
	}
	return nil
}

// within reports whether path is dir or lies below it, symbolic links resolved.
func within(path, dir string) (bool, error) {
	p, err := realPath(path)
	if err != nil {
		return false, err
	}
	d, err := realPath(dir)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(d, p)
	if err != nil {
		return false, nil // on another volume
	}
	return rel == "." || rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), nil
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}
