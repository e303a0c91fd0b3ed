package gguf

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleKVs covers every value type, empty and nested arrays.
func sampleKVs(t testing.TB) []KV {
	t.Helper()
	nested, err := NestedArray([]Value{Array([]int32{1, -2}), Array([]string{"a", ""}), Array([]uint8{})})
	if err != nil {
		t.Fatal(err)
	}
	deeper, err := NestedArray([]Value{nested, Array([]bool{true})})
	if err != nil {
		t.Fatal(err)
	}
	return []KV{
		{"general.architecture", String("test")},
		{"u8", Scalar(uint8(200))},
		{"i8", Scalar(int8(-100))},
		{"u16", Scalar(uint16(60000))},
		{"i16", Scalar(int16(-30000))},
		{"u32", Uint32(4000000000)},
		{"i32", Scalar(int32(-2000000000))},
		{"f32", Float32(float32(math.Pi))},
		{"f32.nan", Float32(math.Float32frombits(0x7fc00123))},
		{"bool.true", Bool(true)},
		{"bool.false", Bool(false)},
		{"string.empty", String("")},
		{"string.utf8", String("▁héllo\x00world")},
		{"u64", Scalar(uint64(math.MaxUint64))},
		{"i64", Scalar(int64(math.MinInt64))},
		{"f64", Scalar(math.E)},
		{"a.u8", Array([]uint8{0, 1, 255})},
		{"a.i8", Array([]int8{-128, 127})},
		{"a.u16", Array([]uint16{1, 65535})},
		{"a.i16", Array([]int16{-1, 1})},
		{"a.u32", Array([]uint32{7})},
		{"a.i32", Array([]int32{-7, 8})},
		{"a.f32", Array([]float32{1.5, -0})},
		{"a.bool", Array([]bool{true, false, true})},
		{"a.string", Array([]string{"x", "", "▁y"})},
		{"a.u64", Array([]uint64{1 << 63})},
		{"a.i64", Array([]int64{-1 << 63})},
		{"a.f64", Array([]float64{math.Inf(-1)})},
		{"a.empty", Array([]float32{})},
		{"a.nested", deeper},
	}
}

type sampleTensor struct {
	name  string
	typ   GGMLType
	shape []int
	data  []byte
}

func sampleTensors(r *rand.Rand) []sampleTensor {
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	floats := make([]float32, 3*64)
	for i := range floats {
		floats[i] = float32(r.NormFloat64())
	}
	enc := func(typ GGMLType) []byte {
		b, err := EncodeFloat32s(nil, typ, floats)
		if err != nil {
			panic(err)
		}
		return b
	}
	return []sampleTensor{
		{"f32", TypeF32, []int{3, 64}, enc(TypeF32)},
		{"f16", TypeF16, []int{3, 64}, enc(TypeF16)},
		{"bf16", TypeBF16, []int{3, 64}, enc(TypeBF16)},
		{"q8_0", TypeQ8_0, []int{3, 64}, enc(TypeQ8_0)},
		{"q4_k", TypeQ4_K, []int{2, 256}, rnd(2 * 144)},
		{"i8.odd", TypeI8, []int{7}, rnd(7)},
		{"i32.4d", TypeI32, []int{2, 1, 3, 2}, rnd(48)},
		{"f64.scalar", TypeF64, []int{}, rnd(8)},
		{"empty", TypeF32, []int{0, 5}, []byte{}},
	}
}

