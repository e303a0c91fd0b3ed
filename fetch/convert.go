package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/infer"
)

// GateOptions say what ConvertChecked accepts. The zero value accepts only a conversion
// that passes the parity gate, into a missing or empty directory.
type GateOptions struct {
	// Force writes a conversion that fails the parity gate (t5zoo.json records the verdict,
	// and push refuses it unless forced too).
	Force bool
	// Overwrite replaces a non-empty target directory, whole: nothing of it is left beside
	// the new model.
	Overwrite bool
}

// ConvertChecked converts src into dst with the parity gate: it converts into a temporary
// sibling of dst, runs the parity probe there against src, records the verdict in
// t5zoo.json and only then moves the result into place, so that dst is either untouched or
// the whole new model. Below the gate nothing is written unless gate.Force: the error wraps
// ErrParity and the returned Meta holds the verdict. A non-empty dst is refused
// (ErrTargetExists) unless gate.Overwrite, and then replaced atomically where the operating
// system can (Linux's RENAME_EXCHANGE), else by two renames.
func ConvertChecked(ctx context.Context, src, dst string, opts convert.Options, gate GateOptions) (*convert.Meta, error) {
	meta, err := convertChecked(ctx, src, dst, opts, gate)
	if err != nil {
		return meta, fmt.Errorf("convert %s to %s: %w", src, dst, err)
	}
	return meta, nil
}

func convertChecked(ctx context.Context, src, dst string, opts convert.Options, gate GateOptions) (*convert.Meta, error) {
	if err := CheckDir(src, CheckOptions{}); err != nil {
		return nil, err
	}
	empty, err := checkTarget(src, dst, gate.Overwrite)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(filepath.Clean(dst))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".convert-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // after a successful move it holds the replaced model, or nothing
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	meta, err := convert.Convert(ctx, src, tmp, opts)
	if err != nil {
		return nil, err
	}
	p, err := parity(ctx, src, tmp, meta)
	if err != nil {
		return nil, err
	}
	meta.Parity = p
	if err := convert.WriteMeta(tmp, meta); err != nil {
		return nil, err
	}
	if !p.Passed && !gate.Force {
		return meta, fmt.Errorf("%w (%s)", ErrParity, p.Threshold)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := moveIntoPlace(tmp, dst, empty); err != nil {
		return nil, err
	}
	return meta, nil
}

// parity runs the probe of evaluate.Parity on the source and the candidate.
func parity(ctx context.Context, src, cand string, meta *convert.Meta) (*convert.Parity, error) {
	ref, err := infer.Load(ctx, src, infer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("parity: %w", err)
	}
	defer ref.Close()
	c, err := infer.Load(ctx, cand, infer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("parity: %w", err)
	}
	defer c.Close()
	return evaluate.Parity(ctx, ref, c, meta.DType, evaluate.DefaultProbe(ref.Shape().VocabSize), evaluate.DefaultThresholds())
}

// checkTarget refuses a dst that is a file, that is (or holds) src, or that is a non-empty
// directory without overwrite. It reports whether dst is missing or empty.
func checkTarget(src, dst string, overwrite bool) (empty bool, err error) {
	fi, err := os.Stat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is a file, not a directory", dst)
	}
	if inside, err := within(src, dst); err != nil {
		return false, err
	} else if inside {
		return false, fmt.Errorf("the target %s is the source or holds it; convert into another directory", dst)
	}
	f, err := os.Open(dst)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	if !overwrite {
		return false, fmt.Errorf("%w: %s (use --force to replace it whole)", ErrTargetExists, dst)
	}
	return false, nil
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

// moveIntoPlace renames the finished directory tmp to dst. A missing or empty dst is
// replaced by one rename; a non-empty one is exchanged with tmp (which then holds the old
// model, removed by the caller) or, where exchange is unsupported, moved aside first and
// put back if the second rename fails.
func moveIntoPlace(tmp, dst string, empty bool) error {
	if empty {
		if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		return syncDir(filepath.Dir(dst))
	}
	if err := exchange(tmp, dst); err == nil {
		return syncDir(filepath.Dir(dst))
	}
	old := tmp + ".old"
	if err := os.Rename(dst, old); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if rerr := os.Rename(old, dst); rerr != nil {
			return fmt.Errorf("%w; the previous model is in %s", err, old)
		}
		return err
	}
	if err := os.Rename(old, tmp); err != nil { // the caller removes tmp
		os.RemoveAll(old)
	}
	return syncDir(filepath.Dir(dst))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}
