package convert

import (
	"bytes"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
)

// randomShape is small enough to write fast and large enough that each kind of tensor has
// thousands of values: d_kv ≠ 1, heads·d_kv ≠ d_model and d_ff ≠ d_model, so that every
// standard deviation of HF's scheme differs from the others.
func randomShape(gated bool) catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads = 96, 384, 16, 8
	s.NumLayers, s.NumDecoderLayers, s.VocabSize = 2, 1, 1024
	s.RelativeAttentionNumBuckets = 512 // 4096 bias values
	if gated {
		s.FeedForwardProj, s.TieWordEmbeddings = "gated-gelu", false
	}
	return s
}

func TestWriteRandom(t *testing.T) {
	s := randomShape(true)
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for dir, seed := range map[string]uint64{a: 7, b: 7, c: 8} {
		if err := WriteRandom(t.Context(), dir, s, seed); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := os.ReadFile(filepath.Join(a, SafetensorsFile))
	y, _ := os.ReadFile(filepath.Join(b, SafetensorsFile))
	z, _ := os.ReadFile(filepath.Join(c, SafetensorsFile))
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatal("same seed, different bytes")
	}
	if bytes.Equal(x, z) {
		t.Fatal("seeds 7 and 8 wrote the same bytes")
	}
	ck, err := Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Shape != s {
		t.Fatalf("shape %s", catalog.ShapeDiff(s, ck.Shape))
	}
	fill := RandomWeights(s, 7)
	for _, tn := range s.Tensors() {
		got, _, err := ck.Float32(tn.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, tn.Elements())
		if err := fill(tn.Name, 0, want); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: the file holds other values than RandomWeights", tn.Name)
		}
	}
}

// hfStd is the standard deviation T5PreTrainedModel._init_weights gives a tensor
// (initializer_factor 1); 0 for the layer norms, which are ones.
func hfStd(s catalog.Shape, name string) float64 {
	dm := float64(s.DModel)
	switch {
	case strings.HasSuffix(name, "layer_norm.weight"):
		return 0
	case name == "shared.weight", name == "lm_head.weight":
		return 1
	case strings.HasSuffix(name, ".q.weight"):
		return 1 / math.Sqrt(dm*float64(s.DKV))
	case strings.HasSuffix(name, ".o.weight"):
		return 1 / math.Sqrt(float64(s.NumHeads*s.DKV))
	case strings.HasSuffix(name, ".wo.weight"):
		return 1 / math.Sqrt(float64(s.DFF))
	}
	return 1 / math.Sqrt(dm) // k, v, wi, wi_0, wi_1, relative bias
}

// TestRandomWeightsStd checks every tensor's mean and standard deviation against HF's
// formula within five standard errors of the estimate (n values: σ/√n for the mean,
// about σ/√(2n) for the standard deviation).
func TestRandomWeightsStd(t *testing.T) {
	for _, gated := range []bool{false, true} {
		s := randomShape(gated)
		fill := RandomWeights(s, 1)
		kinds := map[string]bool{}
		for _, tn := range s.Tensors() {
			v := make([]float32, tn.Elements())
			if err := fill(tn.Name, 0, v); err != nil {
				t.Fatal(err)
			}
			want := hfStd(s, tn.Name)
			if want == 0 {
				if slices.ContainsFunc(v, func(x float32) bool { return x != 1 }) {
					t.Errorf("%s: a layer norm that is not all ones", tn.Name)
				}
				continue
			}
			kind := strings.TrimSuffix(tn.Name, ".weight")
			kinds[kind[strings.LastIndex(kind, ".")+1:]] = true
			var sum, sq float64
			for _, x := range v {
				sum += float64(x)
				sq += float64(x) * float64(x)
			}
			n := float64(len(v))
			mean := sum / n
			std := math.Sqrt(sq/n - mean*mean)
			if math.Abs(mean) > 5*want/math.Sqrt(n) {
				t.Errorf("%s: mean %.4g, want 0 within %.2g", tn.Name, mean, 5*want/math.Sqrt(n))
			}
			if tol := 5 / math.Sqrt(2*n); math.Abs(std/want-1) > tol {
				t.Errorf("%s: std %.4g, want %.4g within %.1f%%", tn.Name, std, want, 100*tol)
			}
		}
		want := []string{"k", "o", "q", "relative_attention_bias", "shared", "v", "wo"}
		if gated {
			want = append(want, "lm_head", "wi_0", "wi_1")
		} else {
			want = append(want, "wi")
		}
		if got := slices.Sorted(maps.Keys(kinds)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("gated %v: checked %v, want %v", gated, got, want)
		}
	}
}

// TestRandomWeightsRows checks that a row block's values depend only on the seed, the
// tensor and the rows: asked in pieces, in any order, or by another function of the same
// seed, they are the same; other seeds, tensors and rows differ.
func TestRandomWeightsRows(t *testing.T) {
	s := randomShape(false)
	const name = "encoder.block.1.layer.0.SelfAttention.q.weight"
	cols := s.DModel
	whole := make([]float32, 10*cols)
	if err := RandomWeights(s, 3)(name, 0, whole); err != nil {
		t.Fatal(err)
	}
	fill := RandomWeights(s, 3)
	pieces := make([]float32, 10*cols)
	for _, r := range [][2]int{{5, 10}, {0, 5}} { // the later rows first
		if err := fill(name, r[0], pieces[r[0]*cols:r[1]*cols]); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(whole, pieces) {
		t.Error("rows [5, 10) then [0, 5) differ from rows [0, 10)")
	}
	one := make([]float32, cols)
	if err := fill(name, 7, one); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one, whole[7*cols:8*cols]) {
		t.Error("row 7 alone differs from row 7 of rows [0, 10)")
	}
	if slices.Equal(whole[:cols], whole[cols:2*cols]) {
		t.Error("rows 0 and 1 are the same")
	}
	other := make([]float32, cols)
	if err := RandomWeights(s, 4)(name, 0, other); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other, whole[:cols]) {
		t.Error("seeds 3 and 4 give the same row")
	}
	if err := fill("encoder.block.1.layer.0.SelfAttention.k.weight", 0, other); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other, whole[:cols]) {
		t.Error("q and k get the same row")
	}
}

func TestRandomWeightsErrors(t *testing.T) {
	s := randomShape(false)
	fill := RandomWeights(s, 1)
	q := "encoder.block.0.layer.0.SelfAttention.q.weight"
	for _, tt := range []struct {
		name  string
		row0  int
		n     int
		valid bool
	}{
		{q, 0, s.InnerDim() * s.DModel, true},
		{q, s.InnerDim() - 1, s.DModel, true},
		{"encoder.final_layer_norm.weight", 0, s.DModel, true},
		{"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 0, s.RelativeAttentionNumBuckets * s.NumHeads, true},
		{"lm_head.weight", 0, s.DModel, false}, // tied: not a tensor of the shape
		{"encoder.embed_tokens.weight", 0, s.DModel, false},
		{"encoder.block.2.layer.0.SelfAttention.q.weight", 0, s.DModel, false},
		{q, 0, s.DModel + 1, false},
		{q, s.InnerDim(), s.DModel, false},
		{q, -1, s.DModel, false},
		{"encoder.final_layer_norm.weight", 1, s.DModel, false},
	} {
		err := fill(tt.name, tt.row0, make([]float32, tt.n))
		if (err == nil) != tt.valid {
			t.Errorf("%s rows from %d, %d values: error %v, want valid %v", tt.name, tt.row0, tt.n, err, tt.valid)
		}
	}
}
