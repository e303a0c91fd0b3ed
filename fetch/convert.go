package fetch

import (
	"context"
	"fmt"

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
	if err := convert.CheckDirTarget(src, dst, gate.Overwrite); err != nil {
		return nil, err
	}
	var meta *convert.Meta
	err := convert.WriteDirTarget(ctx, src, dst, gate.Overwrite, func(tmp string) error {
		m, err := convert.Convert(ctx, src, tmp, opts)
		if err != nil {
			return err
		}
		p, err := parity(ctx, src, tmp, m)
		if err != nil {
			return err
		}
		m.Parity, meta = p, m
		if err := convert.WriteMeta(tmp, m); err != nil {
			return err
		}
		if !p.Passed && !gate.Force {
			return fmt.Errorf("%w (%s)", ErrParity, p.Threshold)
		}
		return nil
	})
	return meta, err
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
