package infer

import (
	"math"

	"github.com/t5zoo/t5zoo/infer/internal/mat"
)

// activation returns the FFN activation HF's ACT2FN maps name to ("gelu_new" is the tanh
// approximation, "gelu" the exact erf form).
func activation(name string) func(float32) float32 {
	switch name {
	case "relu":
		return func(x float32) float32 { return max(x, 0) }
	case "gelu_new":
		// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), HF NewGELUActivation.
		c := math.Sqrt(2 / math.Pi)
		return func(x float32) float32 {
			v := float64(x)
			return float32(0.5 * v * (1 + math.Tanh(c*(v+0.044715*v*v*v))))
		}
	case "gelu":
		return func(x float32) float32 {
			v := float64(x)
			return float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2)))
		}
	case "silu":
		return func(x float32) float32 {
			v := float64(x)
			return float32(v / (1 + math.Exp(-v)))
		}
	}
	panic("infer: unknown activation " + name) // catalog.Shape.Activation allows only the above
}

// rmsNorm sets dst[i] = w · x[i] · rsqrt(mean(x[i]²) + eps) for each d-wide row of x, as HF's
// T5LayerNorm (no mean subtraction, no bias); the mean of squares is accumulated in float64.
func (m *Model) rmsNorm(dst, x, w []float32) {
	d := m.dModel
	eps := float32(m.shape.LayerNormEpsilon)
	rows := len(x) / d
	mat.ForRange(m.workers, rows, max(1, 16384/d), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, dr := x[r*d:(r+1)*d], dst[r*d:(r+1)*d]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			variance := float32(ss / float64(d))
			inv := float32(1 / math.Sqrt(float64(variance+eps)))
			w := w[:d]
			for i, v := range xr {
				dr[i] = w[i] * float32(v*inv)
			}
		}
	})
}

// addInPlace sets x += y.
func addInPlace(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
	}
}

// logSoftmaxAt returns log_softmax(logits)[id] computed in float64 from float32 logits, as
// the reference log-likelihoods are.
func logSoftmaxAt(logits []float32, id int) float64 {
	return float64(logits[id]) - logSumExp(logits)
}

// logSumExp is log Σ exp(logits), in float64.
func logSumExp(logits []float32) float64 {
	mx := float32(math.Inf(-1))
	for _, v := range logits {
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		return math.Inf(-1)
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - float64(mx))
	}
	return float64(mx) + math.Log(s)
}

// argmax returns the index of the first largest value.
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
