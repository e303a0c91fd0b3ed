package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
)

// ErrFormat is wrapped by every error about a malformed, truncated or unsupported file.
var ErrFormat = errors.New("gguf: invalid file")

// ErrNoTensor is wrapped by the error for a tensor name a file does not hold.
var ErrNoTensor = errors.New("gguf: no such tensor")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	Type GGMLType
	// Dims is ggml's ne[]: Dims[0] is the innermost (contiguous) dimension, the reverse of the
	// PyTorch shape (see Shape).
	Dims []uint64
	// Offset is the start of the tensor's data relative to the data section.
	Offset uint64
	// Size is the tensor's data length in bytes.
	Size uint64
}

// Shape returns the dimensions in PyTorch (row-major, outermost first) order.
func (t TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(t.Dims)-1-i] = int(d)
	}
	return s
}

// Elements is the product of the dimensions (1 for a tensor with no dimensions).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// byteSize computes the data size from the type and dimensions, checking that the element
// count fits in int64 (ggml's ne are int64) and that rows are whole blocks.
func (t TensorInfo) byteSize() (uint64, error) {
	tt, ok := ggmlTypes[t.Type]
	if !ok {
		return 0, fmt.Errorf("tensor %q: unknown ggml type %d", t.Name, uint32(t.Type))
	}
	n := uint64(1)
	for _, d := range t.Dims {
		if d > math.MaxInt64 {
			return 0, fmt.Errorf("tensor %q: dimension %d too large", t.Name, d)
		}
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("tensor %q: element count of %v overflows", t.Name, t.Dims)
		}
		n = lo
	}
	if len(t.Dims) > 0 && t.Dims[0]%tt.blockSize != 0 {
		return 0, fmt.Errorf("tensor %q: innermost dimension %d is not a multiple of the %s block size %d", t.Name, t.Dims[0], tt.name, tt.blockSize)
	}
	if len(t.Dims) == 0 && tt.blockSize != 1 {
		return 0, fmt.Errorf("tensor %q: a scalar cannot be of block type %s", t.Name, tt.name)
	}
	hi, size := bits.Mul64(n/tt.blockSize, tt.typeSize)
	if hi != 0 || size > math.MaxInt64 {
		return 0, fmt.Errorf("tensor %q: byte size overflows", t.Name)
	}
	return size, nil
}

// File is a parsed and validated GGUF file.
type File struct {
	// Version is the format version (2 or 3).
	Version uint32
	// KVs lists the metadata in file order.
	KVs []KV
	// Tensors lists the tensor infos in file order.
	Tensors []TensorInfo
	// Alignment is the data alignment (general.alignment, or DefaultAlignment).
	Alignment uint64
	// DataOffset is the file offset of the data section.
	DataOffset int64
	// Size is the file size.
	Size int64

	r      io.ReaderAt
	closer io.Closer
	kv     map[string]int
	byName map[string]int
}

// Open opens and validates the GGUF file at path. Tensor data is read on demand; Close the
// File when done.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: open: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("gguf: open %s: %w: not a regular file", path, ErrFormat)
	}
	gf, err := Read(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: open %s: %w", path, err)
	}
	gf.closer = f
	return gf, nil
}

