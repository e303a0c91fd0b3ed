package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// FactsRecord is one shape of the research notes' machine-readable list
// (catalog/facts/t5_efficient_checkpoints.json), the source data of catalog.json.
type FactsRecord struct {
	Name                         string   `json:"name"`
	HFRepo                       string   `json:"hf_repo"`
	DModel                       int      `json:"d_model"`
	DFF                          int      `json:"d_ff"`
	DKV                          int      `json:"d_kv"`
	NumHeads                     int      `json:"num_heads"`
	NumLayers                    int      `json:"num_layers"`
	NumDecoderLayers             int      `json:"num_decoder_layers"`
	VocabSize                    int      `json:"vocab_size"`
	FeedForwardProj              string   `json:"feed_forward_proj"`
	TieWordEmbeddings            bool     `json:"tie_word_embeddings"`
	RelativeAttentionNumBuckets  int      `json:"relative_attention_num_buckets"`
	RelativeAttentionMaxDistance int      `json:"relative_attention_max_distance"`
	MaxDistanceInConfig          bool     `json:"relative_attention_max_distance_in_config"`
	DropoutRate                  float64  `json:"dropout_rate"`
	LayerNormEpsilon             float64  `json:"layer_norm_epsilon"`
	NPositions                   int      `json:"n_positions"`
	Params                       int64    `json:"params"`
	ParamsMethod                 string   `json:"params_method"`
	CardParamsMillions           *float64 `json:"card_params_millions"`
	FlaxSize                     *string  `json:"flax_model_msgpack_size"`
	Existence                    string   `json:"existence"` // confirmed, inferred or unverified
	Source                       string   `json:"source"`    // exact or derived
	Evidence                     string   `json:"evidence"`
	Note                         *string  `json:"note"`
}

// ParseFacts reads the facts list strictly: an unknown key is an error, so that a change in
// the source data is noticed.
func ParseFacts(data []byte) ([]FactsRecord, error) {
	var recs []FactsRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&recs); err != nil {
		return nil, fmt.Errorf("parse facts: %w", err)
	}
	return recs, nil
}

// Shape returns the record's hyper-parameters on the published checkpoints' defaults.
func (r FactsRecord) Shape() Shape {
	s := DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads = r.DModel, r.DFF, r.DKV, r.NumHeads
	s.NumLayers, s.NumDecoderLayers, s.VocabSize = r.NumLayers, r.NumDecoderLayers, r.VocabSize
	s.FeedForwardProj, s.TieWordEmbeddings = r.FeedForwardProj, r.TieWordEmbeddings
	s.RelativeAttentionNumBuckets, s.RelativeAttentionMaxDistance = r.RelativeAttentionNumBuckets, r.RelativeAttentionMaxDistance
	s.DropoutRate, s.LayerNormEpsilon, s.NPositions = r.DropoutRate, r.LayerNormEpsilon, r.NPositions
	return s
}

// EntriesFromFacts turns the facts list into catalog entries: the confirmed and inferred
// shapes, never the unverified candidates. It fails where the facts disagree with the code:
// a name the grammar rejects, a repository that is not google/NAME, or a recorded parameter
// count that the cost model does not reproduce.
func EntriesFromFacts(recs []FactsRecord) ([]Entry, error) {
	var out []Entry
	for _, r := range recs {
		switch r.Existence {
		case "confirmed", "inferred":
		case "unverified":
			continue
		default:
			return nil, fmt.Errorf("facts %q: existence %q", r.Name, r.Existence)
		}
		n, err := ParseName(r.Name)
		if err != nil {
			return nil, fmt.Errorf("facts: %w", err)
		}
		if n.String() != r.Name || n.HFRepo() != r.HFRepo {
			return nil, fmt.Errorf("facts %q: expected canonical name with repo %s, got repo %q", r.Name, n.HFRepo(), r.HFRepo)
		}
		if r.Source != ConfigExact && r.Source != ConfigDerived {
			return nil, fmt.Errorf("facts %q: source %q", r.Name, r.Source)
		}
		s := r.Shape()
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("facts %q: %w", r.Name, err)
		}
		if s.Params() != r.Params {
			return nil, fmt.Errorf("facts %q: params %d, cost model %d", r.Name, r.Params, s.Params())
		}
		e := Entry{
			Name:         r.Name,
			HFRepo:       r.HFRepo,
			Published:    true,
			Existence:    r.Existence,
			ConfigSource: r.Source,
			Params:       r.Params,
			Config:       s.HFConfig(),
			Evidence:     r.Evidence,
		}
		if r.Note != nil && *r.Note != "" {
			e.Notes = append(e.Notes, *r.Note)
		}
		if named, _ := n.Shape(); named != s {
			e.Notes = append(e.Notes, "the config departs from what the name says: "+ShapeDiff(named, s))
		}
		if r.FlaxSize != nil {
			e.HFFlaxSize = *r.FlaxSize
		}
		out = append(out, e)
	}
	return out, nil
}

// MarshalFile renders entries as catalog.json, byte for byte what the generator commits.
func MarshalFile(entries []Entry, source string) ([]byte, error) {
	c, err := New(entries)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(File{Format: Format, Source: source, Shapes: c.entries}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal catalog: %w", err)
	}
	return append(b, '\n'), nil
}

// ShapeDiff lists the hyper-parameters in which b differs from a, as "key a→b" pairs.
func ShapeDiff(a, b Shape) string {
	type kv struct {
		key  string
		a, b any
	}
	fields := []kv{
		{"d_model", a.DModel, b.DModel}, {"d_ff", a.DFF, b.DFF}, {"d_kv", a.DKV, b.DKV},
		{"num_heads", a.NumHeads, b.NumHeads}, {"num_layers", a.NumLayers, b.NumLayers},
		{"num_decoder_layers", a.NumDecoderLayers, b.NumDecoderLayers}, {"vocab_size", a.VocabSize, b.VocabSize},
		{"feed_forward_proj", a.FeedForwardProj, b.FeedForwardProj}, {"tie_word_embeddings", a.TieWordEmbeddings, b.TieWordEmbeddings},
		{"relative_attention_num_buckets", a.RelativeAttentionNumBuckets, b.RelativeAttentionNumBuckets},
		{"relative_attention_max_distance", a.RelativeAttentionMaxDistance, b.RelativeAttentionMaxDistance},
		{"layer_norm_epsilon", a.LayerNormEpsilon, b.LayerNormEpsilon}, {"dropout_rate", a.DropoutRate, b.DropoutRate},
		{"n_positions", a.NPositions, b.NPositions}, {"pad_token_id", a.PadTokenID, b.PadTokenID},
		{"eos_token_id", a.EOSTokenID, b.EOSTokenID}, {"decoder_start_token_id", a.DecoderStartTokenID, b.DecoderStartTokenID},
	}
	var parts []string
	for _, f := range fields {
		if f.a != f.b {
			parts = append(parts, fmt.Sprintf("%s %v→%v", f.key, f.a, f.b))
		}
	}
	return strings.Join(parts, ", ")
}
