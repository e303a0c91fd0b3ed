package gguf

import (
	"fmt"

	"github.com/t5zoo/t5zoo/convert/pytorch"
	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// TensorSource is a checkpoint's tensors under their Hugging Face names: what ExportT5 reads.
// Adapters exist for safetensors files (Safetensors) and PyTorch state dicts (PyTorch).
type TensorSource interface {
	// Names lists the tensors the source holds.
	Names() []string
	// TensorInfo returns the dtype and shape (PyTorch order) of the named tensor; ok is false
	// when the source lacks it.
	TensorInfo(name string) (dtype safetensors.DType, shape []int, ok bool)
	// TensorData returns the tensor's raw little-endian bytes in row-major order. The slice
	// may alias the source and is not modified.
	TensorData(name string) ([]byte, error)
}

// Safetensors returns the tensors of one safetensors file, or of the shards of a sharded
// checkpoint (searched in the order given).
func Safetensors(files ...*safetensors.File) TensorSource { return stSource(files) }

type stSource []*safetensors.File

var _ TensorSource = stSource(nil)

func (s stSource) Names() []string {
	var names []string
	for _, f := range s {
		for _, t := range f.Tensors {
			names = append(names, t.Name)
		}
	}
	return names
}

func (s stSource) TensorInfo(name string) (safetensors.DType, []int, bool) {
	for _, f := range s {
		if t, ok := f.Lookup(name); ok {
			return t.DType, t.Shape, true
		}
	}
	return "", nil, false
}

func (s stSource) TensorData(name string) ([]byte, error) {
	for _, f := range s {
		if _, ok := f.Lookup(name); ok {
			return f.Bytes(name)
		}
	}
	return nil, fmt.Errorf("%w: %q", safetensors.ErrNoTensor, name)
}

// PyTorch returns the tensors of a PyTorch state dict (pytorch_model.bin).
func PyTorch(f *pytorch.File) TensorSource { return ptSource{f} }

type ptSource struct{ f *pytorch.File }

var _ TensorSource = ptSource{}

func (s ptSource) Names() []string {
	ts := s.f.Tensors()
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.Name
	}
	return names
}

func (s ptSource) TensorInfo(name string) (safetensors.DType, []int, bool) {
	t, ok := s.f.Tensor(name)
	if !ok {
		return "", nil, false
	}
	return t.DType, t.Shape, true
}

func (s ptSource) TensorData(name string) ([]byte, error) { return s.f.ReadRaw(name) }
