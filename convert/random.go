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
	if err := shape.Validate(); err != nil {
		return fmt.Errorf("write random model: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write random model: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x75a7))
	dm, dkv, inner, ff := float64(shape.DModel), float64(shape.DKV), float64(shape.InnerDim()), float64(shape.DFF)
	var w safetensors.Writer
	w.SetMetadata("format", "pt")
	for _, t := range shape.Tensors() {
		if err := ctx.Err(); err != nil {
			return err
		}
		std := 1.0
		name := t.Name
		switch {
		case strings.HasSuffix(name, "layer_norm.weight"):
			std = 0
		case strings.HasSuffix(name, ".q.weight"):
			std = math.Pow(dm*dkv, -0.5)
		case strings.HasSuffix(name, ".k.weight"), strings.HasSuffix(name, ".v.weight"),
			strings.Contains(name, ".wi"), strings.HasSuffix(name, "relative_attention_bias.weight"):
			std = math.Pow(dm, -0.5)
		case strings.HasSuffix(name, ".o.weight"):
			std = math.Pow(inner, -0.5)
		case strings.HasSuffix(name, ".wo.weight"):
			std = math.Pow(ff, -0.5)
		}
		v := make([]float32, t.Elements())
		for i := range v {
			if std == 0 {
				v[i] = 1
			} else {
				v[i] = float32(rng.NormFloat64() * std)
			}
		}
		if err := w.AddFloat32(name, t.Shape, v); err != nil {
			return fmt.Errorf("write random model: %w", err)
		}
	}
	if err := w.WriteFile(filepath.Join(dir, SafetensorsFile)); err != nil {
		return fmt.Errorf("write random model: %w", err)
	}
	cfg, err := json.MarshalIndent(shape.HFConfig(), "", "  ")
	if err != nil {
		return fmt.Errorf("write random model: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, "config.json"), append(cfg, '\n'))
}
