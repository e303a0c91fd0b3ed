package t5

import (
	"context"
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/catalog"
)

// trainLayout maps the trainable parameters onto what bind prepared: every weight matrix
// with the HF matrices stacked in it, every layer norm, and the LoRA adapters. It is built
// once by New and read-only afterwards.
type trainLayout struct {
	mats  []matrix
	norms []normVec
	enc   []encSites
	dec   []decSites
	// embed and head index mats (the same matrix when tied); encFinal and decFinal index norms.
	embed, head        int
	encFinal, decFinal int

	lora      *LoRA // nil: full fine-tuning
	loraScale float32
	adapters  []*adapter
}

// matrix is one prepared weight and the HF matrices stacked in it, top to bottom.
type matrix struct {
	w     backend.Weight
	parts []catalog.Tensor
	ad    []*adapter // LoRA adapters adding to its product
}

// normVec is one layer norm's weight on the backend.
type normVec struct {
	name string
	t    backend.Tensor
}

// encSites and decSites are a layer's indexes into trainLayout.mats and .norms.
type encSites struct {
	attnNorm, ffnNorm int
	qkv, o            int
	ff                ffSites
}

type decSites struct {
	selfNorm, crossNorm, ffnNorm        int
	qkv, selfO, crossQ, crossO, crossKV int
	ff                                  ffSites
}

// ffSites index an FFN's matrices; wi1 is -1 unless the FFN is gated.
type ffSites struct{ wi, wi1, wo int }

// Relative attention bias names (layer 0 of each stack holds the stack's table).
const (
	encBiasName = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
	decBiasName = "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
)

// bindTrain builds the training layout over the bound weights and, when lora is set, binds
// the adapters from src.
func (m *Model) bindTrain(src Weights, lora *LoRA) error {
	known := map[string]catalog.Tensor{}
	for _, t := range m.shape.Tensors() {
		known[t.Name] = t
	}
	tl := &m.tl
	mat := func(w backend.Weight, names ...string) int {
		parts := make([]catalog.Tensor, len(names))
		for i, n := range names {
			parts[i] = known[n]
		}
		tl.mats = append(tl.mats, matrix{w: w, parts: parts})
		return len(tl.mats) - 1
	}
	vec := func(t backend.Tensor, name string) int {
		tl.norms = append(tl.norms, normVec{name: name, t: t})
		return len(tl.norms) - 1
	}
	ffs := func(f ffn, prefix string) ffSites {
		p := prefix + ".DenseReluDense."
		if m.gated {
			return ffSites{wi: mat(f.wi, p+"wi_0.weight"), wi1: mat(f.wi1, p+"wi_1.weight"), wo: mat(f.wo, p+"wo.weight")}
		}
		return ffSites{wi: mat(f.wi, p+"wi.weight"), wi1: -1, wo: mat(f.wo, p+"wo.weight")}
	}
	tl.embed = mat(m.embed, "shared.weight")
	tl.head = tl.embed
	tl.enc = make([]encSites, len(m.enc))
	for i, l := range m.enc {
		p := fmt.Sprintf("encoder.block.%d.layer.", i)
		a := p + "0.SelfAttention."
		tl.enc[i] = encSites{
			attnNorm: vec(l.attnNorm, p+"0.layer_norm.weight"),
			qkv:      mat(l.qkv, a+"q.weight", a+"k.weight", a+"v.weight"),
			o:        mat(l.o, a+"o.weight"),
			ffnNorm:  vec(l.ffnNorm, p+"1.layer_norm.weight"),
			ff:       ffs(l.ffn, p+"1"),
		}
	}
	tl.encFinal = vec(m.encFinal, "encoder.final_layer_norm.weight")
	tl.dec = make([]decSites, len(m.dec))
	for i, l := range m.dec {
		p := fmt.Sprintf("decoder.block.%d.layer.", i)
		a, c := p+"0.SelfAttention.", p+"1.EncDecAttention."
		tl.dec[i] = decSites{
			selfNorm:  vec(l.selfNorm, p+"0.layer_norm.weight"),
			qkv:       mat(l.qkv, a+"q.weight", a+"k.weight", a+"v.weight"),
			selfO:     mat(l.selfO, a+"o.weight"),
			crossNorm: vec(l.crossNorm, p+"1.layer_norm.weight"),
			crossQ:    mat(l.crossQ, c+"q.weight"),
			crossO:    mat(l.crossO, c+"o.weight"),
			crossKV:   mat(l.crossKV, c+"k.weight", c+"v.weight"),
			ffnNorm:   vec(l.ffnNorm, p+"2.layer_norm.weight"),
			ff:        ffs(l.ffn, p+"2"),
		}
	}
	tl.decFinal = vec(m.decFinal, "decoder.final_layer_norm.weight")
	if !m.shape.TieWordEmbeddings {
		tl.head = mat(m.lmHead, "lm_head.weight")
	}
	if lora != nil {
		return m.bindLoRA(src, lora)
	}
	return nil
}

