package tokenizer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const smallDir = "testdata/tokenizer/hf_tokenizer"

// writeModelDir writes spiece.model and the given JSON files to a temp dir.
func writeModelDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	model, err := os.ReadFile(filepath.Join(smallDir, "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spiece.model"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenForms(t *testing.T) {
	model, err := os.ReadFile(filepath.Join(smallDir, "spiece.model"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	bare := writeModelDir(t, nil)
	const text = "Hello <extra_id_0> world </s> x"
	var want []int
	for _, path := range []string{smallDir, filepath.Join(smallDir, "spiece.model"), bare, filepath.Join(bare, "spiece.model")} {
		tok, err := Open(path)
		if err != nil {
			t.Fatalf("Open(%s): %v", path, err)
		}
		ids, err := tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want, _ = parsed.Encode(text)
		}
		if !slices.Equal(ids, want) || tok.VocabSize() != parsed.VocabSize() {
			t.Errorf("Open(%s): %v (vocab %d); Parse: %v (vocab %d)", path, ids, tok.VocabSize(), want, parsed.VocabSize())
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(dir without spiece.model) = %v", err)
	}
}

func TestConfig(t *testing.T) {
	sentinels := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"<extra_id_` + string(rune('0'+i)) + `>"`)
		}
		return b.String()
	}
	tests := []struct {
		name    string
		files   map[string]string
		text    string
		ids     []int
		vocab   int
		wantErr string
	}{
		// U+0085 is whitespace to Python's strip() but not to nmt_nfkc.
		{name: "plain-strings-strip", files: map[string]string{"special_tokens_map.json": `{"eos_token": "</s>"}`},
			text: "a\u0085</s>\u0085b", ids: []int{13, 1, 340, 1}, vocab: 2100},
		{name: "added-token-no-strip", files: map[string]string{
			"special_tokens_map.json": `{"eos_token": {"content": "</s>", "lstrip": false, "rstrip": false}}`},
			text: "a\u0085</s>\u0085b", ids: []int{13, 2, 1, 7, 2, 55, 1}, vocab: 2100},
		{name: "added-token-rstrip", files: map[string]string{
			"tokenizer_config.json": `{"eos_token": {"__type": "AddedToken", "content": "</s>", "rstrip": true}}`},
			text: "a\u0085</s>\u0085b", ids: []int{13, 2, 1, 340, 1}, vocab: 2100},
		// spm("<extra_id_0>") = 73 690 260 57 231 57 180 65 (golden case 117).
		{name: "few-extra-ids", files: map[string]string{
			"tokenizer_config.json": `{"extra_ids": 3, "additional_special_tokens": [` + sentinels(3) + `]}`},
			text: "<extra_id_0><extra_id_2><extra_id_3>", vocab: 2003,
			ids: []int{2002, 2000, 73, 690, 260, 57, 231, 57, 198, 65, 1}},
		{name: "no-extra-ids", files: map[string]string{"tokenizer_config.json": `{"extra_ids": 0}`},
			text: "<extra_id_0>", vocab: 2000, ids: []int{73, 690, 260, 57, 231, 57, 180, 65, 1}},
		// spm("<pad>") (golden case 130).
		{name: "null-token", files: map[string]string{"tokenizer_config.json": `{"pad_token": null}`},
			text: "<pad>", vocab: 2100, ids: []int{73, 46, 280, 65, 1}},
		{name: "extra-ids-mismatch", files: map[string]string{
			"tokenizer_config.json": `{"extra_ids": 5, "additional_special_tokens": [` + sentinels(3) + `]}`},
			wantErr: "5 extra_ids but 3"},
		{name: "unknown-special", files: map[string]string{"special_tokens_map.json": `{"mask_token": "<mask>"}`},
			wantErr: `"<mask>" is not in the vocabulary`},
		{name: "bad-json", files: map[string]string{"tokenizer_config.json": `{"extra_ids": "many"}`},
			wantErr: "tokenizer_config.json: extra_ids"},
		{name: "bad-token", files: map[string]string{"special_tokens_map.json": `{"eos_token": 1}`},
			wantErr: "special_tokens_map.json: eos_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Open(writeModelDir(t, tt.files))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open: %v; want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids, err := tok.Encode(tt.text)
			if err != nil || !slices.Equal(ids, tt.ids) || tok.VocabSize() != tt.vocab {
				t.Errorf("Encode(%q) = %v, %v (vocab %d); want %v (vocab %d)", tt.text, ids, err, tok.VocabSize(), tt.ids, tt.vocab)
			}
		})
	}
}

func TestDecodeEdges(t *testing.T) {
	tok, err := Open(smallDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ids        []int
		skip       bool
		want, werr string
	}{
		{ids: nil, want: ""},
		{ids: []int{-1}, werr: "negative id"},
		// HF gives ids past the vocabulary (embedding padding rows) the text
		// "<extra_id_-k>", which sentencepiece copies as an unknown piece.
		{ids: []int{38, 2100, 2101}, want: "a<extra_id_-1><extra_id_-2>"},
		{ids: []int{38, 2100}, skip: true, want: "a<extra_id_-1>"},
		{ids: []int{2099, 1, 0, 2}, want: "<extra_id_0></s><pad><unk>"},
		{ids: []int{2099, 1, 0, 2}, skip: true, want: ""},
		{ids: []int{13, 152}, want: "a."}, // "a ." cleaned up
	}
	for _, tt := range tests {
		got, err := tok.Decode(tt.ids, tt.skip)
		if tt.werr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.werr) {
				t.Errorf("Decode(%v) = %q, %v; want error %q", tt.ids, got, err, tt.werr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Decode(%v, %v) = %q, %v; want %q", tt.ids, tt.skip, got, err, tt.want)
		}
	}
	if _, err := tok.ExtraID(100); err == nil {
		t.Error("ExtraID(100) succeeded")
	}
}

func TestPyStrip(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{" \t\n\v\f\r\x1c\x1d\x1e\x1f\u0085\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000", ""},
		{"\u200b x \u180e", "\u200b x \u180e"}, // not whitespace in Python 3.11
		{"\xff ", "\xff"},
	}
	for _, tt := range tests {
		if got := pyStrip(tt.in); got != tt.want {
			t.Errorf("pyStrip(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
