package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/gguf"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// The Checkpoint presents its tensors under the HF names of Shape.Tensors() in a float type
// (int8 matrices dequantized to F32) to exporters such as gguf.ExportT5.
var _ gguf.TensorSource = (*Checkpoint)(nil)

// Names lists the model's tensors under their HF names.
func (c *Checkpoint) Names() []string {
	ts := c.Shape.Tensors()
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return names
}

// TensorInfo reports the float dtype and shape TensorData yields for name.
func (c *Checkpoint) TensorInfo(name string) (safetensors.DType, []int, bool) {
	t, ok := c.stored[name]
	if !ok {
		return "", nil, false
	}
	if t.DType == safetensors.I8 {
		return safetensors.F32, t.Shape, true
	}
	return t.DType, t.Shape, true
}

// TensorData returns name's bytes: stored bytes for float tensors, dequantized F32 for int8.
func (c *Checkpoint) TensorData(name string) ([]byte, error) {
	t, b, err := c.Raw(name)
	if err != nil {
		return nil, err
	}
	if t.DType != safetensors.I8 {
		return b, nil
	}
	v, _, err := c.Float32(name)
	if err != nil {
		return nil, err
	}
	return safetensors.Float32Bytes(v), nil
}

// HFOptions are the settings of ExportHF. The zero value refuses a target that holds
// anything.
type HFOptions struct {
	// Force lets the export replace a non-empty target directory, whole.
	Force bool
}

// ExportHF writes the model in src as a plain Hugging Face directory dst that
// T5ForConditionalGeneration.from_pretrained loads unchanged: config.json, model.safetensors
// with HF's tensor selection (a tied model stores only shared.weight, as HF's own
// save_pretrained does) in the stored float dtype — int8 models are dequantized to float32,
// which HF can load — and the tokenizer files. t5zoo.json is not copied.
//
// dst may be missing or an empty directory; a non-empty one is refused with ErrTargetExists
// unless opts.Force. The export is built in a temporary sibling of dst and swapped in whole,
// so a failed export leaves dst as it was and a forced one leaves nothing of the old dst.
func ExportHF(ctx context.Context, src, dst string, opts HFOptions) error {
	// Refuse early; WriteDirTarget checks again when it swaps the export in.
	if _, err := checkDirTarget(src, dst, opts.Force); err != nil {
		return fmt.Errorf("export %s to %s: %w", src, dst, err)
	}
	ck, err := Open(src)
	if err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	defer ck.Close()
	if err := CheckTokenizer(src); err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	var w safetensors.Writer
	w.SetMetadata("format", "pt")
	dtypes := map[safetensors.DType]bool{}
	for _, name := range ck.Names() {
		if err := ctx.Err(); err != nil {
			return err
		}
		dt, shape, _ := ck.TensorInfo(name)
		b, err := ck.TensorData(name)
		if err != nil {
			return fmt.Errorf("export %s: %w", src, err)
		}
		dtypes[dt] = true
		if err := w.Add(name, dt, shape, b); err != nil {
			return fmt.Errorf("export %s: %w", src, err)
		}
	}
	cfg := ck.Shape.HFConfig()
	switch {
	case len(dtypes) == 1 && dtypes[safetensors.BF16]:
		cfg.TorchDtype = "bfloat16"
	case len(dtypes) == 1 && dtypes[safetensors.F16]:
		cfg.TorchDtype = "float16"
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	err = WriteDirTarget(ctx, src, dst, opts.Force, func(dir string) error {
		if err := w.WriteFile(filepath.Join(dir, SafetensorsFile)); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, "config.json"), append(cb, '\n')); err != nil {
			return err
		}
		for _, name := range TokenizerFiles() {
			if err := copyIfPresent(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export %s to %s: %w", src, dst, err)
	}
	return nil
}

// GGUFOptions select the GGUF export's tensor type.
type GGUFOptions struct {
	// DType is the matrices' type: F32 (the zero value), F16, BF16, or Int8 for llama.cpp's
	// Q8_0 (blocks of 32 with an f16 scale).
	DType catalog.DType
	// Name is written as general.name.
	Name string
	// Force lets the export replace an existing non-empty file.
	Force bool
}

// ExportGGUF writes the model in src as one GGUF file at out for llama.cpp's T5 support,
// with the tokenizer from src/spiece.model (docs/gguf.md has the mapping). Everything,
// including whether llama.cpp can represent the config, is checked before a byte is written;
// the file is written to a temporary sibling and renamed over out, so a failed export leaves
// no partial file. An existing non-empty out is refused with ErrTargetExists unless
// opts.Force; a directory never is replaced.
func ExportGGUF(ctx context.Context, src, out string, opts GGUFOptions) error {
	if err := checkFileTarget(out, opts.Force); err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	ck, err := Open(src)
	if err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	defer ck.Close()
	m, err := openTokenizer(src)
	if err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	vocab, err := gguf.NewT5Vocab(m, gguf.DefaultExtraIDs)
	if err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	typ := map[catalog.DType]gguf.GGMLType{"": gguf.TypeF32, catalog.F32: gguf.TypeF32, catalog.F16: gguf.TypeF16, catalog.BF16: gguf.TypeBF16, catalog.Int8: gguf.TypeQ8_0}
	t, ok := typ[opts.DType]
	if !ok {
		return fmt.Errorf("export %s: dtype %q not supported for GGUF", src, opts.DType)
	}
	gw, err := gguf.BuildT5(ck.Shape, ck, vocab, gguf.ExportOptions{Type: t, Name: opts.Name})
	if err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	if err := gw.WriteFile(ctx, out); err != nil {
		return fmt.Errorf("export %s: %w", src, err)
	}
	return nil
}
