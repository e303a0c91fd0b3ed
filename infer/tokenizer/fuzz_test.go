package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// checkEncode asserts the properties every segmentation has: one piece per
// id, pieces that spell the normalized text, and, when no piece is unknown,
// a decoding that gives that text back with spaces restored.
func checkEncode(t *testing.T, sp *SentencePiece, text string) {
	t.Helper()
	norm, err := sp.Normalize(text)
	if err != nil {
		return // a model whose charsmap points outside its blob
	}
	ids, pieces, err := sp.Encode(text)
	if err != nil {
		t.Fatalf("Encode(%q): %v", text, err)
	}
	if len(ids) != len(pieces) {
		t.Fatalf("Encode(%q): %d ids, %d pieces", text, len(ids), len(pieces))
	}
	if got := strings.Join(pieces, ""); got != norm {
		t.Fatalf("Encode(%q): pieces %q spell %q, normalized %q", text, pieces, got, norm)
	}
	got, err := sp.Decode(ids)
	if err != nil {
		t.Fatalf("Decode(Encode(%q)): %v", text, err)
	}
	if slices.Contains(ids, sp.UnkID()) || strings.HasPrefix(norm, spaceSymbol+spaceSymbol) || sp.denorm != nil {
		return
	}
	want := strings.ReplaceAll(strings.TrimPrefix(norm, spaceSymbol), spaceSymbol, " ")
	if got != want {
		t.Fatalf("Decode(Encode(%q)) = %q, want %q", text, got, want)
	}
}

func FuzzParseModel(f *testing.F) {
	small := smallModel().bytes()
	rules := smallModel()
	rules.norm = &normalizerSpec{charsmap: oneByteRules(map[byte]string{'x': "b", '\t': " ", '-': ""}),
		addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true}
	rules.denorm = &normalizerSpec{charsmap: oneByteRules(map[byte]string{'b': "B"})}
	withRules := rules.bytes()
	real, err := os.ReadFile(filepath.Join("testdata", "tokenizer", "hf_tokenizer", "spiece.model"))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range [][]byte{small, withRules, real} {
		f.Add(m)
		for _, n := range []int{1, 2, 7, len(m) / 3, len(m) / 2, len(m) - 2, len(m) - 1} {
			f.Add(m[:n])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := ParseModel(data)
		if err != nil {
			return
		}
		for _, text := range []string{"", " a  b\t", "aab<x>bb x-x", "Hello <extra_id_0> world </s>", "\xff\x00\u2581a", string(data[:min(len(data), 48)])} {
			checkEncode(t, sp, text)
		}
		tok, err := Parse(data)
		if err != nil {
			return
		}
		ids, err := tok.Encode("a <extra_id_1> b </s>")
		if err != nil {
			return
		}
		if _, err := tok.Decode(ids, false); err != nil {
			t.Fatalf("Decode(%v): %v", ids, err)
		}
	})
}

func FuzzEncode(f *testing.F) {
	tok, err := Open(filepath.Join("testdata", "tokenizer-t5", "hf_tokenizer"))
	if err != nil {
		f.Fatal(err)
	}
	small, err := ParseModel(smallModel().bytes())
	if err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizer-t5", "tokenizer_golden.json"))
	if err != nil {
		f.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		f.Fatal(err)
	}
	for _, c := range g.Cases {
		f.Add(c.Text)
	}
	f.Add("a\xffb\xc3")
	f.Fuzz(func(t *testing.T, text string) {
		checkEncode(t, tok.SentencePiece(), text)
		checkEncode(t, small, text)
		ids, pieces, err := tok.EncodePieces(text)
		if err != nil {
			t.Fatalf("EncodePieces(%q): %v", text, err)
		}
		if len(ids) != len(pieces) || len(ids) == 0 || ids[len(ids)-1] != tok.EOSID() {
			t.Fatalf("EncodePieces(%q) = %v %q", text, ids, pieces)
		}
		for _, skip := range []bool{false, true} {
			if _, err := tok.Decode(ids, skip); err != nil {
				t.Fatalf("Decode(%v, %v): %v", ids, skip, err)
			}
		}
	})
}
