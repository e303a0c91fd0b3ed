package catalog

import "fmt"

// Tensor is one parameter tensor of a T5ForConditionalGeneration, under its Hugging Face
// state-dict name, with its shape in HF's layout (nn.Linear weights are [out, in]).
type Tensor struct {
	Name  string
	Shape []int
	// Matrix marks the weights that multiply activations (projections, FFN, embedding/LM
	// head): those that int8 quantization turns into int8 rows with one float32 scale per
	// output row (Shape[0]). Layer-norm scales and the relative-attention bias stay float32.
	Matrix bool
}

// Elements is the product of the tensor's dimensions.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// Tensors lists every distinct parameter of the model in HF's state-dict order. A tied model
// lists shared.weight once; HF's encoder.embed_tokens.weight and decoder.embed_tokens.weight
// are aliases of it and lm_head.weight exists only when untied. It is the single description
// of the architecture from which loaders, converters and the parameter count all work.
func (s Shape) Tensors() []Tensor {
	dm, inner, ff := s.DModel, s.InnerDim(), s.DFF
	var ts []Tensor
	mat := func(name string, out, in int) {
		ts = append(ts, Tensor{Name: name, Shape: []int{out, in}, Matrix: true})
	}
	vec := func(name string, n int) { ts = append(ts, Tensor{Name: name, Shape: []int{n}}) }
	attn := func(prefix string, bias bool) {
		mat(prefix+".q.weight", inner, dm)
		mat(prefix+".k.weight", inner, dm)
		mat(prefix+".v.weight", inner, dm)
		mat(prefix+".o.weight", dm, inner)
		if bias {
			ts = append(ts, Tensor{Name: prefix + ".relative_attention_bias.weight", Shape: []int{s.RelativeAttentionNumBuckets, s.NumHeads}})
		}
	}
	ffn := func(prefix string) {
		if s.Gated() {
			mat(prefix+".wi_0.weight", ff, dm)
			mat(prefix+".wi_1.weight", ff, dm)
		} else {
			mat(prefix+".wi.weight", ff, dm)
		}
		mat(prefix+".wo.weight", dm, ff)
	}

	mat("shared.weight", s.VocabSize, dm)
	for i := range s.NumLayers {
		p := fmt.Sprintf("encoder.block.%d.layer.", i)
		attn(p+"0.SelfAttention", i == 0)
		vec(p+"0.layer_norm.weight", dm)
		ffn(p + "1.DenseReluDense")
		vec(p+"1.layer_norm.weight", dm)
	}
	vec("encoder.final_layer_norm.weight", dm)
	for i := range s.NumDecoderLayers {
		p := fmt.Sprintf("decoder.block.%d.layer.", i)
		attn(p+"0.SelfAttention", i == 0)
		vec(p+"0.layer_norm.weight", dm)
		attn(p+"1.EncDecAttention", false)
		vec(p+"1.layer_norm.weight", dm)
		ffn(p + "2.DenseReluDense")
		vec(p+"2.layer_norm.weight", dm)
	}
	vec("decoder.final_layer_norm.weight", dm)
	if !s.TieWordEmbeddings {
		mat("lm_head.weight", s.VocabSize, dm)
	}
	return ts
}

// Aliases are the HF state-dict names that a checkpoint may store, or omit, as copies of
// shared.weight: the two stacks' embed_tokens always, and lm_head.weight when tied.
func (s Shape) Aliases() []string {
	a := []string{"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
	if s.TieWordEmbeddings {
		a = append(a, "lm_head.weight")
	}
	return a
}
