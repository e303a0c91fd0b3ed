package t5_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/plain"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/t5"
)

// trainBatch is three pairs of different lengths (a target of one token among them).
var trainBatch = []t5.Example{
	{Input: []int{5, 9, 17, 3, 44, 120, 1}, Target: []int{4, 8, 19, 1}},
	{Input: []int{7, 2, 1}, Target: []int{1}},
	{Input: []int{11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 1}, Target: []int{30, 31, 32, 33, 199, 1}},
}

func batchTokens(batch []t5.Example) int {
	n := 0
	for _, ex := range batch {
		n += len(ex.Target)
	}
	return n
}

// weights is a t5.Weights over named host values, falling back to base for the others;
// LoRA adapters missing from vals are drawn on first use (N(0, 0.1²) for A, N(0, b²) for B),
// from a seed of their name, and kept, so that a test can perturb them and Reload.
type weights struct {
	base t5.Weights
	vals map[string][]float32
	b    float64 // the standard deviation of drawn B values (0: zeros, PEFT's init)
}

func newWeights(base t5.Weights, b float64) *weights {
	return &weights{base: base, vals: map[string][]float32{}, b: b}
}

func (w *weights) get(name string, n int) ([]float32, bool) {
	if v, ok := w.vals[name]; ok {
		return v, true
	}
	std := 0.0
	switch {
	case strings.HasSuffix(name, ".lora_A.weight"):
		std = 0.1
	case strings.HasSuffix(name, ".lora_B.weight"):
		std = w.b
	default:
		return nil, false
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(h.Sum64(), 7))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * std)
	}
	w.vals[name] = v
	return v, true
}

func (w *weights) Matrix(name string, rows, cols int) (backend.Source, error) {
	if v, ok := w.get(name, rows*cols); ok {
		if len(v) != rows*cols {
			return nil, fmt.Errorf("%w: %s has %d values, want %d×%d", t5.ErrCheckpoint, name, len(v), rows, cols)
		}
		return hostMatrix{v, rows, cols}, nil
	}
	return w.base.Matrix(name, rows, cols)
}

func (w *weights) Vector(name string, shape ...int) ([]float32, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if v, ok := w.get(name, n); ok {
		return slices.Clone(v), nil
	}
	return w.base.Vector(name, shape...)
}

// hostParams reads every parameter of Params() from src into vals (so that a test can
// perturb any of them).
func (w *weights) hostParams(t *testing.T, params []catalog.Tensor) {
	t.Helper()
	for _, p := range params {
		if _, ok := w.vals[p.Name]; ok {
			continue
		}
		v := make([]float32, p.Elements())
		if p.Matrix {
			s, err := w.base.Matrix(p.Name, p.Shape[0], p.Shape[1])
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Float32(0, v); err != nil {
				t.Fatal(err)
			}
		} else {
			var err error
			if v, err = w.base.Vector(p.Name, p.Shape...); err != nil {
				t.Fatal(err)
			}
		}
		w.vals[p.Name] = v
	}
}

