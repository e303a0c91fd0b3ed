package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// The spiece.model file is a serialized sentencepiece.ModelProto (proto2,
// sentencepiece's src/sentencepiece_model.proto). Only the fields the encoder
// and decoder need are read; every other field is skipped. Field numbers:
//
//	ModelProto:     pieces=1, trainer_spec=2, normalizer_spec=3, denormalizer_spec=5
//	SentencePiece:  piece=1, score=2 (float), type=3 (enum, default NORMAL)
//	TrainerSpec:    model_type=3 (default UNIGRAM), treat_whitespace_as_suffix=24,
//	                byte_fallback=35, unk_id=40 (default 0), bos_id=41 (1),
//	                eos_id=42 (2), pad_id=43 (-1), unk_surface=44 (" \u2047 ")
//	NormalizerSpec: name=1, precompiled_charsmap=2, add_dummy_prefix=3 (true),
//	                remove_extra_whitespaces=4 (true), escape_whitespaces=5 (true)

// ErrNotSentencePiece is returned (wrapped) for data that is not a
// SentencePiece model: not a protobuf, or a protobuf without pieces.
var ErrNotSentencePiece = errors.New("tokenizer: not a SentencePiece model")

// ErrUnsupportedModel is returned (wrapped) for a valid SentencePiece model
// that this package does not implement: BPE, WORD and CHAR models, byte
// fallback, whitespace-as-suffix.
var ErrUnsupportedModel = errors.New("tokenizer: unsupported SentencePiece model")

// PieceType is the type of a vocabulary entry (ModelProto.SentencePiece.Type).
type PieceType int32

// Piece types, numbered as in sentencepiece_model.proto.
const (
	Normal      PieceType = 1 // an ordinary piece
	Unknown     PieceType = 2 // <unk>
	Control     PieceType = 3 // <s>, </s>, <pad>: never produced by Encode, decoded to ""
	UserDefined PieceType = 4 // always segmented as one piece
	Unused      PieceType = 5 // in the vocabulary but never produced
	Byte        PieceType = 6 // <0xXX> byte-fallback pieces
)

// modelType values of TrainerSpec.ModelType.
const (
	modelUnigram = 1
	modelBPE     = 2
	modelWord    = 3
	modelChar    = 4
)

func modelTypeName(t int32) string {
	switch t {
	case modelUnigram:
		return "UNIGRAM"
	case modelBPE:
		return "BPE"
	case modelWord:
		return "WORD"
	case modelChar:
		return "CHAR"
	}
	return fmt.Sprintf("type %d", t)
}

type pieceProto struct {
	piece string
	score float32
	typ   PieceType
}

type trainerSpec struct {
	modelType        int32
	unkID            int32
	bosID            int32
	eosID            int32
	padID            int32
	unkSurface       string
	byteFallback     bool
	whitespaceSuffix bool
}

type normalizerSpec struct {
	name                   string
	charsmap               []byte
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
}

type modelProto struct {
	pieces          []pieceProto
	trainer         trainerSpec
	normalizer      normalizerSpec
	denormalizer    normalizerSpec
	hasDenormalizer bool
}

// field is one decoded protobuf field: u holds varint and fixed values, b the
// bytes of a length-delimited one.
type field struct {
	num protowire.Number
	typ protowire.Type
	u   uint64
	b   []byte
}

// forEachField decodes the fields of one message in order.
func forEachField(msg []byte, fn func(f field) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(msg)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(msg)
			f.u = uint64(v)
		case protowire.Fixed64Type:
			f.u, n = protowire.ConsumeFixed64(msg)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// parseModelProto decodes the fields of a ModelProto. A field whose wire type
// does not match the schema is skipped, as protobuf parsers do with unknown
// fields.
func parseModelProto(data []byte) (*modelProto, error) {
	m := &modelProto{
		trainer:      trainerSpec{modelType: modelUnigram, unkID: 0, bosID: 1, eosID: 2, padID: -1, unkSurface: " \u2047 "},
		normalizer:   defaultNormalizerSpec(),
		denormalizer: defaultNormalizerSpec(),
	}
	err := forEachField(data, func(f field) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case 1:
			p, err := parsePiece(f.b)
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case 2:
			if err := parseTrainerSpec(f.b, &m.trainer); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case 3:
			if err := parseNormalizerSpec(f.b, &m.normalizer); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		case 5:
			m.hasDenormalizer = true
			if err := parseNormalizerSpec(f.b, &m.denormalizer); err != nil {
				return fmt.Errorf("denormalizer_spec: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSentencePiece, err)
	}
	if len(m.pieces) == 0 {
		return nil, fmt.Errorf("%w: no pieces", ErrNotSentencePiece)
	}
	return m, nil
}

func defaultNormalizerSpec() normalizerSpec {
	return normalizerSpec{addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true}
}

func parsePiece(b []byte) (pieceProto, error) {
	p := pieceProto{typ: Normal}
	err := forEachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			p.piece = string(f.b)
		case f.num == 2 && f.typ == protowire.Fixed32Type:
			p.score = math.Float32frombits(uint32(f.u))
		case f.num == 3 && f.typ == protowire.VarintType:
			p.typ = PieceType(int32(f.u))
		}
		return nil
	})
	return p, err
}

