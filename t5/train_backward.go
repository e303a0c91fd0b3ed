package t5

import (
	"context"

	"github.com/t5zoo/t5zoo/backend"
)

// backScratch is one stack's backward temporaries, reused layer after layer.
type backScratch struct {
	dy   backend.Tensor // t × d: a sublayer output's gradient through dropout
	dh   backend.Tensor // t × d: a norm output's gradient
	dqkv backend.Tensor // t × 3I
	datt backend.Tensor // t × I
	da   backend.Tensor // t × F
	db   backend.Tensor // t × F (gated)
	dqc  backend.Tensor // decoder: t × I
	dckv backend.Tensor // decoder: encoder tokens × 2I
}

func (p *pass) newBackScratch(t int, decoder bool) *backScratch {
	be, m := p.be, p.m
	d, inner, ff := m.dModel, m.inner, m.shape.DFF
	s := &backScratch{dh: be.Alloc(t, d), dqkv: be.Alloc(t, 3*inner), datt: be.Alloc(t, inner), da: be.Alloc(t, ff)}
	if p.rate > 0 {
		s.dy = be.Alloc(t, d)
	}
	if m.gated {
		s.db = be.Alloc(t, ff)
	}
	if decoder {
		s.dqc = be.Alloc(t, inner)
		s.dckv = be.Alloc(p.te, 2*inner)
	}
	return s
}

// backward propagates dhs (the head's input gradient, which head computed) through the
// decoder and the encoder, adding every parameter's gradient to p.g.
func (p *pass) backward(ctx context.Context) error {
	be, m, tl, g := p.be, p.m, &p.m.tl, p.g
	full := tl.lora == nil
	d := m.dModel
	nRel := 2*m.maxDist + 1
	var dbias [2]backend.Tensor
	if full {
		dbias = [2]backend.Tensor{be.Alloc(m.heads, nRel), be.Alloc(m.heads, nRel)}
	}
	var dw backend.Tensor // a norm weight's gradient that nobody reads (LoRA)
	if !full {
		dw = be.Alloc(1, d)
	}
	normGrad := func(i int) backend.Tensor {
		if full {
			return g.norms[i]
		}
		return dw
	}

	// The decoder, from the head's input down to its embedding.
	dhs := p.dhs
	if m.lmScale != 1 {
		be.Scale(dhs, m.lmScale)
	}
	p.dropout(dhs, 1, len(m.dec), siteFinal)
	gy := be.Alloc(p.td, d)
	be.RMSNormBackward(gy, normGrad(tl.decFinal), dhs, p.decTop, m.decFinal, m.eps, backend.Store)
	dEnc := be.Alloc(p.te, d) // every decoder layer's cross k/v gradient adds to it
	sc := p.newBackScratch(p.td, true)
	for l := len(m.dec) - 1; l >= 0; l-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.decLayerBack(l, p.decFor(l), gy, dEnc, sc, dbias[1], normGrad)
	}
	p.dropout(gy, 1, 0, siteEmbed)
	if full {
		be.EmbedBackward(g.mats[tl.embed], gy, p.decIDs)
	}

	// The encoder, from its output's gradient down to its embedding.
	p.dropout(dEnc, 0, len(m.enc), siteFinal)
	gx := be.Alloc(p.te, d)
	be.RMSNormBackward(gx, normGrad(tl.encFinal), dEnc, p.encTop, m.encFinal, m.eps, backend.Store)
	sc = p.newBackScratch(p.te, false)
	for l := len(m.enc) - 1; l >= 0; l-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.encLayerBack(l, p.encFor(l), gx, sc, dbias[0], normGrad)
	}
	p.dropout(gx, 0, 0, siteEmbed)
	if full {
		be.EmbedBackward(g.mats[tl.embed], gx, p.encIDs)
		m.addBiasGrad(be, g.bias[0], dbias[0], m.encBucket)
		m.addBiasGrad(be, g.bias[1], dbias[1], m.decBucket)
	}
	return nil
}

// encFor returns encoder layer l's intermediates: kept, or recomputed from its input.
func (p *pass) encFor(l int) *encAct {
	if p.keep {
		return p.enc[l]
	}
	a := p.encAt(p.enc[l].x)
	if p.outScratch[0].Empty() {
		p.outScratch[0] = p.be.Alloc(p.te, p.m.dModel)
	}
	p.encLayer(l, a, p.outScratch[0])
	return a
}