func newModel(t *testing.T, shape catalog.Shape, be backend.Backend, src t5.Weights, lora *t5.LoRA) *t5.Model {
	t.Helper()
	m, err := t5.New(context.Background(), shape, be, src, t5.Options{DType: backend.F32, MaxTokens: 64, LoRA: lora})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// train runs one pass into new gradients and returns them by name.
func train(t *testing.T, m *t5.Model, batch []t5.Example, opts t5.TrainOptions) (t5.Stats, map[string][]float32) {
	t.Helper()
	g, err := m.NewGrads()
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Train(context.Background(), g, batch, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st, readGrads(t, m, g)
}

func readGrads(t *testing.T, m *t5.Model, g *t5.Grads) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range m.Params() {
		v := make([]float32, p.Elements())
		if err := g.Read(p.Name, v); err != nil {
			t.Fatal(err)
		}
		out[p.Name] = v
	}
	return out
}

func sameBits(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestTrainForwardIsInference checks that the training forward is the inference forward:
// Loss's and Train's statistics (dropout 0, with and without Recompute) are those of the
// cross-entropy of Feed's logits for the shifted targets, bit for bit on the plain backend.
func TestTrainForwardIsInference(t *testing.T) {
	ctx := context.Background()
	for _, gated := range []bool{false, true} {
		shape := testShape(gated)
		src := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 3)}
		for name, be := range trainers(t) {
			m := newModel(t, shape, be, src, nil)
			var inputs, decIn [][]int
			var labels []int
			for _, ex := range trainBatch {
				inputs = append(inputs, ex.Input)
				decIn = append(decIn, append([]int{0}, ex.Target[:len(ex.Target)-1]...))
				labels = append(labels, ex.Target...)
			}
			logits := run(t, m, inputs, decIn)
			tr := be.(backend.Trainer)
			lt := tr.Alloc(len(labels), shape.VocabSize)
			tr.Upload(lt, logits)
			wantLoss, wantCorrect := tr.CrossEntropy(lt, labels, 1)

			loss, err := m.Loss(ctx, trainBatch)
			if err != nil {
				t.Fatal(err)
			}
			keep, _ := train(t, m, trainBatch, t5.TrainOptions{})
			recompute, _ := train(t, m, trainBatch, t5.TrainOptions{Recompute: true})
			for what, st := range map[string]t5.Stats{"Loss": loss, "Train": keep, "Train with Recompute": recompute} {
				if st.Tokens != len(labels) || st.Correct != wantCorrect {
					t.Errorf("gated=%v %s: %s: %d tokens, %d correct; want %d, %d", gated, name, what, st.Tokens, st.Correct, len(labels), wantCorrect)
				}
				if name == "plain" && math.Float64bits(st.Loss) != math.Float64bits(wantLoss) {
					t.Errorf("gated=%v plain: %s: loss %v, Feed's logits give %v", gated, what, st.Loss, wantLoss)
				}
				// Other backends may take other kernels for a cache and a view of keys.
				if rel := math.Abs(st.Loss-wantLoss) / wantLoss; rel > 1e-6 {
					t.Errorf("gated=%v %s: %s: loss %v, Feed's logits give %v", gated, name, what, st.Loss, wantLoss)
				} else if name != "plain" {
					t.Logf("gated=%v %s: %s: loss %v, Feed's logits give %v (relative %.2g)", gated, name, what, st.Loss, wantLoss, rel)
				}
			}
		}
	}
}

// TestRecomputeSameBits checks that recomputing the layers in the backward gives the
// gradients of the pass that keeps them, bit for bit (with dropout, whose masks the
// recomputed forward must draw again).
func TestRecomputeSameBits(t *testing.T) {
	for _, gated := range []bool{false, true} {
		shape := testShape(gated)
		be := plain.New()
		defer be.Close()
		m := newModel(t, shape, be, randomWeights{shape: shape, fill: convert.RandomWeights(shape, 4)}, nil)
		opts := t5.TrainOptions{Dropout: 0.1, Seed: 99}
		st1, g1 := train(t, m, trainBatch, opts)
		opts.Recompute = true
		st2, g2 := train(t, m, trainBatch, opts)
		if st1 != st2 {
			t.Errorf("gated=%v: stats %+v kept, %+v recomputed", gated, st1, st2)
		}
		for name, v := range g1 {
			if i := sameBits(v, g2[name]); i >= 0 {
				t.Fatalf("gated=%v: %s[%d] is %v kept, %v recomputed", gated, name, i, v[i], g2[name][i])
			}
		}
	}
}

// TestAccumulation checks that Train adds to its gradients: three single-example passes
// into one Grads, with the Scale of the whole batch, give the gradient of the batch.
func TestAccumulation(t *testing.T) {
	shape := testShape(false)
	be := plain.New()
	defer be.Close()
	m := newModel(t, shape, be, randomWeights{shape: shape, fill: convert.RandomWeights(shape, 5)}, nil)
	opts := t5.TrainOptions{Scale: 1 / float32(batchTokens(trainBatch))}
	whole, want := train(t, m, trainBatch, opts)
	g, err := m.NewGrads()
	if err != nil {
		t.Fatal(err)
	}
	var sum t5.Stats
	for i := range trainBatch {
		st, err := m.Train(context.Background(), g, trainBatch[i:i+1], opts)
		if err != nil {
			t.Fatal(err)
		}
		sum.Loss += st.Loss
		sum.Tokens += st.Tokens
		sum.Correct += st.Correct
	}
	if sum.Tokens != whole.Tokens || sum.Correct != whole.Correct || math.Abs(sum.Loss-whole.Loss) > 1e-12*whole.Loss {
		t.Errorf("summed single passes %+v, the batch %+v", sum, whole)
	}
	got := readGrads(t, m, g)
	for name, w := range want {
		var scale float64
		for _, v := range w {
			scale = max(scale, math.Abs(float64(v)))
		}
		if scale == 0 {
			t.Errorf("%s: a zero gradient", name)
		}
		for i, v := range w {
			// The same per-row terms, summed in three float32 parts instead of one.
			if d := math.Abs(float64(got[name][i] - v)); d > 1e-5*scale {
				t.Fatalf("%s[%d]: accumulated %v, batch %v (max |grad| %v)", name, i, got[name][i], v, scale)
			}
		}
	}
}

