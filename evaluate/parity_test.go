package evaluate

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer"
)

const golden = "../testdata/golden/"

func load(t *testing.T, dir string) *infer.Model {
	t.Helper()
	m, err := infer.Load(t.Context(), dir, infer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestParityF32IsExact(t *testing.T) {
	src := filepath.Join(golden, "tiny-relu", "checkpoint")
	dst := t.TempDir()
	if _, err := convert.Convert(t.Context(), src, dst, convert.Options{}); err != nil {
		t.Fatal(err)
	}
	ref, cand := load(t, src), load(t, dst)
	p, err := Parity(t.Context(), ref, cand, catalog.F32, DefaultProbe(ref.Shape().VocabSize), DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	if !p.Passed || p.MaxLogitDiff != 0 || p.MeanAbsLogprobDiff != 0 || p.GreedyAgreement != 1 {
		t.Fatalf("f32 conversion not exact: %+v", p)
	}
}

// A model with other weights of the same shape fails the gate in every dtype.
func TestParityRejectsAnotherModel(t *testing.T) {
	src := filepath.Join(golden, "tiny-relu", "checkpoint")
	ref := load(t, src)
	other := t.TempDir()
	if err := convert.WriteRandom(t.Context(), other, ref.Shape(), 1); err != nil {
		t.Fatal(err)
	}
	cand := load(t, other)
	for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
		p, err := Parity(t.Context(), ref, cand, dt, DefaultProbe(ref.Shape().VocabSize), DefaultThresholds())
		if err != nil {
			t.Fatal(err)
		}
		if p.Passed || p.GreedyAgreement > 0.5 {
			t.Fatalf("%s: another model passed: %+v", dt, p)
		}
	}
	// Different shapes are refused outright.
	s := ref.Shape()
	s.NumLayers++
	third := t.TempDir()
	if err := convert.WriteRandom(t.Context(), third, s, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Parity(t.Context(), ref, load(t, third), catalog.F32, DefaultProbe(s.VocabSize), DefaultThresholds()); err == nil {
		t.Fatal("different shapes compared")
	}
}

func TestDefaultProbe(t *testing.T) {
	a, b := DefaultProbe(2176), DefaultProbe(2176)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("probe not deterministic")
	}
	for i, in := range a.Inputs {
		for _, seq := range [][]int{in, a.Targets[i]} {
			if seq[len(seq)-1] != 1 {
				t.Fatal("sequence does not end with </s>")
			}
			for _, id := range seq[:len(seq)-1] {
				if id < 3 || id >= 2176 {
					t.Fatalf("id %d outside [3, 2176)", id)
				}
			}
		}
	}
}

// TestQualityReport prints the quality of bf16, f16 and int8 against f32 for the golden
// models and a random t5-efficient-tiny; BENCHMARKS.md records its output
// (go test ./evaluate -run QualityReport -v).
func TestQualityReport(t *testing.T) {
	tiny := t.TempDir()
	shape, _ := catalog.BaseShape(catalog.Tiny)
	if err := convert.WriteRandom(t.Context(), tiny, shape, 42); err != nil {
		t.Fatal(err)
	}
	models := []struct{ name, dir string }{
		{"golden tiny-relu", filepath.Join(golden, "tiny-relu", "checkpoint")},
		{"golden tiny-gated", filepath.Join(golden, "tiny-gated", "checkpoint")},
		{"random t5-efficient-tiny", tiny},
	}
	t.Logf("%-26s %-5s %14s %18s %10s %s", "model", "dtype", "max |Δlogit|", "mean |Δlogprob|", "greedy", "gate")
	for _, m := range models {
		ref := load(t, m.dir)
		for _, dt := range []catalog.DType{catalog.BF16, catalog.F16, catalog.Int8} {
			dst := t.TempDir()
			if _, err := convert.Convert(t.Context(), m.dir, dst, convert.Options{DType: dt}); err != nil {
				t.Fatal(err)
			}
			p, err := Parity(t.Context(), ref, load(t, dst), dt, DefaultProbe(ref.Shape().VocabSize), DefaultThresholds())
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(p.MaxLogitDiff) || p.GreedyAgreement < 0 || p.GreedyAgreement > 1 || p.MaxLogitDiff == 0 {
				t.Fatalf("%s %s: implausible %+v", m.name, dt, p)
			}
			gate := "pass"
			if !p.Passed {
				gate = "FAIL"
			}
			t.Logf("%-26s %-5s %14.4g %18.4g %9.1f%% %s", m.name, dt, p.MaxLogitDiff, p.MeanAbsLogprobDiff, 100*p.GreedyAgreement, gate)
		}
	}
}
