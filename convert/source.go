package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/t5zoo/t5zoo/convert/pytorch"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// ErrCheckpoint is wrapped by every error about a checkpoint's files or tensors.
var ErrCheckpoint = errors.New("convert: bad checkpoint")

// TensorMeta describes one stored tensor and the file that holds it.
type TensorMeta struct {
	Name  string
	DType safetensors.DType
	Shape []int
	File  string // base name of the file, for messages and provenance
}

// Bytes is the size of the tensor's stored data: its element count times its dtype's size.
// The readers bound every stored tensor by its file (safetensors, GGUF) or by 2^40 elements
// (pytorch), so the product is exact.
func (t TensorMeta) Bytes() int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Source is a checkpoint's stored tensors, whatever the file format.
type Source interface {
	// Tensors lists the stored tensors in file order.
	Tensors() []TensorMeta
	// Raw returns a tensor's little-endian bytes; they may alias a mapped file and stay
	// valid until Close.
	Raw(name string) ([]byte, error)
	// Files lists the files the tensors were read from (base names).
	Files() []string
	Close() error
}

// Weight file names, in the order OpenSource tries them: safetensors first (mmap, no pickle),
// single file before index.
const (
	SafetensorsFile  = "model.safetensors"
	SafetensorsIndex = "model.safetensors.index.json"
	PytorchFile      = "pytorch_model.bin"
	PytorchIndex     = "pytorch_model.bin.index.json"
)

// OpenSource opens the weights of the model directory dir: model.safetensors, the shards of
// model.safetensors.index.json, pytorch_model.bin, or the shards of
// pytorch_model.bin.index.json, whichever comes first.
func OpenSource(dir string) (Source, error) {
	for _, name := range []string{SafetensorsFile, SafetensorsIndex, PytorchFile, PytorchIndex} {
		p := filepath.Join(dir, name)
		_, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open weights in %s: %w", dir, err)
		}
		switch name {
		case SafetensorsFile, PytorchFile:
			return openShards(dir, []string{name}, nil)
		default:
			shards, weightMap, err := readIndex(p)
			if err != nil {
				return nil, err
			}
			return openShards(dir, shards, weightMap)
		}
	}
	return nil, fmt.Errorf("%w: %s holds none of %s, %s, %s, %s", ErrCheckpoint, dir, SafetensorsFile, SafetensorsIndex, PytorchFile, PytorchIndex)
}

// readIndex reads an HF shard index: {"metadata": {...}, "weight_map": {tensor: shard}}.
func readIndex(path string) (shards []string, weightMap map[string]string, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read shard index: %w", err)
	}
	var index struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrCheckpoint, filepath.Base(path), err)
	}
	if len(index.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%w: %s has no weight_map", ErrCheckpoint, filepath.Base(path))
	}
	for _, shard := range index.WeightMap {
		if shard == "" || shard != filepath.Base(shard) || strings.HasPrefix(shard, ".") {
			return nil, nil, fmt.Errorf("%w: %s names shard %q outside the model directory", ErrCheckpoint, filepath.Base(path), shard)
		}
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	return shards, index.WeightMap, nil
}

// shardFile is one opened weight file of either format.
type shardFile interface {
	tensors() []TensorMeta
	raw(name string) ([]byte, error)
	Close() error
}

type stFile struct {
	f    *safetensors.File
	name string
}

func (s stFile) tensors() []TensorMeta {
	out := make([]TensorMeta, len(s.f.Tensors))
	for i, t := range s.f.Tensors {
		out[i] = TensorMeta{Name: t.Name, DType: t.DType, Shape: t.Shape, File: s.name}
	}
	return out
}
func (s stFile) raw(name string) ([]byte, error) { return s.f.Bytes(name) }
func (s stFile) Close() error                    { return s.f.Close() }

type ptFile struct {
	f    *pytorch.File
	name string
	// aliasOf maps an entry that views the same data as an earlier one (tied weights saved
	// twice) to that entry; aliases are not listed as tensors of their own.
	aliasOf map[string]string
}

