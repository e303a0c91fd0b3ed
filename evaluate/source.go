package evaluate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

// Reference lengths of ModelInfo.FLOPsPerToken: T5's 512-token inputs and a 128-token
// decode.
const (
	flopsInputLen  = 512
	flopsTargetLen = 128
)

// Located is where a ModelSource found a model and what identifies its weights.
type Located struct {
	Dir string
	// Digest and DigestOf as in ModelInfo; an empty Digest makes DirSource hash Dir.
	Digest, DigestOf string
}

// DirSource is the ModelSource of models in local directories: Locate maps a name to its
// directory (the CLI pulls registry models and imports published shapes there), and Open
// loads it with the engine in this process.
type DirSource struct {
	Locate func(ctx context.Context, name string) (Located, error)
	Load   infer.LoadOptions
	Engine EngineOptions
	// dirs remembers each resolved name's directory for Open.
	dirs map[string]string
}

// Resolve locates the model and identifies it (Identify).
func (d *DirSource) Resolve(ctx context.Context, name string) (ModelInfo, error) {
	loc, err := d.Locate(ctx, name)
	if err != nil {
		return ModelInfo{}, err
	}
	info, err := Identify(ctx, name, loc, d.Load.DType)
	if err != nil {
		return ModelInfo{}, err
	}
	if d.dirs == nil {
		d.dirs = map[string]string{}
	}
	d.dirs[name] = loc.Dir
	return info, nil
}

// Identify is the ModelInfo of the model named name, found at loc, that an engine will run
// in weight type dt ("" for the checkpoint's own, infer.DefaultDType): its shape and
// catalog name (DescribeDir), its digest (loc's, or DirDigest of the directory when loc has
// none) and its dtype, all parts of its cells' identity.
func Identify(ctx context.Context, name string, loc Located, dt catalog.DType) (ModelInfo, error) {
	if loc.Digest == "" {
		var err error
		if loc.Digest, err = DirDigest(ctx, loc.Dir); err != nil {
			return ModelInfo{}, err
		}
		loc.DigestOf = "directory"
	}
	info, err := DescribeDir(loc.Dir)
	if err != nil {
		return ModelInfo{}, err
	}
	info.Name, info.Digest, info.DigestOf = name, loc.Digest, loc.DigestOf
	if dt == "" {
		if dt, err = infer.DefaultDType(loc.Dir); err != nil {
			return ModelInfo{}, err
		}
	}
	info.DType = string(dt)
	return info, nil
}

// Open loads the model resolved under info.Name.
func (d *DirSource) Open(ctx context.Context, info ModelInfo) (Engine, func(), error) {
	dir, ok := d.dirs[info.Name]
	if !ok {
		return nil, nil, fmt.Errorf("evaluate: open %s: not resolved", info.Name)
	}
	tok, err := tokenizer.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	m, err := infer.Load(ctx, dir, d.Load)
	if err != nil {
		return nil, nil, err
	}
	return NewEngine(m, tok, d.Engine), func() { m.Close() }, nil
}

// DescribeDir reads a model directory's shape (config.json) and its catalog name
// (t5zoo.json), if any, into a ModelInfo without a name, digest or dtype.
func DescribeDir(dir string) (ModelInfo, error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return ModelInfo{}, fmt.Errorf("evaluate: model %s: %w", dir, err)
	}
	shape, err := catalog.ParseHFConfig(data)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("evaluate: model %s: %w", dir, err)
	}
	info := ModelInfo{
		Params:        shape.Params(),
		FLOPsPerToken: float64(shape.FLOPs(flopsInputLen, flopsTargetLen).Total) / (flopsInputLen + flopsTargetLen),
	}
	meta, err := convert.ReadMeta(dir)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("evaluate: model %s: %w", dir, err)
	}
	if meta != nil {
		info.Shape = meta.Name
	}
	return info, nil
}

// DirDigest is "sha256:" and the hex sha256 over a model directory's files, in name order:
// each file's name, size and content. t5zoo.json (which records results about the model,
// not its weights) and hidden files are left out, so evaluating a model does not change
// its digest.
func DirDigest(ctx context.Context, dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), ".") && p != dir {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() && !(filepath.Dir(p) == filepath.Clean(dir) && e.Name() == convert.MetaFile) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("evaluate: hash %s: %w", dir, err)
	}
	slices.Sort(files)
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for _, p := range files {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("evaluate: hash %s: %w", dir, err)
		}
		st, err := f.Stat()
		if err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), st.Size())
			_, err = io.CopyBuffer(h, f, buf)
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("evaluate: hash %s: %w", p, err)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
