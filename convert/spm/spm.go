// Package spm reads the parts of a SentencePiece model (spiece.model, a serialized
// sentencepiece.ModelProto) that converters need to carry a tokenizer into another format:
// the pieces with their scores and types, the model type, and the normalizer's precompiled
// character map and flags.
//
// It is a reader of data, not a tokenizer: nothing here segments text. It lives in convert so
// that exporters (GGUF) can use it without importing the inference engine's tokenizer.
//
// Field numbers follow sentencepiece's src/sentencepiece_model.proto:
//
//	ModelProto:     pieces=1, trainer_spec=2, normalizer_spec=3
//	SentencePiece:  piece=1, score=2 (float), type=3 (enum, default NORMAL)
//	TrainerSpec:    model_type=3 (enum, default UNIGRAM)
//	NormalizerSpec: name=1, precompiled_charsmap=2, add_dummy_prefix=3 (default true),
//	                remove_extra_whitespaces=4 (default true)
//
// Fields not listed are skipped, as protobuf parsers skip unknown fields.
package spm

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// Type is the type of a piece (ModelProto.SentencePiece.Type).
type Type int32

// Piece types, numbered as in sentencepiece_model.proto.
const (
	Normal      Type = 1 // an ordinary piece
	Unknown     Type = 2 // <unk>
	Control     Type = 3 // <s>, </s>, <pad>
	UserDefined Type = 4 // always segmented as one piece
	Unused      Type = 5 // in the vocabulary but never produced
	Byte        Type = 6 // <0xXX> byte-fallback pieces
)

// Valid reports whether t is one of the types of the proto enum.
func (t Type) Valid() bool { return t >= Normal && t <= Byte }

// ModelType is TrainerSpec.model_type.
type ModelType int32

// Model types, numbered as in sentencepiece_model.proto.
const (
	Unigram ModelType = 1
	BPE     ModelType = 2
	Word    ModelType = 3
	Char    ModelType = 4
)

// Piece is one vocabulary entry; its id is its index in Model.Pieces.
type Piece struct {
	Text  string
	Score float32
	Type  Type
}

// Model is what converters need of a SentencePiece model.
type Model struct {
	Pieces    []Piece
	ModelType ModelType
	// NormalizerName is normalizer_spec.name ("nmt_nfkc" for T5).
	NormalizerName string
	// PrecompiledCharsmap is normalizer_spec.precompiled_charsmap, the compiled normalization
	// rules (a double-array trie and its replacement strings); nil when absent.
	PrecompiledCharsmap []byte
	// AddDummyPrefix and RemoveExtraWhitespaces are the normalizer flags (both default true).
	AddDummyPrefix         bool
	RemoveExtraWhitespaces bool
}

// ErrFormat is wrapped by every error about data that is not a valid SentencePiece model.
var ErrFormat = errors.New("spm: invalid SentencePiece model")

// MaxModelSize bounds the file Open reads: T5's spiece.model is 792 kB and the largest
// SentencePiece vocabularies in use (256k pieces) are about 5 MB.
const MaxModelSize = 64 << 20

// Open reads and parses the model at path, a regular file of at most MaxModelSize bytes.
func Open(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("spm: open: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spm: open: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > MaxModelSize {
		return nil, fmt.Errorf("spm: open %s: %w: %d bytes (a regular file of at most %d expected)", path, ErrFormat, st.Size(), MaxModelSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxModelSize+1))
	if err != nil {
		return nil, fmt.Errorf("spm: open %s: %w", path, err)
	}
	if len(data) > MaxModelSize {
		return nil, fmt.Errorf("spm: open %s: %w: grew past %d bytes while read", path, ErrFormat, MaxModelSize)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("spm: open %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a serialized ModelProto. It checks what a converter relies on: at least one
// piece, no empty piece, known piece types, at most one unknown piece and no duplicate piece.
// The returned model does not alias data.
func Parse(data []byte) (*Model, error) {
	m := &Model{ModelType: Unigram, AddDummyPrefix: true, RemoveExtraWhitespaces: true}
	err := forEach(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			p, err := parsePiece(b)
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(m.Pieces), err)
			}
			m.Pieces = append(m.Pieces, p)
		case 2:
			return forEach(b, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
				if num == 3 && typ == protowire.VarintType {
					m.ModelType = ModelType(int32(v))
				}
				return nil
			})
		case 3:
			return forEach(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					m.NormalizerName = string(b)
				case num == 2 && typ == protowire.BytesType:
					m.PrecompiledCharsmap = append([]byte(nil), b...)
				case num == 3 && typ == protowire.VarintType:
					m.AddDummyPrefix = v != 0
				case num == 4 && typ == protowire.VarintType:
					m.RemoveExtraWhitespaces = v != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Model) validate() error {
	if len(m.Pieces) == 0 {
		return fmt.Errorf("%w: no pieces", ErrFormat)
	}
	if len(m.Pieces) > math.MaxInt32 {
		return fmt.Errorf("%w: %d pieces", ErrFormat, len(m.Pieces))
	}
	seen := make(map[string]int, len(m.Pieces))
	unk := -1
	for i, p := range m.Pieces {
		if p.Text == "" {
			return fmt.Errorf("%w: piece %d is empty", ErrFormat, i)
		}
		if !p.Type.Valid() {
			return fmt.Errorf("%w: piece %d (%q) has invalid type %d", ErrFormat, i, p.Text, p.Type)
		}
		if p.Type == Unknown {
			if unk >= 0 {
				return fmt.Errorf("%w: unknown piece defined twice (ids %d and %d)", ErrFormat, unk, i)
			}
			unk = i
		}
		if j, dup := seen[p.Text]; dup {
			return fmt.Errorf("%w: piece %q defined twice (ids %d and %d)", ErrFormat, p.Text, j, i)
		}
		seen[p.Text] = i
	}
	return nil
}

// UnknownID returns the id of the unknown piece, or -1 when the model has none.
func (m *Model) UnknownID() int {
	for i, p := range m.Pieces {
		if p.Type == Unknown {
			return i
		}
	}
	return -1
}

func parsePiece(b []byte) (Piece, error) {
	p := Piece{Type: Normal}
	err := forEach(b, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			p.Text = string(b)
		case num == 2 && typ == protowire.Fixed32Type:
			p.Score = math.Float32frombits(uint32(v))
		case num == 3 && typ == protowire.VarintType:
			p.Type = Type(int32(v))
		}
		return nil
	})
	return p, err
}

// forEach decodes the fields of one message in order: v holds varint and fixed values, b the
// bytes of a length-delimited field (aliasing msg).
func forEach(msg []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		var (
			v uint64
			b []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(msg)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(msg)
			v = uint64(u)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(msg)
		case protowire.BytesType:
			b, n = protowire.ConsumeBytes(msg)
		default:
			n = protowire.ConsumeFieldValue(num, typ, msg)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		if err := fn(num, typ, v, b); err != nil {
			return err
		}
	}
	return nil
}
