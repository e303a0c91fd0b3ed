package t5

// The training pass: the forward of the inference passes with its activations kept, and the
// backward on the backend's training operations (backend.Trainer).
//
// # The forward
//
// The training forward is the inference forward, op for op in the same order (RunEncoder's
// encoder, Feed's decoder over the whole target at once, Logits' head as a Linear of the
// scaled hidden states), so that with dropout 0 and no adapters its logits are the bits
// Feed returns on a backend whose rows do not depend on each other (both of this module's):
// Train's and Loss's statistics are those of Feed's logits. It differs only in where the
// results go: every tensor the backward reads is a tensor of its own instead of shared
// scratch, the decoder's self-attention reads the keys and values of all target positions
// in place (ViewKV) rather than from a cache, cross-attention reads each decoder layer's kept
// k/v product in place, and the softmax probabilities are written out (AttnGroup.Probs).
//
// Dropout (TrainOptions.Dropout > 0) is applied at HF T5's sites: after the embedding of
// either stack, on the output of every attention and FFN sublayer before its residual add,
// inside the FFN after the activation (before wo), and after each stack's final layer norm.
// HF also drops attention probabilities; backend.Trainer has no such operation, so this pass
// does not (with dropout 0, the golden comparison, the two are the same computation). Each
// site's seed is derived from TrainOptions.Seed and the site (stack, layer, place), and the
// backend's counter-based Dropout needs no stored mask: the backward and a recomputed forward
// drop the same elements.
//
// # Memory
//
// With d = d_model, I = num_heads·d_kv, F = d_ff, H = num_heads, per token and per layer the
// pass keeps (float32 values):
//
//	encoder token:  4d + 4I + H·Ls + c·F
//	decoder token:  6d + 6I + H·(Lt + Ls) + c·F,  and 2I per encoder token per decoder layer
//	                (the cross-attention keys and values)
//
// where Ls and Lt are the lengths of the token's own input and target (the softmax
// probabilities) and c = 1 for a relu FFN (its output is its own derivative's mask),
// 2 for another non-gated activation (the pre-activation copy), 3 for a gated FFN; LoRA adds
// R per adapter on the layer's products. Beside that: 2d per token of each stack (the final
// norm's input and output), one logits block of at most headBlockFloats values, and the
// backward's temporaries, reused layer after layer: at most 4d + 5I + 2F per token, and 2I
// per encoder token (the cross keys' and values' gradient).
//
// With Recompute, only each layer's input is kept, d per token per layer, and the backward
// re-runs each layer's forward from it (the same operations on the same inputs: the same
// bits) into one layer's worth of the intermediates above, reused layer after layer.

import (
	"context"
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
)

// Example is one training pair: Input the encoder ids, Target the label ids (normally
// ending with </s> = 1). The decoder is fed [0] + Target[:len(Target)-1] (HF's _shift_right
// with decoder_start_token_id 0).
type Example struct{ Input, Target []int }

// TrainOptions configure one training pass (forward and backward).
type TrainOptions struct {
	// Dropout is HF's dropout_rate, in [0, 1); 0 is none. The sites are HF T5's except the
	// attention probabilities (see the package's training notes in train.go).
	Dropout float32
	// Seed is this pass's dropout seed; each site derives its own from it.
	Seed uint64
	// Scale multiplies the gradient of the pass's summed token loss: the caller passes
	// 1/(labelled tokens of the whole accumulated batch) to get HF's mean loss over it. 0
	// means 1/Tokens of this pass.
	Scale float32
	// Recompute keeps only each layer's input and recomputes the layer during the backward
	// (long inputs): the same gradients, bit for bit, for less memory and one more forward.
	Recompute bool
}

// Stats are a pass's loss statistics.
type Stats struct {
	// Loss is the sum of the token losses (cross-entropy, natural log) over every label.
	Loss float64
	// Tokens is the number of labelled tokens; Correct those whose first argmax is the label.
	Tokens, Correct int
}

// headBlockFloats bounds the logits block the head computes at once (tokens × vocab).
const headBlockFloats = 1 << 22

