package gguf

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// Format constants (docs/gguf.md).
const (
	// Magic is the first four bytes of every GGUF file.
	Magic = "GGUF"
	// Version is the format version this package writes (it reads 2 and 3, which share a
	// layout).
	Version = 3
	// DefaultAlignment is the data alignment when general.alignment is absent.
	DefaultAlignment = 32
	// KeyAlignment is the metadata key that sets the alignment (a uint32 power of two).
	KeyAlignment = "general.alignment"
	// MaxDims is the most dimensions a tensor may have (GGML_MAX_DIMS).
	MaxDims = 4
	// MaxNameLen is the longest tensor name in bytes: ggml stores names in a 64-byte array
	// with a terminating NUL (GGML_MAX_NAME).
	MaxNameLen = 63
	// MaxKeyLen is the longest metadata key in bytes (docs/gguf.md).
	MaxKeyLen = 1<<16 - 1
)

// Writer collects metadata and tensors and writes them as one GGUF file. Tensor data is
// kept by reference (AddTensor) or produced when the file is written (AddTensorFunc), so a
// file can be written while holding one tensor in memory at a time. The zero Writer is ready
// to use.
type Writer struct {
	kvs       []KV
	keys      map[string]bool
	tensors   []pendingTensor
	names     map[string]bool
	alignment uint64 // 0 means DefaultAlignment
}

type pendingTensor struct {
	info  TensorInfo
	data  []byte
	write func(io.Writer) error
}

func validKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("key of %d bytes, want 1..%d", len(key), MaxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("key %q has byte %#x at %d, want printable ASCII", key, c, i)
		}
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("tensor name of %d bytes, want 1..%d", len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("tensor name %q is not UTF-8", name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("tensor name %q contains a NUL byte", name)
		}
	}
	return nil
}

// alignmentOf validates a general.alignment value: a uint32 power of two. docs/gguf.md asks
// for a multiple of 8; ggml accepts any power of two, and so does this package on read.
func alignmentOf(v Value) (uint64, error) {
	a, ok := v.Any().(uint32)
	if !ok || v.typ != TypeUint32 {
		return 0, fmt.Errorf("%s is a %s, want uint32", KeyAlignment, v.typ)
	}
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("%s = %d is not a power of two", KeyAlignment, a)
	}
	return uint64(a), nil
}

// AddKV adds a metadata entry. Keys are printable ASCII, at most MaxKeyLen bytes, and unique;
// general.alignment must be a uint32 power of two and sets the data alignment.
func (w *Writer) AddKV(key string, v Value) error {
	if err := validKey(key); err != nil {
		return fmt.Errorf("gguf: add %q: %w", key, err)
	}
	if w.keys[key] {
		return fmt.Errorf("gguf: add %q: duplicate key", key)
	}
	if err := v.check(0); err != nil {
		return fmt.Errorf("gguf: add %q: %w", key, err)
	}
	if key == KeyAlignment {
		a, err := alignmentOf(v)
		if err != nil {
			return fmt.Errorf("gguf: add %q: %w", key, err)
		}
		w.alignment = a
	}
	if w.keys == nil {
		w.keys = make(map[string]bool)
	}
	w.keys[key] = true
	w.kvs = append(w.kvs, KV{Key: key, Value: v})
	return nil
}

// tensorInfo validates a tensor and computes its ne[] and byte size. shape is in PyTorch order.
func tensorInfo(name string, typ GGMLType, shape []int) (TensorInfo, error) {
	if err := validName(name); err != nil {
		return TensorInfo{}, err
	}
	if !typ.Known() {
		return TensorInfo{}, fmt.Errorf("tensor %q: unknown ggml type %d", name, uint32(typ))
	}
	if len(shape) > MaxDims {
		return TensorInfo{}, fmt.Errorf("tensor %q: %d dimensions, want at most %d", name, len(shape), MaxDims)
	}
	dims := make([]uint64, len(shape))
	for i, d := range shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("tensor %q: negative dimension %d", name, d)
		}
		dims[len(shape)-1-i] = uint64(d)
	}
	t := TensorInfo{Name: name, Type: typ, Dims: dims}
	size, err := t.byteSize()
	if err != nil {
		return TensorInfo{}, err
	}
	t.Size = size
	return t, nil
}

