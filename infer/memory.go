package infer

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"github.com/t5zoo/t5zoo/backend/cpu"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/t5"
)

// ErrMemory is wrapped by the errors of a load or a request that would need more memory than
// it may have: a model larger than LoadOptions.MemoryLimit (or than the system can give), a
// shape whose sizes overflow, or an allocation the operating system refused.
var ErrMemory = errors.New("infer: not enough memory")

// The memory model. Everything a load or a request allocates is priced here, before it is
// allocated, so that a caller holding a budget (the server's --memory-budget) can refuse or
// queue work instead of letting the process run out of memory: a Go program that does is
// killed, not returned an error. The prices are upper bounds of what the code below
// allocates (TestMemoryPrices measures them), in bytes.

// sliceHeader is the size of a slice header (the search state's per-position slices).
const sliceHeader = int64(unsafe.Sizeof([]float32(nil)))

// sizes multiplies and adds int64s, remembering an overflow instead of wrapping: shapes come
// from a config.json that anyone can write.
type sizes struct{ overflow bool }

func (z *sizes) mul(xs ...int64) int64 {
	p := int64(1)
	for _, x := range xs {
		if x < 0 {
			z.overflow = true
			return 0
		}
		hi, lo := bits.Mul64(uint64(p), uint64(x))
		if hi != 0 || lo > math.MaxInt64 {
			z.overflow = true
			return 0
		}
		p = int64(lo)
	}
	return p
}

func (z *sizes) add(xs ...int64) int64 {
	s := int64(0)
	for _, x := range xs {
		if x < 0 || s > math.MaxInt64-x {
			z.overflow = true
			return 0
		}
		s += x
	}
	return s
}

// packed prices an n×k weight packed in dt, overflow-checked.
func (z *sizes) packed(n, k int, dt cpu.DType) int64 {
	// PackedBytes is exact but unchecked; bound its factors first.
	panels := z.add(int64(n), 31) / 32
	z.mul(panels, 32, int64(k), 4)
	if z.overflow {
		return 0
	}
	return cpu.PackedBytes(n, k, dt)
}

// matDType maps a load dtype to the kernels' type; "" (the checkpoint's own) is priced as
// float32, the widest it can be.
func matDType(dt catalog.DType) (cpu.DType, error) {
	switch dt {
	case catalog.F32, "":
		return cpu.F32, nil
	case catalog.BF16:
		return cpu.BF16, nil
	case catalog.Int8:
		return cpu.Int8, nil
	}
	return 0, fmt.Errorf("%w: weights in %q are not supported by the kernels (use f32, bf16 or int8)", ErrInvalidInput, dt)
}

// LoadBytes is the memory Load (or New) takes for a model of shape with opts: the packed
// weight matrices in the load type (padding included), the float32 vectors and the position
// bias tables. An opts.DType of "" is priced as float32. A shape whose sizes overflow is an
// error wrapping ErrMemory.
func LoadBytes(shape catalog.Shape, opts LoadOptions) (int64, error) {
	if err := shape.Validate(); err != nil {
		return 0, err
	}
	dt, err := matDType(opts.DType)
	if err != nil {
		return 0, err
	}
	_, gated, err := shape.Activation()
	if err != nil {
		return 0, err
	}
	maxTokens := opts.MaxTokens
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	var z sizes
	d, inner, ff, V := shape.DModel, shape.InnerDim(), shape.DFF, shape.VocabSize
	ffn := z.add(z.packed(ff, d, dt), z.packed(d, ff, dt))
	if gated {
		ffn = z.add(ffn, z.packed(ff, d, dt))
	}
	enc := z.add(z.packed(3*inner, d, dt), z.packed(d, inner, dt), ffn, z.mul(2, int64(d), 4))
	dec := z.add(z.packed(3*inner, d, dt), z.packed(d, inner, dt), z.packed(inner, d, dt), z.packed(d, inner, dt),
		z.packed(2*inner, d, dt), ffn, z.mul(3, int64(d), 4))
	head := z.packed(V, d, dt)
	if !shape.TieWordEmbeddings {
		head = z.mul(head, 2)
	}
	span := z.add(z.mul(2, int64(t5.RelSpan(shape, maxTokens))), 1)
	bias := z.add(
		z.mul(2, int64(shape.RelativeAttentionNumBuckets), int64(shape.NumHeads), 4), // as stored
		z.mul(2, int64(shape.NumHeads), span, 4),                                     // per relative position
		z.mul(2, span, 4),                                                            // buckets
	)
	total := z.add(head, z.mul(int64(shape.NumLayers), enc), z.mul(int64(shape.NumDecoderLayers), dec),
		z.mul(2, int64(d), 4), bias)
	if z.overflow {
		return 0, fmt.Errorf("%w: the sizes of this shape overflow (d_model %d, d_ff %d, %d heads × d_kv %d, vocab %d)",
			ErrMemory, d, ff, shape.NumHeads, shape.DKV, V)
	}
	return total, nil
}

