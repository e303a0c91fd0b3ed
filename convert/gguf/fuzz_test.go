package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/safetensors"
	"github.com/t5zoo/t5zoo/convert/spm"
)

// tinyT5 exports a small random T5 (d_model 32, vocab 64) with a real metadata layout, to seed
// the fuzzers with a file that is short enough to mutate quickly.
func tinyT5(t testing.TB) []byte {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers, s.VocabSize = 32, 32, 8, 2, 1, 1, 64
	r := rand.New(rand.NewPCG(7, 8))
	m := mapSource{map[string]safetensors.DType{}, map[string][]int{}, map[string][]byte{}}
	for _, ct := range s.Tensors() {
		x := make([]float32, ct.Elements())
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		b, _ := EncodeFloat32s(nil, TypeF32, x)
		m.dtype[ct.Name], m.shapes[ct.Name], m.data[ct.Name] = safetensors.F32, ct.Shape, b
	}
	v := Vocab{Pieces: []spm.Piece{{Text: "<pad>", Type: spm.Control}, {Text: "</s>", Type: spm.Control}, {Text: "<unk>", Type: spm.Unknown}, {Text: "▁a", Score: -1, Type: spm.Normal}},
		PrecompiledCharsmap: []byte{1, 2, 3}, AddSpacePrefix: true, ExtraIDs: 4}
	var buf bytes.Buffer
	if _, err := ExportT5(t.Context(), &buf, s, m, v, ExportOptions{Type: TypeQ8_0}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzRead(f *testing.F) {
	w := &Writer{}
	writeSample(f, w)
	var sample bytes.Buffer
	if _, err := w.WriteTo(&sample); err != nil {
		f.Fatal(err)
	}
	tiny := tinyT5(f)
	g := loadGolden(f, "tiny-relu")
	golden, _ := export(f, g, Safetensors(g.st), ExportOptions{Type: TypeQ8_0, TiedHead: TiedHeadShared})
	for _, seed := range [][]byte{sample.Bytes(), tiny, golden, golden[:4096], golden[:len(golden)/2], tiny[:len(tiny)-1], tiny[:100]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		// Everything a valid file describes can be read and written back unchanged.
		w := &Writer{}
		for _, kv := range file.KVs {
			if err := w.AddKV(kv.Key, kv.Value); err != nil {
				t.Fatalf("KV read back is not writable: %v", err)
			}
		}
		for _, ti := range file.Tensors {
			d, err := file.TensorData(ti.Name)
			if err != nil {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
			if err := w.AddTensor(ti.Name, ti.Type, ti.Shape(), d); err != nil {
				t.Fatalf("tensor read back is not writable: %v", err)
			}
			if ti.Type == TypeF32 || ti.Type == TypeF16 || ti.Type == TypeBF16 || ti.Type == TypeQ8_0 {
				if _, err := file.Float32s(ti.Name); err != nil {
					t.Fatalf("tensor %q: %v", ti.Name, err)
				}
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		again, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("rewritten file does not read: %v", err)
		}
		compareFiles(t, file, again)
	})
}

func compareFiles(t *testing.T, a, b *File) {
	t.Helper()
	if len(a.KVs) != len(b.KVs) || len(a.Tensors) != len(b.Tensors) || a.Alignment != b.Alignment {
		t.Fatalf("%d KVs, %d tensors, alignment %d; then %d, %d, %d", len(a.KVs), len(a.Tensors), a.Alignment, len(b.KVs), len(b.Tensors), b.Alignment)
	}
	for i := range a.KVs {
		if a.KVs[i].Key != b.KVs[i].Key || !Equal(a.KVs[i].Value, b.KVs[i].Value) {
			t.Fatalf("KV %d: %s = %v, then %s = %v", i, a.KVs[i].Key, a.KVs[i].Value, b.KVs[i].Key, b.KVs[i].Value)
		}
	}
	for i := range a.Tensors {
		ta, tb := a.Tensors[i], b.Tensors[i]
		if ta.Name != tb.Name || ta.Type != tb.Type || !slices.Equal(ta.Dims, tb.Dims) || ta.Size != tb.Size {
			t.Fatalf("tensor %d: %+v, then %+v", i, ta, tb)
		}
		da, _ := a.TensorData(ta.Name)
		db, _ := b.TensorData(tb.Name)
		if !bytes.Equal(da, db) {
			t.Fatalf("tensor %q: data differs", ta.Name)
		}
	}
}

// randomValue builds a random metadata value, arrays of arrays up to depth levels.
func randomValue(r *rand.Rand, depth int) Value {
	str := func() string {
		var b strings.Builder
		runes := []rune("aZ0 ▁é\x00😀")
		for range r.IntN(6) {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
		return b.String()
	}
	n := r.IntN(5)
	k := r.IntN(26)
	if depth <= 0 && k == 25 {
		k = 24
	}
	switch k {
	case 0:
		return Scalar(uint8(r.Uint32()))
	case 1:
		return Scalar(int8(r.Uint32()))
	case 2:
		return Scalar(uint16(r.Uint32()))
	case 3:
		return Scalar(int16(r.Uint32()))
	case 4:
		return Uint32(r.Uint32())
	case 5:
		return Scalar(int32(r.Uint32()))
	case 6:
		return Float32(math.Float32frombits(r.Uint32()))
	case 7:
		return Bool(r.IntN(2) == 1)
	case 8:
		return String(str())
	case 9:
		return Scalar(r.Uint64())
	case 10:
		return Scalar(int64(r.Uint64()))
	case 11:
		return Scalar(math.Float64frombits(r.Uint64()))
	case 12:
		return Array(fill(n, func() uint8 { return uint8(r.Uint32()) }))
	case 13:
		return Array(fill(n, func() int8 { return int8(r.Uint32()) }))
	case 14:
		return Array(fill(n, func() uint16 { return uint16(r.Uint32()) }))
	case 15:
		return Array(fill(n, func() int16 { return int16(r.Uint32()) }))
	case 16:
		return Array(fill(n, r.Uint32))
	case 17:
		return Array(fill(n, func() int32 { return int32(r.Uint32()) }))
	case 18:
		return Array(fill(n, func() float32 { return math.Float32frombits(r.Uint32()) }))
	case 19:
		return Array(fill(n, func() bool { return r.IntN(2) == 0 }))
	case 20:
		return Array(fill(n, str))
	case 21:
		return Array(fill(n, r.Uint64))
	case 22:
		return Array(fill(n, func() int64 { return int64(r.Uint64()) }))
	case 23:
		return Array(fill(n, func() float64 { return math.Float64frombits(r.Uint64()) }))
	case 24:
		return Array([]string{})
	}
	var xs []Value
	for range n {
		for {
			if v := randomValue(r, depth-1); v.Type() == TypeArray {
				xs = append(xs, v)
				break
			}
		}
	}
	v, err := NestedArray(xs)
	if err != nil {
		panic(err)
	}
	return v
}

func fill[T any](n int, f func() T) []T {
	xs := make([]T, n)
	for i := range xs {
		xs[i] = f()
	}
	return xs
}

// FuzzWriteRead writes random metadata and tensors and reads them back.
func FuzzWriteRead(f *testing.F) {
	f.Add(uint64(1), uint64(2), uint8(3), uint8(2), uint8(0))
	f.Add(uint64(9), uint64(0), uint8(40), uint8(9), uint8(3))
	f.Add(uint64(0), uint64(0), uint8(0), uint8(0), uint8(7))
	f.Fuzz(func(t *testing.T, s1, s2 uint64, nKV, nTensors, alignLog uint8) {
		r := rand.New(rand.NewPCG(s1, s2))
		w := &Writer{}
		var kvs []KV
		if alignLog%8 != 0 {
			a := Uint32(1 << (alignLog % 8 * 2)) // 4 .. 16384
			if err := w.AddKV(KeyAlignment, a); err != nil {
				t.Fatal(err)
			}
			kvs = append(kvs, KV{KeyAlignment, a})
		}
		for i := range int(nKV % 64) {
			kv := KV{fmt.Sprintf("k%d.%c", i, 'a'+r.IntN(26)), randomValue(r, int(maxNesting)-1)}
			if err := w.AddKV(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
			kvs = append(kvs, kv)
		}
		types := []GGMLType{TypeF32, TypeF16, TypeBF16, TypeQ8_0, TypeQ4_0, TypeQ4_K, TypeI8, TypeI64, TypeF64, TypeMXFP4, TypeTQ1_0}
		var tensors []sampleTensor
		for i := range int(nTensors % 16) {
			typ := types[r.IntN(len(types))]
			shape := make([]int, r.IntN(MaxDims)+1)
			for j := range shape {
				shape[j] = r.IntN(4)
			}
			shape[len(shape)-1] *= typ.BlockSize()
			size, err := TensorSize(typ, shape)
			if err != nil {
				t.Fatal(err)
			}
			data := fill(int(size), func() byte { return byte(r.Uint32()) })
			name := fmt.Sprintf("blk.%d.▁%s", i, strings.Repeat("x", r.IntN(40)))
			if err := w.AddTensor(name, typ, shape, data); err != nil {
				t.Fatal(err)
			}
			tensors = append(tensors, sampleTensor{name, typ, shape, data})
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		file, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if len(file.KVs) != len(kvs) || len(file.Tensors) != len(tensors) {
			t.Fatalf("%d KVs and %d tensors, want %d and %d", len(file.KVs), len(file.Tensors), len(kvs), len(tensors))
		}
		for i, kv := range kvs {
			if file.KVs[i].Key != kv.Key || !Equal(file.KVs[i].Value, kv.Value) {
				t.Fatalf("KV %d: %s = %v, want %s = %v", i, file.KVs[i].Key, file.KVs[i].Value, kv.Key, kv.Value)
			}
		}
		for i, st := range tensors {
			ti := file.Tensors[i]
			if ti.Name != st.name || ti.Type != st.typ || !slices.Equal(ti.Shape(), st.shape) || ti.Offset%file.Alignment != 0 {
				t.Fatalf("tensor %d: %+v, want %s %s %v", i, ti, st.name, st.typ, st.shape)
			}
			d, err := file.TensorData(st.name)
			if err != nil || !bytes.Equal(d, st.data) {
				t.Fatalf("tensor %q: data differs (%v)", st.name, err)
			}
		}
	})
}
