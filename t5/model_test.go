package t5_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/cpu"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
	"github.com/t5zoo/t5zoo/backend/plain"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/t5"
)

// randomWeights supplies HF-initialised weights (convert.RandomWeights) by name, dropping
// the names in missing.
type randomWeights struct {
	shape   catalog.Shape
	fill    func(name string, row0 int, dst []float32) error
	missing map[string]bool
}

type rows struct {
	name       string
	rows, cols int
	fill       func(name string, row0 int, dst []float32) error
}

func (r rows) Dims() (int, int)                    { return r.rows, r.cols }
func (r rows) Float32(r0 int, dst []float32) error { return r.fill(r.name, r0, dst) }

func (w randomWeights) Matrix(name string, r, c int) (backend.Source, error) {
	if w.missing[name] {
		return nil, fmt.Errorf("%w: no tensor %q", t5.ErrCheckpoint, name)
	}
	return rows{name, r, c, w.fill}, nil
}

func (w randomWeights) Vector(name string, shape ...int) ([]float32, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	return v, w.fill(name, 0, v)
}

func testShape(gated bool) catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads = 48, 72, 20, 3
	s.NumLayers, s.NumDecoderLayers = 2, 3
	s.VocabSize = 200
	s.RelativeAttentionMaxDistance = 12
	if gated {
		s.FeedForwardProj, s.TieWordEmbeddings = "gated-gelu", false
	}
	return s
}

// backends are the ones the model definition runs on here.
func backends(t *testing.T) map[string]backend.Backend {
	ks, err := kernels.New(kernels.Best())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]backend.Backend{"cpu": cpu.New(cpu.Options{Threads: 2, Kernels: ks}), "plain": plain.New()}
	for _, be := range out {
		t.Cleanup(func() { be.Close() })
	}
	return out
}

// run encodes inputs, feeds each a teacher-forced target and returns the logits.
func run(t *testing.T, m *t5.Model, inputs, targets [][]int) []float32 {
	t.Helper()
	ctx := context.Background()
	encs, err := m.RunEncoder(ctx, inputs)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]*t5.Sequence, len(encs))
	for i, e := range encs {
		seqs[i] = e.NewSequence()
	}
	logits, err := m.Feed(ctx, seqs, targets, nil)
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

// TestBackendsAgree runs the one model definition on the CPU and on the plain backend: the
// same weights give the same logits within float32 rounding, and on each backend a batch
// gives the bits its inputs give alone (the promise both make).
func TestBackendsAgree(t *testing.T) {
	inputs := [][]int{{5, 9, 17, 3, 1}, {7, 1}, {11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 1}}
	targets := [][]int{{0, 4, 8}, {0, 2}, {0, 30, 31, 32, 33}}
	for _, gated := range []bool{false, true} {
		shape := testShape(gated)
		src := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 3)}
		got := map[string][]float32{}
		for name, be := range backends(t) {
			m, err := t5.New(context.Background(), shape, be, src, t5.Options{DType: backend.F32, MaxTokens: 64})
			if err != nil {
				t.Fatal(err)
			}
			batch := run(t, m, inputs, targets)
			var alone []float32
			for i := range inputs {
				alone = append(alone, run(t, m, inputs[i:i+1], targets[i:i+1])...)
			}
			for i := range batch {
				if math.Float32bits(batch[i]) != math.Float32bits(alone[i]) {
					t.Fatalf("gated=%v %s: logit %d is %v in the batch, %v alone", gated, name, i, batch[i], alone[i])
				}
			}
			got[name] = batch
		}
		worst := 0.0
		for i, c := range got["cpu"] {
			p := got["plain"][i]
			worst = max(worst, math.Abs(float64(c-p))/(1+math.Abs(float64(p))))
		}
		// float32 rounding through five layers of products over at most 72 terms.
		if worst > 1e-4 {
			t.Errorf("gated=%v: cpu and plain logits differ by %.3g (relative)", gated, worst)
		}
		t.Logf("gated=%v: cpu against plain, worst relative difference %.3g", gated, worst)
	}
}

// TestBindNamesTheMissingTensor checks that the weights are bound by the names of
// Shape.Tensors(): a missing one is an error that names it.
func TestBindNamesTheMissingTensor(t *testing.T) {
	shape := testShape(false)
	name := "decoder.block.2.layer.1.EncDecAttention.k.weight"
	src := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 3), missing: map[string]bool{name: true}}
	be := plain.New()
	defer be.Close()
	_, err := t5.New(context.Background(), shape, be, src, t5.Options{DType: backend.F32, MaxTokens: 64})
	if !errors.Is(err, t5.ErrCheckpoint) || err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("New with %s missing: %v", name, err)
	}
}

// TestForkAndFailedFeed checks the caches through the model: a fork fed differently from
// its parent leaves the parent's next logits unchanged, and a feed that fails (an id out of
// the vocabulary) changes no sequence.
func TestForkAndFailedFeed(t *testing.T) {
	shape := testShape(false)
	src := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 5)}
	for name, be := range backends(t) {
		m, err := t5.New(context.Background(), shape, be, src, t5.Options{DType: backend.F32, MaxTokens: 64})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		encs, err := m.RunEncoder(ctx, [][]int{{4, 5, 6, 1}})
		if err != nil {
			t.Fatal(err)
		}
		a := encs[0].NewSequence()
		if _, err := m.Step(ctx, []*t5.Sequence{a}, []int{0}, nil); err != nil {
			t.Fatal(err)
		}
		b := a.Fork()
		if _, err := m.Step(ctx, []*t5.Sequence{b}, []int{9}, nil); err != nil {
			t.Fatal(err)
		}
		want := run(t, m, [][]int{{4, 5, 6, 1}}, [][]int{{0, 7}})
		if _, err := m.Step(ctx, []*t5.Sequence{a}, []int{shape.VocabSize}, nil); !errors.Is(err, t5.ErrInvalidInput) {
			t.Fatalf("%s: an id out of the vocabulary: %v", name, err)
		}
		got, err := m.Step(ctx, []*t5.Sequence{a}, []int{7}, nil)
		if err != nil {
			t.Fatal(err)
		}
		V := shape.VocabSize
		for i := range V {
			if math.Float32bits(got[i]) != math.Float32bits(want[V+i]) {
				t.Fatalf("%s: after a fork and a failed feed, logit %d is %v, want %v", name, i, got[i], want[V+i])
			}
		}
		if a.Len() != 2 || a.Cached() != 2 || b.Len() != 2 {
			t.Errorf("%s: lengths %d (cache %d) and %d", name, a.Len(), a.Cached(), b.Len())
		}
	}
}
