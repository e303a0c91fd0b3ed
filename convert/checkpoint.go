package convert

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// ScaleSuffix names the float32 per-row scales beside an int8 matrix: the scales of
// "shared.weight" are "shared.weight_scale".
const ScaleSuffix = "_scale"

// Checkpoint is a model directory whose tensors have been checked against its config: every
// tensor the shape calls for is present with the right shape (tied aliases resolved to
// shared.weight), and nothing else is stored.
type Checkpoint struct {
	Dir   string
	Shape catalog.Shape
	// Meta is t5zoo.json, nil when the directory has none (a plain HF checkpoint).
	Meta *Meta

	src Source
	// stored maps each tensor of Shape.Tensors() to the stored tensor that holds it.
	stored map[string]TensorMeta
}

// Open reads dir's config.json and weights and validates them against each other. Errors
// name the file and the tensor.
func Open(dir string) (_ *Checkpoint, err error) {
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", dir, err)
	}
	shape, err := catalog.ParseHFConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", dir, err)
	}
	meta, err := ReadMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", dir, err)
	}
	src, err := OpenSource(dir)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", dir, err)
	}
	c := &Checkpoint{Dir: dir, Shape: shape, Meta: meta, src: src}
	defer func() {
		if err != nil {
			src.Close()
		}
	}()
	if err := c.resolve(); err != nil {
		return nil, fmt.Errorf("open checkpoint %s: %w", dir, err)
	}
	return c, nil
}

// resolve maps the shape's tensors onto the stored ones.
func (c *Checkpoint) resolve() error {
	stored := map[string]TensorMeta{}
	for _, t := range c.src.Tensors() {
		stored[t.Name] = t
	}
	c.stored = map[string]TensorMeta{}
	used := map[string]bool{}
	for _, want := range c.Shape.Tensors() {
		t, ok := stored[want.Name]
		if !ok && want.Name == "shared.weight" {
			// Some exports keep only a stack's embed_tokens; T5 ties both to shared.
			for _, alias := range []string{"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"} {
				if t, ok = stored[alias]; ok {
					break
				}
			}
		}
		if !ok {
			return fmt.Errorf("%w: missing tensor %q (shape %v)", ErrCheckpoint, want.Name, want.Shape)
		}
		if !slices.Equal(t.Shape, want.Shape) {
			return fmt.Errorf("%w: %s: tensor %q has shape %v, the config needs %v", ErrCheckpoint, t.File, t.Name, t.Shape, want.Shape)
		}
		switch t.DType {
		case safetensors.F32, safetensors.F16, safetensors.BF16:
		case safetensors.I8:
			if !want.Matrix {
				return fmt.Errorf("%w: %s: tensor %q is int8 but only matrices are quantized", ErrCheckpoint, t.File, t.Name)
			}
			sc, ok := stored[t.Name+ScaleSuffix]
			if !ok || sc.DType != safetensors.F32 || !slices.Equal(sc.Shape, want.Shape[:1]) {
				return fmt.Errorf("%w: %s: int8 tensor %q needs F32 scales %q of shape %v", ErrCheckpoint, t.File, t.Name, t.Name+ScaleSuffix, want.Shape[:1])
			}
			used[sc.Name] = true
		default:
			return fmt.Errorf("%w: %s: tensor %q has dtype %s (want F32, F16, BF16 or int8)", ErrCheckpoint, t.File, t.Name, t.DType)
		}
		c.stored[want.Name] = t
		used[t.Name] = true
	}
	// What is left must be a copy of shared.weight under one of its alias names.
	for _, t := range c.src.Tensors() {
		if used[t.Name] {
			continue
		}
		if !slices.Contains(c.Shape.Aliases(), t.Name) {
			return fmt.Errorf("%w: %s: unexpected tensor %q, not part of this T5 config", ErrCheckpoint, t.File, t.Name)
		}
		if err := c.sameAsShared(t); err != nil {
			return err
		}
	}
	return nil
}

func (c *Checkpoint) sameAsShared(t TensorMeta) error {
	shared := c.stored["shared.weight"]
	if t.DType != shared.DType || !slices.Equal(t.Shape, shared.Shape) {
		return fmt.Errorf("%w: %s: %q (%s %v) should be a copy of shared.weight (%s %v)", ErrCheckpoint, t.File, t.Name, t.DType, t.Shape, shared.DType, shared.Shape)
	}
	a, err := c.src.Raw(t.Name)
	if err != nil {
		return err
	}
	b, err := c.src.Raw(shared.Name)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		what := "tie_word_embeddings is true"
		if !strings.HasPrefix(t.Name, "lm_head") {
			what = "T5 shares the input embedding"
		}
		return fmt.Errorf("%w: %s: %q differs from shared.weight, but %s", ErrCheckpoint, t.File, t.Name, what)
	}
	return nil
}

// Stored returns the stored tensor that holds the shape's tensor name.
func (c *Checkpoint) Stored(name string) (TensorMeta, bool) {
	t, ok := c.stored[name]
	return t, ok
}

// Raw returns the stored bytes of the shape's tensor name (aliasing a mapped file).
func (c *Checkpoint) Raw(name string) (TensorMeta, []byte, error) {
	t, ok := c.stored[name]
	if !ok {
		return TensorMeta{}, nil, fmt.Errorf("%w: no tensor %q", ErrCheckpoint, name)
	}
	b, err := c.src.Raw(t.Name)
	if err != nil {
		return TensorMeta{}, nil, fmt.Errorf("read %s from %s: %w", t.Name, t.File, err)
	}
	return t, b, nil
}

// Float32 returns the shape's tensor name as float32: F32 data in place where aligned
// (aliased reports it; the slice must not be written), F16/BF16 widened exactly, int8
// dequantized (q·scale of its row).
func (c *Checkpoint) Float32(name string) (v []float32, aliased bool, err error) {
	t, b, err := c.Raw(name)
	if err != nil {
		return nil, false, err
	}
	if t.DType != safetensors.I8 {
		v, aliased, err = safetensors.Float32s(t.DType, b)
		if err != nil {
			return nil, false, fmt.Errorf("read %s from %s: %w", t.Name, t.File, err)
		}
		return v, aliased, nil
	}
	sb, err := c.src.Raw(t.Name + ScaleSuffix)
	if err != nil {
		return nil, false, fmt.Errorf("read %s from %s: %w", t.Name+ScaleSuffix, t.File, err)
	}
	scales, _, err := safetensors.Float32s(safetensors.F32, sb)
	if err != nil {
		return nil, false, err
	}
	q := make([]int8, len(b))
	for i, x := range b {
		q[i] = int8(x)
	}
	return DequantizeInt8(q, scales, t.Shape[0], t.Shape[1]), false, nil
}

// StoredBytes is the size of the stored data of every tensor the model uses (int8 scales
// included) as Raw returns it, known from the headers before any tensor is read: what a
// load that copies the weights costs.
func (c *Checkpoint) StoredBytes() int64 {
	var n int64
	for _, t := range c.stored {
		n += t.Bytes()
		if t.DType == safetensors.I8 {
			n += int64(t.Shape[0]) * 4 // the F32 row scales
		}
	}
	return n
}

// Files lists the weight files the tensors came from.
func (c *Checkpoint) Files() []string { return c.src.Files() }

// Close releases the mapped files; slices returned earlier become invalid.
func (c *Checkpoint) Close() error { return c.src.Close() }
