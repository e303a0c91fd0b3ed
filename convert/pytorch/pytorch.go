// Package pytorch reads PyTorch state dicts saved by torch.save (the zip format of PyTorch
// 1.6 and later, which Hugging Face's pytorch_model.bin uses) without running any of the
// pickle's code: only the globals a state dict needs are accepted, and each is rebuilt as
// plain data by Go code.
//
// A hostile archive costs an error, never a panic or an allocation the file cannot back:
// sizes and offsets are checked with overflow-safe arithmetic (tensors and storages of at
// most 2^40 elements); every zip entry must lie inside the file and be able to inflate to
// the size it declares (stored: equal sizes; deflated: at most 1032 times its compressed
// size); a storage entry must declare exactly the bytes its pickle reference needs and be
// viewed whole by its tensors; data.pkl is at most 64 MiB and builds at most 2^22 values.
// Reading a tensor allocates that tensor only and still checks its entry's CRC.
package pytorch

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"math/bits"
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
	switch g {
	case global{"torch._utils", "_rebuild_tensor_v2"}, global{"torch._utils", "_rebuild_parameter"}, global{"collections", "OrderedDict"}:
		return true
	}
	return false
}

// storage is one out-of-band buffer: the zip entry data/<key>.
type storage struct {
	key   string
	dtype safetensors.DType
	numel int64
	entry *zip.File
}

// bytes is the storage's size in bytes; numel is at most maxElements, so it cannot overflow.
func (s storage) bytes() int64 { return s.numel * int64(s.dtype.Size()) }

// maxElements bounds a storage or tensor (2^40 elements, 8 TiB of F64): far above any T5
// and low enough that element counts times dtype sizes stay exact in int64.
const maxElements = 1 << 40

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

// Elements is the number of elements. The reader checked that it is at most 2^40.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Bytes is the size of the tensor's data in bytes: Elements times the dtype's size.
func (t Tensor) Bytes() int64 { return t.Elements() * int64(t.DType.Size()) }

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
	size     int64
	entries  map[string]*zip.File
	prefix   string
	tensors  []Tensor
	byName   map[string]int
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

// NewReader reads a state dict of size bytes from r; name appears in errors. Everything the
// archive declares is checked against size before anything is allocated for it: every entry
// lies inside the file, can inflate to the size it declares, and each storage entry holds
// exactly the bytes its pickle reference needs, all of them viewed by some tensor. So the
// largest allocation a file can cause is data.pkl (at most 64 MiB) or, later, one tensor.
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
	sd := &File{name: name, size: size, entries: make(map[string]*zip.File, len(zr.File)), byName: map[string]int{}, storages: map[string]storage{}}
	var pkl *zip.File
	for _, f := range zr.File {
		if _, dup := sd.entries[f.Name]; dup {
			return fail(fmt.Errorf("entry %s appears twice", f.Name))
		}
		sd.entries[f.Name] = f
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
	sd.prefix = strings.TrimSuffix(pkl.Name, "data.pkl")
	if bo := sd.entry("byteorder"); bo != nil {
		b, err := sd.readEntry(bo, 16)
		if err != nil {
			return fail(err)
		}
		if string(b) != "little" {
			return fail(fmt.Errorf("byte order %q not supported", b))
		}
	}
	if pkl.UncompressedSize64 > maxPickleBytes {
		return fail(fmt.Errorf("data.pkl is %d bytes, more than a state dict needs (%d)", pkl.UncompressedSize64, maxPickleBytes))
	}
	data, err := sd.readEntry(pkl, maxPickleBytes)
	if err != nil {
		return fail(err)
	}
	if err := sd.unpickle(data); err != nil {
		return fail(err)
	}
	if err := sd.checkCoverage(); err != nil {
		return fail(err)
	}
	return sd, nil
}

func (sd *File) entry(name string) *zip.File { return sd.entries[sd.prefix+name] }

