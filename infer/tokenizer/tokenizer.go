// Package tokenizer is T5's SentencePiece tokenizer in pure Go, exact to the
// reference: Hugging Face transformers v4.30.2 T5Tokenizer (the "legacy"
// behaviour) over sentencepiece 0.1.97.
//
// Two layers:
//
//   - SentencePiece reads a spiece.model (the sentencepiece ModelProto) and
//     reproduces sentencepiece's unigram model: the model's normalizer
//     (precompiled charsmap rules such as nmt_nfkc, whitespace handling,
//     U+2581 for spaces), the Viterbi segmentation with its float32
//     arithmetic and unknown-character handling, and decoding.
//   - Tokenizer puts T5Tokenizer on top: the 100 sentinels <extra_id_N>
//     numbered downwards after the SentencePiece vocabulary, special tokens
//     split out of the text before segmentation, </s> appended, and decoding
//     with or without special tokens, spaces and clean-up as HF does them.
//
// Both are immutable after construction and safe for concurrent use. Text
// that is not valid UTF-8 is not an error: like sentencepiece, the
// normalizer replaces each malformed byte with U+FFFD (which T5's vocabulary
// does not have, so it becomes <unk>).
package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// EOSToken is the text of T5's end-of-sequence token.
const EOSToken = "</s>"

// Tokenizer is a T5 tokenizer: a SentencePiece model plus the special
// tokens and extra ids of Hugging Face's T5Tokenizer.
type Tokenizer struct {
	sp        *SentencePiece
	extraIDs  int
	vocabSize int
	eosID     int
	padID     int
	unkID     int
	cleanUp   bool
	// special maps the text of each special token to its entry.
	special map[string]*specialToken
	// specialIDs holds the ids of the special tokens (all_special_ids).
	specialIDs map[int]bool
	// specialTrie finds special tokens in text; specialStart marks the
	// bytes a special token can start with.
	specialTrie  *daTrie
	specialStart [256]bool
}

// specialToken is one of HF's special tokens. A token configured as an
// AddedToken object strips the whitespace beside it only as its lstrip and
// rstrip flags say; one configured as a plain string strips both sides.
type specialToken struct {
	text           string
	id             int
	added          bool
	lstrip, rstrip bool
}

// Open loads a tokenizer from a model directory holding spiece.model and,
// optionally, Hugging Face's tokenizer_config.json and
// special_tokens_map.json, or from the path of a spiece.model file, in which
// case those JSON files are read from beside it if present. Without them the
// T5 defaults apply: 100 extra ids, </s>, <unk> and <pad>.
func Open(path string) (*Tokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: open: %w", err)
	}
	dir, model := filepath.Dir(path), path
	if fi.IsDir() {
		dir, model = path, filepath.Join(path, "spiece.model")
	}
	data, err := os.ReadFile(model)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: open: %w", err)
	}
	cfg, err := readConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: open %s: %w", path, err)
	}
	t, err := newTokenizer(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: open %s: %w", model, err)
	}
	return t, nil
}

// Parse builds a tokenizer from the bytes of a spiece.model file with T5's
// defaults: 100 extra ids, </s>, <unk> and <pad>.
func Parse(model []byte) (*Tokenizer, error) {
	return newTokenizer(model, defaultConfig())
}

