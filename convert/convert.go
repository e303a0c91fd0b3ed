// Package convert moves T5 checkpoints between formats: it reads HF model directories
// (model.safetensors, pytorch_model.bin, sharded or not; tied weights resolved to
// shared.weight), validates them against their config, and writes t5zoo model directories —
// an HF-loadable layout plus t5zoo.json — in f32, bf16, f16 or int8.
//
// Subpackages hold the file formats: safetensors, pytorch (torch.save state dicts, read
// without running pickle code), gguf and hub (Hugging Face downloads).
package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// Version identifies this converter in t5zoo.json.
const Version = "t5zoo-convert/1"

// TokenizerFiles are copied unchanged from the source directory when present.
func TokenizerFiles() []string {
	return []string{TokenizerFile, "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "generation_config.json"}
}

// Options are the settings of one conversion. The zero value converts to float32.
type Options struct {
	// DType is the storage type: F32 (the default when empty), BF16, F16, or Int8 (matrices
	// quantized per output row, the rest float32).
	DType catalog.DType
	// Name is recorded in t5zoo.json.
	Name string
	// Origin is recorded in t5zoo.json: a Hub repo@revision or a path.
	Origin string
	// Now stamps the provenance; zero means time.Now().
	Now time.Time
}

// Convert writes the checkpoint in src as a model directory dst in the requested dtype and
// returns the t5zoo.json it wrote. The source's weights and its spiece.model (CheckTokenizer)
// are checked before anything is written. dst is created if missing; its model files are
// replaced atomically one by one, t5zoo.json last.
func Convert(ctx context.Context, src, dst string, opts Options) (*Meta, error) {
	dt := opts.DType
	if dt == "" {
		dt = catalog.F32
	}
	if _, err := catalog.ParseDType(string(dt)); err != nil {
		return nil, fmt.Errorf("convert %s: %w", src, err)
	}
	ck, err := Open(src)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	defer ck.Close()
	if ck.Meta != nil && ck.Meta.Quantization != nil {
		return nil, fmt.Errorf("convert %s: the source is already quantized (%s); convert from the float original", src, ck.Meta.Quantization.Scheme)
	}
	// A tokenizer that would fail at serve time fails the conversion instead, before a byte is
	// written.
	if err := CheckTokenizer(src); err != nil {
		return nil, fmt.Errorf("convert %s: %w", src, err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}

	sources, err := hashSources(ctx, src, append([]string{"config.json"}, ck.Files()...))
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", src, err)
	}

	var w safetensors.Writer
	w.SetMetadata("format", "pt")
	quantized := 0
	for _, t := range ck.Shape.Tensors() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := addTensor(&w, ck, t, dt)
		if err != nil {
			return nil, fmt.Errorf("convert %s: %w", src, err)
		}
		quantized += n
	}
	if err := w.WriteFile(filepath.Join(dst, SafetensorsFile)); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}

	cfg := ck.Shape.HFConfig()
	cfg.TorchDtype = map[catalog.DType]string{catalog.BF16: "bfloat16", catalog.F16: "float16"}[dt]
	if cfg.TorchDtype == "" {
		cfg.TorchDtype = "float32"
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dst, "config.json"), append(cb, '\n')); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	for _, name := range TokenizerFiles() {
		if err := copyIfPresent(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	meta := &Meta{
		Format: MetaFormat, Name: opts.Name, DType: dt,
		Provenance: Provenance{Origin: opts.Origin, Sources: sources, Converter: Version, Created: now},
	}
	if dt == catalog.Int8 {
		meta.Quantization = &Quantization{Scheme: Int8Scheme, Tensors: quantized}
	}
	if err := WriteMeta(dst, meta); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return meta, nil
}

// addTensor queues one tensor in the target dtype and reports whether it was quantized.
// float32 sources going to float32 are copied bit for bit.
func addTensor(w *safetensors.Writer, ck *Checkpoint, t catalog.Tensor, dt catalog.DType) (int, error) {
	stored, raw, err := ck.Raw(t.Name)
	if err != nil {
		return 0, err
	}
	target := map[catalog.DType]safetensors.DType{catalog.F32: safetensors.F32, catalog.BF16: safetensors.BF16, catalog.F16: safetensors.F16, catalog.Int8: safetensors.F32}[dt]
	if stored.DType == target && !(dt == catalog.Int8 && t.Matrix) {
		return 0, w.Add(t.Name, target, t.Shape, raw)
	}
	v, _, err := ck.Float32(t.Name)
	if err != nil {
		return 0, err
	}
	switch {
	case dt == catalog.Int8 && t.Matrix:
		q, scales := QuantizeInt8(v, t.Shape[0], t.Shape[1])
		qb := make([]byte, len(q))
		for i, x := range q {
			qb[i] = byte(x)
		}
		if err := w.Add(t.Name, safetensors.I8, t.Shape, qb); err != nil {
			return 0, err
		}
		return 1, w.AddFloat32(t.Name+ScaleSuffix, t.Shape[:1], scales)
	case target == safetensors.BF16:
		return 0, w.Add(t.Name, target, t.Shape, castFloat32(v, safetensors.F32ToBF16))
	case target == safetensors.F16:
		return 0, w.Add(t.Name, target, t.Shape, castFloat32(v, safetensors.F32ToF16))
	default:
		return 0, w.AddFloat32(t.Name, t.Shape, append([]float32(nil), v...))
	}
}

func hashSources(ctx context.Context, dir string, names []string) ([]SourceFile, error) {
	var out []SourceFile
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		n, err := io.Copy(h, ctxReader{ctx, f})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", name, err)
		}
		out = append(out, SourceFile{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return out, nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func copyIfPresent(src, dst string) error {
	b, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, b)
}
