package infer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
)

// benchShape is t5-efficient-tiny-kv32, the shape of the engine's comparison benchmarks
// (BENCHMARKS.md): d_model 256, d_ff 1024, 4 heads of 32, 4+4 layers, 32,128-row vocabulary.
func benchShape() catalog.Shape {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers = 256, 1024, 32, 4, 4, 4
	return s
}

// benchModel builds benchShape with random weights in dt on 2 threads.
func benchModel(b testing.TB, dt catalog.DType) *Model {
	b.Helper()
	s := benchShape()
	fill := func(name string, row0 int, dst []float32) error {
		r := rand.New(rand.NewPCG(uint64(len(name)), uint64(row0)))
		for i := range dst {
			dst[i] = float32(r.NormFloat64() / math.Sqrt(float64(s.DModel)))
		}
		return nil
	}
	m, err := New(b.Context(), s, fill, testOptions(b, LoadOptions{DType: dt, Threads: benchThreads}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func benchInputs(batch, n, vocab int) [][]int {
	in := make([][]int, batch)
	for i := range in {
		in[i] = make([]int, n)
		for j := range in[i] {
			in[i][j] = 3 + (i*31+j*7)%(vocab-3)
		}
	}
	return in
}

var sinkLogits []float32

// BenchmarkEncoder is the encoder stack (Encode) on batch × seq tokens.
func BenchmarkEncoder(b *testing.B) {
	for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
		m := benchModel(b, dt)
		for _, c := range []struct{ batch, seq int }{{1, 128}, {8, 128}} {
			b.Run(fmt.Sprintf("%s/batch%d_seq%d", dt, c.batch, c.seq), func(b *testing.B) {
				inputs := benchInputs(c.batch, c.seq, m.shape.VocabSize)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := m.Encode(b.Context(), inputs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(c.batch*c.seq)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

// BenchmarkDecodeStep is decoder steps, LM head and greedy choice included, for a batch of
// sequences that attend to a 64-token input: each iteration decodes 32 tokens from fresh
// sequences (no timer stops, which would stop the world under the spinning workers), and
// ms/step is the time per step.
func BenchmarkDecodeStep(b *testing.B) {
	const steps = 32
	for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
		m := benchModel(b, dt)
		for _, batch := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/batch%d", dt, batch), func(b *testing.B) {
				encs, err := m.RunEncoder(b.Context(), benchInputs(batch, 64, m.shape.VocabSize))
				if err != nil {
					b.Fatal(err)
				}
				seqs := make([]*Sequence, batch)
				toks := make([]int, batch)
				V := m.shape.VocabSize
				var logits []float32
				b.ReportAllocs()
				for b.Loop() {
					for i, e := range encs {
						seqs[i], toks[i] = e.NewSequence(), 0
					}
					for range steps {
						if logits, err = m.Step(b.Context(), seqs, toks, logits); err != nil {
							b.Fatal(err)
						}
						for i := range toks {
							toks[i] = m.Argmax(logits[i*V : (i+1)*V])
						}
					}
				}
				sinkLogits = logits
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*steps)/1e3, "ms/step")
			})
		}
	}
}

// BenchmarkRunEncoder is RunEncoder (the encoder and every decoder layer's cross-attention
// keys and values) on one 64-token input, the start of each generation request; with
// -benchmem its B/op is the garbage a request's start leaves.
func BenchmarkRunEncoder(b *testing.B) {
	m := benchModel(b, catalog.Int8)
	in := benchInputs(1, 64, m.shape.VocabSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.RunEncoder(b.Context(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// benchThreads is the worker count of the engine benchmarks (the comparison machine has 2).
const benchThreads = 2

// TestStepAllocs guards the decoder step's garbage: the products, attention passes and norms
// run on recycled jobs, so that a warm step at batch 1 allocates only the new keys and values
// and a few per-call headers (the step's garbage is what a long-running server's collector
// must keep finding).
func TestStepAllocs(t *testing.T) {
	skipOnPlain(t) // the allocation budget is the CPU backend's
	if testing.Short() {
		t.Skip("builds a 14M-parameter model")
	}
	if raceEnabled {
		t.Skip("allocation counts under the race detector are not the program's")
	}
	m := benchModel(t, catalog.F32)
	encs, err := m.RunEncoder(t.Context(), benchInputs(1, 64, m.shape.VocabSize))
	if err != nil {
		t.Fatal(err)
	}
	seq, tok := []*Sequence{encs[0].NewSequence()}, []int{0}
	logits, err := m.Step(t.Context(), seq, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if logits, err = m.Step(t.Context(), seq, tok, logits); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocations per step", allocs)
	// 5 today (about 100 before the jobs were recycled): the K/V slab, the two attention
	// group lists, the hidden rows and the undo list; the key/value slices grow now and then.
	if allocs > 10 {
		t.Errorf("a decoder step allocates %.1f times, want at most 10", allocs)
	}
}