// TestDropoutSeeded checks that dropout is a function of the seed: the same seed gives the
// same loss and gradients, another seed another loss, and Loss has no dropout.
func TestDropoutSeeded(t *testing.T) {
	shape := testShape(true)
	be := plain.New()
	defer be.Close()
	m := newModel(t, shape, be, randomWeights{shape: shape, fill: convert.RandomWeights(shape, 6)}, nil)
	a, ga := train(t, m, trainBatch, t5.TrainOptions{Dropout: 0.1, Seed: 1})
	b, gb := train(t, m, trainBatch, t5.TrainOptions{Dropout: 0.1, Seed: 1})
	c, _ := train(t, m, trainBatch, t5.TrainOptions{Dropout: 0.1, Seed: 2})
	none, _ := train(t, m, trainBatch, t5.TrainOptions{})
	if math.Float64bits(a.Loss) != math.Float64bits(b.Loss) {
		t.Errorf("seed 1 twice: losses %v, %v", a.Loss, b.Loss)
	}
	for name, v := range ga {
		if i := sameBits(v, gb[name]); i >= 0 {
			t.Fatalf("seed 1 twice: %s[%d] is %v, then %v", name, i, v[i], gb[name][i])
		}
	}
	if a.Loss == c.Loss || a.Loss == none.Loss {
		t.Errorf("losses: seed 1 %v, seed 2 %v, no dropout %v", a.Loss, c.Loss, none.Loss)
	}
	loss, err := m.Loss(context.Background(), trainBatch)
	if err != nil {
		t.Fatal(err)
	}
	if loss != none {
		t.Errorf("Loss %+v, Train without dropout %+v", loss, none)
	}
	t.Logf("losses: seed 1 %.6f, seed 2 %.6f, no dropout %.6f", a.Loss, c.Loss, none.Loss)
}

// TestLoRAZeroB checks LoRA as PEFT initialises it (B = 0): the model is the base model, A
// gets no gradient and B does; only the adapters are parameters.
func TestLoRAZeroB(t *testing.T) {
	for _, gated := range []bool{false, true} {
		shape := testShape(gated)
		be := plain.New()
		defer be.Close()
		base := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 7)}
		want, err := newModel(t, shape, be, base, nil).Loss(context.Background(), trainBatch)
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(t, shape, be, newWeights(base, 0), &t5.LoRA{R: 4, Alpha: 8})
		params := m.Params()
		// q and v of every attention: one per encoder layer, two per decoder layer.
		if n := 2 * 2 * (shape.NumLayers + 2*shape.NumDecoderLayers); len(params) != n {
			t.Fatalf("gated=%v: %d parameters, want %d", gated, len(params), n)
		}
		for _, p := range params {
			if !strings.HasSuffix(p.Name, ".q.lora_A.weight") && !strings.HasSuffix(p.Name, ".q.lora_B.weight") &&
				!strings.HasSuffix(p.Name, ".v.lora_A.weight") && !strings.HasSuffix(p.Name, ".v.lora_B.weight") {
				t.Errorf("gated=%v: parameter %s", gated, p.Name)
			}
		}
		got, err := m.Loss(context.Background(), trainBatch)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("gated=%v: loss with B = 0 %+v, base model %+v", gated, got, want)
		}
		st, grads := train(t, m, trainBatch, t5.TrainOptions{})
		if st != want {
			t.Errorf("gated=%v: Train's stats %+v, base model %+v", gated, st, want)
		}
		for name, v := range grads {
			var ss float64
			for _, x := range v {
				ss += float64(x) * float64(x)
			}
			if isA := strings.HasSuffix(name, "lora_A.weight"); isA != (ss == 0) {
				t.Errorf("gated=%v: %s has Σg² = %v", gated, name, ss)
			}
		}
		g, _ := m.NewGrads()
		if err := g.Read("shared.weight", make([]float32, shape.VocabSize*shape.DModel)); !errors.Is(err, t5.ErrInvalidInput) {
			t.Errorf("gated=%v: reading a base weight's gradient under LoRA: %v", gated, err)
		}
	}
}