func (w *Writer) addTensor(p pendingTensor) error {
	if w.names[p.info.Name] {
		return fmt.Errorf("duplicate tensor name")
	}
	if w.names == nil {
		w.names = make(map[string]bool)
	}
	w.names[p.info.Name] = true
	w.tensors = append(w.tensors, p)
	return nil
}

// AddTensor adds a tensor of type typ whose shape is given in PyTorch (row-major) order and
// whose encoded bytes are data. The innermost dimension must be a whole number of blocks of
// typ and len(data) must be the tensor's size. data is kept by reference until the file is
// written.
func (w *Writer) AddTensor(name string, typ GGMLType, shape []int, data []byte) error {
	t, err := tensorInfo(name, typ, shape)
	if err != nil {
		return fmt.Errorf("gguf: add tensor: %w", err)
	}
	if uint64(len(data)) != t.Size {
		return fmt.Errorf("gguf: add tensor %q: %d bytes of data, want %d for %s %v", name, len(data), t.Size, typ, shape)
	}
	if err := w.addTensor(pendingTensor{info: t, data: data}); err != nil {
		return fmt.Errorf("gguf: add tensor %q: %w", name, err)
	}
	return nil
}

// AddTensorFunc adds a tensor like AddTensor whose data is produced when the file is written:
// write must write exactly the tensor's size in bytes (TensorSize) to its argument.
func (w *Writer) AddTensorFunc(name string, typ GGMLType, shape []int, write func(io.Writer) error) error {
	t, err := tensorInfo(name, typ, shape)
	if err != nil {
		return fmt.Errorf("gguf: add tensor: %w", err)
	}
	if write == nil {
		return fmt.Errorf("gguf: add tensor %q: nil write function", name)
	}
	if err := w.addTensor(pendingTensor{info: t, write: write}); err != nil {
		return fmt.Errorf("gguf: add tensor %q: %w", name, err)
	}
	return nil
}

// TensorSize is the number of bytes of a tensor of type typ and shape (PyTorch order).
func TensorSize(typ GGMLType, shape []int) (int64, error) {
	t, err := tensorInfo("x", typ, shape)
	if err != nil {
		return 0, fmt.Errorf("gguf: %w", err)
	}
	if t.Size > math.MaxInt64 {
		return 0, fmt.Errorf("gguf: tensor of %d bytes", t.Size)
	}
	return int64(t.Size), nil
}

func (w *Writer) align() uint64 {
	if w.alignment == 0 {
		return DefaultAlignment
	}
	return w.alignment
}

func padding(off, align uint64) uint64 { return (align - off%align) % align }