// Params lists the trainable parameters by their HF names and shapes: every tensor of
// Shape.Tensors() for full fine-tuning (a tied model has shared.weight and no
// lm_head.weight), only the adapters with LoRA ("<module>.lora_A.weight", R × in, and
// "<module>.lora_B.weight", out × R, module after module).
func (m *Model) Params() []catalog.Tensor {
	if m.tl.lora == nil {
		return m.shape.Tensors()
	}
	ps := make([]catalog.Tensor, 0, 2*len(m.tl.adapters))
	for _, ad := range m.tl.adapters {
		ps = append(ps,
			catalog.Tensor{Name: ad.nameA(), Shape: []int{m.tl.lora.R, ad.in}, Matrix: true},
			catalog.Tensor{Name: ad.nameB(), Shape: []int{ad.hi - ad.lo, m.tl.lora.R}, Matrix: true})
	}
	return ps
}

// Grads holds one float32 gradient on the backend for every parameter of the model's
// Params(). Train adds to it; Zero clears it. The gradient of the q, k and v matrices of a
// layer is one tensor, as their weight is (Read slices it). A Grads is used by one goroutine
// at a time.
type Grads struct {
	m     *Model
	tr    backend.Trainer
	mats  []backend.Tensor    // per trainLayout.mats (empty with LoRA)
	norms []backend.Tensor    // per trainLayout.norms (empty with LoRA)
	bias  [2]backend.Tensor   // encoder, decoder relative_attention_bias: buckets × heads (empty with LoRA)
	ad    [][2]backend.Tensor // per adapter: A's and B's gradient
	all   []backend.Tensor    // every distinct tensor above
	views map[string]backend.Tensor
}

// NewGrads allocates zeroed gradients for Params() on the model's backend. It needs a
// backend implementing backend.Trainer and a model prepared in float32.
func (m *Model) NewGrads() (*Grads, error) {
	tr, err := m.trainer()
	if err != nil {
		return nil, err
	}
	tl := &m.tl
	g := &Grads{m: m, tr: tr, mats: make([]backend.Tensor, len(tl.mats)), norms: make([]backend.Tensor, len(tl.norms)),
		ad: make([][2]backend.Tensor, len(tl.adapters)), views: map[string]backend.Tensor{}}
	alloc := func(rows, cols int) backend.Tensor {
		t := tr.Alloc(rows, cols)
		g.all = append(g.all, t)
		return t
	}
	if tl.lora != nil {
		for i, ad := range tl.adapters {
			g.ad[i] = [2]backend.Tensor{alloc(tl.lora.R, ad.in), alloc(ad.hi-ad.lo, tl.lora.R)}
			g.views[ad.nameA()], g.views[ad.nameB()] = g.ad[i][0], g.ad[i][1]
		}
		return g, nil
	}
	for i, mt := range tl.mats {
		rows, cols := mt.w.Dims()
		g.mats[i] = alloc(rows, cols)
		r := 0
		for _, p := range mt.parts {
			g.views[p.Name] = g.mats[i].RowSlice(r, r+p.Shape[0])
			r += p.Shape[0]
		}
	}
	for i, n := range tl.norms {
		g.norms[i] = alloc(1, m.dModel)
		g.views[n.name] = g.norms[i]
	}
	nb := m.shape.RelativeAttentionNumBuckets
	g.bias = [2]backend.Tensor{alloc(nb, m.heads), alloc(nb, m.heads)}
	g.views[encBiasName], g.views[decBiasName] = g.bias[0], g.bias[1]
	return g, nil
}

// Zero sets every gradient to 0.
func (g *Grads) Zero() {
	for _, t := range g.all {
		g.tr.Zero(t)
	}
}

// SumSquares returns the sum of the squares of every gradient, accumulated in float64:
// the square of the global gradient norm.
func (g *Grads) SumSquares() float64 {
	var s float64
	for _, t := range g.all {
		s += g.tr.SumSquares(t)
	}
	return s
}