// Dropout site kinds, part of each site's seed.
const (
	siteEmbed = iota
	siteSelf
	siteCross
	siteFFIn
	siteFFOut
	siteFinal
)

// trainer returns the model's backend as a backend.Trainer, or why the model cannot train.
func (m *Model) trainer() (backend.Trainer, error) {
	tr, ok := m.be.(backend.Trainer)
	if !ok {
		return nil, fmt.Errorf("%w: training: the %s backend does not implement backend.Trainer", ErrInvalidInput, m.be.Name())
	}
	if m.dtype != backend.F32 {
		return nil, fmt.Errorf("%w: training needs a model prepared in f32, not %s", ErrInvalidInput, m.dtype)
	}
	return tr, nil
}

// checkBatch reports the first problem with a training batch and returns its labelled tokens.
func (m *Model) checkBatch(batch []Example) (int, error) {
	if len(batch) == 0 {
		return 0, fmt.Errorf("%w: training: an empty batch", ErrInvalidInput)
	}
	n := 0
	for i, ex := range batch {
		if err := m.CheckIDs(fmt.Sprintf("example %d's input", i), ex.Input); err != nil {
			return 0, err
		}
		if err := m.CheckIDs(fmt.Sprintf("example %d's target", i), ex.Target); err != nil {
			return 0, err
		}
		n += len(ex.Target)
	}
	return n, nil
}

