package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Writer collects tensors and writes them as one safetensors file that Hugging Face's
// safetensors library reads: tensors laid out contiguously, ordered by element width
// (widest first) then name as the reference serializer does, the header padded with spaces
// so that the data section starts at a multiple of 8 bytes. The zero Writer is ready to use.
// Tensor data is kept by reference until WriteTo, so it may alias a mapped file.
type Writer struct {
	metadata map[string]string
	tensors  []pending
	names    map[string]bool
}

type pending struct {
	TensorInfo
	data []byte
}

// SetMetadata sets a "__metadata__" entry (HF writes {"format": "pt"}).
func (w *Writer) SetMetadata(key, value string) {
	if w.metadata == nil {
		w.metadata = make(map[string]string)
	}
	w.metadata[key] = value
}

// Add queues a tensor of the given dtype and shape whose little-endian bytes are data.
func (w *Writer) Add(name string, dtype DType, shape []int, data []byte) error {
	switch {
	case name == "" || name == metadataKey:
		return fmt.Errorf("safetensors: add: invalid tensor name %q", name)
	case w.names[name]:
		return fmt.Errorf("safetensors: add %q: duplicate tensor name", name)
	case !dtype.Valid():
		return fmt.Errorf("safetensors: add %q: unknown dtype %q", name, dtype)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("safetensors: add %q: negative dimension in shape %v", name, shape)
		}
		n *= d
	}
	if n*dtype.Size() != len(data) {
		return fmt.Errorf("safetensors: add %q: %s shape %v needs %d bytes, got %d", name, dtype, shape, n*dtype.Size(), len(data))
	}
	if w.names == nil {
		w.names = make(map[string]bool)
	}
	w.names[name] = true
	w.tensors = append(w.tensors, pending{TensorInfo{Name: name, DType: dtype, Shape: slices.Clone(shape)}, data})
	return nil
}

// AddFloat32 queues an F32 tensor.
func (w *Writer) AddFloat32(name string, shape []int, data []float32) error {
	return w.Add(name, F32, shape, Float32Bytes(data))
}

// header lays the tensors out and returns the padded header bytes (length prefix included).
func (w *Writer) header() ([]byte, []pending) {
	ts := slices.Clone(w.tensors)
	slices.SortStableFunc(ts, func(a, b pending) int {
		if d := b.DType.Size() - a.DType.Size(); d != 0 {
			return d
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	var js bytes.Buffer
	js.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			js.WriteByte(',')
		}
		first = false
	}
	if len(w.metadata) > 0 {
		comma()
		js.WriteString(`"__metadata__":`)
		keys := make([]string, 0, len(w.metadata))
		for k := range w.metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		js.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				js.WriteByte(',')
			}
			writeJSONString(&js, k)
			js.WriteByte(':')
			writeJSONString(&js, w.metadata[k])
		}
		js.WriteByte('}')
	}
	var off int64
	for i := range ts {
		t := &ts[i]
		t.Begin, t.End = off, off+int64(len(t.data))
		off = t.End
		comma()
		writeJSONString(&js, t.Name)
		js.WriteString(`:{"dtype":`)
		writeJSONString(&js, string(t.DType))
		js.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				js.WriteByte(',')
			}
			js.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&js, `],"data_offsets":[%d,%d]}`, t.Begin, t.End)
	}
	js.WriteByte('}')
	for (8+js.Len())%8 != 0 {
		js.WriteByte(' ')
	}
	out := make([]byte, 8, 8+js.Len())
	binary.LittleEndian.PutUint64(out, uint64(js.Len()))
	return append(out, js.Bytes()...), ts
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// WriteTo writes the file to dst.
func (w *Writer) WriteTo(dst io.Writer) (int64, error) {
	hdr, ts := w.header()
	bw := bufio.NewWriterSize(dst, 1<<20)
	n, err := bw.Write(hdr)
	total := int64(n)
	if err != nil {
		return total, fmt.Errorf("safetensors: write header: %w", err)
	}
	for _, t := range ts {
		n, err := bw.Write(t.data)
		total += int64(n)
		if err != nil {
			return total, fmt.Errorf("safetensors: write %q: %w", t.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return total, fmt.Errorf("safetensors: write: %w", err)
	}
	return total, nil
}

// WriteFile writes the file to path atomically: to a temporary file in the same directory,
// synced, then renamed over path.
func (w *Writer) WriteFile(path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = w.WriteTo(tmp); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}