func parseTrainerSpec(b []byte, t *trainerSpec) error {
	return forEachField(b, func(f field) error {
		if f.typ == protowire.BytesType {
			if f.num == 44 {
				t.unkSurface = string(f.b)
			}
			return nil
		}
		if f.typ != protowire.VarintType {
			return nil
		}
		v := int32(f.u) // proto int32/enum: the low 32 bits, two's complement
		switch f.num {
		case 3:
			t.modelType = v
		case 24:
			t.whitespaceSuffix = f.u != 0
		case 35:
			t.byteFallback = f.u != 0
		case 40:
			t.unkID = v
		case 41:
			t.bosID = v
		case 42:
			t.eosID = v
		case 43:
			t.padID = v
		}
		return nil
	})
}

func parseNormalizerSpec(b []byte, n *normalizerSpec) error {
	return forEachField(b, func(f field) error {
		switch {
		case f.num == 1 && f.typ == protowire.BytesType:
			n.name = string(f.b)
		case f.num == 2 && f.typ == protowire.BytesType:
			n.charsmap = f.b
		case f.num == 3 && f.typ == protowire.VarintType:
			n.addDummyPrefix = f.u != 0
		case f.num == 4 && f.typ == protowire.VarintType:
			n.removeExtraWhitespaces = f.u != 0
		case f.num == 5 && f.typ == protowire.VarintType:
			n.escapeWhitespaces = f.u != 0
		}
		return nil
	})
}

// validate applies the checks sentencepiece makes when it loads a model
// (ModelInterface::InitializePieces) plus the limits of this package.
func (m *modelProto) validate() error {
	if m.trainer.modelType != modelUnigram {
		return fmt.Errorf("%w: model_type %s: only UNIGRAM models are supported",
			ErrUnsupportedModel, modelTypeName(m.trainer.modelType))
	}
	if m.trainer.byteFallback {
		return fmt.Errorf("%w: byte_fallback is not supported", ErrUnsupportedModel)
	}
	if m.trainer.whitespaceSuffix {
		return fmt.Errorf("%w: treat_whitespace_as_suffix is not supported", ErrUnsupportedModel)
	}
	if len(m.pieces) > math.MaxInt32 {
		return fmt.Errorf("%w: too many pieces", ErrNotSentencePiece)
	}
	unk := -1
	normal := make(map[string]struct{}, len(m.pieces))
	reserved := make(map[string]struct{})
	for i, p := range m.pieces {
		if p.piece == "" {
			return fmt.Errorf("%w: piece %d is empty", ErrNotSentencePiece, i)
		}
		if strings.IndexByte(p.piece, 0) >= 0 {
			return fmt.Errorf("%w: piece %d contains a NUL byte", ErrNotSentencePiece, i)
		}
		set := reserved
		switch p.typ {
		case Normal, UserDefined, Unused:
			set = normal
		case Unknown:
			if unk >= 0 {
				return fmt.Errorf("%w: unknown piece defined twice (ids %d and %d)", ErrNotSentencePiece, unk, i)
			}
			unk = i
		case Control:
		case Byte:
			return fmt.Errorf("%w: byte piece %q without byte_fallback", ErrNotSentencePiece, p.piece)
		default:
			return fmt.Errorf("%w: piece %d has invalid type %d", ErrNotSentencePiece, i, p.typ)
		}
		if _, dup := set[p.piece]; dup {
			return fmt.Errorf("%w: piece %q is defined twice", ErrNotSentencePiece, p.piece)
		}
		set[p.piece] = struct{}{}
	}
	if unk < 0 {
		return fmt.Errorf("%w: no unknown piece", ErrNotSentencePiece)
	}
	return nil
}
