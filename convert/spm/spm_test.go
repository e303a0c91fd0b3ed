package spm

import (
	"errors"
	"math"
	"os"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

const goldenModel = "../../testdata/golden/tiny-relu/checkpoint/spiece.model"

func TestParseGolden(t *testing.T) {
	m, err := Open(goldenModel)
	if err != nil {
		t.Fatal(err)
	}
	// testdata/golden/README.md: 2,000 unigram pieces, <pad>=0, </s>=1, <unk>=2, nmt_nfkc,
	// dummy prefix, extra whitespace removal.
	if len(m.Pieces) != 2000 {
		t.Errorf("%d pieces, want 2000", len(m.Pieces))
	}
	want := []Piece{{"<pad>", 0, Control}, {"</s>", 0, Control}, {"<unk>", 0, Unknown}}
	if !slices.Equal(m.Pieces[:3], want) {
		t.Errorf("first pieces %v, want %v", m.Pieces[:3], want)
	}
	if m.ModelType != Unigram || m.NormalizerName != "nmt_nfkc" || !m.AddDummyPrefix || !m.RemoveExtraWhitespaces {
		t.Errorf("model type %d, normalizer %q, flags %v %v", m.ModelType, m.NormalizerName, m.AddDummyPrefix, m.RemoveExtraWhitespaces)
	}
	if len(m.PrecompiledCharsmap) == 0 {
		t.Error("no precompiled charsmap")
	}
	if m.UnknownID() != 2 {
		t.Errorf("UnknownID = %d", m.UnknownID())
	}
	for i, p := range m.Pieces[3:] {
		if p.Type != Normal || p.Score >= 0 || math.IsNaN(float64(p.Score)) {
			t.Fatalf("piece %d = %+v, want a normal piece with a negative score", i+3, p)
		}
	}
}

// encode serializes m as a ModelProto with the fields Parse reads.
func encode(m *Model) []byte {
	var b []byte
	for _, p := range m.Pieces {
		var pb []byte
		pb = protowire.AppendTag(pb, 1, protowire.BytesType)
		pb = protowire.AppendString(pb, p.Text)
		pb = protowire.AppendTag(pb, 2, protowire.Fixed32Type)
		pb = protowire.AppendFixed32(pb, math.Float32bits(p.Score))
		pb = protowire.AppendTag(pb, 3, protowire.VarintType)
		pb = protowire.AppendVarint(pb, uint64(int64(p.Type)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, pb)
	}
	var tb []byte
	tb = protowire.AppendTag(tb, 3, protowire.VarintType)
	tb = protowire.AppendVarint(tb, uint64(int64(m.ModelType)))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, tb)
	var nb []byte
	nb = protowire.AppendTag(nb, 1, protowire.BytesType)
	nb = protowire.AppendString(nb, m.NormalizerName)
	if m.PrecompiledCharsmap != nil {
		nb = protowire.AppendTag(nb, 2, protowire.BytesType)
		nb = protowire.AppendBytes(nb, m.PrecompiledCharsmap)
	}
	nb = protowire.AppendTag(nb, 3, protowire.VarintType)
	nb = protowire.AppendVarint(nb, protowire.EncodeBool(m.AddDummyPrefix))
	nb = protowire.AppendTag(nb, 4, protowire.VarintType)
	nb = protowire.AppendVarint(nb, protowire.EncodeBool(m.RemoveExtraWhitespaces))
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendBytes(b, nb)
	return b
}

func equalModels(a, b *Model) bool {
	if len(a.Pieces) != len(b.Pieces) {
		return false
	}
	for i := range a.Pieces {
		p, q := a.Pieces[i], b.Pieces[i]
		if p.Text != q.Text || p.Type != q.Type || math.Float32bits(p.Score) != math.Float32bits(q.Score) {
			return false
		}
	}
	return a.ModelType == b.ModelType && a.NormalizerName == b.NormalizerName &&
		string(a.PrecompiledCharsmap) == string(b.PrecompiledCharsmap) &&
		a.AddDummyPrefix == b.AddDummyPrefix && a.RemoveExtraWhitespaces == b.RemoveExtraWhitespaces
}

func TestRoundTrip(t *testing.T) {
	m, err := Open(goldenModel)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(encode(m))
	if err != nil {
		t.Fatal(err)
	}
	if !equalModels(m, m2) {
		t.Error("re-encoded model differs")
	}
}

func TestParseErrors(t *testing.T) {
	piece := func(text string, typ Type) Piece { return Piece{Text: text, Score: -1, Type: typ} }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not protobuf", []byte{0xff, 0xff, 0xff}},
		{"truncated length", []byte{0x0a, 0x10, 0x0a}},
		{"no pieces", encode(&Model{ModelType: Unigram})},
		{"empty piece", encode(&Model{Pieces: []Piece{piece("", Normal)}})},
		{"bad type", encode(&Model{Pieces: []Piece{piece("a", 9)}})},
		{"two unknowns", encode(&Model{Pieces: []Piece{piece("<unk>", Unknown), piece("<unk2>", Unknown)}})},
		{"duplicate", encode(&Model{Pieces: []Piece{piece("a", Normal), piece("a", Normal)}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(tt.data); !errors.Is(err, ErrFormat) {
				t.Fatalf("Parse = %v, want ErrFormat", err)
			}
		})
	}
	if _, err := Open("testdata/does-not-exist"); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}

func FuzzParse(f *testing.F) {
	data, err := os.ReadFile(goldenModel)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data[:4096])
	f.Add(encode(&Model{Pieces: []Piece{{"<unk>", 0, Unknown}, {"▁a", -1.5, Normal}}, ModelType: Unigram, PrecompiledCharsmap: []byte{1, 2}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		m2, err := Parse(encode(m))
		if err != nil {
			t.Fatalf("re-encoded model does not parse: %v", err)
		}
		if !equalModels(m, m2) {
			t.Fatal("re-encoded model differs")
		}
	})
}

// Open refuses a file larger than any SentencePiece model before reading it.
func TestOpenTooLarge(t *testing.T) {
	p := t.TempDir() + "/spiece.model"
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: a size, not data.
	if err := f.Truncate(MaxModelSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(p); !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrFormat) {
		t.Fatalf("a directory: err = %v, want ErrFormat", err)
	}
}