// maxDeflateRatio is the most a deflate stream can expand: a 258-byte match costs at least
// two bits, so 1 byte of stream yields at most 1032 bytes (zlib's "Maximum compression
// factor", zlib technical details, https://www.zlib.net/zlib_tech.html).
const maxDeflateRatio = 1032

// checkEntry checks what an entry's header declares against the file: its data lies inside
// the file and its compressed size can produce its uncompressed size. Only then may a reader
// allocate its uncompressed size.
func (sd *File) checkEntry(f *zip.File) error {
	off, err := f.DataOffset()
	if err != nil {
		return fmt.Errorf("entry %s: %w", f.Name, err)
	}
	if off < 0 || f.CompressedSize64 > uint64(sd.size) || uint64(off) > uint64(sd.size)-f.CompressedSize64 {
		return fmt.Errorf("entry %s: %d bytes at offset %d lie past the end of the %d-byte file", f.Name, f.CompressedSize64, off, sd.size)
	}
	switch f.Method {
	case zip.Store:
		if f.UncompressedSize64 != f.CompressedSize64 {
			return fmt.Errorf("entry %s: stored with %d bytes but declares %d", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
	case zip.Deflate:
		hi, most := bits.Mul64(f.CompressedSize64, maxDeflateRatio)
		if hi == 0 && f.UncompressedSize64 > most+64 {
			return fmt.Errorf("entry %s: %d compressed bytes cannot inflate to the %d it declares", f.Name, f.CompressedSize64, f.UncompressedSize64)
		}
	default:
		return fmt.Errorf("entry %s: compression method %d not supported (torch.save stores entries uncompressed)", f.Name, f.Method)
	}
	return nil
}

// readEntry reads a whole entry of at most limit bytes, checking its CRC.
func (sd *File) readEntry(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("entry %s: %d bytes, more than %d", f.Name, f.UncompressedSize64, limit)
	}
	if err := sd.checkEntry(f); err != nil {
		return nil, err
	}
	b := make([]byte, f.UncompressedSize64)
	if err := readRange(f, 0, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readRange reads the bytes of entry f from offset off into b, and reads (discarding) the
// rest of the entry so that archive/zip checks its CRC. The decompressor never yields more
// than the entry's declared size: archive/zip fails a stream that runs past it.
func readRange(f *zip.File, off int64, b []byte) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("entry %s: %w", f.Name, err)
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		return fmt.Errorf("entry %s: %w", f.Name, eofErr(err))
	}
	if _, err := io.ReadFull(rc, b); err != nil {
		return fmt.Errorf("entry %s: %w", f.Name, eofErr(err))
	}
	rest := int64(f.UncompressedSize64) - off - int64(len(b))
	if _, err := io.CopyN(io.Discard, rc, rest); err != nil {
		return fmt.Errorf("entry %s: %w", f.Name, eofErr(err))
	}
	// Reading to EOF makes archive/zip check the CRC.
	if n, err := rc.Read(make([]byte, 1)); n != 0 || (err != nil && err != io.EOF) {
		return fmt.Errorf("entry %s: %w", f.Name, cmpErr(err, errors.New("longer than its header says")))
	}
	return nil
}

func eofErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
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
	sd.tensors = make([]Tensor, 0, len(d.keys))
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
		sd.byName[name] = len(sd.tensors)
		sd.tensors = append(sd.tensors, tt)
	}
	return nil
}

