// Package safetensors reads and writes the safetensors format of Hugging Face
// (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON that
// map tensor names to {dtype, shape, data_offsets} (plus an optional "__metadata__" map of
// strings), then the tensor data, contiguous and in little-endian order.
//
// The reader validates a header as strictly as the reference implementation and a little
// more: it rejects a header longer than 100 MB, a header that is not one UTF-8 JSON object
// (optionally padded with whitespace), duplicate keys, unknown fields, unknown dtypes, tensor
// entries over 64 KiB or of more than 64 dimensions (refused before they are decoded, so a
// header cannot decode into many times its size), shapes whose element count overflows or
// times the dtype width differs from the byte range, ranges outside the
// file, and gaps, overlaps or trailing bytes in the data section. Open maps a file into
// memory (mmap where the platform has it) so that float32 tensors are used in place.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation does
// (safetensors MAX_HEADER_SIZE = 100,000,000 bytes).
const MaxHeaderSize = 100_000_000

// maxRank bounds a tensor's dimensions (numpy's NPY_MAXDIMS is 64): no model has more, and
// without a bound a header of zeros ("shape":[0,0,...], a valid empty tensor) would decode
// into several times its size in memory.
const maxRank = 64

// maxTensorEntry bounds the JSON of one tensor entry: dtype, maxRank dimensions and two
// offsets take under 2 kB even pretty-printed, and a larger entry is refused before it is
// decoded.
const maxTensorEntry = 64 << 10

// metadataKey is the reserved header key for the string-to-string metadata map.
const metadataKey = "__metadata__"

// ErrFormat is wrapped by every error about a malformed or truncated file.
var ErrFormat = errors.New("safetensors: invalid file")

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are the tensor's byte range relative to the start of the data section
	// (the header's data_offsets).
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Header is a parsed and validated safetensors header.
type Header struct {
	// Metadata is the optional "__metadata__" map (nil when absent).
	Metadata map[string]string
	// Tensors lists the tensors in data order (ascending Begin).
	Tensors []TensorInfo
	// DataOffset is the file offset of the data section: 8 + the header length.
	DataOffset int64
	// DataSize is the length of the data section, the end of the last tensor.
	DataSize int64
}

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// ParseHeader parses and validates the header of a safetensors file of fileSize bytes whose
// first bytes are buf; buf must hold at least the 8-byte length and the JSON header (it may
// hold the whole file).
func ParseHeader(buf []byte, fileSize int64) (*Header, error) {
	if fileSize < 8 || len(buf) < 8 {
		return nil, formatErr("truncated: %d bytes, need at least 8 for the header length", min(fileSize, int64(len(buf))))
	}
	n := binary.LittleEndian.Uint64(buf)
	if n > MaxHeaderSize {
		return nil, formatErr("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if int64(n) > fileSize-8 {
		return nil, formatErr("truncated: header length %d but only %d bytes follow it", n, fileSize-8)
	}
	if uint64(len(buf)-8) < n {
		return nil, formatErr("truncated: header length %d but only %d header bytes given", n, len(buf)-8)
	}
	h, err := parseJSONHeader(buf[8 : 8+n])
	if err != nil {
		return nil, err
	}
	h.DataOffset = 8 + int64(n)
	dataLen := fileSize - h.DataOffset
	if err := h.validateLayout(dataLen); err != nil {
		return nil, err
	}
	return h, nil
}

// ReadHeader reads and validates the header of a safetensors file of size bytes from r.
func ReadHeader(r io.ReaderAt, size int64) (*Header, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, formatErr("truncated: %d bytes, need at least 8 for the header length", size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize || int64(n) > size-8 {
		// ParseHeader reports which.
		return ParseHeader(lenBuf[:], size)
	}
	buf := make([]byte, 8+n)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return ParseHeader(buf, size)
}

type rawTensor struct {
	DType       *string        `json:"dtype"`
	Shape       *[]json.Number `json:"shape"`
	DataOffsets *[]json.Number `json:"data_offsets"`
}

// parseJSONHeader decodes the JSON object of a header, rejecting duplicate keys, unknown
// fields, and anything but whitespace after the object.
func parseJSONHeader(js []byte) (*Header, error) {
	if !utf8.Valid(js) {
		return nil, formatErr("header is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(js, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, formatErr("header does not start with a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{'
		return nil, formatErr("header JSON: %v", err)
	}
	h := &Header{}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, formatErr("header JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, formatErr("header JSON: key %v is not a string", tok)
		}
		if seen[key] {
			return nil, formatErr("duplicate key %q in header", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, formatErr("header JSON: value of %q: %v", key, err)
		}
		if key == metadataKey {
			m, err := parseMetadata(raw)
			if err != nil {
				return nil, err
			}
			h.Metadata = m
			continue
		}
		t, err := parseTensor(key, raw)
		if err != nil {
			return nil, err
		}
		h.Tensors = append(h.Tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the '}'
		return nil, formatErr("header JSON: %v", err)
	}
	rest := js[dec.InputOffset():]
	if len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, formatErr("header has %d bytes of trailing data after the JSON object", len(rest))
	}
	return h, nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, formatErr("%s is not an object of strings", metadataKey)
	}
	m := make(map[string]string)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, formatErr("%s: %v", metadataKey, err)
		}
		k := tok.(string) // object keys are always strings
		if _, dup := m[k]; dup {
			return nil, formatErr("%s: duplicate key %q", metadataKey, k)
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, formatErr("%s: value of %q is not a string", metadataKey, k)
		}
		m[k] = v
	}
	return m, nil
}

func parseTensor(name string, raw json.RawMessage) (TensorInfo, error) {
	if name == "" {
		return TensorInfo{}, formatErr("tensor with an empty name")
	}
	if len(raw) > maxTensorEntry {
		return TensorInfo{}, formatErr("tensor %q: entry of %d bytes, at most %d", name, len(raw), maxTensorEntry)
	}
	if err := checkKeys(raw, "dtype", "shape", "data_offsets"); err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	var rt rawTensor
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&rt); err != nil {
		return TensorInfo{}, formatErr("tensor %q: %v", name, err)
	}
	if rt.DType == nil || rt.Shape == nil || rt.DataOffsets == nil {
		return TensorInfo{}, formatErr("tensor %q: dtype, shape and data_offsets are all required", name)
	}
	t := TensorInfo{Name: name, DType: DType(*rt.DType)}
	if !t.DType.Valid() {
		return TensorInfo{}, formatErr("tensor %q: unknown dtype %q", name, *rt.DType)
	}
	if len(*rt.Shape) > maxRank {
		return TensorInfo{}, formatErr("tensor %q: %d dimensions, at most %d", name, len(*rt.Shape), maxRank)
	}
	t.Shape = make([]int, len(*rt.Shape))
	elems := uint64(1)
	for i, d := range *rt.Shape {
		v, err := parseUint(d)
		if err != nil {
			return TensorInfo{}, formatErr("tensor %q: shape[%d]: %v", name, i, err)
		}
		t.Shape[i] = int(v)
		if v != 0 && elems > math.MaxInt64/v {
			return TensorInfo{}, formatErr("tensor %q: shape %v overflows", name, *rt.Shape)
		}
		elems *= v
	}
	if len(*rt.DataOffsets) != 2 {
		return TensorInfo{}, formatErr("tensor %q: data_offsets has %d values, want 2", name, len(*rt.DataOffsets))
	}
	var off [2]uint64
	for i, o := range *rt.DataOffsets {
		v, err := parseUint(o)
		if err != nil {
			return TensorInfo{}, formatErr("tensor %q: data_offsets[%d]: %v", name, i, err)
		}
		off[i] = v
	}
	if off[0] > off[1] {
		return TensorInfo{}, formatErr("tensor %q: data_offsets [%d, %d] end before they begin", name, off[0], off[1])
	}
	size := uint64(t.DType.Size())
	if elems > math.MaxInt64/size || elems*size != off[1]-off[0] {
		return TensorInfo{}, formatErr("tensor %q: %s shape %v needs %d elements of %d bytes but data_offsets [%d, %d] hold %d bytes",
			name, t.DType, t.Shape, elems, size, off[0], off[1], off[1]-off[0])
	}
	t.Begin, t.End = int64(off[0]), int64(off[1])
	return t, nil
}