func newTokenizer(model []byte, cfg *config) (*Tokenizer, error) {
	sp, err := ParseModel(model)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{
		sp:         sp,
		extraIDs:   cfg.extraIDs,
		vocabSize:  sp.Size() + cfg.extraIDs,
		cleanUp:    cfg.cleanUp,
		special:    make(map[string]*specialToken),
		specialIDs: make(map[int]bool),
	}
	additional := cfg.additional
	if cfg.extraIDs > 0 {
		if additional == nil {
			for i := range cfg.extraIDs {
				additional = append(additional, tokenSpec{content: "<extra_id_" + strconv.Itoa(i) + ">"})
			}
		} else {
			// T5Tokenizer.__init__ insists on exactly extra_ids sentinels.
			seen := make(map[string]bool)
			for _, a := range additional {
				if strings.Contains(a.content, "extra_id") {
					seen[a.content] = true
				}
			}
			if len(seen) != cfg.extraIDs {
				return nil, fmt.Errorf("tokenizer: %d extra_ids but %d <extra_id_N> tokens in additional_special_tokens",
					cfg.extraIDs, len(seen))
			}
		}
	}
	unkText := ""
	if cfg.unk != nil {
		unkText = cfg.unk.content
	}
	var texts []string
	var ids []int32
	add := func(s tokenSpec) error {
		if s.content == "" {
			return nil
		}
		id := t.tokenID(s.content)
		if id == sp.UnkID() && s.content != unkText {
			return fmt.Errorf("tokenizer: special token %q is not in the vocabulary (added tokens are not supported)", s.content)
		}
		prev, dup := t.special[s.content]
		if !dup {
			texts = append(texts, s.content)
			ids = append(ids, int32(len(texts)-1))
		}
		// HF looks strip flags up in {str(t): t} over the AddedToken
		// objects only: the last AddedToken wins over any plain string.
		if !dup || s.added || !prev.added {
			t.special[s.content] = &specialToken{text: s.content, id: id, added: s.added, lstrip: s.lstrip, rstrip: s.rstrip}
		}
		t.specialIDs[id] = true
		return nil
	}
	for _, s := range []*tokenSpec{cfg.bos, cfg.eos, cfg.unk, cfg.sep, cfg.pad, cfg.cls, cfg.mask} {
		if s != nil {
			if err := add(*s); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range additional {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	t.eosID, t.padID, t.unkID = -1, -1, -1
	if cfg.eos != nil {
		t.eosID = t.tokenID(cfg.eos.content)
	}
	if cfg.pad != nil {
		t.padID = t.tokenID(cfg.pad.content)
	}
	if cfg.unk != nil {
		t.unkID = t.tokenID(cfg.unk.content)
	}
	if len(texts) > 0 {
		t.specialTrie = buildTrie(texts, ids)
		for _, s := range texts {
			t.specialStart[s[0]] = true
		}
	}
	return t, nil
}

// SentencePiece returns the underlying SentencePiece model.
func (t *Tokenizer) SentencePiece() *SentencePiece { return t.sp }

// VocabSize returns the tokenizer's vocabulary size: the SentencePiece
// pieces plus the extra ids (32,100 for T5). Model embeddings may have more
// rows (32,128).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// PadID returns the id of the pad token (0 for T5), or -1 if none.
func (t *Tokenizer) PadID() int { return t.padID }

// EOSID returns the id of </s> (1 for T5), or -1 if none.
func (t *Tokenizer) EOSID() int { return t.eosID }

// UnkID returns the id of <unk> (2 for T5), or -1 if none.
func (t *Tokenizer) UnkID() int { return t.unkID }

// ExtraID returns the id of the sentinel <extra_id_n>: VocabSize()-1-n.
func (t *Tokenizer) ExtraID(n int) (int, error) {
	if n < 0 || n >= t.extraIDs {
		return 0, fmt.Errorf("tokenizer: extra id %d out of range [0, %d)", n, t.extraIDs)
	}
	return t.vocabSize - 1 - n, nil
}

// tokenID is T5Tokenizer._convert_token_to_id: "<extra_id_N>..." maps to
// VocabSize-1-N, anything else to its SentencePiece id.
func (t *Tokenizer) tokenID(tok string) int {
	if id, ok := t.extraTokenID(tok); ok {
		return id
	}
	return t.sp.PieceToID(tok)
}

// extraTokenID applies HF's re.match(r"<extra_id_(\d+)>", token).
func (t *Tokenizer) extraTokenID(tok string) (int, bool) {
	rest, ok := strings.CutPrefix(tok, "<extra_id_")
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(rest) || rest[i] != '>' || i > 9 {
		return 0, false
	}
	n, _ := strconv.Atoi(rest[:i])
	return t.vocabSize - n - 1, true
}

// Encode returns the input_ids T5Tokenizer gives text: its tokens' ids with
// </s> appended unless they already end with it.
func (t *Tokenizer) Encode(text string) ([]int, error) {
	ids, _, err := t.encode(text, false)
	return ids, err
}

// EncodePieces returns Encode's ids and, beside each, its token: the
// SentencePiece piece, the special token's text, or "</s>" for the
// appended end of sequence. Without that last entry the pieces are HF's
// tokenize(text).
func (t *Tokenizer) EncodePieces(text string) (ids []int, pieces []string, err error) {
	return t.encode(text, true)
}

func (t *Tokenizer) encode(text string, wantPieces bool) ([]int, []string, error) {
	chunks := t.splitSpecial(text)
	e := t.sp.getEncoder()
	defer t.sp.putEncoder(e)
	ids := make([]int, 0, min(len(text)/4+2, 1<<20))
	var pieces []string
	if wantPieces {
		pieces = make([]string, 0, cap(ids))
	}
	for _, c := range chunks {
		if c == "" {
			continue
		}
		if s, ok := t.special[c]; ok {
			ids = append(ids, s.id)
			if wantPieces {
				pieces = append(pieces, c)
			}
			continue
		}
		if err := e.encode(t.sp, c); err != nil {
			return nil, nil, err
		}
		var norm string
		if wantPieces {
			norm = string(e.norm)
		}
		for i, id := range e.ids {
			a, b := int(e.starts[i]), e.end(i)
			if id == t.sp.unkID || (b-a > 10 && e.norm[a] == '<') {
				id = t.pieceID(string(e.norm[a:b]), id)
			}
			ids = append(ids, id)
			if wantPieces {
				pieces = append(pieces, norm[a:b])
			}
		}
	}
	if len(ids) == 0 || ids[len(ids)-1] != t.eosID {
		if t.eosID >= 0 {
			ids = append(ids, t.eosID)
			if wantPieces {
				tok, _ := t.idToToken(t.eosID)
				pieces = append(pieces, tok)
			}
		}
	}
	return ids, pieces, nil
}

// pieceID is HF's convert_tokens_to_ids for a SentencePiece piece: T5's
// <extra_id_N> rule, then piece_to_id of the piece text, which for a known
// piece is the id the segmentation gave it.
func (t *Tokenizer) pieceID(piece string, id int) int {
	if x, ok := t.extraTokenID(piece); ok {
		return x
	}
	if id == t.sp.unkID {
		return t.sp.PieceToID(piece)
	}
	return id
}

// splitSpecial is HF's tokenize() up to the SentencePiece call: the text is
// cut around special tokens (leftmost, longest first: HF's Trie.split gives
// the same cuts for tokens none of which overlaps another, as T5's), and the
// whitespace beside each special token is stripped from its neighbours.
func (t *Tokenizer) splitSpecial(text string) []string {
	if t.specialTrie == nil {
		return []string{text}
	}
	var chunks []string
	last := 0
	for i := 0; i < len(text); {
		if !t.specialStart[text[i]] {
			i++
			continue
		}
		l, _ := t.specialTrie.longestPrefix(text[i:])
		if l == 0 {
			i++
			continue
		}
		if i > last {
			chunks = append(chunks, text[last:i])
		}
		chunks = append(chunks, text[i:i+l])
		i += l
		last = i
	}
	if last < len(text) {
		chunks = append(chunks, text[last:])
	}
	for i, c := range chunks {
		s, ok := t.special[c]
		if !ok {
			continue
		}
		stripRight, stripLeft := true, true
		if s.added {
			stripRight, stripLeft = s.rstrip, s.lstrip
		}
		if stripRight && i+1 < len(chunks) && chunks[i+1] != "" {
			chunks[i+1] = pyLStrip(chunks[i+1])
		}
		if stripLeft && i > 0 && chunks[i-1] != "" {
			chunks[i-1] = pyRStrip(chunks[i-1])
		}
	}
	return chunks
}

// idToToken is T5Tokenizer._convert_id_to_token. Ids at or above VocabSize
// give HF's "<extra_id_-k>" texts.
func (t *Tokenizer) idToToken(id int) (string, error) {
	if id < 0 {
		return "", fmt.Errorf("tokenizer: decode: negative id %d", id)
	}
	if id < t.sp.Size() {
		return t.sp.pieces[id], nil
	}
	return "<extra_id_" + strconv.Itoa(t.vocabSize-1-id) + ">", nil
}

// errNegativeID is wrapped by Decode for ids below zero.
var errNegativeID = errors.New("negative id")

// Decode returns the text of ids as T5Tokenizer.decode does, with
// skip_special_tokens=skipSpecial and clean_up_tokenization_spaces from the
// configuration (true for T5). Special tokens are written as their text
// (with a space before each one that does not follow another special
// token), the SentencePiece pieces between them are decoded by
// sentencepiece, and the result is stripped. Ids at or above VocabSize decode
// as HF does, to "<extra_id_-k>"; negative ids are an error.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	var out strings.Builder
	var sub []string
	prevSpecial := false
	for _, id := range ids {
		if id < 0 {
			return "", fmt.Errorf("tokenizer: decode: %w %d", errNegativeID, id)
		}
		if skipSpecial && t.specialIDs[id] {
			continue
		}
		tok, err := t.idToToken(id)
		if err != nil {
			return "", err
		}
		if _, ok := t.special[tok]; !ok {
			sub = append(sub, tok)
			prevSpecial = false
			continue
		}
		if !prevSpecial {
			out.WriteByte(' ')
		}
		s, err := t.sp.DecodePieces(sub)
		if err != nil {
			return "", err
		}
		out.WriteString(s)
		out.WriteString(tok)
		prevSpecial = true
		sub = sub[:0]
	}
	s, err := t.sp.DecodePieces(sub)
	if err != nil {
		return "", err
	}
	out.WriteString(s)
	text := pyStrip(out.String())
	if t.cleanUp {
		text = cleanUpTokenization(text)
	}
	return text, nil
}

// cleanUpTokenization is PreTrainedTokenizerBase.clean_up_tokenization.
func cleanUpTokenization(s string) string {
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}