// layout assigns each tensor its offset in the data section, in the order added, and returns
// the data section's size.
func (w *Writer) layout() (uint64, error) {
	a := w.align()
	var off uint64
	for i := range w.tensors {
		t := &w.tensors[i].info
		t.Offset = off
		end, carry := bits.Add64(off, t.Size, 0)
		if carry != 0 {
			return 0, fmt.Errorf("tensor %q: data section overflows", t.Name)
		}
		if i < len(w.tensors)-1 {
			end, carry = bits.Add64(end, padding(end, a), 0)
			if carry != 0 {
				return 0, fmt.Errorf("tensor %q: data section overflows", t.Name)
			}
		}
		off = end
	}
	return off, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// limitWriter accepts at most max bytes and counts them.
type limitWriter struct {
	w   io.Writer
	n   uint64
	max uint64
}

var errTooMuch = errors.New("wrote more bytes than the tensor's size")

func (l *limitWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > l.max-l.n {
		return 0, errTooMuch
	}
	n, err := l.w.Write(p)
	l.n += uint64(n)
	return n, err
}

func writeZeros(w io.Writer, n uint64) error {
	if n == 0 {
		return nil
	}
	zeros := make([]byte, min(n, 4096))
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// WriteTo writes the file to dst. It implements io.WriterTo; Write is the same with a context.
func (w *Writer) WriteTo(dst io.Writer) (int64, error) {
	return w.Write(context.Background(), dst)
}

// Write writes the file to dst: the header, the metadata, the tensor infos, then each tensor's
// data in the order added, padded to the alignment. ctx is checked before each tensor.
func (w *Writer) Write(ctx context.Context, dst io.Writer) (int64, error) {
	cw := &countWriter{w: dst}
	if err := w.write(ctx, cw); err != nil {
		return cw.n, fmt.Errorf("gguf: write: %w", err)
	}
	return cw.n, nil
}

func (w *Writer) write(ctx context.Context, cw *countWriter) error {
	if _, err := w.layout(); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(cw, 1<<16)
	e := encoder{w: bw}
	e.bytes([]byte(Magic))
	e.u32(Version)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.typ))
		e.value(kv.Value)
	}
	for _, p := range w.tensors {
		t := p.info
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(t.Offset)
	}
	if e.err != nil {
		return e.err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	a := w.align()
	if len(w.tensors) == 0 {
		return nil // no data section: readers need no padding (gguf-py's vocab-only files have none)
	}
	if err := writeZeros(cw, padding(uint64(cw.n), a)); err != nil {
		return err
	}
	for i, p := range w.tensors {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := cw.n
		if p.write == nil {
			if _, err := cw.Write(p.data); err != nil {
				return fmt.Errorf("tensor %q: %w", p.info.Name, err)
			}
		} else {
			lw := &limitWriter{w: cw, max: p.info.Size}
			if err := p.write(lw); err != nil {
				return fmt.Errorf("tensor %q: %w", p.info.Name, err)
			}
			if lw.n != p.info.Size {
				return fmt.Errorf("tensor %q: wrote %d bytes, want %d", p.info.Name, lw.n, p.info.Size)
			}
		}
		if i < len(w.tensors)-1 {
			if err := writeZeros(cw, padding(uint64(cw.n-start), a)); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteFile writes the file to path atomically: to a temporary file in the same directory,
// synced, then renamed over path. A failed or cancelled write leaves path untouched.
func (w *Writer) WriteFile(ctx context.Context, path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = w.Write(ctx, f); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	return nil
}

// encoder writes little-endian values and remembers the first error.
type encoder struct {
	w   *bufio.Writer
	buf [8]byte
	err error
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u8(v uint8) { e.bytes([]byte{v}) }

func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.bytes(e.buf[:2])
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.bytes(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.bytes(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *encoder) bool(b bool) {
	if b {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) scalar(x any) {
	switch v := x.(type) {
	case uint8:
		e.u8(v)
	case int8:
		e.u8(uint8(v))
	case uint16:
		e.u16(v)
	case int16:
		e.u16(uint16(v))
	case uint32:
		e.u32(v)
	case int32:
		e.u32(uint32(v))
	case float32:
		e.u32(math.Float32bits(v))
	case bool:
		e.bool(v)
	case string:
		e.str(v)
	case uint64:
		e.u64(v)
	case int64:
		e.u64(uint64(v))
	case float64:
		e.u64(math.Float64bits(v))
	}
}

func encodeSlice[T any](e *encoder, xs []T) {
	e.u64(uint64(len(xs)))
	for _, x := range xs {
		e.scalar(any(x))
	}
}

// value writes v without its type tag.
func (e *encoder) value(v Value) {
	if v.typ != TypeArray {
		e.scalar(v.v)
		return
	}
	e.u32(uint32(v.elem))
	switch xs := v.v.(type) {
	case []uint8:
		e.u64(uint64(len(xs)))
		e.bytes(xs)
	case []int8:
		encodeSlice(e, xs)
	case []uint16:
		encodeSlice(e, xs)
	case []int16:
		encodeSlice(e, xs)
	case []uint32:
		encodeSlice(e, xs)
	case []int32:
		encodeSlice(e, xs)
	case []float32:
		encodeSlice(e, xs)
	case []bool:
		encodeSlice(e, xs)
	case []string:
		encodeSlice(e, xs)
	case []uint64:
		encodeSlice(e, xs)
	case []int64:
		encodeSlice(e, xs)
	case []float64:
		encodeSlice(e, xs)
	case []Value:
		e.u64(uint64(len(xs)))
		for _, x := range xs {
			e.value(x)
		}
	}
}
