package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func fuzzSeeds(f *testing.F) {
	var w Writer
	w.SetMetadata("format", "pt")
	_ = w.AddFloat32("a.weight", []int{2, 2}, []float32{1, 2, 3, 4})
	_ = w.Add("b", BF16, []int{1}, []byte{0x80, 0x3f})
	_ = w.Add("c", I64, []int{0}, nil)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(build(hfHeader, 494512)[:2000])
	f.Add(build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Add(build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}}`, 9))
	f.Add(build(`{}`, 0))
	f.Add(binary.LittleEndian.AppendUint64(nil, 1<<63))
}

// FuzzParseHeader checks that ParseHeader never panics and that an accepted header's
// tensors tile the data section exactly.
func FuzzParseHeader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b, int64(len(b)))
		if err != nil {
			return
		}
		pos := int64(0)
		for _, ti := range h.Tensors {
			if ti.Begin != pos || ti.End-ti.Begin != int64(ti.NumElements()*ti.DType.Size()) {
				t.Fatalf("accepted bad layout: %+v at %d", ti, pos)
			}
			pos = ti.End
		}
		if h.DataOffset+pos != int64(len(b)) {
			t.Fatalf("accepted %d trailing bytes", int64(len(b))-h.DataOffset-pos)
		}
	})
}

// FuzzOpen writes the input to a file, opens it, reads every tensor, and for an accepted
// file checks the round trip through Writer: same tensors, same bytes.
func FuzzOpen(f *testing.F) {
	fuzzSeeds(f)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "f.safetensors")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, err := Open(path)
		if err != nil {
			return
		}
		defer sf.Close()
		var w Writer
		for k, v := range sf.Metadata {
			w.SetMetadata(k, v)
		}
		for _, ti := range sf.Tensors {
			data, err := sf.Bytes(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if ti.DType == F32 || ti.DType == F16 || ti.DType == BF16 || ti.DType == F64 {
				if _, _, err := sf.Float32s(ti.Name); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Add(ti.Name, ti.DType, ti.Shape, data); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-written file does not parse: %v", err)
		}
		if len(back.Tensors) != len(sf.Tensors) {
			t.Fatalf("%d tensors after round trip, want %d", len(back.Tensors), len(sf.Tensors))
		}
		for _, ti := range sf.Tensors {
			a, _ := sf.Bytes(ti.Name)
			bt, ok := back.Lookup(ti.Name)
			bb, _ := back.Bytes(ti.Name)
			if !ok || bt.DType != ti.DType || !slices.Equal(bt.Shape, ti.Shape) || !bytes.Equal(a, bb) {
				t.Fatalf("tensor %q changed in the round trip", ti.Name)
			}
		}
	})
}

// A header cannot make the parser allocate far more than its own size: a tensor of rank one
// million (a shape of zeros is 2 bytes a dimension and a valid empty tensor) is refused
// before it is decoded.
func TestHugeRankRefused(t *testing.T) {
	shape := strings.Repeat("0,", 1<<20) + "0"
	file := build(`{"a":{"dtype":"F32","shape":[`+shape+`],"data_offsets":[0,0]}}`, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ParseHeader(file, int64(len(file)))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
	// json.Decoder buffers the entry and RawMessage copies it (about 5x); decoding it, as the
	// old code did, took 20x.
	if got := after.TotalAlloc - before.TotalAlloc; got > 8*uint64(len(file)) {
		t.Errorf("refusing a %d-byte header allocated %d bytes", len(file), got)
	}
	ok := build(`{"a":{"dtype":"F32","shape":[`+strings.Repeat("1,", maxRank-1)+`1],"data_offsets":[0,4]}}`, 4)
	if _, err := ParseHeader(ok, int64(len(ok))); err != nil {
		t.Errorf("rank %d: %v", maxRank, err)
	}
}