// fdShape is a toy shape for finite differences: d_kv·heads ≠ d_model, depths differing,
// relative positions clamped (max_distance 5 against inputs of 12); tied unless gated.
func fdShape(ffn string) catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads = 16, 24, 6, 2
	s.NumLayers, s.NumDecoderLayers = 2, 1
	s.VocabSize = 50
	s.RelativeAttentionNumBuckets, s.RelativeAttentionMaxDistance = 8, 5
	s.FeedForwardProj = ffn
	s.TieWordEmbeddings = !strings.HasPrefix(ffn, "gated-")
	return s
}

var fdBatch = []t5.Example{
	{Input: []int{3, 9, 17, 4, 44, 21, 8, 30, 2, 12, 40, 1}, Target: []int{4, 8, 19, 27, 1}},
	{Input: []int{7, 6, 1}, Target: []int{11, 1}},
}

// fdCheck compares the analytic gradient of the mean loss with central differences of Loss
// (step h) for the per entries of each of names with the largest analytic gradient (then well
// above float32 noise). src holds every perturbed tensor's values.
//
// The step: the mean loss is ~ln(50) with float32 noise of ~2e-7 (measured: differences at
// h = 1e-4 drift by 1e-3 relative); at h = 1e-2 that noise is 1e-5 of the quotient and the
// truncation error, h²/6 times a third derivative of order one, ~2e-5. A relu FFN needs a
// smaller step, 3e-3: within 1e-2 of these weights some pre-activations change sign (at 1e-2
// the quotients of the wi adapter are 14-29% off, at 3e-3 and 1e-3 within 5e-5 of the
// analytic value).
func fdCheck(t *testing.T, m *t5.Model, src *weights, grads map[string][]float32, names []string, per int, h float64) {
	t.Helper()
	ctx := context.Background()
	tokens := float64(batchTokens(fdBatch))
	loss := func() float64 {
		if err := m.Reload(ctx, src); err != nil {
			t.Fatal(err)
		}
		st, err := m.Loss(ctx, fdBatch)
		if err != nil {
			t.Fatal(err)
		}
		return st.Loss / tokens
	}
	worst := 0.0
	for _, name := range names {
		g, v := grads[name], src.vals[name]
		if g == nil || v == nil {
			t.Fatalf("no gradient or values for %s", name)
		}
		order := make([]int, len(g))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int {
			return -cmpFloat(math.Abs(float64(g[a])), math.Abs(float64(g[b])))
		})
		for _, i := range order[:per] {
			old := v[i]
			v[i] = old + float32(h)
			up, hi := loss(), v[i]
			v[i] = old - float32(h)
			down, lo := loss(), v[i]
			v[i] = old
			fd := (up - down) / float64(hi-lo)
			// Relative to the larger of the two, with a floor of 1e-3 for entries whose
			// gradient is itself at the noise level.
			rel := math.Abs(fd-float64(g[i])) / math.Max(math.Abs(fd), 1e-3)
			worst = max(worst, rel)
			if rel > 1e-2 {
				t.Errorf("%s[%d]: analytic %.6g, central difference %.6g (relative %.2g)", name, i, g[i], fd, rel)
			}
		}
	}
	loss() // restore the weights
	t.Logf("worst relative difference %.2g over %d entries", worst, per*len(names))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestLoRAFiniteDifferences checks the adapters' gradients against central differences on