// checkCoverage refuses a storage larger than what its tensors view: reading a tensor
// inflates its whole storage (to check the CRC), so unviewed bytes would be work and, for a
// deflated entry, a decompression bomb that no tensor needs. torch.save writes each
// parameter's storage whole, so a state dict's storages are covered exactly.
func (sd *File) checkCoverage() error {
	used := make(map[string]int64, len(sd.storages))
	for _, t := range sd.tensors {
		used[t.Storage] = max(used[t.Storage], t.Offset+t.Elements())
	}
	for _, s := range sd.storages {
		if u, ok := used[s.key]; ok && u < s.numel {
			return fmt.Errorf("storage %s holds %d %s elements but its tensors use %d: save the state dict with each tensor cloned", s.key, s.numel, s.dtype, u)
		}
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
	if numel > maxElements {
		return nil, fmt.Errorf("malformed storage reference: %d elements, at most %d", numel, int64(maxElements))
	}
	if prev, seen := sd.storages[key]; seen {
		if prev.dtype != dt || prev.numel != numel {
			return nil, fmt.Errorf("storage %s is both %d %s and %d %s elements", key, prev.numel, prev.dtype, numel, dt)
		}
		return prev, nil
	}
	zf := sd.entry(path.Join("data", key))
	if zf == nil {
		return nil, fmt.Errorf("storage %s: no entry data/%s in the archive", key, key)
	}
	s := storage{key: key, dtype: dt, numel: numel, entry: zf}
	// torch.save writes exactly the storage's bytes; anything else is a damaged or hostile
	// archive, and what is declared must fit the file before a reader trusts it.
	if zf.UncompressedSize64 != uint64(s.bytes()) {
		return nil, fmt.Errorf("storage %s: entry data/%s declares %d bytes, its storage of %d %s elements needs %d", key, key, zf.UncompressedSize64, numel, dt, s.bytes())
	}
	if err := sd.checkEntry(zf); err != nil {
		return nil, fmt.Errorf("storage %s: %w", key, err)
	}
	sd.storages[key] = s
	return s, nil
}

// call evaluates the allowed callables.
func (sd *File) call(g global, args tuple) (any, error) {
	switch g {
	case global{"collections", "OrderedDict"}:
		if len(args) != 0 {
			return nil, errors.New("OrderedDict with arguments")
		}
		return &dict{}, nil
	case global{"torch._utils", "_rebuild_parameter"}:
		if len(args) != 3 {
			return nil, fmt.Errorf("%d arguments, want 3", len(args))
		}
		t, ok := args[0].(*Tensor)
		if !ok {
			return nil, fmt.Errorf("parameter of %T", args[0])
		}
		return t, nil
	case global{"torch._utils", "_rebuild_tensor_v2"}:
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
	// Overflow-safe: every product is checked before it is formed. want is the stride a
	// contiguous tensor has at each dimension (torch counts a dimension of 0 as 1 there).
	numel, want := int64(1), int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		if size[i] > 1 && stride[i] != want {
			return nil, fmt.Errorf("size %v stride %v is not contiguous (save it with .contiguous())", size, stride)
		}
		d := max(size[i], 1)
		if d > maxElements/want {
			return nil, fmt.Errorf("size %v too large", size)
		}
		want *= d
		numel *= size[i] // at most want
	}
	if offset > s.numel || numel > s.numel-offset {
		return nil, fmt.Errorf("elements [%d, %d+%d) outside storage %s of %d", offset, offset, numel, s.key, s.numel)
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
	i, ok := sd.byName[name]
	if !ok {
		return Tensor{}, false
	}
	return sd.tensors[i], true
}

// ReadRaw returns the tensor's elements as little-endian bytes in row-major order. It
// allocates the tensor's bytes only; the rest of its storage is inflated and discarded so
// that the archive's CRC is checked.
func (sd *File) ReadRaw(name string) ([]byte, error) {
	t, ok := sd.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("read %s from %s: no such tensor", name, sd.name)
	}
	s := sd.storages[t.Storage]
	es := int64(s.dtype.Size())
	b := make([]byte, t.Elements()*es)
	if err := readRange(s.entry, t.Offset*es, b); err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", name, sd.name, err)
	}
	return b, nil
}

// Close releases the file Open opened.
func (sd *File) Close() error {
	if sd.closer == nil {
		return nil
	}
	return sd.closer.Close()
}
