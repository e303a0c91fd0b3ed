package catalog

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseHFConfigGolden(t *testing.T) {
	tests := []struct {
		file  string
		want  func(*Shape)
		act   string
		gated bool
	}{
		{"tiny-relu.config.json", func(s *Shape) {
			s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers, s.VocabSize = 64, 256, 16, 4, 2, 2, 2176
		}, "relu", false},
		{"tiny-gated.config.json", func(s *Shape) {
			s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers, s.VocabSize = 64, 192, 16, 4, 3, 1, 2176
			s.FeedForwardProj, s.TieWordEmbeddings = "gated-gelu", false
		}, "gelu_new", true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseHFConfig(data)
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultShape()
			tt.want(&want)
			if got != want {
				t.Fatalf("got %+v\nwant %+v\ndiff: %s", got, want, ShapeDiff(want, got))
			}
			act, gated, err := got.Activation()
			if err != nil || act != tt.act || gated != tt.gated {
				t.Fatalf("Activation() = %q, %v, %v; want %q, %v", act, gated, err, tt.act, tt.gated)
			}
			// HF's derived keys, as written by transformers, must agree with ours.
			var hf map[string]any
			if err := json.Unmarshal(data, &hf); err != nil {
				t.Fatal(err)
			}
			cfg := got.HFConfig()
			if hf["dense_act_fn"] != cfg.DenseActFn || hf["is_gated_act"] != cfg.IsGatedAct {
				t.Fatalf("derived keys: HF dense_act_fn=%v is_gated_act=%v, ours %q %v", hf["dense_act_fn"], hf["is_gated_act"], cfg.DenseActFn, cfg.IsGatedAct)
			}
		})
	}
}

// The golden state dicts fix the tensor names and shapes HF uses; Tensors plus the aliases
// must be exactly the keys of pytorch_model.bin, and the distinct tensors exactly the keys
// HF writes to model.safetensors.
func TestTensorsMatchGoldenStateDict(t *testing.T) {
	for _, m := range []string{"tiny-relu", "tiny-gated"} {
		t.Run(m, func(t *testing.T) {
			cfg, err := os.ReadFile("testdata/" + m + ".config.json")
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseHFConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile("testdata/" + m + ".statedict.json")
			if err != nil {
				t.Fatal(err)
			}
			var sd struct {
				PytorchKeys     []string         `json:"pytorch_model_bin_keys"`
				SafetensorsKeys []string         `json:"safetensors_keys"`
				Shapes          map[string][]int `json:"shapes"`
			}
			if err := json.Unmarshal(raw, &sd); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, ts := range s.Tensors() {
				names = append(names, ts.Name)
				if !slices.Equal(sd.Shapes[ts.Name], ts.Shape) {
					t.Errorf("%s: shape %v, golden %v", ts.Name, ts.Shape, sd.Shapes[ts.Name])
				}
			}
			if got, want := sorted(names), sorted(sd.SafetensorsKeys); !slices.Equal(got, want) {
				t.Errorf("distinct tensors:\n got %v\nwant %v", got, want)
			}
			all := names
			for _, a := range s.Aliases() {
				if !slices.Contains(all, a) {
					all = append(all, a)
				}
			}
			if got, want := sorted(all), sorted(sd.PytorchKeys); !slices.Equal(got, want) {
				t.Errorf("state dict:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestParseHFConfigDefaultsAndErrors(t *testing.T) {
	s, err := ParseHFConfig([]byte(`{"model_type":"t5","num_layers":3,"num_decoder_layers":null,"d_model":64}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.NumDecoderLayers != 3 || s.DModel != 64 || s.DKV != 64 || s.VocabSize != 32128 || !s.TieWordEmbeddings {
		t.Fatalf("defaults not applied: %+v", s)
	}
	bad := []struct{ name, json, want string }{
		{"not json", `{"d_model":`, "parse config.json"},
		{"trailing", `{} {}`, "trailing data"},
		{"wrong model", `{"model_type":"bart"}`, "not t5"},
		{"zero width", `{"d_model":0}`, "d_model = 0"},
		{"huge layers", `{"num_layers":100000}`, "num_layers"},
		{"odd buckets", `{"relative_attention_num_buckets":31}`, "even"},
		{"bad act", `{"feed_forward_proj":"gated-foo"}`, "not supported"},
		{"bad proj", `{"feed_forward_proj":"gelu-relu"}`, "not ACT or gated-ACT"},
		{"eos outside vocab", `{"vocab_size":10,"eos_token_id":10}`, "eos_token_id"},
		{"negative eps", `{"layer_norm_epsilon":-1}`, "layer_norm_epsilon"},
		{"string width", `{"d_model":"768"}`, "parse config.json"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHFConfig([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := ParseHFConfig([]byte(`{"d_model":0}`)); !errors.Is(err, ErrInvalidShape) {
		t.Fatalf("err = %v, want ErrInvalidShape", err)
	}
}

// HFConfig and ParseHFConfig are inverse for every valid shape.
func TestHFConfigRoundTrip(t *testing.T) {
	for name, s := range testShapes(t) {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(s.HFConfig())
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseHFConfig(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != s {
				t.Fatalf("round trip changed: %s", ShapeDiff(s, got))
			}
		})
	}
}

func FuzzParseHFConfig(f *testing.F) {
	for _, m := range []string{"tiny-relu", "tiny-gated"} {
		data, err := os.ReadFile("testdata/" + m + ".config.json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"num_decoder_layers":null}`))
	f.Add([]byte(`{"feed_forward_proj":"gated-silu","d_kv":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseHFConfig(data)
		if err != nil {
			return
		}
		// Anything accepted is a valid shape whose costs compute and whose config reparses.
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted an invalid shape: %v", err)
		}
		if s.Params() <= 0 || s.FLOPs(4, 4).Total <= 0 {
			t.Fatalf("non-positive cost for %+v", s)
		}
		b, err := json.Marshal(s.HFConfig())
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseHFConfig(b)
		if err != nil || again != s {
			t.Fatalf("round trip: %v, %s", err, ShapeDiff(s, again))
		}
	})
}