func (p *pass) decFor(l int) *decAct {
	if p.keep {
		return p.dec[l]
	}
	a := p.decAt(p.dec[l].x)
	if p.outScratch[1].Empty() {
		p.outScratch[1] = p.be.Alloc(p.td, p.m.dModel)
	}
	p.decLayer(l, a, p.outScratch[1])
	return a
}

// encLayerBack turns g, the gradient of encoder layer l's output, into that of its input.
func (p *pass) encLayerBack(l int, a *encAct, g backend.Tensor, sc *backScratch, dbias backend.Tensor, normGrad func(int) backend.Tensor) {
	be, m := p.be, p.m
	L, s, inner := &m.enc[l], &m.tl.enc[l], m.inner
	p.ffnBack(&a.ff, g, a.h2, a.x2, L.ffnNorm, normGrad(s.ffnNorm), s.ff, sc, 0, l)

	dy := p.dropGrad(g, sc.dy, 0, l, siteSelf)
	p.linearBack(sc.datt, dy, a.att, s.o, backend.Store)
	grads := make([]backend.AttnGrad, len(p.encSpans))
	for i, sp := range p.encSpans {
		rows, drows := a.qkv.RowSlice(sp.Off, sp.Off+sp.N), sc.dqkv.RowSlice(sp.Off, sp.Off+sp.N)
		grads[i] = backend.AttnGrad{Q: rows.ColSlice(0, inner), KV: rows.ColSlice(inner, 3*inner), Probs: a.probs[i],
			DOut: sc.datt.RowSlice(sp.Off, sp.Off+sp.N), DQ: drows.ColSlice(0, inner), DKV: drows.ColSlice(inner, 3*inner)}
	}
	be.AttentionBackward(grads, m.heads, dbias)
	p.linearBack(sc.dh, sc.dqkv, a.h1, s.qkv, backend.Store)
	be.RMSNormBackward(g, normGrad(s.attnNorm), sc.dh, a.x, L.attnNorm, m.eps, backend.Add)
}

// decLayerBack turns g, the gradient of decoder layer l's output, into that of its input,
// adding the gradient of the encoder output through the layer's cross keys and values to dEnc.
func (p *pass) decLayerBack(l int, a *decAct, g, dEnc backend.Tensor, sc *backScratch, dbias backend.Tensor, normGrad func(int) backend.Tensor) {
	be, m := p.be, p.m
	L, s, inner := &m.dec[l], &m.tl.dec[l], m.inner
	p.ffnBack(&a.ff, g, a.h3, a.x3, L.ffnNorm, normGrad(s.ffnNorm), s.ff, sc, 1, l)

	// Cross-attention: x3 = x2 + crossO(attention(crossQ(h2), crossKV(encOut))).
	dy := p.dropGrad(g, sc.dy, 1, l, siteCross)
	p.linearBack(sc.datt, dy, a.attC, s.crossO, backend.Store)
	cross := make([]backend.AttnGrad, len(p.decSpans))
	for i, sp := range p.decSpans {
		ke := p.encSpans[i]
		cross[i] = backend.AttnGrad{Q: a.qc.RowSlice(sp.Off, sp.Off+sp.N), KV: a.ckv.RowSlice(ke.Off, ke.Off+ke.N), Probs: a.crossP[i],
			DOut: sc.datt.RowSlice(sp.Off, sp.Off+sp.N), DQ: sc.dqc.RowSlice(sp.Off, sp.Off+sp.N), DKV: sc.dckv.RowSlice(ke.Off, ke.Off+ke.N)}
	}
	be.AttentionBackward(cross, m.heads, backend.Tensor{})
	p.linearBack(dEnc, sc.dckv, p.encOut, s.crossKV, backend.Add)
	p.linearBack(sc.dh, sc.dqc, a.h2, s.crossQ, backend.Store)
	be.RMSNormBackward(g, normGrad(s.crossNorm), sc.dh, a.x2, L.crossNorm, m.eps, backend.Add)

	// Self-attention, causal: x2 = x + selfO(attention(qkv(h1))).
	dy = p.dropGrad(g, sc.dy, 1, l, siteSelf)
	p.linearBack(sc.datt, dy, a.attS, s.selfO, backend.Store)
	self := make([]backend.AttnGrad, len(p.decSpans))
	for i, sp := range p.decSpans {
		rows, drows := a.qkv.RowSlice(sp.Off, sp.Off+sp.N), sc.dqkv.RowSlice(sp.Off, sp.Off+sp.N)
		self[i] = backend.AttnGrad{Q: rows.ColSlice(0, inner), KV: rows.ColSlice(inner, 3*inner), Probs: a.selfP[i],
			DOut: sc.datt.RowSlice(sp.Off, sp.Off+sp.N), DQ: drows.ColSlice(0, inner), DKV: drows.ColSlice(inner, 3*inner), Causal: true}
	}
	be.AttentionBackward(self, m.heads, dbias)
	p.linearBack(sc.dh, sc.dqkv, a.h1, s.qkv, backend.Store)
	be.RMSNormBackward(g, normGrad(s.selfNorm), sc.dh, a.x, L.selfNorm, m.eps, backend.Add)
}