func (p ptFile) tensors() []TensorMeta {
	var out []TensorMeta
	for _, t := range p.f.Tensors() {
		if _, alias := p.aliasOf[t.Name]; alias {
			continue
		}
		out = append(out, TensorMeta{Name: t.Name, DType: t.DType, Shape: t.Shape, File: p.name})
	}
	return out
}
func (p ptFile) raw(name string) ([]byte, error) { return p.f.ReadRaw(name) }
func (p ptFile) Close() error                    { return p.f.Close() }

func openFile(dir, name string) (shardFile, error) {
	p := filepath.Join(dir, name)
	if strings.HasSuffix(name, ".safetensors") {
		f, err := safetensors.Open(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
		return stFile{f, name}, nil
	}
	f, err := pytorch.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	pf := ptFile{f: f, name: name, aliasOf: map[string]string{}}
	// One pass with a map from what a tensor views to its first name: linear in the tensors,
	// where comparing each with every earlier one was quadratic (35 s for 120k tensors).
	first := map[viewKey]string{}
	for _, t := range f.Tensors() {
		k := viewKey{t.Storage, t.Offset, t.DType, fmt.Sprint(t.Shape)}
		if earlier, ok := first[k]; ok {
			pf.aliasOf[t.Name] = earlier
			continue
		}
		first[k] = t.Name
	}
	return pf, nil
}

// viewKey identifies the data a pytorch tensor views: equal keys are what
// pytorch.Tensor.SameData reports as the same data.
type viewKey struct {
	storage string
	offset  int64
	dtype   safetensors.DType
	shape   string
}

// multiSource joins the shards of one checkpoint.
type multiSource struct {
	files  []shardFile
	names  []string
	metas  []TensorMeta
	where  map[string]shardFile
	alias  map[string]string // tensor saved as a view of another (pytorch only)
	closed bool
}

func openShards(dir string, names []string, weightMap map[string]string) (_ Source, err error) {
	ms := &multiSource{names: names, where: map[string]shardFile{}, alias: map[string]string{}}
	defer func() {
		if err != nil {
			ms.Close()
		}
	}()
	for _, name := range names {
		f, err := openFile(dir, name)
		if err != nil {
			return nil, err
		}
		ms.files = append(ms.files, f)
		if pf, ok := f.(ptFile); ok {
			for a, of := range pf.aliasOf {
				ms.alias[a] = of
			}
		}
		for _, t := range f.tensors() {
			if _, dup := ms.where[t.Name]; dup {
				return nil, fmt.Errorf("%w: tensor %q is stored twice (second in %s)", ErrCheckpoint, t.Name, name)
			}
			if weightMap != nil && weightMap[t.Name] == "" {
				return nil, fmt.Errorf("%w: tensor %q in %s is not listed in the index", ErrCheckpoint, t.Name, name)
			}
			if weightMap != nil && weightMap[t.Name] != name {
				return nil, fmt.Errorf("%w: tensor %q is in %s, the index says %q", ErrCheckpoint, t.Name, name, weightMap[t.Name])
			}
			ms.where[t.Name] = f
			ms.metas = append(ms.metas, t)
		}
	}
	for t, shard := range weightMap {
		if _, ok := ms.where[t]; !ok && ms.alias[t] == "" {
			return nil, fmt.Errorf("%w: tensor %q listed in the index is missing from %s", ErrCheckpoint, t, shard)
		}
	}
	return ms, nil
}

func (ms *multiSource) Tensors() []TensorMeta { return slices.Clone(ms.metas) }
func (ms *multiSource) Files() []string       { return slices.Clone(ms.names) }

func (ms *multiSource) Raw(name string) ([]byte, error) {
	f, ok := ms.where[name]
	if !ok {
		return nil, fmt.Errorf("%w: no tensor %q", ErrCheckpoint, name)
	}
	return f.raw(name)
}

// Aliases reports entries that a pytorch checkpoint saved as views of another entry.
func (ms *multiSource) Aliases() map[string]string { return ms.alias }

func (ms *multiSource) Close() error {
	if ms.closed {
		return nil
	}
	ms.closed = true
	var errs []error
	for _, f := range ms.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
