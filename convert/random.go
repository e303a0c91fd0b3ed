package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// WriteRandom writes a float32 model directory (config.json and model.safetensors) for shape
// with random weights drawn as HF's T5PreTrainedModel._init_weights draws them with
// initializer_factor 1: the embedding and an untied lm_head N(0, 1); q N(0, (d_model·d_kv)^-½);
// k, v N(0, d_model^-½); o N(0, (heads·d_kv)^-½); wi N(0, d_model^-½); wo N(0, d_ff^-½); the
// relative bias N(0, d_model^-½); layer norms 1. The same seed gives the same bytes. It lets
// benchmarks and quality checks run any shape, published or not, without a checkpoint.
func WriteRandom(ctx context.Context, dir string, shape catalog.Shape, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x75a7))
	dm, dkv, inner, ff := float64(shape.DModel), float64(shape.DKV), float64(shape.InnerDim()), float64(shape.DFF)
	// WriteFilled asks for the values in order, tensor after tensor, so the draws are those
	// of one stream whatever the shape.
	std := func(name string) float64 {
		switch {
		case strings.HasSuffix(name, "layer_norm.weight"):
			return 0
		case strings.HasSuffix(name, ".q.weight"):
			return math.Pow(dm*dkv, -0.5)
		case strings.HasSuffix(name, ".k.weight"), strings.HasSuffix(name, ".v.weight"),
			strings.Contains(name, ".wi"), strings.HasSuffix(name, "relative_attention_bias.weight"):
			return math.Pow(dm, -0.5)
		case strings.HasSuffix(name, ".o.weight"):
			return math.Pow(inner, -0.5)
		case strings.HasSuffix(name, ".wo.weight"):
			return math.Pow(ff, -0.5)
		}
		return 1
	}
	err := WriteFilled(ctx, dir, shape, func(name string, _ int) float32 {
		if sd := std(name); sd != 0 {
			return float32(rng.NormFloat64() * sd)
		}
		return 1
	})
	if err != nil {
		return fmt.Errorf("write random model: %w", err)
	}
	return nil
}

// WriteFilled writes a float32 model directory (config.json and model.safetensors) for shape
// whose every weight is value(tensor name, index), asked tensor after tensor in the order of
// shape.Tensors() and index after index: models made to order, for tests of what a model's
// numbers do (a NaN layer norm, say) and for WriteRandom.
func WriteFilled(ctx context.Context, dir string, shape catalog.Shape, value func(name string, i int) float32) error {
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
		for i := range v {
			v[i] = value(t.Name, i)
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
