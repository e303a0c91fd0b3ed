package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
)

func TestWriteRandom(t *testing.T) {
	s, _ := catalog.BaseShape(catalog.Tiny)
	s.NumLayers, s.NumDecoderLayers, s.VocabSize, s.FeedForwardProj, s.TieWordEmbeddings = 2, 1, 512, "gated-gelu", false
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := WriteRandom(t.Context(), dir, s, 7); err != nil {
			t.Fatal(err)
		}
	}
	ck, err := Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if ck.Shape != s {
		t.Fatalf("shape %s", catalog.ShapeDiff(s, ck.Shape))
	}
	for _, name := range []string{"encoder.final_layer_norm.weight", "lm_head.weight", "decoder.block.0.layer.2.DenseReluDense.wo.weight"} {
		v, _, err := ck.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		var sum, sq float64
		for _, x := range v {
			sum += float64(x)
			sq += float64(x) * float64(x)
		}
		mean, std := sum/float64(len(v)), sq/float64(len(v))
		switch name {
		case "encoder.final_layer_norm.weight":
			if mean != 1 || std != 1 {
				t.Errorf("%s: not all ones", name)
			}
		case "lm_head.weight": // N(0, 1)
			if std < 0.9 || std > 1.1 {
				t.Errorf("%s: variance %g, want ~1", name, std)
			}
		default: // wo: N(0, 1/d_ff)
			if want := 1 / float64(s.DFF); std < 0.9*want || std > 1.1*want {
				t.Errorf("%s: variance %g, want ~%g", name, std, want)
			}
		}
	}
	x, _ := os.ReadFile(filepath.Join(a, SafetensorsFile))
	y, _ := os.ReadFile(filepath.Join(b, SafetensorsFile))
	if !bytes.Equal(x, y) {
		t.Fatal("same seed, different bytes")
	}
}
