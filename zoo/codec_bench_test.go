package zoo

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// syntheticWeights returns n bytes of weights like a trained checkpoint's: float32 (or
// bfloat16, the upper half of each float32) drawn from N(0, σ²) with σ changing every 1 MiB
// between 0.02 and 1 (projections, embeddings and layer-norm scales differ in scale). Random
// mantissas make weights nearly incompressible; the exponent bytes are what zstd can save.
func syntheticWeights(n int, bf16 bool, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	sigma := 0.05
	width := 4
	if bf16 {
		width = 2
	}
	for i := 0; i+width <= n; i += width {
		if i%(1<<20) == 0 {
			sigma = []float64{0.02, 0.05, 0.1, 0.5, 1}[rng.IntN(5)]
		}
		bits := math.Float32bits(float32(rng.NormFloat64() * sigma))
		if bf16 {
			binary.LittleEndian.PutUint16(b[i:], uint16(bits>>16))
		} else {
			binary.LittleEndian.PutUint32(b[i:], bits)
		}
	}
	return b
}

// sink keeps results alive past the optimiser.
var sink []byte

// BenchmarkCodec measures compression ratio and speed of one 16 MiB chunk of synthetic
// float32 and bfloat16 weights at the zstd levels of klauspost/compress (BENCHMARKS.md):
//
//	go test ./zoo -run '^$' -bench Codec -count 5
func BenchmarkCodec(b *testing.B) {
	const size = 16 << 20
	for _, dtype := range []string{"f32", "bf16"} {
		src := syntheticWeights(size, dtype == "bf16", 1)
		for _, setting := range []struct {
			level  zstd.EncoderLevel
			allLit bool
		}{
			{zstd.SpeedFastest, false}, {zstd.SpeedFastest, true}, {zstd.SpeedDefault, false}, {zstd.SpeedDefault, true},
			{zstd.SpeedBetterCompression, true}, {zstd.SpeedBestCompression, true},
		} {
			e := encoding{level: setting.level, entropyLiterals: setting.allLit}
			c, err := newCodec(e, 1)
			if err != nil {
				b.Fatal(err)
			}
			level := e.String()
			enc := c.encode(nil, src)
			ratio := float64(len(enc)) / float64(len(src))
			b.Run(fmt.Sprintf("%s/%s/encode", dtype, level), func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				buf := make([]byte, 0, size+size/8)
				for b.Loop() {
					buf = c.encode(buf, src)
				}
				sink = buf
				b.ReportMetric(ratio, "ratio")
			})
			b.Run(fmt.Sprintf("%s/%s/decode", dtype, level), func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
				if err != nil {
					b.Fatal(err)
				}
				defer dec.Close()
				buf := make([]byte, 0, size)
				for b.Loop() {
					buf, err = dec.DecodeAll(enc, buf[:0])
					if err != nil {
						b.Fatal(err)
					}
				}
				sink = buf
				b.ReportMetric(ratio, "ratio")
			})
		}
	}
}
