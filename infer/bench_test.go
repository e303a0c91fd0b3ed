package infer

import (
	"fmt"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
)

// benchShape is t5-efficient-tiny's shape (d_model 256, d_ff 1024, 4 heads of 64, 4+4
// layers, the 32,128-row vocabulary) with random weights.
func benchShape() catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers = 256, 1024, 64, 4, 4, 4
	return s
}

func benchModel(b *testing.B) *Model {
	b.Helper()
	spec := randomSpec{shape: benchShape()}
	return loadRandom(b, spec, LoadOptions{})
}

var sinkLogits []float32

// BenchmarkEncoder is one encoder forward pass (RunEncoder: the stack and every decoder
// layer's cross-attention keys and values) of a batch of inputs.
func BenchmarkEncoder(b *testing.B) {
	m := benchModel(b)
	for _, c := range []struct{ batch, seq int }{{1, 16}, {1, 128}, {1, 512}, {8, 64}} {
		b.Run(fmt.Sprintf("batch%d_seq%d", c.batch, c.seq), func(b *testing.B) {
			inputs := randomInputs(1, c.batch, 1, m.shape.VocabSize, 1)
			for i := range inputs {
				inputs[i] = make([]int, c.seq)
				for j := range inputs[i] {
					inputs[i][j] = 3 + (i*31+j*7)%30000
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.RunEncoder(b.Context(), inputs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.batch*c.seq)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkDecodeStep is one decoder step, LM head included, for a batch of sequences
// (beams or requests) that have 16 tokens cached and attend to a 64-token input.
func BenchmarkDecodeStep(b *testing.B) {
	m := benchModel(b)
	for _, batch := range []int{1, 4, 32} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			in := make([]int, 64)
			for j := range in {
				in[j] = 3 + j*13
			}
			encs, err := m.RunEncoder(b.Context(), [][]int{in})
			if err != nil {
				b.Fatal(err)
			}
			base := encs[0].NewSequence()
			prefix := make([]int, 16)
			for j := range prefix {
				prefix[j] = j * 5
			}
			if _, err := m.Feed(b.Context(), []*Sequence{base}, [][]int{prefix}, nil); err != nil {
				b.Fatal(err)
			}
			seqs := make([]*Sequence, batch)
			toks := make([]int, batch)
			var logits []float32
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for i := range seqs {
					seqs[i] = base.Fork()
					toks[i] = 100 + i
				}
				b.StartTimer()
				logits, err = m.Step(b.Context(), seqs, toks, logits)
				if err != nil {
					b.Fatal(err)
				}
			}
			sinkLogits = logits
			b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