// Read parses and validates the GGUF file of size bytes held by r. The File reads tensor data
// from r on demand.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, formatErr("negative size %d", size)
	}
	d := &decoder{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: uint64(size)}
	f := &File{r: r, Size: size}
	if err := f.parse(d); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) parse(d *decoder) error {
	magic, err := d.bytes(4)
	if err != nil {
		return formatErr("reading the magic: %v", err)
	}
	if string(magic) != Magic {
		return formatErr("magic %q, want %q", magic, Magic)
	}
	if f.Version, err = d.u32(); err != nil {
		return formatErr("reading the version: %v", err)
	}
	switch {
	case f.Version == 2 || f.Version == 3:
	case f.Version&0xffff == 0 && bits.ReverseBytes32(f.Version) <= 3:
		return formatErr("big-endian file (version %d byte-swapped) is not supported", bits.ReverseBytes32(f.Version))
	default:
		return formatErr("version %d, want 2 or 3", f.Version)
	}
	nTensors, err := d.u64()
	if err != nil {
		return formatErr("reading the tensor count: %v", err)
	}
	nKV, err := d.u64()
	if err != nil {
		return formatErr("reading the metadata count: %v", err)
	}
	// Every entry takes at least 14 (metadata) or 24 (tensor info) bytes, so a count the
	// file cannot hold is refused before anything is allocated for it.
	if nKV > d.remaining()/14 {
		return formatErr("metadata count %d does not fit in the file", nKV)
	}
	if nTensors > d.remaining()/24 {
		return formatErr("tensor count %d does not fit in the file", nTensors)
	}
	f.KVs = make([]KV, 0, nKV)
	f.kv = make(map[string]int, nKV)
	f.Alignment = DefaultAlignment
	for i := range nKV {
		key, err := d.str(MaxKeyLen)
		if err != nil {
			return formatErr("metadata %d: key: %v", i, err)
		}
		if err := validKey(key); err != nil {
			return formatErr("metadata %d: %v", i, err)
		}
		if _, dup := f.kv[key]; dup {
			return formatErr("metadata %d: duplicate key %q", i, key)
		}
		typ, err := d.u32()
		if err != nil {
			return formatErr("metadata %q: type: %v", key, err)
		}
		v, err := d.value(ValueType(typ), 0)
		if err != nil {
			return formatErr("metadata %q: %v", key, err)
		}
		if key == KeyAlignment {
			if f.Alignment, err = alignmentOf(v); err != nil {
				return formatErr("%v", err)
			}
		}
		f.kv[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: key, Value: v})
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.byName = make(map[string]int, nTensors)
	for i := range nTensors {
		t, err := d.tensorInfo()
		if err != nil {
			return formatErr("tensor %d: %v", i, err)
		}
		if _, dup := f.byName[t.Name]; dup {
			return formatErr("tensor %d: duplicate name %q", i, t.Name)
		}
		f.byName[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	return f.layout(d.pos)
}

// layout checks where the data section and every tensor lie.
func (f *File) layout(end uint64) error {
	data, carry := bits.Add64(end, padding(end, f.Alignment), 0)
	if carry != 0 || data > math.MaxInt64 {
		return formatErr("data offset overflows")
	}
	f.DataOffset = int64(data)
	if len(f.Tensors) == 0 {
		return nil // a file without tensors (a vocabulary) need not be padded
	}
	if data > uint64(f.Size) {
		return formatErr("file of %d bytes ends before its data section at %d", f.Size, data)
	}
	dataLen := uint64(f.Size) - data
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	for _, t := range f.Tensors {
		if t.Offset%f.Alignment != 0 {
			return formatErr("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		end, carry := bits.Add64(t.Offset, t.Size, 0)
		if carry != 0 || end > dataLen {
			return formatErr("tensor %q: bytes [%d, %d+%d) of the data section lie outside the file (%d data bytes)", t.Name, t.Offset, t.Offset, t.Size, dataLen)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		ta, tb := f.Tensors[a], f.Tensors[b]
		if ta.Offset != tb.Offset {
			return cmpU64(ta.Offset, tb.Offset)
		}
		return cmpU64(ta.Size, tb.Size)
	})
	for k := 1; k < len(order); k++ {
		prev, cur := f.Tensors[order[k-1]], f.Tensors[order[k]]
		if prev.Offset+prev.Size > cur.Offset {
			return formatErr("tensors %q and %q overlap", prev.Name, cur.Name)
		}
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Lookup returns the metadata value of key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.kv[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// Architecture is general.architecture, or "" when absent or not a string.
func (f *File) Architecture() string {
	v, _ := f.Lookup("general.architecture")
	s, _ := v.Str()
	return s
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorReader returns a reader of the named tensor's data.
func (f *File) TensorReader(name string) (*io.SectionReader, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoTensor, name)
	}
	return io.NewSectionReader(f.r, f.DataOffset+int64(t.Offset), int64(t.Size)), nil
}

// TensorData reads the named tensor's data.
func (f *File) TensorData(name string) ([]byte, error) {
	sr, err := f.TensorReader(name)
	if err != nil {
		return nil, err
	}
	b := make([]byte, sr.Size())
	if _, err := io.ReadFull(sr, b); err != nil {
		return nil, fmt.Errorf("gguf: read tensor %q: %w", name, err)
	}
	return b, nil
}

// Float32s reads the named tensor and decodes it to float32 (F32, F16, BF16, F64, Q8_0).
func (f *File) Float32s(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoTensor, name)
	}
	b, err := f.TensorData(name)
	if err != nil {
		return nil, err
	}
	v, err := Float32s(t.Type, b)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return v, nil
}

// Close closes the file Open opened; it does nothing for a File from Read.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// decoder reads little-endian values sequentially and tracks the position.
type decoder struct {
	r    *bufio.Reader
	pos  uint64
	size uint64
	buf  [8]byte
}

func (d *decoder) remaining() uint64 { return d.size - d.pos }

var errTruncated = errors.New("truncated")

func (d *decoder) fill(b []byte) error {
	if uint64(len(b)) > d.remaining() {
		return errTruncated
	}
	n, err := io.ReadFull(d.r, b)
	d.pos += uint64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return errTruncated
		}
		return err
	}
	return nil
}

func (d *decoder) bytes(n uint64) ([]byte, error) {
	if n > d.remaining() {
		return nil, errTruncated
	}
	b := make([]byte, n)
	return b, d.fill(b)
}

func (d *decoder) u8() (uint8, error) {
	err := d.fill(d.buf[:1])
	return d.buf[0], err
}

func (d *decoder) u16() (uint16, error) {
	err := d.fill(d.buf[:2])
	return binary.LittleEndian.Uint16(d.buf[:]), err
}

func (d *decoder) u32() (uint32, error) {
	err := d.fill(d.buf[:4])
	return binary.LittleEndian.Uint32(d.buf[:]), err
}

func (d *decoder) u64() (uint64, error) {
	err := d.fill(d.buf[:8])
	return binary.LittleEndian.Uint64(d.buf[:]), err
}

func (d *decoder) str(maxLen uint64) (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > maxLen {
		return "", fmt.Errorf("string of %d bytes, at most %d allowed", n, maxLen)
	}
	if n > d.remaining() {
		return "", fmt.Errorf("string of %d bytes with %d left in the file", n, d.remaining())
	}
	b, err := d.bytes(n)
	return string(b), err
}

func (d *decoder) boolean() (bool, error) {
	b, err := d.u8()
	if err != nil {
		return false, err
	}
	if b > 1 {
		return false, fmt.Errorf("bool value %d, want 0 or 1", b)
	}
	return b == 1, nil
}

func (d *decoder) scalar(t ValueType) (any, error) {
	switch t {
	case TypeUint8:
		return d.u8()
	case TypeInt8:
		v, err := d.u8()
		return int8(v), err
	case TypeUint16:
		return d.u16()
	case TypeInt16:
		v, err := d.u16()
		return int16(v), err
	case TypeUint32:
		return d.u32()
	case TypeInt32:
		v, err := d.u32()
		return int32(v), err
	case TypeFloat32:
		v, err := d.u32()
		return math.Float32frombits(v), err
	case TypeBool:
		return d.boolean()
	case TypeString:
		return d.str(math.MaxUint64)
	case TypeUint64:
		return d.u64()
	case TypeInt64:
		v, err := d.u64()
		return int64(v), err
	case TypeFloat64:
		v, err := d.u64()
		return math.Float64frombits(v), err
	}
	return nil, fmt.Errorf("invalid value type %d", uint32(t))
}

func readSlice[T ScalarType](d *decoder, t ValueType, n uint64) (Value, error) {
	xs := make([]T, n)
	for i := range xs {
		x, err := d.scalar(t)
		if err != nil {
			return Value{}, fmt.Errorf("element %d: %w", i, err)
		}
		xs[i] = x.(T)
	}
	return Value{typ: TypeArray, elem: t, v: xs}, nil
}

// value reads a value of type t (its tag already read).
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	if t != TypeArray {
		x, err := d.scalar(t)
		if err != nil {
			return Value{}, err
		}
		return Value{typ: t, v: x}, nil
	}
	if depth >= maxNesting {
		return Value{}, fmt.Errorf("arrays nested deeper than %d", maxNesting)
	}
	et, err := d.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.Valid() {
		return Value{}, fmt.Errorf("array of invalid type %d", et)
	}
	n, err := d.u64()
	if err != nil {
		return Value{}, err
	}
	// The smallest encoding of one element bounds the count by what the file holds.
	minSize := elem.size()
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if n > d.remaining()/minSize {
		return Value{}, fmt.Errorf("array of %d %s elements with %d bytes left in the file", n, elem, d.remaining())
	}
	switch elem {
	case TypeUint8:
		b, err := d.bytes(n)
		if err != nil {
			return Value{}, err
		}
		return Value{typ: TypeArray, elem: elem, v: b}, nil
	case TypeInt8:
		return readSlice[int8](d, elem, n)
	case TypeUint16:
		return readSlice[uint16](d, elem, n)
	case TypeInt16:
		return readSlice[int16](d, elem, n)
	case TypeUint32:
		return readSlice[uint32](d, elem, n)
	case TypeInt32:
		return readSlice[int32](d, elem, n)
	case TypeFloat32:
		return readSlice[float32](d, elem, n)
	case TypeBool:
		return readSlice[bool](d, elem, n)
	case TypeString:
		return readSlice[string](d, elem, n)
	case TypeUint64:
		return readSlice[uint64](d, elem, n)
	case TypeInt64:
		return readSlice[int64](d, elem, n)
	case TypeFloat64:
		return readSlice[float64](d, elem, n)
	}
	xs := make([]Value, n)
	for i := range xs {
		sub, err := d.value(TypeArray, depth+1)
		if err != nil {
			return Value{}, fmt.Errorf("element %d: %w", i, err)
		}
		xs[i] = sub
	}
	return Value{typ: TypeArray, elem: TypeArray, v: xs}, nil
}

func (d *decoder) tensorInfo() (TensorInfo, error) {
	name, err := d.str(MaxNameLen)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("name: %w", err)
	}
	if err := validName(name); err != nil {
		return TensorInfo{}, err
	}
	nDims, err := d.u32()
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if nDims > MaxDims {
		return TensorInfo{}, fmt.Errorf("tensor %q: %d dimensions, at most %d allowed", name, nDims, MaxDims)
	}
	t := TensorInfo{Name: name, Dims: make([]uint64, nDims)}
	for i := range t.Dims {
		if t.Dims[i], err = d.u64(); err != nil {
			return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
		}
	}
	typ, err := d.u32()
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	t.Type = GGMLType(typ)
	if t.Offset, err = d.u64(); err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	if t.Size, err = t.byteSize(); err != nil {
		return TensorInfo{}, err
	}
	return t, nil
}
