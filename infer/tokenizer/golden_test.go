package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The goldens in testdata/tokenizer (a 2,000-piece model) and
// testdata/tokenizer-t5 (the real T5 vocabulary) were produced by Hugging
// Face transformers v4.30.2 and sentencepiece 0.1.97; see testdata/README.md.
var goldenSets = []string{"tokenizer", "tokenizer-t5"}

type golden struct {
	SpmPieceSize int `json:"spm_piece_size"`
	HFVocabSize  int `json:"hf_vocab_size"`
	SpecialIDs   struct {
		Pad int `json:"pad"`
		EOS int `json:"eos"`
		Unk int `json:"unk"`
		BOS int `json:"bos"`
	} `json:"special_ids"`
	ExtraIDs map[string]int `json:"extra_ids"`
	SpmVocab [][3]any       `json:"spm_vocab"`
	Cases    []goldenCase   `json:"cases"`
}

type goldenCase struct {
	Text string `json:"text"`
	Spm  struct {
		IDs     []int    `json:"ids"`
		Pieces  []string `json:"pieces"`
		Decoded string   `json:"decoded"`
	} `json:"spm"`
	HF struct {
		InputIDs           []int    `json:"input_ids"`
		Tokens             []string `json:"tokens"`
		Decoded            string   `json:"decoded"`
		DecodedSkipSpecial string   `json:"decoded_skip_special"`
	} `json:"hf"`
}

func loadGolden(t testing.TB, set string) (*golden, *Tokenizer) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", set, "tokenizer_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	tok, err := Open(filepath.Join("testdata", set, "hf_tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	return &g, tok
}

func TestGoldenVocab(t *testing.T) {
	types := map[string]PieceType{"NORMAL": Normal, "UNKNOWN": Unknown, "CONTROL": Control, "USER_DEFINED": UserDefined, "UNUSED": Unused}
	for _, set := range goldenSets {
		t.Run(set, func(t *testing.T) {
			g, tok := loadGolden(t, set)
			sp := tok.SentencePiece()
			if sp.Size() != g.SpmPieceSize || len(g.SpmVocab) != g.SpmPieceSize {
				t.Fatalf("pieces: got %d, golden %d (%d listed)", sp.Size(), g.SpmPieceSize, len(g.SpmVocab))
			}
			for id, v := range g.SpmVocab {
				piece, _ := sp.IDToPiece(id)
				if piece != v[0] || float64(sp.Score(id)) != v[1] || sp.Type(id) != types[v[2].(string)] {
					t.Errorf("id %d: got %q %v %v, golden %v", id, piece, sp.Score(id), sp.Type(id), v)
				}
				if got := sp.PieceToID(piece); got != id {
					t.Errorf("PieceToID(%q) = %d, want %d", piece, got, id)
				}
			}
			if tok.VocabSize() != g.HFVocabSize {
				t.Errorf("VocabSize = %d, golden %d", tok.VocabSize(), g.HFVocabSize)
			}
			if tok.PadID() != g.SpecialIDs.Pad || tok.EOSID() != g.SpecialIDs.EOS || tok.UnkID() != g.SpecialIDs.Unk {
				t.Errorf("pad/eos/unk = %d/%d/%d, golden %+v", tok.PadID(), tok.EOSID(), tok.UnkID(), g.SpecialIDs)
			}
			if sp.BOSID() != g.SpecialIDs.BOS {
				t.Errorf("BOSID = %d, golden %d", sp.BOSID(), g.SpecialIDs.BOS)
			}
			for text, want := range g.ExtraIDs {
				var n int
				if _, err := fmt.Sscanf(text, "<extra_id_%d>", &n); err != nil {
					t.Fatal(err)
				}
				if got, err := tok.ExtraID(n); err != nil || got != want {
					t.Errorf("ExtraID(%d) = %d, %v; golden %d", n, got, err, want)
				}
				if ids, err := tok.Encode(text); err != nil || !slices.Equal(ids, []int{want, tok.EOSID()}) {
					t.Errorf("Encode(%q) = %v, %v; want [%d %d]", text, ids, err, want, tok.EOSID())
				}
			}
		})
	}
}

func TestGolden(t *testing.T) {
	for _, set := range goldenSets {
		t.Run(set, func(t *testing.T) {
			g, tok := loadGolden(t, set)
			if len(g.Cases) != 277 {
				t.Fatalf("%d cases, want 277", len(g.Cases))
			}
			sp := tok.SentencePiece()
			for i, c := range g.Cases {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					ids, pieces, err := sp.Encode(c.Text)
					if err != nil {
						t.Fatalf("spm Encode(%q): %v", c.Text, err)
					}
					if !slices.Equal(ids, c.Spm.IDs) || !slices.Equal(pieces, c.Spm.Pieces) {
						t.Errorf("spm Encode(%q)\n got %v %q\nwant %v %q", c.Text, ids, pieces, c.Spm.IDs, c.Spm.Pieces)
					}
					if got, err := sp.Decode(c.Spm.IDs); err != nil || got != c.Spm.Decoded {
						t.Errorf("spm Decode(%v) = %q, %v; want %q", c.Spm.IDs, got, err, c.Spm.Decoded)
					}

					ids, pieces, err = tok.EncodePieces(c.Text)
					if err != nil {
						t.Fatalf("EncodePieces(%q): %v", c.Text, err)
					}
					if !slices.Equal(ids, c.HF.InputIDs) {
						t.Errorf("EncodePieces(%q) ids\n got %v\nwant %v", c.Text, ids, c.HF.InputIDs)
					}
					wantPieces := c.HF.Tokens
					if len(c.HF.InputIDs) == len(c.HF.Tokens)+1 {
						wantPieces = append(slices.Clip(wantPieces), EOSToken)
					}
					if !slices.Equal(pieces, wantPieces) {
						t.Errorf("EncodePieces(%q) pieces\n got %q\nwant %q", c.Text, pieces, wantPieces)
					}
					if ids2, err := tok.Encode(c.Text); err != nil || !slices.Equal(ids2, c.HF.InputIDs) {
						t.Errorf("Encode(%q) = %v, %v; want %v", c.Text, ids2, err, c.HF.InputIDs)
					}

					if got, err := tok.Decode(c.HF.InputIDs, false); err != nil || got != c.HF.Decoded {
						t.Errorf("Decode(%v, false) = %q, %v; want %q", c.HF.InputIDs, got, err, c.HF.Decoded)
					}
					if got, err := tok.Decode(c.HF.InputIDs, true); err != nil || got != c.HF.DecodedSkipSpecial {
						t.Errorf("Decode(%v, true) = %q, %v; want %q", c.HF.InputIDs, got, err, c.HF.DecodedSkipSpecial)
					}
				})
			}
		})
	}
}
