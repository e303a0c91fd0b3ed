package tokenizer

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

// SentencePiece is a unigram SentencePiece model read from a spiece.model
// file. It reproduces sentencepiece 0.1.97's SentencePieceProcessor: Encode
// gives the pieces and ids of `sp.encode(text)` and Decode the text of
// `sp.decode(ids)`. A SentencePiece is immutable and safe for concurrent use.
type SentencePiece struct {
	pieces   []string
	scores   []float32
	types    []PieceType
	unkID    int
	trainer  trainerSpec
	trie     *daTrie // NORMAL, USER_DEFINED and UNUSED pieces
	reserved map[string]int
	norm     normalizer
	denorm   *normalizer // nil unless the model has a denormalizer_spec with rules
	// unkScore is the score of an unknown character: the lowest NORMAL
	// score minus 10 (kUnkPenalty in unigram_model.cc), in float32.
	unkScore float32
	// maxScore is the highest NORMAL score, but never below FLT_MIN, the
	// smallest positive float32: sentencepiece starts its maximum there.
	maxScore float32
	// encoders recycles segmentation buffers between calls.
	encoders sync.Pool
}

// ParseModel reads a SentencePiece model from the bytes of a spiece.model
// file. Only unigram models without byte fallback are supported; other
// models give an error wrapping ErrUnsupportedModel, and data that is not a
// SentencePiece model one wrapping ErrNotSentencePiece.
func ParseModel(data []byte) (*SentencePiece, error) {
	m, err := parseModelProto(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: parse model: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("tokenizer: parse model: %w", err)
	}
	sp := &SentencePiece{
		pieces:   make([]string, len(m.pieces)),
		scores:   make([]float32, len(m.pieces)),
		types:    make([]PieceType, len(m.pieces)),
		reserved: make(map[string]int),
		trainer:  m.trainer,
		unkID:    -1,
	}
	minScore := float32(math.MaxFloat32)
	maxScore := float32(0x1p-126) // FLT_MIN, where unigram_model.cc starts its maximum
	var keys, userDefs []string
	var ids []int32
	for i, p := range m.pieces {
		sp.pieces[i], sp.scores[i], sp.types[i] = p.piece, p.score, p.typ
		switch p.typ {
		case Normal, UserDefined, Unused:
			keys = append(keys, p.piece)
			ids = append(ids, int32(i))
		default:
			sp.reserved[p.piece] = i
		}
		switch p.typ {
		case Normal:
			minScore = min(minScore, p.score)
			maxScore = max(maxScore, p.score)
		case UserDefined:
			userDefs = append(userDefs, p.piece)
		case Unknown:
			sp.unkID = i
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("tokenizer: parse model: %w: no normal pieces", ErrNotSentencePiece)
	}
	sp.unkScore = minScore - 10
	sp.maxScore = maxScore
	sp.trie = buildTrie(keys, ids)
	sp.norm.spec = m.normalizer
	if len(userDefs) > 0 {
		sp.norm.userDefs = buildTrie(userDefs, make([]int32, len(userDefs)))
	}
	if len(m.normalizer.charsmap) > 0 {
		if sp.norm.chars, err = parseCharsMap(m.normalizer.charsmap); err != nil {
			return nil, fmt.Errorf("tokenizer: parse model: normalizer %q: %w", m.normalizer.name, err)
		}
	}
	if m.hasDenormalizer && len(m.denormalizer.charsmap) > 0 {
		d := &normalizer{spec: m.denormalizer}
		if d.chars, err = parseCharsMap(m.denormalizer.charsmap); err != nil {
			return nil, fmt.Errorf("tokenizer: parse model: denormalizer: %w", err)
		}
		sp.denorm = d
	}
	return sp, nil
}

// Size returns the number of pieces in the model.
func (sp *SentencePiece) Size() int { return len(sp.pieces) }

// UnkID returns the id of the unknown piece.
func (sp *SentencePiece) UnkID() int { return sp.unkID }

// BOSID returns the trainer spec's id of <s>, or -1 (T5 has none).
func (sp *SentencePiece) BOSID() int { return int(sp.trainer.bosID) }

// EOSID returns the trainer spec's id of </s>, or -1.
func (sp *SentencePiece) EOSID() int { return int(sp.trainer.eosID) }

// PadID returns the trainer spec's id of <pad>, or -1.
func (sp *SentencePiece) PadID() int { return int(sp.trainer.padID) }

// IDToPiece returns the piece with the given id; ok is false when id is out
// of range.
func (sp *SentencePiece) IDToPiece(id int) (piece string, ok bool) {
	if id < 0 || id >= len(sp.pieces) {
		return "", false
	}
	return sp.pieces[id], true
}

// Type returns the type of piece id, or 0 when id is out of range.
func (sp *SentencePiece) Type(id int) PieceType {
	if id < 0 || id >= len(sp.types) {
		return 0
	}
	return sp.types[id]
}

// Score returns the unigram log-probability of piece id, or 0 when id is
// out of range.
func (sp *SentencePiece) Score(id int) float32 {
	if id < 0 || id >= len(sp.scores) {
		return 0
	}
	return sp.scores[id]
}

// PieceToID returns the id of piece, or the unknown id when the model has no
// such piece. As in sentencepiece, which keys its trie by C strings, the
// piece ends at its first NUL byte.
func (sp *SentencePiece) PieceToID(piece string) int {
	if id, ok := sp.reserved[piece]; ok {
		return id
	}
	if z := strings.IndexByte(piece, 0); z >= 0 {
		piece = piece[:z]
	}
	if id := sp.trie.exact(piece); id >= 0 {
		return int(id)
	}
	return sp.unkID
}

// Normalize returns text as the model's normalizer rewrites it before
// segmentation (NFKC rules, spaces as U+2581, dummy prefix). Malformed UTF-8
// is replaced byte by byte with U+FFFD, as sentencepiece does.
func (sp *SentencePiece) Normalize(text string) (string, error) {
	b, err := sp.norm.normalize(nil, text)
	if err != nil {
		return "", fmt.Errorf("tokenizer: normalize: %w", err)
	}
	return string(b), nil
}

// Encode segments text into pieces: the ids and pieces sentencepiece's
// `encode(text)` returns. Runs of unknown characters come back as one piece
// with the unknown id whose text is the normalized run.
func (sp *SentencePiece) Encode(text string) (ids []int, pieces []string, err error) {
	e := sp.getEncoder()
	defer sp.putEncoder(e)
	if err := e.encode(sp, text); err != nil {
		return nil, nil, err
	}
	if len(e.ids) == 0 {
		return nil, nil, nil
	}
	norm := string(e.norm)
	pieces = make([]string, len(e.ids))
	for i := range pieces {
		pieces[i] = norm[int(e.starts[i]):e.end(i)]
	}
	return slices.Clone(e.ids), pieces, nil
}

func (sp *SentencePiece) getEncoder() *encoder {
	if e, ok := sp.encoders.Get().(*encoder); ok {
		return e
	}
	return new(encoder)
}

// maxPooledBytes bounds the normalized length whose buffers (about 13 bytes
// a byte) go back to the pool, so that one huge text does not stay resident.
const maxPooledBytes = 4 << 20

func (sp *SentencePiece) putEncoder(e *encoder) {
	if cap(e.norm) <= maxPooledBytes {
		sp.encoders.Put(e)
	}
}

// encoder holds the buffers of one segmentation, reusable across calls.
// After encode, piece i is norm[starts[i]:end(i)] and has id ids[i].
type encoder struct {
	norm   []byte
	best   []bestNode
	ids    []int
	starts []int32
}

func (e *encoder) end(i int) int {
	if i+1 < len(e.starts) {
		return int(e.starts[i+1])
	}
	return len(e.norm)
}

// bestNode is the best path ending at one byte position (BestPathNode in
// unigram_model.cc EncodeOptimized).
type bestNode struct {
	score float32
	start int32 // -1: no path ends here yet
	id    int32
}

// oneCharLen is sentencepiece's string_util::OneCharLen: the UTF-8 length
// that a lead byte announces, 1 for anything else.
func oneCharLen(c byte) int {
	return int("\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x03\x04"[c>>4])
}

// encode normalizes and segments text, replacing the encoder's contents.
func (e *encoder) encode(sp *SentencePiece, text string) error {
	var err error
	e.ids, e.starts = e.ids[:0], e.starts[:0]
	if cap(e.norm) < len(text)+len(text)/4+8 {
		e.norm = make([]byte, 0, len(text)+len(text)/4+8)
	}
	e.norm, err = sp.norm.normalize(e.norm[:0], text)
	if err != nil {
		return fmt.Errorf("tokenizer: encode: %w", err)
	}
	if len(e.norm) == 0 {
		return nil
	}
	return e.viterbi(sp)
}

// viterbi is unigram_model.cc's Model::EncodeOptimized, arithmetic included:
// path scores are stored as float32; a piece's candidate score is the
// float64 sum of two float32s (sentencepiece's user-defined score expression
// contains a double literal, which makes the whole candidate a double) and is
// compared in float64 against the stored float32; an unknown character's
// candidate is float32 throughout. Ties keep the earlier start. Exact ties
// between splits therefore resolve as in sentencepiece. Runs of unknown
// pieces are then merged into one (PopulateSentencePieceText).
func (e *encoder) viterbi(sp *SentencePiece) error {
	norm := e.norm
	n := len(norm)
	if n >= math.MaxInt32 {
		return fmt.Errorf("tokenizer: encode: normalized text of %d bytes is too long", n)
	}
	if cap(e.best) < n+1 {
		e.best = make([]bestNode, n+1)
	}
	best := e.best[:n+1]
	for i := range best {
		best[i] = bestNode{start: -1}
	}
	units := sp.trie.units
	types, scores := sp.types, sp.scores
	unkScore := sp.unkScore
	for start := 0; start < n; {
		here := best[start].score
		mblen := min(oneCharLen(norm[start]), n-start)
		single := false
		s := 0
		for k := start; k < n; k++ {
			next := int(units[s].base) + int(norm[k])
			if next >= len(units) || units[next].check != int32(s) {
				break
			}
			s = next
			id := units[s].value
			if id < 0 {
				continue
			}
			t := types[id]
			if t == Unused {
				continue
			}
			length := k + 1 - start
			var score float64
			if t == UserDefined {
				score = float64(float32(length)*sp.maxScore) - 0.1
			} else {
				score = float64(scores[id])
			}
			cand := score + float64(here)
			target := &best[k+1]
			if target.start < 0 || cand > float64(target.score) {
				*target = bestNode{score: float32(cand), start: int32(start), id: id}
			}
			if length == mblen {
				single = true
			}
		}
		if !single {
			target := &best[start+mblen]
			cand := unkScore + here
			if target.start < 0 || cand > target.score {
				*target = bestNode{score: cand, start: int32(start), id: int32(sp.unkID)}
			}
		}
		start += mblen
	}

	// Backtrack, merging unknown runs on the way, then reverse in place.
	unk := int32(sp.unkID)
	for end := n; end > 0; {
		node := best[end]
		if node.start < 0 || int(node.start) >= end {
			return fmt.Errorf("tokenizer: encode: no segmentation path at byte %d", end)
		}
		if node.id == unk && len(e.ids) > 0 && e.ids[len(e.ids)-1] == int(unk) {
			e.starts[len(e.starts)-1] = node.start
		} else {
			e.ids = append(e.ids, int(node.id))
			e.starts = append(e.starts, node.start)
		}
		end = int(node.start)
	}
	slices.Reverse(e.ids)
	slices.Reverse(e.starts)
	return nil
}

// Decode returns the text of ids as sentencepiece's `decode(ids)` does:
// pieces joined, U+2581 turned back into spaces, the leading space of the
// first piece dropped, control pieces dropped, and the unknown piece shown
// as the model's unk_surface (" \u2047 " by default).
func (sp *SentencePiece) Decode(ids []int) (string, error) {
	pieces := make([]string, len(ids))
	for i, id := range ids {
		p, ok := sp.IDToPiece(id)
		if !ok {
			return "", fmt.Errorf("tokenizer: decode: id %d out of range [0, %d)", id, len(sp.pieces))
		}
		pieces[i] = p
	}
	return sp.DecodePieces(pieces)
}

// DecodePieces returns the text of pieces as sentencepiece's
// `decode(pieces)` does. A piece that is not in the vocabulary is copied as
// it is.
func (sp *SentencePiece) DecodePieces(pieces []string) (string, error) {
	var b strings.Builder
	for _, p := range pieces {
		id := sp.PieceToID(p)
		switch sp.types[id] {
		case Control:
			continue
		case Unknown:
			if sp.pieces[id] == p {
				b.WriteString(sp.trainer.unkSurface)
			} else {
				b.WriteString(p)
			}
			continue
		}
		if b.Len() == 0 {
			p = strings.TrimPrefix(p, spaceSymbol)
		}
		if strings.Contains(p, spaceSymbol) {
			b.WriteString(strings.ReplaceAll(p, spaceSymbol, " "))
		} else {
			b.WriteString(p)
		}
	}
	text := b.String()
	if sp.denorm != nil {
		d, err := sp.denorm.normalize(nil, text)
		if err != nil {
			return "", fmt.Errorf("tokenizer: decode: denormalize: %w", err)
		}
		text = string(d)
	}
	return text, nil
}
