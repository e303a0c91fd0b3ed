package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
)

// MetaFile is the name of t5zoo's own file in a model directory, for what HF's config.json
// has no key for.
const MetaFile = "t5zoo.json"

// MetaFormat identifies the layout of t5zoo.json.
const MetaFormat = "t5zoo-model/1"

// Int8Scheme names the quantization of QuantizeInt8 in t5zoo.json.
const Int8Scheme = "int8-symmetric-per-output-row"

// Meta is t5zoo.json: the model's name, storage dtype, quantization, provenance and the
// result of the conversion's parity check. Readers ignore fields they do not know, so later
// versions can add lineage and evaluation results.
type Meta struct {
	Format string `json:"format"`
	// Name is the catalog or zoo name the model was converted for, if any.
	Name  string        `json:"name,omitempty"`
	DType catalog.DType `json:"dtype"`
	// Quantization is set for int8 models.
	Quantization *Quantization `json:"quantization,omitempty"`
	Provenance   Provenance    `json:"provenance"`
	Parity       *Parity       `json:"parity,omitempty"`
}

// Quantization describes how matrices were quantized.
type Quantization struct {
	Scheme string `json:"scheme"` // Int8Scheme
	// Tensors counts the quantized matrices; the rest stay float32.
	Tensors int `json:"tensors"`
}

// Provenance records where the weights came from.
type Provenance struct {
	// Origin is free text: a Hub repo and revision, or the source directory.
	Origin    string       `json:"origin,omitempty"`
	Sources   []SourceFile `json:"sources"`
	Converter string       `json:"converter"`
	Created   time.Time    `json:"created"`
}

// SourceFile is one input file of a conversion.
type SourceFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Parity is the comparison of the converted model against its source on a fixed probe.
type Parity struct {
	Probe string `json:"probe"` // what was run
	// MaxLogitDiff is the largest |Δ| between the two models' logits.
	MaxLogitDiff float64 `json:"max_logit_diff"`
	// MeanAbsLogprobDiff is the mean |Δ log p| of the probe's target tokens.
	MeanAbsLogprobDiff float64 `json:"mean_abs_logprob_diff"`
	// GreedyAgreement is the fraction of greedy tokens that agree, position by position.
	GreedyAgreement float64 `json:"greedy_agreement"`
	Passed          bool    `json:"passed"`
	Threshold       string  `json:"threshold"`
}

// ReadMeta reads dir/t5zoo.json; a directory without one gives nil and no error.
func ReadMeta(dir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", MetaFile, err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", MetaFile, err)
	}
	if m.Format != MetaFormat {
		return nil, fmt.Errorf("read %s: format %q, want %q", MetaFile, m.Format, MetaFormat)
	}
	if _, err := catalog.ParseDType(string(m.DType)); err != nil {
		return nil, fmt.Errorf("read %s: %w", MetaFile, err)
	}
	return &m, nil
}

// WriteMeta writes dir/t5zoo.json atomically.
func WriteMeta(dir string, m *Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", MetaFile, err)
	}
	return writeFileAtomic(filepath.Join(dir, MetaFile), append(b, '\n'))
}

// writeFileAtomic writes a temp file beside path, syncs it and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