// toy shapes (a relu FFN, whose wi adapter adds before the relu; a gelu one, whose
// pre-activation is kept; a gated one), with adapters on every projection (q, k, v, o of
// both attentions, the FFN's).
func TestLoRAFiniteDifferences(t *testing.T) {
	for _, ffn := range []string{"relu", "gelu", "gated-silu"} {
		shape := fdShape(ffn)
		be := plain.New()
		defer be.Close()
		wi := []string{"wi"}
		if shape.Gated() {
			wi = []string{"wi_0", "wi_1"}
		}
		targets := append([]string{"q", "k", "v", "o", "wo"}, wi...)
		src := newWeights(randomWeights{shape: shape, fill: convert.RandomWeights(shape, 8)}, 0.1)
		m := newModel(t, shape, be, src, &t5.LoRA{R: 3, Alpha: 6, Targets: targets})
		_, grads := train(t, m, fdBatch, t5.TrainOptions{})
		var names []string
		for _, mod := range []string{
			"encoder.block.0.layer.0.SelfAttention.q", "encoder.block.1.layer.0.SelfAttention.k",
			"encoder.block.1.layer.1.DenseReluDense.wo", "decoder.block.0.layer.0.SelfAttention.v",
			"decoder.block.0.layer.1.EncDecAttention.k", "decoder.block.0.layer.1.EncDecAttention.v",
			"decoder.block.0.layer.1.EncDecAttention.o", "decoder.block.0.layer.2.DenseReluDense." + wi[len(wi)-1],
			"encoder.block.0.layer.1.DenseReluDense." + wi[0],
		} {
			names = append(names, mod+".lora_A.weight", mod+".lora_B.weight")
		}
		h := 1e-2
		if ffn == "relu" {
			h = 3e-3
		}
		t.Run(ffn, func(t *testing.T) { fdCheck(t, m, src, grads, names, 2, h) })
	}
}

// TestFiniteDifferences checks full fine-tuning's gradients of the position-bias tables
// (relative positions beyond max_distance clamped, buckets shared), the embedding (tied: also
// the head's, scaled by d_model^-0.5), layer norms, a cross-attention projection and an
// untied head against central differences on toy shapes (smooth activations: the relu FFN
// is HF's golden model, TestTrainGolden, and TestLoRAFiniteDifferences').
func TestFiniteDifferences(t *testing.T) {
	for _, ffn := range []string{"gelu", "gated-silu"} {
		shape := fdShape(ffn)
		be := plain.New()
		defer be.Close()
		src := newWeights(randomWeights{shape: shape, fill: convert.RandomWeights(shape, 9)}, 0)
		m := newModel(t, shape, be, src, nil)
		src.hostParams(t, m.Params())
		_, grads := train(t, m, fdBatch, t5.TrainOptions{})
		names := []string{
			"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
			"decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
			"shared.weight", "encoder.block.1.layer.0.layer_norm.weight", "decoder.final_layer_norm.weight",
			"decoder.block.0.layer.1.EncDecAttention.k.weight", "encoder.block.0.layer.1.DenseReluDense.wo.weight",
		}
		if !shape.TieWordEmbeddings {
			names = append(names, "lm_head.weight")
		}
		t.Run(ffn, func(t *testing.T) { fdCheck(t, m, src, grads, names, 3, 1e-2) })
	}
}

// TestReload checks that Reload makes the model the one New builds from the new weights.
func TestReload(t *testing.T) {
	ctx := context.Background()
	shape := testShape(true)
	be := plain.New()
	defer be.Close()
	a := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 10)}
	b := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 11)}
	m := newModel(t, shape, be, a, nil)
	if !slices.EqualFunc(m.Params(), shape.Tensors(), func(x, y catalog.Tensor) bool { return x.Name == y.Name && slices.Equal(x.Shape, y.Shape) }) {
		t.Fatal("Params is not Shape.Tensors()")
	}
	if err := m.Reload(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := m.Loss(ctx, trainBatch)
	if err != nil {
		t.Fatal(err)
	}
	want, err := newModel(t, shape, be, b, nil).Loss(ctx, trainBatch)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("after Reload %+v, a new model %+v", got, want)
	}

	// LoRA: only the adapters are re-read.
	la, lb := newWeights(a, 0.1), newWeights(a, 0.2)
	lora := &t5.LoRA{R: 2, Alpha: 4}
	m = newModel(t, shape, be, la, lora)
	if err := m.Reload(ctx, lb); err != nil {
		t.Fatal(err)
	}
	got, _ = m.Loss(ctx, trainBatch)
	want, _ = newModel(t, shape, be, lb, lora).Loss(ctx, trainBatch)
	if got != want {
		t.Errorf("LoRA: after Reload %+v, a new model %+v", got, want)
	}
}

// inferOnly hides a backend's training operations.
type inferOnly struct{ backend.Backend }

