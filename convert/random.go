package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// WriteRandom writes a float32 model directory (config.json and model.safetensors) for shape
// with the random weights of RandomWeights(shape, seed): HF's initialisation. The same seed
// gives the same bytes. It lets benchmarks and quality checks run any shape, published or
// not, without a checkpoint.
func WriteRandom(ctx context.Context, dir string, shape catalog.Shape, seed uint64) error {
	fill := RandomWeights(shape, seed)
	err := writeTensors(ctx, dir, shape, func(t catalog.Tensor, v []float32) error {
		return fill(t.Name, 0, v)
	})
	if err != nil {
		return fmt.Errorf("write random model: %w", err)
	}
	return nil
}

// RandomWeights returns random weights for shape as HF's T5PreTrainedModel._init_weights
// draws them with initializer_factor 1: the embedding and an untied lm_head N(0, 1);
// q N(0, (d_model·d_kv)^-½); k, v N(0, d_model^-½); o N(0, (heads·d_kv)^-½); wi, wi_0 and
// wi_1 N(0, d_model^-½); wo N(0, d_ff^-½); the relative bias N(0, d_model^-½); layer norms 1.
//
// The function writes rows [row0, row0+len(dst)/cols) of the named tensor (one of
// shape.Tensors(), in HF's layout; cols is its last dimension, so a 1-D tensor is one row)
// into dst, which holds whole rows. Each row is its own stream, a PCG seeded by (seed, the
// tensor's name, the row), so that row blocks can be asked in any order and any size, by
// concurrent callers too, and give the same values: a model can be built row block by row
// block without a whole tensor in memory (infer.New takes it as an infer.FillFunc).
func RandomWeights(shape catalog.Shape, seed uint64) func(name string, row0 int, dst []float32) error {
	type tensor struct {
		rows, cols int
		std        float64 // 0: all ones (layer norms)
	}
	dm, dkv, inner, ff := float64(shape.DModel), float64(shape.DKV), float64(shape.InnerDim()), float64(shape.DFF)
	tensors := make(map[string]tensor)
	for _, t := range shape.Tensors() {
		cols := t.Shape[len(t.Shape)-1]
		x := tensor{rows: int(t.Elements()) / max(cols, 1), cols: cols, std: -1}
		switch n := t.Name; {
		case strings.HasSuffix(n, "layer_norm.weight"):
			x.std = 0
		case n == "shared.weight", n == "lm_head.weight":
			x.std = 1
		case strings.HasSuffix(n, ".q.weight"):
			x.std = math.Pow(dm*dkv, -0.5)
		case strings.HasSuffix(n, ".k.weight"), strings.HasSuffix(n, ".v.weight"),
			strings.HasSuffix(n, ".wi.weight"), strings.HasSuffix(n, ".wi_0.weight"), strings.HasSuffix(n, ".wi_1.weight"),
			strings.HasSuffix(n, ".relative_attention_bias.weight"):
			x.std = math.Pow(dm, -0.5)
		case strings.HasSuffix(n, ".o.weight"):
			x.std = math.Pow(inner, -0.5)
		case strings.HasSuffix(n, ".wo.weight"):
			x.std = math.Pow(ff, -0.5)
		}
		tensors[t.Name] = x
	}
	return func(name string, row0 int, dst []float32) error {
		t, ok := tensors[name]
		switch {
		case !ok:
			return fmt.Errorf("random weights: no tensor %q in the shape", name)
		case t.std < 0:
			return fmt.Errorf("random weights: no initialisation for %q", name)
		case t.cols == 0 || len(dst)%t.cols != 0:
			return fmt.Errorf("random weights: %q: %d values are not whole rows of %d", name, len(dst), t.cols)
		case row0 < 0 || row0+len(dst)/t.cols > t.rows:
			return fmt.Errorf("random weights: %q: rows %d+%d outside 0..%d", name, row0, len(dst)/t.cols, t.rows)
		}
		if t.std == 0 {
			for i := range dst {
				dst[i] = 1
			}
			return nil
		}
		h := fnv.New64a()
		h.Write([]byte(name))
		key := h.Sum64()
		var pcg rand.PCG
		rng := rand.New(&pcg)
		for r := range len(dst) / t.cols {
			pcg.Seed(seed, mix64(key+uint64(row0+r)*0x9e3779b97f4a7c15))
			row := dst[r*t.cols : (r+1)*t.cols]
			for i := range row {
				row[i] = float32(rng.NormFloat64() * t.std)
			}
		}
		return nil
	}
}

// mix64 is SplitMix64's finalizer: nearby rows of one tensor get unrelated PCG states.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// WriteFilled writes a float32 model directory (config.json and model.safetensors) for shape
// whose every weight is value(tensor name, index), asked tensor after tensor in the order of
// shape.Tensors() and index after index: models made to order, for tests of what a model's
// numbers do (a NaN layer norm, say).
func WriteFilled(ctx context.Context, dir string, shape catalog.Shape, value func(name string, i int) float32) error {
	return writeTensors(ctx, dir, shape, func(t catalog.Tensor, v []float32) error {
		for i := range v {
			v[i] = value(t.Name, i)
		}
		return nil
	})
}

// writeTensors writes the model directory of WriteFilled, each tensor's values set by fill.
func writeTensors(ctx context.Context, dir string, shape catalog.Shape, fill func(t catalog.Tensor, v []float32) error) error {
	if err := shape.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var w safetensors.Writer
	w.SetMetadata("format", "pt")
	for _, t := range shape.Tensors() {
		if err := ctx.Err(); err != nil {
			return err
		}
		v := make([]float32, t.Elements())
		if err := fill(t, v); err != nil {
			return err
		}
		if err := w.AddFloat32(t.Name, t.Shape, v); err != nil {
			return err
		}
	}
	if err := w.WriteFile(filepath.Join(dir, SafetensorsFile)); err != nil {
		return err
	}
	cfg, err := json.MarshalIndent(shape.HFConfig(), "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "config.json"), append(cfg, '\n'))
}