// parseUint accepts a JSON number that is a non-negative integer below 2^62 (larger values
// cannot be sizes of anything that fits a file).
func parseUint(n json.Number) (uint64, error) {
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a non-negative integer", string(n))
	}
	if v >= 1<<62 {
		return 0, fmt.Errorf("%d is too large", v)
	}
	return v, nil
}

// checkKeys rejects an object with duplicate keys or keys outside allowed.
func checkKeys(raw json.RawMessage, allowed ...string) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%w: tensor entry is not a JSON object", ErrFormat)
	}
	seen := make(map[string]bool, len(allowed))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		k := tok.(string)
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("%w: unknown field %q", ErrFormat, k)
		}
		if seen[k] {
			return fmt.Errorf("%w: duplicate field %q", ErrFormat, k)
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
	}
	return nil
}

// validateLayout sorts the tensors by offset and checks that they tile the data section of
// dataLen bytes exactly: no gaps, no overlaps, nothing past the end and nothing after the
// last tensor.
func (h *Header) validateLayout(dataLen int64) error {
	slices.SortStableFunc(h.Tensors, func(a, b TensorInfo) int {
		if a.Begin != b.Begin {
			if a.Begin < b.Begin {
				return -1
			}
			return 1
		}
		if a.End != b.End {
			if a.End < b.End {
				return -1
			}
			return 1
		}
		return 0
	})
	var pos int64
	for i, t := range h.Tensors {
		switch {
		case t.End > dataLen:
			return formatErr("truncated: tensor %q ends at data offset %d but the data section has %d bytes", t.Name, t.End, dataLen)
		case t.Begin < pos:
			return formatErr("tensor %q [%d, %d) overlaps tensor %q, which ends at %d", t.Name, t.Begin, t.End, h.Tensors[i-1].Name, pos)
		case t.Begin > pos:
			return formatErr("gap of %d bytes before tensor %q at data offset %d", t.Begin-pos, t.Name, pos)
		}
		pos = t.End
	}
	if pos != dataLen {
		return formatErr("%d bytes of trailing data after the last tensor", dataLen-pos)
	}
	h.DataSize = pos
	return nil
}