// checkLoadMemory refuses a load that needs more than opts.MemoryLimit (or, when that is 0,
// than the system can give now).
func checkLoadMemory(shape catalog.Shape, opts LoadOptions) error {
	need, err := LoadBytes(shape, opts)
	if err != nil {
		return err
	}
	limit, what := opts.MemoryLimit, "the memory limit"
	if limit == 0 {
		avail, ok := SystemMemory()
		if !ok {
			return nil
		}
		limit, what = avail, "the memory this system can give now"
	}
	if limit > 0 && need > limit {
		return fmt.Errorf("%w: the model needs %s for its weights in %s, more than %s (%s)",
			ErrMemory, formatBytes(need), dtypeName(opts.DType), what, formatBytes(limit))
	}
	return nil
}

func dtypeName(dt catalog.DType) string {
	if dt == "" {
		return "their stored type"
	}
	return string(dt)
}

// formatBytes writes n in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// passBytes is the scratch of one forward pass over t rows whose attention sees at most keys
// keys (the pass's scratch, the encoder's q/k/v, the per-worker attention scratch and the
// pass's output).
func (m *Model) passBytes(t, keys int) int64 {
	d, inner, ff := int64(m.dModel), int64(m.inner), int64(m.shape.DFF)
	tt := int64(t)
	f := tt * (2*d + 2*inner + 3*inner + ff + d) // x, h, att, q, qkv, ffA, the output
	if m.gated {
		f += tt * ff
	}
	attn := int64(cpu.AttnScratchFloats(keys, m.dkv))
	return 4*f + 4*attn*int64(m.be.Threads())
}

// encBytes is what one encoded input of n tokens holds while it is decoded: its hidden
// states, its ids and the cross-attention keys and values of every decoder layer, packed.
func (m *Model) encBytes(n int) int64 {
	per := int64(cpu.PackedLen(n, m.dkv)+cpu.PackedLen(m.dkv, n))*4 + 2*int64(unsafe.Sizeof(cpu.Packed{}))
	return int64(n)*int64(m.dModel)*4 + 8*int64(n) + int64(int(m.nDec))*int64(m.heads)*per
}

// seqBytes bounds what a decoder sequence fed its p positions at once holds (a target being
// scored): the CPU backend keeps a first feed as rows of one slab, every layer's keys and
// values (2·inner float32 a position); and its ids.
func (m *Model) seqBytes(p int) int64 {
	pp := int64(p)
	return int64(m.nDec)*pp*2*int64(m.inner)*4 + 2*8*pp
}

// genSeqBytes bounds what a generated sequence of up to p positions, fed one at a time,
// holds: its first position as rows, then every layer's keys and values packed as the CPU
// backend grows them (room doubling from 32 positions, values padded to 32 of d_kv, priced
// with the rounding of Go's size classes: at most 1/8 of a small allocation, large ones whole
// pages).
func (m *Model) genSeqBytes(p int) int64 {
	kv := cpu.KVBytes(m.heads, m.dkv, cpu.KVCap(p))
	perLayer := kv + kv/8 + 2<<10 + 256
	return int64(m.nDec)*perLayer + m.seqBytes(1) + 2*8*int64(p)
}

// GenerateBytes is the most memory one input of inputLen tokens holds while it decodes with
// opts: its encoder output (GenerateBytes does not count the encoder pass's scratch, which a
// Batcher's model reserve covers), the caches of its beams or samples at max_new_tokens, and
// the search's own state.
func (m *Model) GenerateBytes(inputLen int, opts GenerateOptions) (int64, error) {
	c, err := m.genConfig(opts)
	if err != nil {
		return 0, err
	}
	return m.genBytes(inputLen, c), nil
}

func (m *Model) genBytes(inputLen int, c genConfig) int64 {
	width := int64(max(c.beams, c.numReturn))
	p := c.maxNew + 1
	state := int64(p) * 2 * (8 + 8) // ids and log-probabilities, grown by doubling
	if c.topLogprobs > 0 {
		state += int64(p) * 2 * (sliceHeader + int64(c.topLogprobs)*int64(unsafe.Sizeof(TokenLogprob{})))
	}
	if c.beams > 1 {
		state += 2 * int64(c.beams) * int64(unsafe.Sizeof(candidate{})) * 2
	}
	return perInput + m.encBytes(inputLen) + width*(m.genSeqBytes(p)+state)
}

// perInput covers the fixed structures of a decoding input (its search, sequences, encoder
// output and their headers); perCall those of an Encode or Score call (its segment and group
// lists, the workers' job records).
const (
	perInput = 4 << 10
	perCall  = 64 << 10
)

// StepBytes is the scratch of one decoder step over rows sequences whose longest has keys
// positions: the pass's scratch, the logits and the new positions' keys and values.
func (m *Model) StepBytes(rows, keys int) int64 {
	return m.passBytes(rows, keys) + int64(rows)*int64(m.shape.VocabSize)*4 + int64(rows)*int64(int(m.nDec))*2*int64(m.inner)*4
}

