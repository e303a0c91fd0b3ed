// Package pytorch reads PyTorch state dicts saved by torch.save (the zip format of PyTorch
// 1.6 and later, which Hugging Face's pytorch_model.bin uses) without running any of the
// pickle's code: only the globals a state dict needs are accepted, and each is rebuilt as
// plain data by Go code.
package pytorch

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// storageType maps torch's legacy typed-storage classes, which torch.save names in every
// persistent id, to element types.
func storageType(g global) (safetensors.DType, bool) {
	if g.module != "torch" {
		return "", false
	}
	switch g.name {
	case "DoubleStorage":
		return safetensors.F64, true
	case "FloatStorage":
		return safetensors.F32, true
	case "HalfStorage":
		return safetensors.F16, true
	case "BFloat16Storage":
		return safetensors.BF16, true
	case "LongStorage":
		return safetensors.I64, true
	case "IntStorage":
		return safetensors.I32, true
	case "ShortStorage":
		return safetensors.I16, true
	case "CharStorage":
		return safetensors.I8, true
	case "ByteStorage":
		return safetensors.U8, true
	case "BoolStorage":
		return safetensors.Bool, true
	}
	return "", false
}

func allowedGlobal(g global) bool {
	if _, ok := storageType(g); ok {
		return true
	}
	switch g.String() {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict":
		return true
	}
	return false
}

// storage is one out-of-band buffer: the zip entry data/<key>.
type storage struct {
	key   string
	dtype safetensors.DType
	numel int64
}

// Tensor describes one entry of the state dict.
type Tensor struct {
	Name  string
	DType safetensors.DType
	Shape []int
	// Storage and Offset (in elements) say where the data lies; two entries with the same
	// storage, offset and shape are the same tensor saved twice (tied weights).
	Storage string
	Offset  int64
}

// Elements is the number of elements.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// SameData reports whether u views exactly t's data.
func (t Tensor) SameData(u Tensor) bool {
	if t.Storage != u.Storage || t.Offset != u.Offset || t.DType != u.DType || len(t.Shape) != len(u.Shape) {
		return false
	}
	for i := range t.Shape {
		if t.Shape[i] != u.Shape[i] {
			return false
		}
	}
	return true
}

// File is an open state dict.
type File struct {
	name     string
	closer   io.Closer
	zr       *zip.Reader
	prefix   string
	tensors  []Tensor
	storages map[string]storage
}

// Open reads the state dict at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open state dict: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open state dict: %w", err)
	}
	sd, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	sd.closer = f
	return sd, nil
}

// legacyMagic starts a pre-1.6 torch.save file: a pickled LONG1 magic number.
const legacyMagic = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

// NewReader reads a state dict of size bytes from r; name appears in errors.
func NewReader(r io.ReaderAt, size int64, name string) (*File, error) {
	fail := func(err error) (*File, error) { return nil, fmt.Errorf("read state dict %s: %w", name, err) }
	head := make([]byte, len(legacyMagic))
	if n, _ := r.ReadAt(head, 0); n == len(head) && string(head) == legacyMagic {
		return fail(errors.New("legacy torch.save format (PyTorch < 1.6) is not supported; re-save it with a current PyTorch or use model.safetensors"))
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fail(fmt.Errorf("not a PyTorch zip archive (truncated or another format): %w", err))
	}
	var pkl *zip.File
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1 {
			if pkl != nil {
				return fail(errors.New("two data.pkl entries"))
			}
			pkl = f
		}
	}
	if pkl == nil {
		return fail(errors.New("no <archive>/data.pkl entry: not a torch.save archive"))
	}
	sd := &File{name: name, zr: zr, prefix: strings.TrimSuffix(pkl.Name, "data.pkl"), storages: map[string]storage{}}
	if bo := sd.entry("byteorder"); bo != nil {
		b, err := readEntry(bo, 16)
		if err != nil {
			return fail(err)
		}
		if string(b) != "little" {
			return fail(fmt.Errorf("byte order %q not supported", b))
		}
	}
	if pkl.UncompressedSize64 > maxPickleBytes {
		return fail(fmt.Errorf("data.pkl is %d bytes, more than a state dict needs", pkl.UncompressedSize64))
	}
	data, err := readEntry(pkl, maxPickleBytes)
	if err != nil {
		return fail(err)
	}
	if err := sd.unpickle(data); err != nil {
		return fail(err)
	}
	return sd, nil
}

func (sd *File) entry(name string) *zip.File {
	for _, f := range sd.zr.File {
		if f.Name == sd.prefix+name {
			return f
		}
	}
	return nil
}

func readEntry(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("entry %s: %d bytes, more than %d", f.Name, f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %s: %w", f.Name, err)
	}
	defer rc.Close()
	b := make([]byte, f.UncompressedSize64)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("entry %s: %w", f.Name, err)
	}
	// Reading to EOF makes archive/zip check the CRC.
	if n, err := rc.Read(make([]byte, 1)); n != 0 || (err != nil && err != io.EOF) {
		return nil, fmt.Errorf("entry %s: %w", f.Name, cmpErr(err, errors.New("longer than its header says")))
	}
	return b, nil
}

func cmpErr(err, fallback error) error {
	if err != nil && err != io.EOF {
		return err
	}
	return fallback
}