// Train runs the forward and backward pass over batch and adds the gradients of the summed
// token loss, times opts.Scale, to g (so that the micro-batches of an accumulated batch sum
// in place). It returns the pass's loss statistics (before any update). Inputs and options
// are checked before anything runs: on such an error (wrapping ErrInvalidInput) g is
// unchanged. If ctx ends during the pass, or the loss is not finite (an error wrapping
// ErrNumerics), g holds part of the pass's gradients: zero it before the next step. Calls
// with the same g must not overlap; Reload must not overlap any pass.
func (m *Model) Train(ctx context.Context, g *Grads, batch []Example, opts TrainOptions) (Stats, error) {
	tr, err := m.trainer()
	if err != nil {
		return Stats{}, err
	}
	if g == nil || g.m != m {
		return Stats{}, fmt.Errorf("%w: training: the gradients were not made by this model's NewGrads", ErrInvalidInput)
	}
	if p := opts.Dropout; !(p >= 0 && p < 1) {
		return Stats{}, fmt.Errorf("%w: training: dropout %v is outside [0, 1)", ErrInvalidInput, p)
	}
	if s := float64(opts.Scale); math.IsNaN(s) || math.IsInf(s, 0) {
		return Stats{}, fmt.Errorf("%w: training: gradient scale %v is not finite", ErrInvalidInput, opts.Scale)
	}
	tokens, err := m.checkBatch(batch)
	if err != nil {
		return Stats{}, err
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	scale := opts.Scale
	if scale == 0 {
		scale = 1 / float32(tokens)
	}
	p := m.newPass(tr, g, batch, opts.Dropout, opts.Seed, scale, !opts.Recompute)
	if err := p.forward(ctx); err != nil {
		return Stats{}, err
	}
	st := p.head()
	st.Tokens = tokens
	if err := p.backward(ctx); err != nil {
		return st, err
	}
	if !finite(st.Loss) {
		return st, NumericsError("the training loss")
	}
	return st, nil
}

// Loss is the forward pass alone over batch, without dropout or gradients: the validation
// loss. It needs what Train needs (a backend.Trainer, float32 weights) and keeps only each
// layer's input.
func (m *Model) Loss(ctx context.Context, batch []Example) (Stats, error) {
	tr, err := m.trainer()
	if err != nil {
		return Stats{}, err
	}
	tokens, err := m.checkBatch(batch)
	if err != nil {
		return Stats{}, err
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	p := m.newPass(tr, nil, batch, 0, 0, 0, false)
	if err := p.forward(ctx); err != nil {
		return Stats{}, err
	}
	st := p.head()
	st.Tokens = tokens
	if !finite(st.Loss) {
		return st, NumericsError("the loss")
	}
	return st, nil
}

// pass is one training (or loss) pass over a packed batch.
type pass struct {
	m     *Model
	be    backend.Trainer
	g     *Grads // nil: forward only (Loss)
	rate  float32
	seed  uint64
	scale float32
	keep  bool // keep every layer's intermediates (else recompute them in the backward)

	encIDs, decIDs, labels []int
	encSpans, decSpans     []backend.Span
	te, td                 int

	enc    []*encAct      // per encoder layer; x (its input) always, the rest when keep
	dec    []*decAct      // per decoder layer, the same
	encTop backend.Tensor // the last encoder layer's output: the final norm's input
	encOut backend.Tensor // the encoder's output (final norm, dropout)
	decTop backend.Tensor
	hs     backend.Tensor   // the head's input: final norm, dropout, times the tied scale
	dhs    backend.Tensor   // its gradient
	z      []backend.Tensor // per adapter: A·x of its module's input

	encScratch *encAct // recompute: one layer's intermediates, reused
	decScratch *decAct
	outScratch [2]backend.Tensor // recompute: a recomputed layer's output (encoder, decoder), discarded
}

func (m *Model) newPass(tr backend.Trainer, g *Grads, batch []Example, rate float32, seed uint64, scale float32, keep bool) *pass {
	p := &pass{m: m, be: tr, g: g, rate: rate, seed: mix64(seed), scale: scale, keep: keep && g != nil,
		encSpans: make([]backend.Span, len(batch)), decSpans: make([]backend.Span, len(batch)),
		z: make([]backend.Tensor, len(m.tl.adapters))}
	for i, ex := range batch {
		p.encSpans[i] = backend.Span{Off: p.te, N: len(ex.Input)}
		p.decSpans[i] = backend.Span{Off: p.td, N: len(ex.Target)}
		p.te += len(ex.Input)
		p.td += len(ex.Target)
		p.encIDs = append(p.encIDs, ex.Input...)
		p.decIDs = append(p.decIDs, 0)
		p.decIDs = append(p.decIDs, ex.Target[:len(ex.Target)-1]...)
		p.labels = append(p.labels, ex.Target...)
	}
	return p
}

// train reports whether the pass computes gradients.
func (p *pass) train() bool { return p.g != nil }

// mix64 is splitmix64's finaliser.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// siteSeed is the dropout seed of one site: stack 0 the encoder, 1 the decoder.
func (p *pass) siteSeed(stack, layer, site int) uint64 {
	return mix64(p.seed ^ uint64(stack)<<56 ^ uint64(layer)<<8 ^ uint64(site))
}

// dropout applies the pass's dropout to x at a site (nothing at rate 0).
func (p *pass) dropout(x backend.Tensor, stack, layer, site int) {
	if p.rate > 0 {
		p.be.Dropout(x, p.rate, p.siteSeed(stack, layer, site))
	}
}

// encAct is what one encoder layer's backward reads.
type encAct struct {
	x      backend.Tensor   // the layer's input (the attention norm's)
	h1     backend.Tensor   // the attention norm's output
	qkv    backend.Tensor   // q, k, v
	probs  []backend.Tensor // per input: heads·N × N
	att    backend.Tensor   // the attention's output (o's input)
	x2, h2 backend.Tensor   // the FFN norm's input and output
	ff     ffAct
}

// decAct is what one decoder layer's backward reads.
type decAct struct {
	x, h1         backend.Tensor
	qkv           backend.Tensor
	selfP, crossP []backend.Tensor // per sequence: heads·N × N, heads·N × Ls
	attS          backend.Tensor
	x2, h2        backend.Tensor // the cross-attention norm's input and output
	qc, ckv       backend.Tensor // cross queries (decoder rows), cross keys and values (encoder rows)
	attC          backend.Tensor
	x3, h3        backend.Tensor // the FFN norm's input and output
	ff            ffAct
}

// ffAct is an FFN's kept tensors: a, wo's input (after the activation and dropout); pre, the
// activation's input (not kept for a relu FFN, whose output serves); b, wi_1's product.
type ffAct struct{ a, pre, b backend.Tensor }

func (p *pass) newFF(t int) ffAct {
	m, be := p.m, p.be
	f := ffAct{a: be.Alloc(t, m.shape.DFF)}
	if m.gated {
		f.b = be.Alloc(t, m.shape.DFF)
	}
	if p.train() && (m.gated || m.act != backend.ActReLU) {
		f.pre = be.Alloc(t, m.shape.DFF)
	}
	return f
}

// probsFor allocates the probabilities of each span's queries over its keys.
func (p *pass) probsFor(q, k []backend.Span) []backend.Tensor {
	if !p.train() {
		return nil
	}
	ps := make([]backend.Tensor, len(q))
	for i := range q {
		ps[i] = p.be.Alloc(p.m.heads*q[i].N, k[i].N)
	}
	return ps
}

func (p *pass) newEncAct(x backend.Tensor) *encAct {
	be, t, d, inner := p.be, p.te, p.m.dModel, p.m.inner
	return &encAct{x: x, h1: be.Alloc(t, d), qkv: be.Alloc(t, 3*inner), probs: p.probsFor(p.encSpans, p.encSpans),
		att: be.Alloc(t, inner), x2: be.Alloc(t, d), h2: be.Alloc(t, d), ff: p.newFF(t)}
}

func (p *pass) newDecAct(x backend.Tensor) *decAct {
	be, t, d, inner := p.be, p.td, p.m.dModel, p.m.inner
	return &decAct{x: x, h1: be.Alloc(t, d), qkv: be.Alloc(t, 3*inner),
		selfP: p.probsFor(p.decSpans, p.decSpans), crossP: p.probsFor(p.decSpans, p.encSpans),
		attS: be.Alloc(t, inner), x2: be.Alloc(t, d), h2: be.Alloc(t, d),
		qc: be.Alloc(t, inner), ckv: be.Alloc(p.te, 2*inner), attC: be.Alloc(t, inner),
		x3: be.Alloc(t, d), h3: be.Alloc(t, d), ff: p.newFF(t)}
}

// encAt returns the intermediates of encoder layer l whose input is x, for its forward:
// new ones when the pass keeps them, else the reused scratch.
func (p *pass) encAt(x backend.Tensor) *encAct {
	if p.keep {
		return p.newEncAct(x)
	}
	if p.encScratch == nil {
		p.encScratch = p.newEncAct(x)
	}
	p.encScratch.x = x
	return p.encScratch
}

func (p *pass) decAt(x backend.Tensor) *decAct {
	if p.keep {
		return p.newDecAct(x)
	}
	if p.decScratch == nil {
		p.decScratch = p.newDecAct(x)
	}
	p.decScratch.x = x
	return p.decScratch
}

// forward runs both stacks and the decoder's final norm, keeping what the backward reads.
func (p *pass) forward(ctx context.Context) error {
	be, m := p.be, p.m
	d := m.dModel
	x := be.Alloc(p.te, d)
	be.Embed(x, m.embed, p.encIDs)
	p.dropout(x, 0, 0, siteEmbed)
	p.enc = make([]*encAct, len(m.enc))
	for l := range m.enc {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := p.encAt(x)
		p.enc[l] = a
		if !p.keep {
			p.enc[l] = &encAct{x: x}
		}
		out := be.Alloc(p.te, d)
		p.encLayer(l, a, out)
		x = out
	}
	p.encTop = x
	p.encOut = be.Alloc(p.te, d)
	be.RMSNorm(p.encOut, x, m.encFinal, m.eps)
	p.dropout(p.encOut, 0, len(m.enc), siteFinal)

	y := be.Alloc(p.td, d)
	be.Embed(y, m.embed, p.decIDs)
	p.dropout(y, 1, 0, siteEmbed)
	p.dec = make([]*decAct, len(m.dec))
	for l := range m.dec {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := p.decAt(y)
		p.dec[l] = a
		if !p.keep {
			p.dec[l] = &decAct{x: y}
		}
		out := be.Alloc(p.td, d)
		p.decLayer(l, a, out)
		y = out
	}
	p.decTop = y
	p.hs = be.Alloc(p.td, d)
	be.RMSNorm(p.hs, y, m.decFinal, m.eps)
	p.dropout(p.hs, 1, len(m.dec), siteFinal)
	if m.lmScale != 1 {
		be.Scale(p.hs, m.lmScale)
	}
	return nil
}

// encLayer is encoder layer l's forward from a.x into a's intermediates and out.
func (p *pass) encLayer(l int, a *encAct, out backend.Tensor) {
	be, m := p.be, p.m
	L, s, inner := &m.enc[l], &m.tl.enc[l], m.inner
	be.RMSNorm(a.h1, a.x, L.attnNorm, m.eps)
	p.linear(a.qkv, a.h1, s.qkv, backend.Store)
	groups := make([]backend.AttnGroup, len(p.encSpans))
	for i, sp := range p.encSpans {
		rows := a.qkv.RowSlice(sp.Off, sp.Off+sp.N)
		groups[i] = backend.AttnGroup{Q: rows.ColSlice(0, inner), Out: a.att.RowSlice(sp.Off, sp.Off+sp.N),
			KV: be.ViewKV(rows.ColSlice(inner, 3*inner))}
		if a.probs != nil {
			groups[i].Probs = a.probs[i]
		}
	}
	be.Attention(groups, m.heads, m.encRel)
	p.residual(a.x2, a.x, a.att, s.o, 0, l, siteSelf)
	p.ffn(&a.ff, a.h2, a.x2, out, L.ffnNorm, s.ff, 0, l)
}

// decLayer is decoder layer l's forward.
func (p *pass) decLayer(l int, a *decAct, out backend.Tensor) {
	be, m := p.be, p.m
	L, s, inner := &m.dec[l], &m.tl.dec[l], m.inner
	be.RMSNorm(a.h1, a.x, L.selfNorm, m.eps)
	p.linear(a.qkv, a.h1, s.qkv, backend.Store)
	self := make([]backend.AttnGroup, len(p.decSpans))
	for i, sp := range p.decSpans {
		rows := a.qkv.RowSlice(sp.Off, sp.Off+sp.N)
		self[i] = backend.AttnGroup{Q: rows.ColSlice(0, inner), Out: a.attS.RowSlice(sp.Off, sp.Off+sp.N),
			KV: be.ViewKV(rows.ColSlice(inner, 3*inner)), Causal: true}
		if a.selfP != nil {
			self[i].Probs = a.selfP[i]
		}
	}
	be.Attention(self, m.heads, m.decRel)
	p.residual(a.x2, a.x, a.attS, s.selfO, 1, l, siteSelf)

	be.RMSNorm(a.h2, a.x2, L.crossNorm, m.eps)
	p.linear(a.qc, a.h2, s.crossQ, backend.Store)
	p.linear(a.ckv, p.encOut, s.crossKV, backend.Store)
	cross := make([]backend.AttnGroup, len(p.decSpans))
	for i, sp := range p.decSpans {
		ke := p.encSpans[i]
		cross[i] = backend.AttnGroup{Q: a.qc.RowSlice(sp.Off, sp.Off+sp.N), Out: a.attC.RowSlice(sp.Off, sp.Off+sp.N),
			KV: be.ViewKV(a.ckv.RowSlice(ke.Off, ke.Off+ke.N))}
		if a.crossP != nil {
			cross[i].Probs = a.crossP[i]
		}
	}
	be.Attention(cross, m.heads, backend.Tensor{})
	p.residual(a.x3, a.x2, a.attC, s.crossO, 1, l, siteCross)
	p.ffn(&a.ff, a.h3, a.x3, out, L.ffnNorm, s.ff, 1, l)
}

// residual sets dst = x + dropout(in·Wᵀ) for matrix mi: the product added in its epilogue,
// as the inference passes do, when there is no dropout.
func (p *pass) residual(dst, x, in backend.Tensor, mi, stack, layer, site int) {
	be := p.be
	be.Copy(dst, x)
	if p.rate == 0 {
		p.linear(dst, in, mi, backend.Add)
		return
	}
	y := be.Alloc(dst.Rows, dst.Cols)
	p.linear(y, in, mi, backend.Store)
	p.dropout(y, stack, layer, site)
	be.AddTo(dst, y)
}

// ffn is an FFN sublayer's forward: out = x + wo(dropout(act(wi(h)) [· wi_1(h)])) with h =
// layer_norm(x), as Model.feedForward computes it.
func (p *pass) ffn(f *ffAct, h, x, out, norm backend.Tensor, s ffSites, stack, layer int) {
	be, m := p.be, p.m
	be.RMSNorm(h, x, norm, m.eps)
	switch {
	case !m.gated && m.act == backend.ActReLU:
		p.linear(f.a, h, s.wi, backend.ReLU)
	case m.gated:
		p.linear(f.a, h, s.wi, backend.Store)
		p.linear(f.b, h, s.wi1, backend.Store)
		if !f.pre.Empty() {
			be.Copy(f.pre, f.a)
		}
		be.Activate(f.a, f.b, m.act)
	default:
		p.linear(f.a, h, s.wi, backend.Store)
		if !f.pre.Empty() {
			be.Copy(f.pre, f.a)
		}
		be.Activate(f.a, backend.Tensor{}, m.act)
	}
	p.dropout(f.a, stack, layer, siteFFIn)
	p.residual(out, x, f.a, s.wo, stack, layer, siteFFOut)
}

// linear sets dst = ep(dst, x·Wᵀ) for matrix mi, with its LoRA adapters' (Alpha/R)·B·(A·x)
// added to their columns (before a relu epilogue, which then runs as an activation).
func (p *pass) linear(dst, x backend.Tensor, mi int, ep backend.Epilogue) {
	be, mt := p.be, &p.m.tl.mats[mi]
	if len(mt.ad) == 0 {
		be.Linear(dst, x, mt.w, ep)
		return
	}
	relu := ep == backend.ReLU
	if relu {
		ep = backend.Store
	}
	be.Linear(dst, x, mt.w, ep)
	for _, ad := range mt.ad {
		z := p.z[ad.index]
		if z.Empty() {
			z = be.Alloc(x.Rows, p.m.tl.lora.R)
			p.z[ad.index] = z
		}
		be.Linear(z, x, ad.a, backend.Store)
		u := be.Alloc(x.Rows, ad.hi-ad.lo)
		be.Linear(u, z, ad.b, backend.Store)
		be.Scale(u, p.m.tl.loraScale)
		be.AddTo(dst.ColSlice(ad.lo, ad.hi), u)
	}
	if relu {
		be.Activate(dst, backend.Tensor{}, backend.ActReLU)
	}
}

// head runs the LM head over the decoder's output block by block, each block's logits
// turned into their gradient by the loss and, when training, propagated at once into the
// head's weight gradient and dhs.
func (p *pass) head() Stats {
	be, m := p.be, p.m
	V := m.shape.VocabSize
	block := max(1, headBlockFloats/V)
	logits := be.Alloc(min(block, p.td), V)
	if p.train() {
		p.dhs = be.Alloc(p.td, m.dModel)
	}
	var st Stats
	for lo := 0; lo < p.td; lo += block {
		hi := min(p.td, lo+block)
		lg, hs := logits.RowSlice(0, hi-lo), p.hs.RowSlice(lo, hi)
		be.Linear(lg, hs, m.lmHead, backend.Store)
		loss, correct := be.CrossEntropy(lg, p.labels[lo:hi], p.scale)
		st.Loss += loss
		st.Correct += correct
		if p.train() {
			p.linearBack(p.dhs.RowSlice(lo, hi), lg, hs, m.tl.head, backend.Store)
		}
	}
	return st
}