// EncodeBytes is the most memory Encode takes for inputs: every input's hidden states and
// mean (the result), and the scratch of the largest internal pass.
func (m *Model) EncodeBytes(inputs [][]int) int64 {
	sizes := make([]int, len(inputs))
	var out int64
	for i, in := range inputs {
		sizes[i] = len(in)
		out += int64(len(in)+1)*int64(m.dModel)*4 + int64(m.dModel)*8 // hidden, mean, sums
	}
	var peak int64
	for _, c := range chunks(sizes, batchTokens) {
		t, longest := 0, 0
		for _, n := range sizes[c[0]:c[1]] {
			t += n
			longest = max(longest, n)
		}
		peak = max(peak, m.passBytes(t, longest))
	}
	return perCall + out + peak
}

// ScoreBytes is the most memory Score takes for pairs: per internal batch, the encoder
// outputs, the decoder caches of the targets, both passes' scratch and a block of logits; and
// the results.
func (m *Model) ScoreBytes(pairs []ScorePair) int64 {
	sizes := make([]int, len(pairs))
	var out int64
	for i, p := range pairs {
		sizes[i] = len(p.Input) + len(p.Target)
		out += int64(len(p.Target)) * 8
	}
	var peak int64
	for _, c := range chunks(sizes, batchTokens) {
		var held int64
		tin, ttgt, longIn, longTgt := 0, 0, 0, 0
		for _, p := range pairs[c[0]:c[1]] {
			held += m.encBytes(len(p.Input)) + m.seqBytes(len(p.Target))
			tin, ttgt = tin+len(p.Input), ttgt+len(p.Target)
			longIn, longTgt = max(longIn, len(p.Input)), max(longTgt, len(p.Target))
		}
		cross := int64(tin) * 2 * int64(m.inner) * 4
		pass := max(m.passBytes(tin, longIn)+cross, m.passBytes(ttgt, max(longIn, longTgt)))
		logits := int64(lmBlockRows) * int64(m.shape.VocabSize) * 4
		peak = max(peak, held+pass+logits)
	}
	return perCall + out + peak
}

// ScoreChoicesBytes is the working memory ScoreChoices(sets) needs at its peak: per chunk,
// each input's encoder output and each target's sequence, the larger of the encoder and
// decoder passes, and a block of logits; plus the results.
func (m *Model) ScoreChoicesBytes(sets []ChoiceSet) int64 {
	sizes := make([]int, len(sets))
	var out int64
	for i, cs := range sets {
		sizes[i] = len(cs.Input)
		for _, tg := range cs.Targets {
			sizes[i] += len(tg)
			out += int64(len(tg))*8 + 64
		}
	}
	var peak int64
	for _, c := range chunks(sizes, batchTokens) {
		var held int64
		tin, ttgt, longIn, longTgt := 0, 0, 0, 0
		for _, cs := range sets[c[0]:c[1]] {
			held += m.encBytes(len(cs.Input))
			tin, longIn = tin+len(cs.Input), max(longIn, len(cs.Input))
			for _, tg := range cs.Targets {
				held += m.seqBytes(len(tg))
				ttgt, longTgt = ttgt+len(tg), max(longTgt, len(tg))
			}
		}
		cross := int64(tin) * 2 * int64(m.inner) * 4
		pass := max(m.passBytes(tin, longIn)+cross, m.passBytes(ttgt, max(longIn, longTgt)))
		logits := int64(lmBlockRows) * int64(m.shape.VocabSize) * 4
		peak = max(peak, held+pass+logits)
	}
	return perCall + out + peak
}

// RetainedBytes bounds the scratch the model keeps between calls for reuse (the free list of
// its passes' scratch), which is part of a resident model's memory beside its weights.
func (m *Model) RetainedBytes() int64 {
	d, inner, ff := int64(m.dModel), int64(m.inner), int64(m.shape.DFF)
	keys := m.maxTokens
	attn := int64(cpu.AttnScratchFloats(keys, m.dkv))
	return t5.MaxFreeWork*4*int64(t5.RetainFloats(int(d), int(inner), int(ff))) + cpu.MaxFreeScratch*4*attn*int64(m.be.Threads())
}

// BatcherBytes is the working memory a Batcher with o needs beside what its inputs hold
// (GenerateBytes): a decoder step over the most rows it steps, at MaxTokens positions, and
// the encoder pass between two steps with its cross-attention slab.
func (m *Model) BatcherBytes(o BatcherOptions) int64 {
	rows := max(o.MaxRows, 1)
	if o.MaxRows <= 0 {
		rows = DefaultMaxRows
	}
	tokens := o.EncodeTokens
	if tokens <= 0 {
		tokens = DefaultEncodeTokens
	}
	tokens = max(tokens, m.maxTokens) // one input is always admitted, however long
	enc := m.passBytes(tokens, m.maxTokens) + int64(tokens)*2*int64(m.inner)*4
	return m.StepBytes(rows+maxBeamsOrSamples, m.maxTokens) + enc
}
