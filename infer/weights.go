package infer

import (
	"context"
	"fmt"
	"slices"

	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer/internal/mat"
)

// bind reads every weight the shape calls for from a checkpoint that convert.Open has
// already matched against the config (tied aliases resolved to shared.weight, nothing
// missing, extra or mis-shaped). F32 data is used in place; F16/BF16 is widened and int8
// dequantized.
func (m *Model) bind(ctx context.Context, ck *convert.Checkpoint) error {
	s := m.shape
	d, inner, ff, V := s.DModel, m.inner, s.DFF, s.VocabSize
	var err error
	get := func(name string, shape ...int) []float32 {
		if err != nil {
			return nil
		}
		if st, ok := ck.Stored(name); !ok || !slices.Equal(st.Shape, shape) {
			err = fmt.Errorf("%w: tensor %q: want shape %v", ErrCheckpoint, name, shape)
			return nil
		}
		var v []float32
		if v, _, err = ck.Float32(name); err != nil {
			err = fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
		return v
	}
	weight := func(name string, r, c int) *lazyWeight {
		return &lazyWeight{data: get(name, r, c), r: r, c: c}
	}
	m.embed = get("shared.weight", V, d)
	var lm *lazyWeight
	if s.TieWordEmbeddings {
		lm = &lazyWeight{data: m.embed, r: V, c: d}
	} else {
		lm = weight("lm_head.weight", V, d)
	}
	attn := func(prefix string) attentionW {
		return attentionW{
			q: weight(prefix+".q.weight", inner, d),
			k: weight(prefix+".k.weight", inner, d),
			v: weight(prefix+".v.weight", inner, d),
			o: weight(prefix+".o.weight", d, inner),
		}
	}
	ffnW := func(prefix string) ffnWeights {
		p := prefix + ".DenseReluDense."
		if m.gated {
			return ffnWeights{wi: weight(p+"wi_0.weight", ff, d), wi1: weight(p+"wi_1.weight", ff, d), wo: weight(p+"wo.weight", d, ff)}
		}
		return ffnWeights{wi: weight(p+"wi.weight", ff, d), wo: weight(p+"wo.weight", d, ff)}
	}
	buckets, heads := s.RelativeAttentionNumBuckets, s.NumHeads
	encBias := get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", buckets, heads)
	decBias := get("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", buckets, heads)

	type encL struct {
		an []float32
		a  attentionW
		fn []float32
		f  ffnWeights
	}
	type decL struct {
		sn []float32
		sa attentionW
		cn []float32
		ca attentionW
		fn []float32
		f  ffnWeights
	}
	encLs := make([]encL, s.NumLayers)
	for i := range encLs {
		if e := ctx.Err(); e != nil {
			return e
		}
		p := fmt.Sprintf("encoder.block.%d.layer.", i)
		encLs[i] = encL{
			an: get(p+"0.layer_norm.weight", d),
			a:  attn(p + "0.SelfAttention"),
			fn: get(p+"1.layer_norm.weight", d),
			f:  ffnW(p + "1"),
		}
	}
	encFinal := get("encoder.final_layer_norm.weight", d)
	decLs := make([]decL, s.NumDecoderLayers)
	for i := range decLs {
		if e := ctx.Err(); e != nil {
			return e
		}
		p := fmt.Sprintf("decoder.block.%d.layer.", i)
		decLs[i] = decL{
			sn: get(p+"0.layer_norm.weight", d),
			sa: attn(p + "0.SelfAttention"),
			cn: get(p+"1.layer_norm.weight", d),
			ca: attn(p + "1.EncDecAttention"),
			fn: get(p+"2.layer_norm.weight", d),
			f:  ffnW(p + "2"),
		}
	}
	decFinal := get("decoder.final_layer_norm.weight", d)
	if err != nil {
		return err
	}

	// Prepare the weights for the backend.
	m.lmHead = lm.prepare(m)
	m.encBias = transpose(encBias, buckets, heads)
	m.decBias = transpose(decBias, buckets, heads)
	m.enc = make([]encoderLayer, len(encLs))
	for i, l := range encLs {
		m.enc[i] = encoderLayer{attnNorm: l.an, attn: l.a.prepare(m), ffnNorm: l.fn, ffn: l.f.prepare(m)}
	}
	m.encFinal = encFinal
	m.dec = make([]decoderLayer, len(decLs))
	for i, l := range decLs {
		m.dec[i] = decoderLayer{selfNorm: l.sn, self: l.sa.prepare(m), crossNorm: l.cn, cross: l.ca.prepare(m), ffnNorm: l.fn, ffn: l.f.prepare(m)}
	}
	m.decFinal = decFinal
	return nil
}

// lazyWeight is a weight read from the checkpoint but not yet handed to the backend, so that
// nothing is prepared before every tensor has been checked.
type lazyWeight struct {
	data []float32
	r, c int
}

func (w *lazyWeight) prepare(m *Model) mat.Weight { return m.be.Prepare(w.data, w.r, w.c) }

type attentionW struct{ q, k, v, o *lazyWeight }

func (a attentionW) prepare(m *Model) attention {
	return attention{q: a.q.prepare(m), k: a.k.prepare(m), v: a.v.prepare(m), o: a.o.prepare(m)}
}

type ffnWeights struct{ wi, wi1, wo *lazyWeight }

func (f ffnWeights) prepare(m *Model) ffn {
	out := ffn{wi: f.wi.prepare(m), wo: f.wo.prepare(m)}
	if f.wi1 != nil {
		out.wi1 = f.wi1.prepare(m)
	}
	return out
}

// transpose returns the r×c matrix v as c×r.
func transpose(v []float32, r, c int) []float32 {
	t := make([]float32, len(v))
	for i := range r {
		for j := range c {
			t[j*r+i] = v[i*c+j]
		}
	}
	return t
}