// TestTrainErrors checks that bad requests fail before anything runs, with errors wrapping
// ErrInvalidInput, leaving the gradients unchanged.
func TestTrainErrors(t *testing.T) {
	ctx := context.Background()
	shape := testShape(false)
	src := randomWeights{shape: shape, fill: convert.RandomWeights(shape, 12)}
	be := plain.New()
	defer be.Close()

	for name, m := range map[string]*t5.Model{
		"a backend without Trainer": newModel(t, shape, inferOnly{be}, src, nil),
		"a bf16 model": func() *t5.Model {
			m, err := t5.New(ctx, shape, be, src, t5.Options{DType: backend.BF16, MaxTokens: 64})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}(),
	} {
		if _, err := m.NewGrads(); !errors.Is(err, t5.ErrInvalidInput) {
			t.Errorf("%s: NewGrads: %v", name, err)
		}
		if _, err := m.Train(ctx, nil, trainBatch, t5.TrainOptions{}); !errors.Is(err, t5.ErrInvalidInput) {
			t.Errorf("%s: Train: %v", name, err)
		}
		if _, err := m.Loss(ctx, trainBatch); !errors.Is(err, t5.ErrInvalidInput) {
			t.Errorf("%s: Loss: %v", name, err)
		}
	}

	m := newModel(t, shape, be, src, nil)
	g, err := m.NewGrads()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Train(ctx, g, trainBatch[:1], t5.TrainOptions{}); err != nil {
		t.Fatal(err)
	}
	before := readGrads(t, m, g)
	other, _ := newModel(t, shape, be, src, nil).NewGrads()
	V := shape.VocabSize
	for _, c := range []struct {
		name  string
		g     *t5.Grads
		batch []t5.Example
		opts  t5.TrainOptions
	}{
		{"an empty batch", g, nil, t5.TrainOptions{}},
		{"an empty target", g, []t5.Example{trainBatch[0], {Input: []int{4, 1}}}, t5.TrainOptions{}},
		{"an empty input", g, []t5.Example{{Target: []int{4, 1}}}, t5.TrainOptions{}},
		{"an input id outside the vocabulary", g, []t5.Example{trainBatch[0], {Input: []int{4, V}, Target: []int{1}}}, t5.TrainOptions{}},
		{"a negative target id", g, []t5.Example{{Input: []int{4, 1}, Target: []int{-100, 1}}}, t5.TrainOptions{}},
		{"a target id outside the vocabulary", g, []t5.Example{{Input: []int{4, 1}, Target: []int{V + 5}}}, t5.TrainOptions{}},
		{"an over-long input", g, []t5.Example{{Input: make([]int, 65), Target: []int{1}}}, t5.TrainOptions{}},
		{"dropout 1", g, trainBatch, t5.TrainOptions{Dropout: 1}},
		{"a NaN scale", g, trainBatch, t5.TrainOptions{Scale: float32(math.NaN())}},
		{"another model's gradients", other, trainBatch, t5.TrainOptions{}},
		{"no gradients", nil, trainBatch, t5.TrainOptions{}},
	} {
		_, err := m.Train(ctx, c.g, c.batch, c.opts)
		if !errors.Is(err, t5.ErrInvalidInput) {
			t.Errorf("%s: %v", c.name, err)
		}
		if c.g == g {
			if _, err := m.Loss(ctx, c.batch); c.opts == (t5.TrainOptions{}) && !errors.Is(err, t5.ErrInvalidInput) {
				t.Errorf("Loss: %s: %v", c.name, err)
			}
		}
		t.Logf("%s: %v", c.name, err)
	}
	after := readGrads(t, m, g)
	for name, v := range before {
		if i := sameBits(v, after[name]); i >= 0 {
			t.Fatalf("a failed pass changed %s[%d]", name, i)
		}
	}
	if err := g.Read("nope.weight", nil); !errors.Is(err, t5.ErrInvalidInput) {
		t.Errorf("Read of an unknown name: %v", err)
	}
	if err := g.Read("shared.weight", make([]float32, 3)); !errors.Is(err, t5.ErrInvalidInput) {
		t.Errorf("Read into a short slice: %v", err)
	}
	for _, lora := range []*t5.LoRA{{R: 0, Alpha: 8}, {R: 4, Alpha: 8, Targets: []string{"nope"}}} {
		_, err := t5.New(ctx, shape, be, newWeights(src, 0), t5.Options{DType: backend.F32, MaxTokens: 64, LoRA: lora})
		if !errors.Is(err, t5.ErrInvalidInput) {
			t.Errorf("LoRA %+v: %v", *lora, err)
		}
	}
}