func writeSample(t testing.TB, w *Writer) ([]KV, []sampleTensor) {
	t.Helper()
	kvs := sampleKVs(t)
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	ts := sampleTensors(rand.New(rand.NewPCG(5, 6)))
	for i, st := range ts {
		var err error
		if i%2 == 0 {
			err = w.AddTensor(st.name, st.typ, st.shape, st.data)
		} else {
			data := st.data
			err = w.AddTensorFunc(st.name, st.typ, st.shape, func(w io.Writer) error {
				_, err := w.Write(data)
				return err
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return kvs, ts
}

func TestRoundTrip(t *testing.T) {
	for _, align := range []uint32{0, 8, 64, 4096} {
		w := &Writer{}
		if align != 0 {
			if err := w.AddKV(KeyAlignment, Uint32(align)); err != nil {
				t.Fatal(err)
			}
		}
		kvs, ts := writeSample(t, w)
		var buf bytes.Buffer
		n, err := w.WriteTo(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(buf.Len()) {
			t.Fatalf("WriteTo returned %d for %d bytes", n, buf.Len())
		}
		f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("align %d: %v", align, err)
		}
		wantAlign := uint64(align)
		if align == 0 {
			wantAlign = DefaultAlignment
			kvs = kvs[0:]
		} else {
			kvs = append([]KV{{KeyAlignment, Uint32(align)}}, kvs...)
		}
		if f.Version != 3 || f.Alignment != wantAlign || f.DataOffset%int64(wantAlign) != 0 {
			t.Errorf("version %d, alignment %d, data offset %d", f.Version, f.Alignment, f.DataOffset)
		}
		if len(f.KVs) != len(kvs) {
			t.Fatalf("%d KVs, want %d", len(f.KVs), len(kvs))
		}
		for i, kv := range kvs {
			got := f.KVs[i]
			if got.Key != kv.Key || !Equal(got.Value, kv.Value) {
				t.Errorf("KV %d = %s: %v, want %s: %v", i, got.Key, got.Value, kv.Key, kv.Value)
			}
		}
		if len(f.Tensors) != len(ts) {
			t.Fatalf("%d tensors, want %d", len(f.Tensors), len(ts))
		}
		for i, st := range ts {
			ti := f.Tensors[i]
			if ti.Name != st.name || ti.Type != st.typ || !slices.Equal(ti.Shape(), st.shape) || ti.Offset%wantAlign != 0 {
				t.Errorf("tensor %d = %+v, want %s %s %v", i, ti, st.name, st.typ, st.shape)
			}
			data, err := f.TensorData(st.name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, st.data) {
				t.Errorf("tensor %s: data differs", st.name)
			}
		}
		// Writing what was read gives the same bytes.
		w2 := &Writer{}
		for _, kv := range f.KVs {
			if err := w2.AddKV(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
		}
		for _, ti := range f.Tensors {
			data, _ := f.TensorData(ti.Name)
			if err := w2.AddTensor(ti.Name, ti.Type, ti.Shape(), data); err != nil {
				t.Fatal(err)
			}
		}
		var buf2 bytes.Buffer
		if _, err := w2.WriteTo(&buf2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Errorf("align %d: rewriting the file read back changes it", align)
		}
	}
}

func TestFloat32sAccessor(t *testing.T) {
	w := &Writer{}
	x := []float32{1, 2, 3, 4}
	b, _ := EncodeFloat32s(nil, TypeBF16, x)
	if err := w.AddTensor("t", TypeBF16, []int{2, 2}, b); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Float32s("t")
	if err != nil || !slices.Equal(got, x) {
		t.Errorf("Float32s = %v, %v", got, err)
	}
	if _, err := f.Float32s("missing"); !errors.Is(err, ErrNoTensor) {
		t.Errorf("missing tensor: %v", err)
	}
	if _, err := f.TensorData("missing"); !errors.Is(err, ErrNoTensor) {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	w := &Writer{}
	writeSample(t, w)
	if err := w.WriteFile(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Architecture() != "test" || len(f.Tensors) != 9 {
		t.Errorf("architecture %q, %d tensors", f.Architecture(), len(f.Tensors))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// A failing tensor leaves the old file and no temporary behind.
	bad := &Writer{}
	bad.AddTensorFunc("x", TypeF32, []int{4}, func(w io.Writer) error { return errors.New("boom") })
	if err := bad.WriteFile(t.Context(), path); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("WriteFile = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.WriteFile(ctx, path); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteFile with a cancelled context = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only m.gguf", len(entries))
	}
	if f, err := Open(path); err != nil {
		t.Errorf("old file damaged: %v", err)
	} else {
		f.Close()
	}
	if _, err := Open(dir); !errors.Is(err, ErrFormat) {
		t.Errorf("Open(dir) = %v", err)
	}
}

func TestWriterErrors(t *testing.T) {
	w := &Writer{}
	if err := w.AddKV("k", String("v")); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("t", TypeF32, []int{1}, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", MaxNameLen+1)
	cases := []struct {
		name string
		err  error
	}{
		{"duplicate key", w.AddKV("k", String("w"))},
		{"empty key", w.AddKV("", String("w"))},
		{"key with space", w.AddKV("a b", String("w"))},
		{"non-ASCII key", w.AddKV("ké", String("w"))},
		{"zero value", w.AddKV("z", Value{})},
		{"alignment not uint32", w.AddKV(KeyAlignment, Scalar(uint64(32)))},
		{"alignment not power of two", w.AddKV(KeyAlignment, Uint32(24))},
		{"alignment zero", w.AddKV(KeyAlignment, Uint32(0))},
		{"nested non-array", func() error { _, err := NestedArray([]Value{String("x")}); return err }()},
		{"duplicate tensor", w.AddTensor("t", TypeF32, []int{1}, make([]byte, 4))},
		{"long name", w.AddTensor(long, TypeF32, []int{1}, make([]byte, 4))},
		{"empty name", w.AddTensor("", TypeF32, []int{1}, make([]byte, 4))},
		{"NUL in name", w.AddTensor("a\x00b", TypeF32, []int{1}, make([]byte, 4))},
		{"unknown type", w.AddTensor("u", GGMLType(4), []int{1}, make([]byte, 4))},
		{"five dims", w.AddTensor("d", TypeF32, []int{1, 1, 1, 1, 1}, make([]byte, 4))},
		{"negative dim", w.AddTensor("d", TypeF32, []int{-1}, nil)},
		{"partial block", w.AddTensor("q", TypeQ8_0, []int{2, 16}, make([]byte, 34))},
		{"short data", w.AddTensor("s", TypeF32, []int{2}, make([]byte, 4))},
		{"nil func", w.AddTensorFunc("f", TypeF32, []int{2}, nil)},
		{"overflow", w.AddTensor("o", TypeF32, []int{1 << 40, 1 << 40}, nil)},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if _, err := TensorSize(TypeQ8_0, []int{3, 33}); err == nil {
		t.Error("TensorSize of a partial block")
	}
	if n, err := TensorSize(TypeQ8_0, []int{3, 64}); err != nil || n != 3*2*34 {
		t.Errorf("TensorSize = %d, %v", n, err)
	}
	// A function that writes too much or too little fails the write.
	for _, n := range []int{3, 5} {
		w := &Writer{}
		w.AddTensorFunc("t", TypeF32, []int{1}, func(w io.Writer) error {
			_, err := w.Write(make([]byte, n))
			return err
		})
		if _, err := w.WriteTo(io.Discard); err == nil {
			t.Errorf("a function writing %d of 4 bytes succeeded", n)
		}
	}
}

// header builds the start of a file by hand.
type header struct{ bytes.Buffer }

func (h *header) u32(v uint32) *header { binary.Write(h, binary.LittleEndian, v); return h }
func (h *header) u64(v uint64) *header { binary.Write(h, binary.LittleEndian, v); return h }
func (h *header) str(s string) *header { h.u64(uint64(len(s))); h.WriteString(s); return h }
func (h *header) raw(b ...byte) *header {
	h.Write(b)
	return h
}
func (h *header) pad(align int) *header {
	for h.Len()%align != 0 {
		h.WriteByte(0)
	}
	return h
}

func start(nTensors, nKV uint64) *header {
	h := &header{}
	h.WriteString("GGUF")
	return h.u32(3).u64(nTensors).u64(nKV)
}

func TestReadMalformed(t *testing.T) {
	// Two 32-byte F32 tensors, the second at offset 32.
	twoTensors := func(off2 uint64) *header {
		h := start(2, 0)
		h.str("a").u32(1).u64(8).u32(uint32(TypeF32)).u64(0)
		h.str("b").u32(1).u64(8).u32(uint32(TypeF32)).u64(off2)
		h.pad(32)
		h.Write(make([]byte, 64))
		return h
	}
	if _, err := Read(bytes.NewReader(twoTensors(32).Bytes()), int64(twoTensors(32).Len())); err != nil {
		t.Fatalf("the well-formed base case fails: %v", err)
	}
	cases := map[string][]byte{
		"empty":             nil,
		"bad magic":         []byte("GGUG\x03\x00\x00\x00"),
		"version 1":         (&header{Buffer: *bytes.NewBufferString("GGUF")}).u32(1).u64(0).u64(0).Bytes(),
		"version 4":         (&header{Buffer: *bytes.NewBufferString("GGUF")}).u32(4).u64(0).u64(0).Bytes(),
		"big endian":        (&header{Buffer: *bytes.NewBufferString("GGUF")}).u32(3 << 24).u64(0).u64(0).Bytes(),
		"truncated counts":  start(0, 0).Bytes()[:20],
		"huge kv count":     start(0, math.MaxUint64).Bytes(),
		"huge tensor count": start(math.MaxUint64, 0).Bytes(),
		"kv count too big":  start(0, 2).str("a").u32(uint32(TypeUint8)).raw(1).Bytes(),
		"huge key length":   start(0, 1).u64(math.MaxUint64).raw(make([]byte, 16)...).Bytes(),
		"key past the end":  start(0, 1).u64(100).raw('a', 'b').Bytes(),
		"empty key":         start(0, 1).str("").u32(uint32(TypeUint8)).raw(1).Bytes(),
		"control in key":    start(0, 1).str("a\nb").u32(uint32(TypeUint8)).raw(1).Bytes(),
		"duplicate key":     start(0, 2).str("a").u32(uint32(TypeUint8)).raw(1).str("a").u32(uint32(TypeUint8)).raw(2).Bytes(),
		"bad value type":    start(0, 1).str("a").u32(13).raw(make([]byte, 16)...).Bytes(),
		"bool 2":            start(0, 1).str("a").u32(uint32(TypeBool)).raw(2).Bytes(),
		"huge string":       start(0, 1).str("a").u32(uint32(TypeString)).u64(math.MaxUint64).Bytes(),
		"string past end":   start(0, 1).str("a").u32(uint32(TypeString)).u64(10).raw('x').Bytes(),
		"huge array":        start(0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1 << 62).raw(make([]byte, 64)...).Bytes(),
		"huge string array": start(0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 40).Bytes(),
		"array bad elem":    start(0, 1).str("a").u32(uint32(TypeArray)).u32(77).u64(0).Bytes(),
		"array bad bool":    start(0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeBool)).u64(2).raw(1, 3).Bytes(),
		"deep nesting": func() []byte {
			h := start(0, 1).str("a").u32(uint32(TypeArray))
			for range 20 {
				h.u32(uint32(TypeArray)).u64(1)
			}
			return h.u32(uint32(TypeUint8)).u64(0).Bytes()
		}(),
		"alignment not u32":    start(0, 1).str(KeyAlignment).u32(uint32(TypeUint64)).u64(32).Bytes(),
		"alignment 0":          start(0, 1).str(KeyAlignment).u32(uint32(TypeUint32)).u32(0).Bytes(),
		"alignment 48":         start(0, 1).str(KeyAlignment).u32(uint32(TypeUint32)).u32(48).Bytes(),
		"long tensor name":     start(1, 0).str(strings.Repeat("x", 64)).u32(1).u64(1).u32(0).u64(0).pad(32).raw(0, 0, 0, 0).Bytes(),
		"tensor name not utf8": start(1, 0).str("\xff").u32(1).u64(1).u32(0).u64(0).pad(32).raw(0, 0, 0, 0).Bytes(),
		"five dims":            start(1, 0).str("t").u32(5).u64(1).u64(1).u64(1).u64(1).u64(1).u32(0).u64(0).pad(32).raw(0, 0, 0, 0).Bytes(),
		"unknown tensor type":  start(1, 0).str("t").u32(1).u64(1).u32(4).u64(0).pad(32).raw(0, 0, 0, 0).Bytes(),
		"partial block":        start(1, 0).str("t").u32(1).u64(31).u32(uint32(TypeQ8_0)).u64(0).pad(32).raw(make([]byte, 34)...).Bytes(),
		"element overflow":     start(1, 0).str("t").u32(2).u64(1 << 32).u64(1 << 32).u32(0).u64(0).pad(32).Bytes(),
		"dim above int64":      start(1, 0).str("t").u32(1).u64(1 << 63).u32(uint32(TypeI8)).u64(0).pad(32).Bytes(),
		"byte size overflow":   start(1, 0).str("t").u32(1).u64(1 << 62).u32(uint32(TypeF64)).u64(0).pad(32).Bytes(),
		"duplicate tensor":     start(2, 0).str("t").u32(1).u64(1).u32(0).u64(0).str("t").u32(1).u64(1).u32(0).u64(32).pad(32).raw(make([]byte, 36)...).Bytes(),
		"unaligned offset":     twoTensors(33).Bytes(),
		"overlap":              twoTensors(0).Bytes(),
		"partial overlap": func() []byte {
			h := start(2, 1).str(KeyAlignment).u32(uint32(TypeUint32)).u32(8)
			h.str("a").u32(1).u64(8).u32(uint32(TypeF32)).u64(0)
			h.str("b").u32(1).u64(8).u32(uint32(TypeF32)).u64(16)
			return h.pad(8).raw(make([]byte, 64)...).Bytes()
		}(),
		"out of range":          twoTensors(64).Bytes(),
		"offset overflow":       twoTensors(math.MaxUint64 - 31).Bytes(),
		"no data section":       start(1, 0).str("t").u32(1).u64(1).u32(0).u64(0).Bytes(),
		"truncated tensor data": twoTensors(32).Bytes()[:twoTensors(32).Len()-1],
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(data), int64(len(data)))
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Read = %v, %v; want an ErrFormat error", f, err)
			}
		})
	}
	if _, err := Read(bytes.NewReader(nil), -1); !errors.Is(err, ErrFormat) {
		t.Errorf("negative size: %v", err)
	}
}

// TestReadTruncations reads every prefix of a complete file: each must fail cleanly.
func TestReadTruncations(t *testing.T) {
	w := &Writer{}
	writeSample(t, w)
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for n := range len(b) {
		if _, err := Read(bytes.NewReader(b[:n]), int64(n)); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d/%d bytes: %v", n, len(b), err)
		}
	}
	// A file without tensors needs no padding after its metadata (gguf-py's vocab-only files).
	v := &Writer{}
	v.AddKV("general.architecture", String("t5"))
	buf.Reset()
	v.WriteTo(&buf)
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil || len(f.Tensors) != 0 {
		t.Fatalf("metadata-only file: %v", err)
	}
}

// TestReadV2 accepts version 2 files (same layout as 3).
func TestReadV2(t *testing.T) {
	w := &Writer{}
	writeSample(t, w)
	var buf bytes.Buffer
	w.WriteTo(&buf)
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[4:], 2)
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	if err != nil || f.Version != 2 {
		t.Fatalf("v2: %v", err)
	}
}

func TestValueAccessors(t *testing.T) {
	if x, ok := Scalar(int8(-3)).Int(); !ok || x != -3 {
		t.Error("Int of int8")
	}
	if _, ok := Scalar(int8(-3)).Uint(); ok {
		t.Error("Uint of a negative int8")
	}
	if x, ok := Scalar(uint16(9)).Int(); !ok || x != 9 {
		t.Error("Int of uint16")
	}
	if _, ok := Scalar(uint64(math.MaxUint64)).Int(); ok {
		t.Error("Int of MaxUint64")
	}
	if x, ok := Scalar(int64(5)).Uint(); !ok || x != 5 {
		t.Error("Uint of int64")
	}
	if x, ok := Float32(0.5).Float(); !ok || x != 0.5 {
		t.Error("Float")
	}
	if s, ok := String("s").Str(); !ok || s != "s" {
		t.Error("Str")
	}
	if b, ok := Bool(true).Bool(); !ok || !b {
		t.Error("Bool")
	}
	if _, ok := String("s").Float(); ok {
		t.Error("Float of a string")
	}
	a := Array([]string{"a", "b"})
	if xs, ok := ArrayOf[string](a); !ok || len(xs) != 2 || a.Len() != 2 || a.ElemType() != TypeString || a.Type() != TypeArray {
		t.Error("ArrayOf")
	}
	if _, ok := ArrayOf[int32](a); ok {
		t.Error("ArrayOf with the wrong type")
	}
	if Equal(Float32(1), Scalar(1.0)) || !Equal(Array([]float64{math.NaN()}), Array([]float64{math.NaN()})) {
		t.Error("Equal")
	}
	if Array[int32](nil).Len() != 0 || String("x").String() != `"x"` || a.String() == "" {
		t.Error("String or nil array")
	}
}
