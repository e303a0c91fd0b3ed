package safetensors

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// File is an opened safetensors file: a validated header and the bytes of its data section.
// Tensor data returned by its methods aliases the file's memory (a read-only mapping when
// opened with Open) and stays valid until Close.
type File struct {
	Header
	byName map[string]int
	data   []byte // the data section

	closeOnce sync.Once
	unmap     func() error
}

// Open maps the safetensors file at path into memory (read-only; a plain read where the
// platform has no mmap) and validates its header.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: %w: not a regular file", path, ErrFormat)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("open %s: %w: truncated: %d bytes, need at least 8 for the header length", path, ErrFormat, size)
	}
	// Validate the header before mapping, so that a bad length fails early.
	if _, err := ReadHeader(f, size); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	buf, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("open %s: map: %w", path, err)
	}
	sf, err := Parse(buf)
	if err != nil {
		_ = unmap()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	sf.unmap = unmap
	return sf, nil
}

// Parse validates a whole safetensors file held in memory. The File aliases buf.
func Parse(buf []byte) (*File, error) {
	h, err := ParseHeader(buf, int64(len(buf)))
	if err != nil {
		return nil, err
	}
	f := &File{Header: *h, byName: make(map[string]int, len(h.Tensors)), data: buf[h.DataOffset:]}
	for i, t := range h.Tensors {
		f.byName[t.Name] = i
	}
	return f, nil
}

// Lookup returns the description of the named tensor.
func (f *File) Lookup(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// ErrNoTensor is wrapped by the error for a tensor name a file does not hold.
var ErrNoTensor = errors.New("safetensors: no such tensor")

// Bytes returns the raw little-endian bytes of the named tensor, aliasing the file.
func (f *File) Bytes(name string) ([]byte, error) {
	t, ok := f.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoTensor, name)
	}
	return f.data[t.Begin:t.End:t.End], nil
}

// Float32s returns the named floating-point tensor as float32: F32 data in place when its
// address is 4-byte aligned (aliased reports this; the slice must not be written), otherwise
// a converted copy (F16 and BF16 widen exactly; F64 rounds).
func (f *File) Float32s(name string) (v []float32, aliased bool, err error) {
	b, err := f.Bytes(name)
	if err != nil {
		return nil, false, err
	}
	t, _ := f.Lookup(name)
	v, aliased, err = Float32s(t.DType, b)
	if err != nil {
		return nil, false, fmt.Errorf("tensor %q: %w", name, err)
	}
	return v, aliased, nil
}

// Close releases the file's memory. Slices obtained from the File must not be used after.
func (f *File) Close() error {
	var err error
	f.closeOnce.Do(func() {
		if f.unmap != nil {
			err = f.unmap()
		}
		f.data = nil
	})
	return err
}