// ffnBack is an FFN sublayer's backward: g, the gradient of out = x + wo(...), gets the
// gradient through the FFN and its norm added (the residual's own is g itself).
func (p *pass) ffnBack(f *ffAct, g, h, x, norm, dnorm backend.Tensor, s ffSites, sc *backScratch, stack, layer int) {
	be, m := p.be, p.m
	dy := p.dropGrad(g, sc.dy, stack, layer, siteFFOut)
	p.linearBack(sc.da, dy, f.a, s.wo, backend.Store)
	p.dropout(sc.da, stack, layer, siteFFIn)
	switch {
	case !m.gated && m.act == backend.ActReLU:
		// relu'(a) is 1 where the output is positive: the output serves as the input.
		be.ActivateBackward(sc.da, backend.Tensor{}, sc.da, f.a, backend.Tensor{}, backend.ActReLU)
	case m.gated:
		be.ActivateBackward(sc.da, sc.db, sc.da, f.pre, f.b, m.act)
	default:
		be.ActivateBackward(sc.da, backend.Tensor{}, sc.da, f.pre, backend.Tensor{}, m.act)
	}
	p.linearBack(sc.dh, sc.da, h, s.wi, backend.Store)
	if m.gated {
		p.linearBack(sc.dh, sc.db, h, s.wi1, backend.Add)
	}
	be.RMSNormBackward(g, dnorm, sc.dh, x, norm, m.eps, backend.Add)
}

// dropGrad returns the gradient g through a site's dropout: g itself at rate 0, else a copy
// in buf with the site's mask applied.
func (p *pass) dropGrad(g, buf backend.Tensor, stack, layer, site int) backend.Tensor {
	if p.rate == 0 {
		return g
	}
	p.be.Copy(buf, g)
	p.dropout(buf, stack, layer, site)
	return buf
}

// linearBack is the gradient of linear: dx = ep(dx, dy·W) (plus the adapters' share), W's
// gradient (full fine-tuning) or the adapters' (LoRA) added to p.g.
func (p *pass) linearBack(dx, dy, x backend.Tensor, mi int, ep backend.Epilogue) {
	be, tl := p.be, &p.m.tl
	mt := &tl.mats[mi]
	be.LinearBackward(dx, p.g.mats[mi], dy, x, mt.w, ep)
	for _, ad := range mt.ad {
		ga := p.g.ad[ad.index]
		// y += s·B·z with z = A·x: dB += (s·dy)ᵀ·z, dz = (s·dy)·B, dA += dzᵀ·x, dx += dz·A.
		dys := be.Alloc(dy.Rows, ad.hi-ad.lo)
		be.Copy(dys, dy.ColSlice(ad.lo, ad.hi))
		be.Scale(dys, tl.loraScale)
		dz := be.Alloc(dy.Rows, tl.lora.R)
		be.LinearBackward(dz, ga[1], dys, p.z[ad.index], ad.b, backend.Store)
		be.LinearBackward(dx, ga[0], dz, x, ad.a, backend.Add)
	}
}
