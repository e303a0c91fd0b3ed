package pytorch

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/convert/safetensors"
)

const golden = "../../testdata/golden/"

// Each golden pytorch_model.bin holds exactly the tensors of its model.safetensors, bit for
// bit, plus the embed_tokens entries that alias shared.weight.
func TestGoldenMatchesSafetensors(t *testing.T) {
	for _, m := range []string{"tiny-relu", "tiny-gated"} {
		t.Run(m, func(t *testing.T) {
			sd, err := Open(golden + m + "/checkpoint/pytorch_model.bin")
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			st, err := safetensors.Open(golden + m + "/checkpoint/model.safetensors")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()

			shared, ok := sd.Tensor("shared.weight")
			if !ok {
				t.Fatal("no shared.weight")
			}
			seen := 0
			for _, tn := range sd.Tensors() {
				info, inSafetensors := st.Lookup(tn.Name)
				if !inSafetensors {
					// HF drops the aliases of shared.weight (embed_tokens, and lm_head when
					// tied) from model.safetensors.
					if !tn.SameData(shared) {
						t.Errorf("%s: not in model.safetensors and not an alias of shared.weight", tn.Name)
					}
					continue
				}
				seen++
				if tn.DType != info.DType || !equalInts(tn.Shape, info.Shape) {
					t.Errorf("%s: %s%v, safetensors %s%v", tn.Name, tn.DType, tn.Shape, info.DType, info.Shape)
				}
				got, err := sd.ReadRaw(tn.Name)
				if err != nil {
					t.Fatal(err)
				}
				want, err := st.Bytes(tn.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: bytes differ", tn.Name)
				}
			}
			if seen != len(st.Tensors) {
				t.Errorf("matched %d of %d safetensors tensors", seen, len(st.Tensors))
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// zipWith builds a torch-style archive holding the given pickle and storages.
func zipWith(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(name string, b []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	add("archive/data.pkl", pkl)
	for k, b := range storages {
		add("archive/data/"+k, b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// pickle assembles protocol-2 opcodes for tests.
type pickle struct{ bytes.Buffer }

func (p *pickle) op(b ...byte) *pickle { p.Write(b); return p }
func (p *pickle) str(s string) *pickle {
	p.WriteByte('X')
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}
func (p *pickle) global(mod, name string) *pickle {
	p.WriteString("c" + mod + "\n" + name + "\n")
	return p
}
func (p *pickle) int(v int32) *pickle {
	p.WriteByte('J')
	binary.Write(&p.Buffer, binary.LittleEndian, v)
	return p
}

// tensorPickle is {name: _rebuild_tensor_v2(storage key "0" of n floats, offset, (shape...), (stride...), False, OrderedDict())}.
func tensorPickle(name string, n, offset int32, shape, stride []int32) []byte {
	p := &pickle{}
	p.op(0x80, 2, '}', '(').str(name)
	p.global("torch._utils", "_rebuild_tensor_v2").op('(')
	p.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(n).op('t', 'Q')
	p.int(offset)
	p.op('(')
	for _, d := range shape {
		p.int(d)
	}
	p.op('t', '(')
	for _, d := range stride {
		p.int(d)
	}
	p.op('t', 0x89).global("collections", "OrderedDict").op(')', 'R', 't', 'R', 'u', '.')
	return p.Bytes()
}

func floats(v ...float32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, v)
	return b.Bytes()
}

func TestSyntheticStateDict(t *testing.T) {
	data := zipWith(t, tensorPickle("w", 6, 2, []int32{2, 2}, []int32{2, 1}), map[string][]byte{"0": floats(0, 1, 2, 3, 4, 5)})
	sd, err := NewReader(bytes.NewReader(data), int64(len(data)), "mem")
	if err != nil {
		t.Fatal(err)
	}
	tn := sd.Tensors()
	if len(tn) != 1 || tn[0].Name != "w" || tn[0].DType != safetensors.F32 || !equalInts(tn[0].Shape, []int{2, 2}) || tn[0].Offset != 2 {
		t.Fatalf("tensors %+v", tn)
	}
	raw, err := sd.ReadRaw("w")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, floats(2, 3, 4, 5)) {
		t.Fatalf("raw %v", raw)
	}
}

func TestBadStateDicts(t *testing.T) {
	good := map[string][]byte{"0": floats(0, 1, 2, 3)}
	evil := (&pickle{}).op(0x80, 2).global("os", "system").str("echo pwned").op(0x85, 'R', '.').Bytes()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"malicious global", zipWith(t, evil, nil), "global os.system is not allowed"},
		{"builtins eval", zipWith(t, (&pickle{}).op(0x80, 2).global("builtins", "eval").op('.').Bytes(), nil), "not allowed"},
		{"non contiguous", zipWith(t, tensorPickle("w", 4, 0, []int32{2, 2}, []int32{1, 2}), good), "not contiguous"},
		{"past storage", zipWith(t, tensorPickle("w", 4, 2, []int32{2, 2}, []int32{2, 1}), good), "outside storage"},
		{"storage too short", zipWith(t, tensorPickle("w", 8, 0, []int32{2, 2}, []int32{2, 1}), good), "needs 32"},
		{"missing storage", zipWith(t, tensorPickle("w", 4, 0, []int32{2, 2}, []int32{2, 1}), nil), "no entry data/0"},
		{"truncated pickle", zipWith(t, tensorPickle("w", 4, 0, []int32{2, 2}, []int32{2, 1})[:40], good), "truncated"},
		{"not a dict", zipWith(t, (&pickle{}).op(0x80, 2, 'N', '.').Bytes(), nil), "not a state dict"},
		{"too many values", zipWith(t, append(append([]byte{0x80, 2, ']'}, bytes.Repeat([]byte{'N', 'a'}, maxValues)...), '.'), nil), "more than 4194304 values"},
		{"unknown opcode", zipWith(t, []byte{0x80, 2, 'i', '.'}, nil), "opcode 0x69"},
		{"not zip", []byte("hello, this is not a zip file at all"), "not a PyTorch zip archive"},
		{"legacy", append([]byte(legacyMagic), 0, 0, 0), "legacy torch.save format"},
		{"no data.pkl", func() []byte {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			zw.Create("archive/other")
			zw.Close()
			return b.Bytes()
		}(), "no <archive>/data.pkl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tt.data), int64(len(tt.data)), "bad.bin")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "bad.bin") {
				t.Fatalf("err = %v, want one naming bad.bin and containing %q", err, tt.want)
			}
		})
	}
}

func TestTruncatedGolden(t *testing.T) {
	data, err := os.ReadFile(golden + "tiny-relu/checkpoint/pytorch_model.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 10, len(data) / 2, len(data) - 100, len(data) - 1} {
		if _, err := NewReader(bytes.NewReader(data[:n]), int64(n), "cut.bin"); err == nil {
			t.Errorf("truncated to %d bytes: accepted", n)
		}
	}
}

func FuzzReader(f *testing.F) {
	data, err := os.ReadFile(golden + "tiny-relu/checkpoint/pytorch_model.bin")
	if err != nil {
		f.Fatal(err)
	}
	// Seed with the golden pickle inside a small archive so that mutations reach the pickle
	// machine, and with a synthetic state dict.
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		f.Fatal(err)
	}
	for _, zf := range zr.File {
		if strings.HasSuffix(zf.Name, "data.pkl") {
			pkl, err := (&File{size: int64(len(data))}).readEntry(zf, maxPickleBytes)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(pkl)
		}
	}
	f.Add(tensorPickle("w", 4, 0, []int32{2, 2}, []int32{2, 1}))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		archive := zipWith(t, pkl, map[string][]byte{"0": make([]byte, 1<<16), "1": make([]byte, 64)})
		sd, err := NewReader(bytes.NewReader(archive), int64(len(archive)), "fuzz.bin")
		if err != nil {
			return
		}
		for _, tn := range sd.Tensors() {
			raw, err := sd.ReadRaw(tn.Name)
			if err != nil {
				t.Fatalf("listed tensor %q unreadable: %v", tn.Name, err)
			}
			if int64(len(raw)) != tn.Elements()*int64(tn.DType.Size()) {
				t.Fatalf("%s: %d bytes for %d elements", tn.Name, len(raw), tn.Elements())
			}
		}
	})
}