func (sd *File) unpickle(data []byte) error {
	m := &machine{data: data, memo: map[int64]any{}, allowed: allowedGlobal, persist: sd.persistentLoad, call: sd.call}
	v, err := m.run()
	if err != nil {
		return err
	}
	d, ok := v.(*dict)
	if !ok {
		return fmt.Errorf("the pickle holds a %T, not a state dict", v)
	}
	for i, k := range d.keys {
		name, ok := k.(string)
		if !ok {
			return fmt.Errorf("state dict key %v is not a string", k)
		}
		t, ok := d.vals[i].(*Tensor)
		if !ok {
			return fmt.Errorf("state dict entry %q is %T, not a tensor", name, d.vals[i])
		}
		tt := *t
		tt.Name = name
		sd.tensors = append(sd.tensors, tt)
	}
	return nil
}

// persistentLoad resolves ('storage', storage_type, key, location, numel).
func (sd *File) persistentLoad(pid tuple) (any, error) {
	if len(pid) != 5 || pid[0] != "storage" {
		return nil, fmt.Errorf("persistent id %v is not a tensor storage", pid)
	}
	g, ok := pid[1].(global)
	dt, known := storageType(g)
	if !ok || !known {
		return nil, fmt.Errorf("storage type %v not supported", pid[1])
	}
	key, ok1 := pid[2].(string)
	numel, ok2 := pid[4].(int64)
	if !ok1 || !ok2 || numel < 0 || key == "" || strings.ContainsAny(key, "/\\") {
		return nil, fmt.Errorf("malformed storage reference %v", pid)
	}
	if prev, seen := sd.storages[key]; seen && prev.dtype != dt {
		return nil, fmt.Errorf("storage %s is both %s and %s", key, prev.dtype, dt)
	}
	zf := sd.entry(path.Join("data", key))
	if zf == nil {
		return nil, fmt.Errorf("storage %s: no entry data/%s in the archive", key, key)
	}
	if want := uint64(numel) * uint64(dt.Size()); numel > 1<<40 || zf.UncompressedSize64 < want {
		return nil, fmt.Errorf("storage %s: entry has %d bytes, %d %s elements need %d", key, zf.UncompressedSize64, numel, dt, want)
	}
	s := storage{key: key, dtype: dt, numel: numel}
	sd.storages[key] = s
	return s, nil
}

// call evaluates the allowed callables.
func (sd *File) call(g global, args tuple) (any, error) {
	switch g.String() {
	case "collections.OrderedDict":
		if len(args) != 0 {
			return nil, errors.New("OrderedDict with arguments")
		}
		return &dict{}, nil
	case "torch._utils._rebuild_parameter":
		if len(args) != 3 {
			return nil, fmt.Errorf("%d arguments, want 3", len(args))
		}
		t, ok := args[0].(*Tensor)
		if !ok {
			return nil, fmt.Errorf("parameter of %T", args[0])
		}
		return t, nil
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor(args)
	}
	return nil, errors.New("not callable")
}

// rebuildTensor is _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]) for contiguous tensors.
func rebuildTensor(args tuple) (*Tensor, error) {
	if len(args) < 6 || len(args) > 7 {
		return nil, fmt.Errorf("%d arguments, want 6 or 7", len(args))
	}
	s, ok := args[0].(storage)
	if !ok {
		return nil, fmt.Errorf("storage argument is %T", args[0])
	}
	offset, ok := args[1].(int64)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("storage offset %v", args[1])
	}
	size, err := ints(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := ints(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", size, stride)
	}
	numel := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] > 1 && stride[i] != numel {
			return nil, fmt.Errorf("size %v stride %v is not contiguous (save it with .contiguous())", size, stride)
		}
		numel *= size[i]
		if numel > 1<<40 {
			return nil, fmt.Errorf("size %v too large", size)
		}
	}
	if offset+numel > s.numel {
		return nil, fmt.Errorf("elements [%d, %d) outside storage %s of %d", offset, offset+numel, s.key, s.numel)
	}
	shape := make([]int, len(size))
	for i, d := range size {
		shape[i] = int(d)
	}
	return &Tensor{DType: s.dtype, Shape: shape, Storage: s.key, Offset: offset}, nil
}

func ints(v any, what string) ([]int64, error) {
	t, ok := v.(tuple)
	if !ok {
		return nil, fmt.Errorf("%s is %T, want a tuple", what, v)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || n < 0 {
			return nil, fmt.Errorf("%s %v", what, t)
		}
		out[i] = n
	}
	return out, nil
}

// Tensors lists the state dict's entries in the pickle's order.
func (sd *File) Tensors() []Tensor {
	out := make([]Tensor, len(sd.tensors))
	copy(out, sd.tensors)
	return out
}

// Tensor returns the entry called name.
func (sd *File) Tensor(name string) (Tensor, bool) {
	for _, t := range sd.tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// ReadRaw returns the tensor's elements as little-endian bytes in row-major order. The whole
// storage is read so that the archive's CRC is checked.
func (sd *File) ReadRaw(name string) ([]byte, error) {
	t, ok := sd.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("read %s from %s: no such tensor", name, sd.name)
	}
	s := sd.storages[t.Storage]
	zf := sd.entry(path.Join("data", t.Storage))
	b, err := readEntry(zf, int64(zf.UncompressedSize64))
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", name, sd.name, err)
	}
	es := int64(s.dtype.Size())
	return b[t.Offset*es : (t.Offset+t.Elements())*es], nil
}

// Close releases the file Open opened.
func (sd *File) Close() error {
	if sd.closer == nil {
		return nil
	}
	return sd.closer.Close()
}