// Read copies the gradient of the named parameter of Params() into dst, row-major in HF's
// layout; dst must hold exactly its elements.
func (g *Grads) Read(name string, dst []float32) error {
	t, ok := g.views[name]
	if !ok {
		return fmt.Errorf("%w: read gradient: no trainable parameter %q", ErrInvalidInput, name)
	}
	if len(dst) != t.Rows*t.Cols {
		return fmt.Errorf("%w: read gradient %q: %d values for %d elements", ErrInvalidInput, name, len(dst), t.Rows*t.Cols)
	}
	g.tr.Download(dst, t)
	return nil
}

// Reload re-reads every trainable parameter of Params() from src (after an optimizer step):
// the weight matrices in place through backend.Reload (their Weight handles stay), the layer
// norms uploaded into their tensors, the relative attention biases into the model's tables
// of each clamped relative position. With LoRA only the adapters are re-read. An error
// leaves the parameters read before it updated: reload again before the next pass.
func (m *Model) Reload(ctx context.Context, src Weights) error {
	tl := &m.tl
	if tl.lora != nil {
		for _, ad := range tl.adapters {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := m.reloadMatrix(src, ad.a, ad.nameA(), tl.lora.R, ad.in); err != nil {
				return err
			}
			if err := m.reloadMatrix(src, ad.b, ad.nameB(), ad.hi-ad.lo, tl.lora.R); err != nil {
				return err
			}
		}
		return nil
	}
	for _, mt := range tl.mats {
		if err := ctx.Err(); err != nil {
			return err
		}
		parts := make([]backend.Source, len(mt.parts))
		for i, p := range mt.parts {
			s, err := src.Matrix(p.Name, p.Shape[0], p.Shape[1])
			if err != nil {
				return fmt.Errorf("reload %s: %w", p.Name, err)
			}
			parts[i] = s
		}
		one := parts[0]
		if len(parts) > 1 {
			one = stack(parts)
		}
		if err := m.be.Reload(mt.w, one); err != nil {
			return fmt.Errorf("reload %s: %w", mt.parts[0].Name, err)
		}
	}
	for _, n := range tl.norms {
		v, err := src.Vector(n.name, m.dModel)
		if err != nil {
			return fmt.Errorf("reload %s: %w", n.name, err)
		}
		m.be.Upload(n.t, v)
	}
	nb := m.shape.RelativeAttentionNumBuckets
	for _, b := range []struct {
		name    string
		bias    []float32
		buckets []int32
		table   backend.Tensor
	}{{encBiasName, m.encBias, m.encBucket, m.encRel}, {decBiasName, m.decBias, m.decBucket, m.decRel}} {
		v, err := src.Vector(b.name, nb, m.heads)
		if err != nil {
			return fmt.Errorf("reload %s: %w", b.name, err)
		}
		copy(b.bias, v)
		m.uploadRel(b.table, b.bias, b.buckets)
	}
	return nil
}

func (m *Model) reloadMatrix(src Weights, w backend.Weight, name string, rows, cols int) error {
	s, err := src.Matrix(name, rows, cols)
	if err != nil {
		return fmt.Errorf("reload %s: %w", name, err)
	}
	if err := m.be.Reload(w, s); err != nil {
		return fmt.Errorf("reload %s: %w", name, err)
	}
	return nil
}

// uploadRel rewrites a heads × (2·maxDist+1) position-bias table from the [bucket][head]
// bias, as buildBuckets made it.
func (m *Model) uploadRel(t backend.Tensor, bias []float32, buckets []int32) {
	row := make([]float32, len(buckets))
	for h := range m.heads {
		for i, b := range buckets {
			row[i] = bias[int(b)*m.heads+h]
		}
		m.be.Upload(t.RowSlice(h, h+1), row)
	}
}

// addBiasGrad adds the gradient of each clamped relative position's bias (dbias, heads ×
// (2·maxDist+1), as AttentionBackward accumulated it) to the [bucket][head] table's gradient
// dst: positions sharing a bucket are summed in float64 on the host (the tables are small).
func (m *Model) addBiasGrad(tr backend.Trainer, dst, dbias backend.Tensor, buckets []int32) {
	n := len(buckets)
	host := make([]float32, m.heads*n)
	tr.Download(host, dbias)
	nb := m.shape.RelativeAttentionNumBuckets
	sum := make([]float64, nb*m.heads)
	for h := range m.heads {
		for c, b := range buckets {
			sum[int(b)*m.heads+h] += float64(host[h*n+c])
		}
	}
	vals := make([]float32, len(sum))
	for i, v := range sum {
		vals[i] = float32(v)
	}
	t := tr.Alloc(nb, m.heads)
	tr.Upload(t, vals)
	tr.AddTo(dst, t)
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
