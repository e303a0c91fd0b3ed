package tokenizer

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// testModel describes a small SentencePiece model that the tests serialize
// into ModelProto bytes.
type testModel struct {
	pieces       []pieceProto
	modelType    int32 // 0: leave unset (UNIGRAM)
	byteFallback bool
	norm         *normalizerSpec // nil: defaults, no rules
	denorm       *normalizerSpec
	unkSurface   string
}

func appendSpec(b []byte, num protowire.Number, n *normalizerSpec) []byte {
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.BytesType)
	m = protowire.AppendString(m, n.name)
	if len(n.charsmap) > 0 {
		m = protowire.AppendTag(m, 2, protowire.BytesType)
		m = protowire.AppendBytes(m, n.charsmap)
	}
	for i, v := range []bool{n.addDummyPrefix, n.removeExtraWhitespaces, n.escapeWhitespaces} {
		m = protowire.AppendTag(m, protowire.Number(3+i), protowire.VarintType)
		m = protowire.AppendVarint(m, protowire.EncodeBool(v))
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

func (tm testModel) bytes() []byte {
	var b []byte
	for _, p := range tm.pieces {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendString(m, p.piece)
		m = protowire.AppendTag(m, 2, protowire.Fixed32Type)
		m = protowire.AppendFixed32(m, math.Float32bits(p.score))
		if p.typ != Normal {
			m = protowire.AppendTag(m, 3, protowire.VarintType)
			m = protowire.AppendVarint(m, uint64(p.typ))
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	var t []byte
	if tm.modelType != 0 {
		t = protowire.AppendTag(t, 3, protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(tm.modelType))
	}
	if tm.byteFallback {
		t = protowire.AppendTag(t, 35, protowire.VarintType)
		t = protowire.AppendVarint(t, 1)
	}
	for i, id := range []int32{2, -1, 1, 0} { // unk, bos, eos, pad as in T5
		t = protowire.AppendTag(t, protowire.Number(40+i), protowire.VarintType)
		t = protowire.AppendVarint(t, uint64(id))
	}
	if tm.unkSurface != "" {
		t = protowire.AppendTag(t, 44, protowire.BytesType)
		t = protowire.AppendString(t, tm.unkSurface)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, t)
	norm := tm.norm
	if norm == nil {
		d := defaultNormalizerSpec()
		norm = &d
	}
	b = appendSpec(b, 3, norm)
	if tm.denorm != nil {
		b = appendSpec(b, 5, tm.denorm)
	}
	return b
}

// oneByteRules builds a precompiled charsmap (darts-clone layout) whose
// rules each map one source byte to a replacement string.
func oneByteRules(rules map[byte]string) []byte {
	keys := make([]byte, 0, len(rules))
	for c := range rules {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	units := make([]uint32, 256+len(keys))
	units[0] = 1 << 10 // root: offset 1, so the child for byte c sits at 1^c
	var blob []byte
	for k, c := range keys {
		child := 1 ^ uint32(c)
		leaf := uint32(256 + k)
		units[child] = (child^leaf)<<10 | 1<<8 | uint32(c)
		units[leaf] = 1<<31 | uint32(len(blob))
		blob = append(append(blob, rules[c]...), 0)
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(4*len(units)))
	for _, u := range units {
		out = binary.LittleEndian.AppendUint32(out, u)
	}
	return append(out, blob...)
}

// smallModel: <pad> </s> <unk>, a few pieces, a user-defined <x> and an
// unused "bb".
func smallModel() testModel {
	return testModel{pieces: []pieceProto{
		{"<pad>", 0, Control}, {"</s>", 0, Control}, {"<unk>", 0, Unknown},
		{"▁", -2, Normal}, {"a", -3, Normal}, {"b", -3, Normal}, {"▁a", -1, Normal},
		{"ab", -2.5, Normal}, {"▁b", -2, Normal}, {"<x>", 0, UserDefined}, {"bb", 0, Unused},
	}}
}

func TestParseModelErrors(t *testing.T) {
	real, err := os.ReadFile(filepath.Join("testdata", "tokenizer", "hf_tokenizer", "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	withType := func(typ int32) []byte { m := smallModel(); m.modelType = typ; return m.bytes() }
	edit := func(f func(*testModel)) []byte { m := smallModel(); f(&m); return m.bytes() }
	tests := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotSentencePiece, "no pieces"},
		{"json", []byte(`{"model": "spiece"}`), ErrNotSentencePiece, ""},
		{"text", []byte("hello world\n"), ErrNotSentencePiece, ""},
		{"truncated-1", real[:len(real)-1], ErrNotSentencePiece, ""},
		{"truncated-half", real[:len(real)/2], ErrNotSentencePiece, ""},
		{"truncated-1000", real[:1000], ErrNotSentencePiece, ""},
		{"truncated-3", real[:3], ErrNotSentencePiece, ""},
		{"bpe", withType(modelBPE), ErrUnsupportedModel, "only UNIGRAM"},
		{"word", withType(modelWord), ErrUnsupportedModel, "WORD"},
		{"char", withType(modelChar), ErrUnsupportedModel, "CHAR"},
		{"byte-fallback", edit(func(m *testModel) { m.byteFallback = true }), ErrUnsupportedModel, "byte_fallback"},
		{"no-unk", edit(func(m *testModel) { m.pieces[2].typ = Control }), ErrNotSentencePiece, "no unknown"},
		{"two-unk", edit(func(m *testModel) { m.pieces[1].typ = Unknown }), ErrNotSentencePiece, "twice"},
		{"duplicate", edit(func(m *testModel) { m.pieces[5].piece = "a" }), ErrNotSentencePiece, "defined twice"},
		{"empty-piece", edit(func(m *testModel) { m.pieces[4].piece = "" }), ErrNotSentencePiece, "empty"},
		{"nul-piece", edit(func(m *testModel) { m.pieces[4].piece = "a\x00" }), ErrNotSentencePiece, "NUL"},
		{"bad-type", edit(func(m *testModel) { m.pieces[4].typ = 9 }), ErrNotSentencePiece, "invalid type"},
		{"byte-piece", edit(func(m *testModel) { m.pieces[4].typ = Byte }), ErrNotSentencePiece, "byte piece"},
		{"only-reserved", edit(func(m *testModel) { m.pieces = m.pieces[:3] }), ErrNotSentencePiece, "no normal pieces"},
		{"charsmap-short", edit(func(m *testModel) { m.norm = &normalizerSpec{charsmap: []byte{1, 0}} }), errCharsMap, ""},
		{"charsmap-offset", edit(func(m *testModel) {
			rules := oneByteRules(map[byte]string{'x': "b"})
			m.norm = &normalizerSpec{charsmap: rules[:len(rules)-2]} // drop the blob "b\x00"
		}), errCharsMap, "offset 0 out of range"},
		{"charsmap-size", edit(func(m *testModel) { m.norm = &normalizerSpec{charsmap: []byte{9, 0, 0, 0, 1}} }), errCharsMap, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseModel(tt.data)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("ParseModel: %v; want %v containing %q", err, tt.want, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if _, err := Parse(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("Parse: %v; want %v", err, tt.want)
			}
		})
	}
}

func TestSmallModel(t *testing.T) {
	rules := oneByteRules(map[byte]string{'x': "b", '\t': " ", '-': "", 'q': "  "})
	tests := []struct {
		name   string
		norm   *normalizerSpec
		text   string
		normed string
		pieces []string
		ids    []int
	}{
		{name: "user-defined", text: "a<x>b", normed: "▁a<x>b", pieces: []string{"▁a", "<x>", "b"}, ids: []int{6, 9, 5}},
		{name: "unused-skipped", text: "bb", normed: "▁bb", pieces: []string{"▁b", "b"}, ids: []int{8, 5}},
		{name: "best-path", text: "aab", normed: "▁aab", pieces: []string{"▁a", "ab"}, ids: []int{6, 7}},
		{name: "unknown-run-merged", text: "a zzy b", normed: "▁a▁zzy▁b", pieces: []string{"▁a", "▁", "zzy", "▁b"}, ids: []int{6, 3, 2, 8}},
		{name: "extra-spaces", text: "  a   b  ", normed: "▁a▁b", pieces: []string{"▁a", "▁b"}, ids: []int{6, 8}},
		{name: "empty", text: "", normed: "", pieces: nil, ids: nil},
		{name: "only-spaces", text: "   ", normed: "", pieces: nil, ids: nil},
		{name: "invalid-utf8", text: "a\xffb", normed: "▁a\uFFFDb", pieces: []string{"▁a", "\uFFFD", "b"}, ids: []int{6, 2, 5}},
		{name: "literal-u2581", text: "▁a", normed: "▁▁a", pieces: []string{"▁", "▁a"}, ids: []int{3, 6}},
		{name: "no-extra-space-removal", norm: &normalizerSpec{addDummyPrefix: true, escapeWhitespaces: true},
			text: " a  b ", normed: "▁▁a▁▁b▁", pieces: []string{"▁", "▁a", "▁", "▁b", "▁"}, ids: []int{3, 6, 3, 8, 3}},
		{name: "no-dummy-prefix", norm: &normalizerSpec{removeExtraWhitespaces: true, escapeWhitespaces: true},
			text: "a b", normed: "a▁b", pieces: []string{"a", "▁b"}, ids: []int{4, 8}},
		{name: "no-escape", norm: &normalizerSpec{addDummyPrefix: true, removeExtraWhitespaces: true},
			text: "a  b", normed: " a b", pieces: []string{" ", "a", " ", "b"}, ids: []int{2, 4, 2, 5}},
		{name: "rules", norm: &normalizerSpec{charsmap: rules, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true},
			text: "\t\ta-x\tq a", normed: "▁ab▁a", pieces: []string{"▁a", "b", "▁a"}, ids: []int{6, 5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := smallModel()
			m.norm = tt.norm
			sp, err := ParseModel(m.bytes())
			if err != nil {
				t.Fatal(err)
			}
			normed, err := sp.Normalize(tt.text)
			if err != nil || normed != tt.normed {
				t.Errorf("Normalize(%q) = %q, %v; want %q", tt.text, normed, err, tt.normed)
			}
			ids, pieces, err := sp.Encode(tt.text)
			if err != nil || !slices.Equal(ids, tt.ids) || !slices.Equal(pieces, tt.pieces) {
				t.Errorf("Encode(%q) = %v %q, %v; want %v %q", tt.text, ids, pieces, err, tt.ids, tt.pieces)
			}
			if strings.Join(pieces, "") != normed {
				t.Errorf("pieces %q do not cover %q", pieces, normed)
			}
		})
	}
}

func TestSmallModelDecode(t *testing.T) {
	m := smallModel()
	m.unkSurface = "<?>"
	m.denorm = &normalizerSpec{charsmap: oneByteRules(map[byte]string{'b': "B"})}
	sp, err := ParseModel(m.bytes())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ids  []int
		want string
	}{
		{nil, ""},
		{[]int{6, 8}, "a B"},
		{[]int{0, 1, 3, 6, 2, 9, 10}, "a<?><x>BB"},
		{[]int{3, 3, 6}, "a"}, // "▁" pieces at the start decode to nothing
	}
	for _, tt := range tests {
		got, err := sp.Decode(tt.ids)
		if err != nil || got != tt.want {
			t.Errorf("Decode(%v) = %q, %v; want %q", tt.ids, got, err, tt.want)
		}
	}
	for _, id := range []int{-1, 11, math.MaxInt} {
		if _, err := sp.Decode([]int{id}); err == nil {
			t.Errorf("Decode([%d]) succeeded", id)
		}
	}
	if got, _ := sp.DecodePieces([]string{"▁a", "zz", "<unk>"}); got != "azz<?>" {
		t.Errorf("DecodePieces = %q", got)
	}
}

// TestMalformedUTF8 checks the documented handling of text that is not
// UTF-8: as in sentencepiece, each malformed byte becomes U+FFFD, which the
// T5 vocabulary does not have, so it segments as <unk>; never an error. (A
// U+FFFD in the text itself is different: nmt_nfkc maps it to a space.)
func TestMalformedUTF8(t *testing.T) {
	tok, err := Open(filepath.Join("testdata", "tokenizer-t5", "hf_tokenizer", "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tok.SentencePiece().Normalize("a\uFFFDb"); err != nil || n != "▁a▁b" {
		t.Errorf("Normalize(a U+FFFD b) = %q, %v; want ▁a▁b", n, err)
	}
	for _, text := range []string{"\xff", "a\xc3", "\xed\xa0\x80", "x\xc0\x80y", strings.Repeat("\xfe", 1000)} {
		ids, pieces, err := tok.EncodePieces(text)
		if err != nil {
			t.Fatalf("EncodePieces(%q): %v", text, err)
		}
		if !slices.Contains(ids, tok.UnkID()) || !slices.ContainsFunc(pieces, func(p string) bool { return strings.HasPrefix(p, "\uFFFD") }) {
			t.Errorf("EncodePieces(%q) = %v %q: no <unk> U+FFFD piece", text, ids, pieces)
		}
		if _, err := tok.Decode(ids, false); err != nil {
			t.Errorf("Decode: %v", err)
		}
	}
}
