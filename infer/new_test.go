package infer

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
)

// scoreAll scores a fixed batch of random pairs.
func scoreAll(t *testing.T, m *Model) []ScoreResult {
	t.Helper()
	s := m.Shape()
	in := randomInputs(21, 6, 30, s.VocabSize, s.EOSTokenID)
	pairs := make([]ScorePair, 3)
	for i := range pairs {
		pairs[i] = ScorePair{Input: in[2*i], Target: in[2*i+1]}
	}
	res, err := m.Score(t.Context(), pairs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameScores(a, b []ScoreResult) bool {
	for i := range a {
		if !slices.Equal(a[i].TokenLogprobs, b[i].TokenLogprobs) {
			return false
		}
	}
	return true
}

// TestNewMatchesLoad builds a model from memory with New and checks that it computes what
// the same weights loaded from a checkpoint compute, bit for bit, in every dtype.
func TestNewMatchesLoad(t *testing.T) {
	for _, v := range randomVariants()[:2] {
		spec := v.spec
		spec.dtype = ""
		ts := randomTensors(spec, 1)
		dir := writeModel(t, spec, ts)
		for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
			loaded, err := Load(t.Context(), dir, testOptions(t, LoadOptions{DType: dt}))
			if err != nil {
				t.Fatal(err)
			}
			defer loaded.Close()
			cols := make(map[string]int)
			for _, tn := range spec.shape.Tensors() {
				cols[tn.Name] = tn.Shape[len(tn.Shape)-1]
			}
			fill := func(name string, row0 int, dst []float32) error {
				copy(dst, ts[name][row0*cols[name]:])
				return nil
			}
			built, err := New(t.Context(), spec.shape, fill, testOptions(t, LoadOptions{DType: dt}))
			if err != nil {
				t.Fatal(err)
			}
			defer built.Close()
			if !sameScores(scoreAll(t, loaded), scoreAll(t, built)) {
				t.Errorf("%s %s: New and Load score differently", v.name, dt)
			}
		}
	}
}

// TestQuantizedCheckpoint loads bf16 and int8 checkpoints written by convert.Convert: each
// keeps its dtype by default. The int8 values are packed unchanged, so the int8 checkpoint
// computes what the f32 checkpoint quantized at load time computes, bit for bit (a bf16
// checkpoint also rounds the layer norms, which stay float32 when converting at load).
func TestQuantizedCheckpoint(t *testing.T) {
	src := filepath.Join("..", "testdata", "golden", "tiny-gated", "checkpoint")
	for _, dt := range []catalog.DType{catalog.Int8, catalog.BF16} {
		dir := t.TempDir()
		if _, err := convert.Convert(t.Context(), src, dir, convert.Options{DType: dt}); err != nil {
			t.Fatal(err)
		}
		stored, err := Load(t.Context(), dir, testOptions(t, LoadOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		defer stored.Close()
		if stored.DType() != dt {
			t.Fatalf("a %s checkpoint loads as %s", dt, stored.DType())
		}
		atLoad, err := Load(t.Context(), src, testOptions(t, LoadOptions{DType: dt}))
		if err != nil {
			t.Fatal(err)
		}
		defer atLoad.Close()
		if dt == catalog.Int8 && !sameScores(scoreAll(t, stored), scoreAll(t, atLoad)) {
			t.Errorf("%s checkpoint and f32 checkpoint converted at load score differently", dt)
		}
	}
}

// TestKernelPathsAgree runs one model on every kernel path: the assembly paths give the same
// bits (one FMA chain per product element, the same element-wise kernels), the generic path
// agrees within float32 rounding (int8: an activation that rounds differently in float32 may
// quantize one step apart, so within 5% + 0.1).
func TestKernelPathsAgree(t *testing.T) {
	spec := randomVariants()[1].spec
	dir := writeModel(t, spec, randomTensors(spec, 1))
	for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
		var asm []ScoreResult
		var generic []ScoreResult
		for _, p := range kernels.Paths() {
			if !kernels.Supported(p) {
				continue
			}
			m, err := Load(t.Context(), dir, LoadOptions{DType: dt, Kernels: p.String()})
			if err != nil {
				t.Fatal(err)
			}
			res := scoreAll(t, m)
			m.Close()
			switch {
			case p == kernels.Generic:
				generic = res
			case asm == nil:
				asm = res
			case !sameScores(asm, res):
				t.Errorf("%s: %s differs from the other assembly path", dt, p)
			}
		}
		if asm == nil {
			continue
		}
		for i := range asm {
			for j := range asm[i].TokenLogprobs {
				tol := 1e-3
				if dt == catalog.Int8 {
					tol = 0.1 + 0.05*math.Abs(generic[i].TokenLogprobs[j])
				}
				if d := math.Abs(asm[i].TokenLogprobs[j] - generic[i].TokenLogprobs[j]); d > tol {
					t.Errorf("%s: pair %d token %d: assembly %v, generic %v", dt, i, j, asm[i].TokenLogprobs[j], generic[i].TokenLogprobs[j])
				}
			}
		}
	}
}
