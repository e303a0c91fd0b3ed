package infer

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/convert/safetensors"
)

// TestLoadErrors checks that broken checkpoints are errors naming the problem.
func TestLoadErrors(t *testing.T) {
	base := randomVariants()[0].spec // tied relu
	untied := randomVariants()[1].spec
	untied.shards = 0
	tests := []struct {
		name   string
		spec   randomSpec
		mutate func(map[string][]float32)
		edit   func(t *testing.T, dir string)
		want   string
	}{
		{name: "missing tensor", spec: base,
			mutate: func(ts map[string][]float32) { delete(ts, "decoder.block.1.layer.1.EncDecAttention.k.weight") },
			want:   `missing tensor "decoder.block.1.layer.1.EncDecAttention.k.weight"`},
		{name: "missing lm_head when untied", spec: untied,
			mutate: func(ts map[string][]float32) { delete(ts, "lm_head.weight") },
			want:   `missing tensor "lm_head.weight"`},
		{name: "extra tensor", spec: base,
			mutate: func(ts map[string][]float32) {
				ts["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] = make([]float32, 96)
			},
			want: `unexpected tensor "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"`},
		{name: "mis-shaped tensor", spec: base,
			mutate: func(ts map[string][]float32) {
				ts["encoder.final_layer_norm.weight"] = append(ts["encoder.final_layer_norm.weight"], 1)
			},
			want: `tensor "encoder.final_layer_norm.weight" has shape [49], the config needs [48]`},
		{name: "no weights", spec: base,
			edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "model.safetensors")) },
			want: "holds none of model.safetensors"},
		{name: "no config", spec: base,
			edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "config.json")) },
			want: "config.json"},
		{name: "bad config", spec: base,
			edit: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"d_model": -4}`), 0o644)
			},
			want: "d_model"},
		{name: "truncated weights", spec: base,
			edit: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "model.safetensors")
				st, _ := os.Stat(p)
				os.Truncate(p, st.Size()-10)
			},
			want: "truncated"},
		{name: "integer weights", spec: base,
			edit: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "model.safetensors")
				f, err := safetensors.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				var w safetensors.Writer
				for _, ti := range f.Tensors {
					b, _ := f.Bytes(ti.Name)
					dt := ti.DType
					if ti.Name == "encoder.final_layer_norm.weight" {
						dt = safetensors.I32
					}
					if err := w.Add(ti.Name, dt, ti.Shape, bytes.Clone(b)); err != nil {
						t.Fatal(err)
					}
				}
				f.Close()
				if err := w.WriteFile(p); err != nil {
					t.Fatal(err)
				}
			},
			want: `tensor "encoder.final_layer_norm.weight" has dtype I32`},
		{name: "shard missing from index", spec: randomSpec{shape: base.shape, shards: 2},
			edit: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "model.safetensors.index.json")
				var idx map[string]map[string]string
				raw, _ := os.ReadFile(p)
				json.Unmarshal(raw, &idx)
				delete(idx["weight_map"], "shared.weight")
				raw, _ = json.Marshal(idx)
				os.WriteFile(p, raw, 0o644)
			},
			want: `is not listed in the index`},
		{name: "index names a missing tensor", spec: randomSpec{shape: base.shape, shards: 2},
			edit: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "model.safetensors.index.json")
				var idx map[string]map[string]string
				raw, _ := os.ReadFile(p)
				json.Unmarshal(raw, &idx)
				idx["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors"
				raw, _ = json.Marshal(idx)
				os.WriteFile(p, raw, 0o644)
			},
			want: `tensor "ghost.weight" listed in the index is missing`},
		{name: "index escapes the directory", spec: randomSpec{shape: base.shape, shards: 2},
			edit: func(t *testing.T, dir string) {
				os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(`{"weight_map":{"shared.weight":"../x.safetensors"}}`), 0o644)
			},
			want: "outside the model directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := randomTensors(tt.spec, 1)
			if tt.mutate != nil {
				tt.mutate(ts)
			}
			dir := writeModel(t, tt.spec, ts)
			if tt.edit != nil {
				tt.edit(t, dir)
			}
			m, err := Load(t.Context(), dir, testOptions(t, LoadOptions{}))
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestLoadAliasesAndAlignment loads a tied checkpoint that also stores the aliases of
// shared.weight (as pytorch_model.bin-derived files do) and whose data section is not
// 4-byte aligned, and checks that it computes what the plain checkpoint computes.
func TestLoadAliasesAndAlignment(t *testing.T) {
	spec := randomVariants()[0].spec
	ts := randomTensors(spec, 1)
	plain := writeModel(t, spec, ts)
	ts["encoder.embed_tokens.weight"] = ts["shared.weight"]
	ts["decoder.embed_tokens.weight"] = ts["shared.weight"]
	ts["lm_head.weight"] = ts["shared.weight"]
	dir := writeModel(t, spec, ts)
	// Shift the data section by 2 bytes: pad the header with two more spaces.
	p := filepath.Join(dir, "model.safetensors")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	var shifted []byte
	shifted = binary.LittleEndian.AppendUint64(shifted, n+2)
	shifted = append(shifted, raw[8:8+n]...)
	shifted = append(shifted, ' ', ' ')
	shifted = append(shifted, raw[8+n:]...)
	if err := os.WriteFile(p, shifted, 0o644); err != nil {
		t.Fatal(err)
	}
	var outs [][]ScoreResult
	for _, d := range []string{plain, dir} {
		m, err := Load(t.Context(), d, testOptions(t, LoadOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		s := m.Shape()
		in := randomInputs(3, 2, 30, s.VocabSize, s.EOSTokenID)
		r, err := m.Score(t.Context(), []ScorePair{{in[0], in[1]}})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, r)
	}
	if outs[0][0].SumLogprob != outs[1][0].SumLogprob {
		t.Errorf("aliased/unaligned checkpoint scores %v, plain %v", outs[1][0].SumLogprob, outs[0][0].SumLogprob)
	}
}

// TestBadInput checks that bad requests are errors wrapping ErrInvalidInput, not panics.
func TestBadInput(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{MaxTokens: 32})
	ctx := t.Context()
	V := m.Shape().VocabSize
	long := make([]int, 33)
	for i := range long {
		long[i] = 5
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"no inputs", func() error { _, err := m.Generate(ctx, nil, GenerateOptions{}); return err }},
		{"empty input", func() error { _, err := m.Generate(ctx, [][]int{{5, 1}, {}}, GenerateOptions{}); return err }},
		{"id past vocab", func() error { _, err := m.Generate(ctx, [][]int{{5, V}}, GenerateOptions{}); return err }},
		{"negative id", func() error { _, err := m.Encode(ctx, [][]int{{-3}}); return err }},
		{"input too long", func() error { _, err := m.Encode(ctx, [][]int{long}); return err }},
		{"max_new_tokens too large", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{MaxNewTokens: 33})
			return err
		}},
		{"negative max_new_tokens", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{MaxNewTokens: -1})
			return err
		}},
		{"more returns than beams", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{NumBeams: 2, NumReturnSequences: 3})
			return err
		}},
		{"greedy with returns", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{NumReturnSequences: 2})
			return err
		}},
		{"beam sampling", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{NumBeams: 2, Sample: true})
			return err
		}},
		{"bad top_p", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{Sample: true, TopP: 1.5})
			return err
		}},
		{"negative temperature", func() error {
			_, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{Sample: true, Temperature: -1})
			return err
		}},
		{"no pairs", func() error { _, err := m.Score(ctx, nil); return err }},
		{"empty target", func() error { _, err := m.Score(ctx, []ScorePair{{Input: []int{5, 1}}}); return err }},
		{"target past vocab", func() error {
			_, err := m.Score(ctx, []ScorePair{{Input: []int{5, 1}, Target: []int{V + 10}}})
			return err
		}},
		{"target too long", func() error { _, err := m.Score(ctx, []ScorePair{{Input: []int{5, 1}, Target: long}}); return err }},
		{"step token count", func() error {
			encs, err := m.RunEncoder(ctx, [][]int{{5, 1}})
			if err != nil {
				return err
			}
			_, err = m.Step(ctx, []*Sequence{encs[0].NewSequence()}, []int{0, 1}, nil)
			return err
		}},
		{"step same sequence twice", func() error {
			encs, err := m.RunEncoder(ctx, [][]int{{5, 1}})
			if err != nil {
				return err
			}
			s := encs[0].NewSequence()
			_, err = m.Step(ctx, []*Sequence{s, s}, []int{0, 0}, nil)
			return err
		}},
		{"step zero sequence", func() error {
			_, err := m.Step(ctx, []*Sequence{{}}, []int{0}, nil)
			return err
		}},
		{"step token past vocab", func() error {
			encs, err := m.RunEncoder(ctx, [][]int{{5, 1}})
			if err != nil {
				return err
			}
			_, err = m.Step(ctx, []*Sequence{encs[0].NewSequence()}, []int{V}, nil)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, ErrInvalidInput) {
				t.Errorf("got %v, want an ErrInvalidInput", err)
			}
		})
	}
}

// TestCanceled checks that a canceled context stops every call and leaves a sequence as it
// was.
func TestCanceled(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	encs, err := m.RunEncoder(ctx, [][]int{{5, 6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	seq := encs[0].NewSequence()
	if _, err := m.Step(ctx, []*Sequence{seq}, []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := m.Step(ctx, []*Sequence{seq}, []int{7}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Step: %v", err)
	}
	if seq.Len() != 1 || seq.Cached() != 1 {
		t.Errorf("failed step changed the sequence: len %d, cache %d", seq.Len(), seq.Cached())
	}
	if _, err := m.Generate(ctx, [][]int{{5, 1}}, GenerateOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Generate: %v", err)
	}
	if _, err := m.Score(ctx, []ScorePair{{[]int{5, 1}, []int{1}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Score: %v", err)
	}
	if _, err := Load(ctx, writeModel(t, randomVariants()[0].spec, randomTensors(randomVariants()[0].spec, 1)), testOptions(t, LoadOptions{})); !errors.Is(err, context.Canceled) {
		t.Errorf("Load: %v", err)
	}
}

// TestMaxTokensLimit checks that a generation may reach exactly MaxTokens tokens.
func TestMaxTokensLimit(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{MaxTokens: 16})
	for _, o := range []GenerateOptions{{MaxNewTokens: 16}, {MaxNewTokens: 16, NumBeams: 2}} {
		g, err := m.Generate(t.Context(), [][]int{{5, 6, 1}}, o)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(g[0].Hypotheses[0].IDs); n != 17 {
			t.Errorf("%+v: %d ids, want 17 (</s> is never likely here)", o, n)
		}
	}
}
