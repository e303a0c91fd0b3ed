package data

import "math/bits"

// rng is SplitMix64 (Steele, Lea and Flood, 2014): small, fast, and written out here so
// that every shuffle is the same on every Go release.
type rng struct{ s uint64 }

// Purposes of the streams derived from one seed: each shuffle draws from its own, so that
// changing one (more examples, another epoch) never shifts another.
const (
	streamHoldout uint64 = iota + 1
	streamExamples
	streamBatches
)

// newRNG returns the stream of seed for a purpose and an index (the epoch).
func newRNG(seed, purpose, index uint64) *rng {
	r := &rng{s: seed}
	r.s = r.next() ^ purpose*0x9e3779b97f4a7c15
	r.s = r.next() ^ index*0xbf58476d1ce4e5b9
	return r
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a uniform int in [0, n), n > 0, by Lemire's multiply-and-reject.
func (r *rng) intn(n int) int {
	bound := uint64(n)
	hi, lo := bits.Mul64(r.next(), bound)
	if lo < bound {
		thresh := -bound % bound
		for lo < thresh {
			hi, lo = bits.Mul64(r.next(), bound)
		}
	}
	return int(hi)
}

// shuffle permutes xs uniformly (Fisher–Yates).
func shuffle[T any](r *rng, xs []T) {
	for i := len(xs) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		xs[i], xs[j] = xs[j], xs[i]
	}
}
