package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// hfHeader is the header that Hugging Face's safetensors (via transformers v4.30.2,
// torch 1.13.1) wrote for shared/golden/tiny-relu/golden_tensors.safetensors.
const hfHeader = `{"__metadata__":{"format":"pt"},"decoder.input_ids":{"dtype":"I64","shape":[5,9],"data_offsets":[0,360]},"encoder.attention_mask":{"dtype":"I64","shape":[5,27],"data_offsets":[360,1440]},"encoder.input_ids":{"dtype":"I64","shape":[5,27],"data_offsets":[1440,2520]},"loglik.labels":{"dtype":"I64","shape":[5,16],"data_offsets":[2520,3160]},"long.input_ids":{"dtype":"I64","shape":[1,203],"data_offsets":[3160,4784]},"decoder.last_hidden_state":{"dtype":"F32","shape":[5,9,64],"data_offsets":[4784,16304]},"decoder.logits":{"dtype":"F32","shape":[5,9,2176],"data_offsets":[16304,407984]},"encoder.last_hidden_state":{"dtype":"F32","shape":[5,27,64],"data_offsets":[407984,442544]},"long.encoder.last_hidden_state":{"dtype":"F32","shape":[1,203,64],"data_offsets":[442544,494512]}}      `

// TestWriterMatchesHF writes the tensors of the HF file above (in a shuffled order) and
// expects HF's header byte for byte.
func TestWriterMatchesHF(t *testing.T) {
	var w Writer
	w.SetMetadata("format", "pt")
	add := []struct {
		name  string
		dtype DType
		shape []int
	}{
		{"long.encoder.last_hidden_state", F32, []int{1, 203, 64}},
		{"encoder.last_hidden_state", F32, []int{5, 27, 64}},
		{"decoder.logits", F32, []int{5, 9, 2176}},
		{"loglik.labels", I64, []int{5, 16}},
		{"decoder.input_ids", I64, []int{5, 9}},
		{"decoder.last_hidden_state", F32, []int{5, 9, 64}},
		{"encoder.attention_mask", I64, []int{5, 27}},
		{"long.input_ids", I64, []int{1, 203}},
		{"encoder.input_ids", I64, []int{5, 27}},
	}
	for _, a := range add {
		n := 1
		for _, d := range a.shape {
			n *= d
		}
		if err := w.Add(a.name, a.dtype, a.shape, make([]byte, n*a.dtype.Size())); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if got := binary.LittleEndian.Uint64(b); got != uint64(len(hfHeader)) {
		t.Fatalf("header length %d, want %d", got, len(hfHeader))
	}
	if got := string(b[8 : 8+len(hfHeader)]); got != hfHeader {
		t.Fatalf("header differs from HF's:\n got %s\nwant %s", got, hfHeader)
	}
	if len(b) != 495304 {
		t.Fatalf("file size %d, want 495304 (HF's)", len(b))
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	var w Writer
	w.SetMetadata("format", "pt")
	a := []float32{1, -2.5, float32(math.Inf(1)), 3e-38, 0, 7}
	if err := w.AddFloat32("a", []int{2, 3}, a); err != nil {
		t.Fatal(err)
	}
	// F16: 1.0, -2.0, 65504 (max), smallest subnormal 2^-24, +inf, -0.
	f16 := []uint16{0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000}
	f16b := make([]byte, 2*len(f16))
	for i, v := range f16 {
		binary.LittleEndian.PutUint16(f16b[2*i:], v)
	}
	if err := w.Add("h", F16, []int{6}, f16b); err != nil {
		t.Fatal(err)
	}
	// BF16: 1.0, -3.0.
	if err := w.Add("bf", BF16, []int{2}, []byte{0x80, 0x3f, 0x40, 0xc0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Add("scalar", I64, nil, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add("empty", F32, []int{0, 4}, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if f.DataOffset%8 != 0 {
		t.Errorf("data offset %d not 8-aligned", f.DataOffset)
	}
	got, aliased, err := f.Float32s("a")
	if err != nil {
		t.Fatal(err)
	}
	if !aliased || !slices.Equal(got, a) {
		t.Errorf("a = %v (aliased %v), want %v in place", got, aliased, a)
	}
	h, _, err := f.Float32s("h")
	if err != nil {
		t.Fatal(err)
	}
	wantH := []float32{1, -2, 65504, float32(math.Ldexp(1, -24)), float32(math.Inf(1)), float32(math.Copysign(0, -1))}
	for i := range h {
		if math.Float32bits(h[i]) != math.Float32bits(wantH[i]) {
			t.Errorf("f16[%d] = %v, want %v", i, h[i], wantH[i])
		}
	}
	bf, _, err := f.Float32s("bf")
	if err != nil || !slices.Equal(bf, []float32{1, -3}) {
		t.Errorf("bf16 = %v, %v", bf, err)
	}
	if ti, ok := f.Lookup("scalar"); !ok || len(ti.Shape) != 0 || ti.NumElements() != 1 {
		t.Errorf("scalar = %+v", ti)
	}
	if _, _, err := f.Float32s("scalar"); err == nil {
		t.Error("Float32s of an I64 tensor succeeded")
	}
	if _, err := f.Bytes("nope"); !errors.Is(err, ErrNoTensor) {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestF16Subnormals(t *testing.T) {
	for h := uint32(0); h < 1<<16; h++ {
		got := F16ToF32(uint16(h))
		// Reference: decode by arithmetic.
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e := int(h>>10) & 0x1f
		m := float64(h & 0x3ff)
		var want float64
		switch e {
		case 0:
			want = sign * m * math.Ldexp(1, -24)
		case 0x1f:
			if m != 0 {
				if !math.IsNaN(float64(got)) {
					t.Fatalf("%#04x: got %v, want NaN", h, got)
				}
				continue
			}
			want = math.Inf(int(sign))
		default:
			want = sign * (1 + m/1024) * math.Ldexp(1, e-15)
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

// build assembles a file from a raw header string and n data bytes.
func build(header string, n int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, n)...)
}

func TestParseErrors(t *testing.T) {
	good := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "truncated"},
		{"short length", []byte{1, 0, 0}, "truncated"},
		{"header past end", build(good, 8)[:20], "truncated"},
		{"huge header length", binary.LittleEndian.AppendUint64(nil, 1<<40), "exceeds the limit"},
		{"data truncated", build(good, 4), "truncated"},
		{"trailing data", build(good, 12), "trailing data"},
		{"not an object", build(`[1,2]`, 0), "does not start with a JSON object"},
		{"bad json", build(`{"a":`, 0), "header JSON"},
		{"junk after json", build(`{} x`, 0), "trailing data after the JSON object"},
		{"invalid utf8", build("{\"\xff\":1}", 0), "UTF-8"},
		{"duplicate key", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "duplicate key"},
		{"unknown dtype", build(`{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, 8), "unknown dtype"},
		{"unknown field", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, 8), "unknown field"},
		{"case-folded field", build(`{"a":{"DTYPE":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), "unknown field"},
		{"missing field", build(`{"a":{"dtype":"F32","shape":[2]}}`, 8), "required"},
		{"size mismatch", build(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "needs 3 elements"},
		{"negative dim", build(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), "not a non-negative integer"},
		{"fractional dim", build(`{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, 8), "not a non-negative integer"},
		{"overflowing shape", build(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, 8), "overflows"},
		{"three offsets", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}`, 8), "want 2"},
		{"reversed offsets", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8), "end before they begin"},
		{"gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "gap"},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "overlaps"},
		{"out of range", build(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8), "truncated"},
		{"metadata not strings", build(`{"__metadata__":{"a":1}}`, 0), "not a string"},
		{"empty name", build(`{"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}`, 0), "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.file)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			// Open must agree with Parse.
			path := filepath.Join(t.TempDir(), "f.safetensors")
			if err := os.WriteFile(path, tt.file, 0o644); err != nil {
				t.Fatal(err)
			}
			if f, err := Open(path); err == nil {
				f.Close()
				t.Error("Open succeeded")
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name   string
		header string
		n      int
	}{
		{"empty", `{}`, 0},
		{"padded", `{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}   ` + "\n", 3},
		{"null metadata", `{"__metadata__":null}`, 0},
		{"zero-size tensors", `{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(build(tt.header, tt.n)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestUnalignedCopies checks that F32 data at an address that is not 4-byte aligned is
// copied, not aliased.
func TestUnalignedCopies(t *testing.T) {
	buf := make([]byte, 64)
	off := 1
	for uintptr(unsafe.Pointer(&buf[off]))%4 == 0 {
		off++
	}
	b := buf[off : off+8]
	binary.LittleEndian.PutUint32(b, math.Float32bits(1.5))
	binary.LittleEndian.PutUint32(b[4:], math.Float32bits(-2))
	v, aliased, err := Float32s(F32, b)
	if err != nil || aliased || !slices.Equal(v, []float32{1.5, -2}) {
		t.Fatalf("got %v aliased=%v err=%v", v, aliased, err)
	}
}

func TestWriterRejects(t *testing.T) {
	var w Writer
	if err := w.Add("a", F32, []int{2}, make([]byte, 4)); err == nil {
		t.Error("size mismatch accepted")
	}
	if err := w.Add("a", "X", []int{2}, make([]byte, 8)); err == nil {
		t.Error("unknown dtype accepted")
	}
	if err := w.Add("__metadata__", F32, nil, make([]byte, 4)); err == nil {
		t.Error("reserved name accepted")
	}
	if err := w.Add("a", F32, []int{1}, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add("a", F32, []int{1}, make([]byte, 4)); err == nil {
		t.Error("duplicate accepted")
	}
}
