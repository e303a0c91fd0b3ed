package infer

import (
	"math"

	"github.com/t5zoo/t5zoo/backend/cpu"
)

// activation returns the FFN activation HF's ACT2FN maps name to ("gelu_new" is the tanh
// approximation, "gelu" the exact erf form). gelu_new and relu also have vector kernels
// (kernels.Set.GELUTanh, the ReLU epilogue of the products), which the model uses instead.
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

// rowsPerItem is how many rows of an element-wise pass one parallel work item takes, for
// rows of d values: about 16K values, a few µs.
func rowsPerItem(d int) int { return max(1, 16384/d) }

// parallelRows runs fn over [0, rows) in chunks on the model's workers (inline when small).
func (m *Model) parallelRows(rows, d int, fn func(lo, hi int)) {
	per := rowsPerItem(d)
	if rows <= per {
		fn(0, rows)
		return
	}
	items := (rows + per - 1) / per
	m.pool.For(items, func(_, i int) { fn(i*per, min(rows, (i+1)*per)) })
}

// rmsNorm sets dst[i] = w · x[i] · rsqrt(mean(x[i]²) + eps) for each d-wide row of x, as HF's
// T5LayerNorm (no mean subtraction, no bias); the mean of squares is accumulated in float64.
func (m *Model) rmsNorm(dst, x, w []float32) {
	rows, per := len(x)/m.dModel, rowsPerItem(m.dModel)
	if rows <= per {
		m.normRows(dst, x, w, 0, rows)
		return
	}
	cpu.DoRecycled(m.pool, &m.normJobs, (rows+per-1)/per, normJob{m: m, dst: dst, x: x, w: w, per: per, rows: rows})
}

// normJob is one rmsNorm pass cut into blocks of per rows (cpu.Job).
type normJob struct {
	m         *Model
	dst, x, w []float32
	per, rows int
}

// Item normalises block i.
func (j *normJob) Item(_, i int) {
	j.m.normRows(j.dst, j.x, j.w, i*j.per, min(j.rows, (i+1)*j.per))
}

// normRows is rmsNorm of rows [lo, hi).
func (m *Model) normRows(dst, x, w []float32, lo, hi int) {
	d := m.dModel
	eps := float32(m.shape.LayerNormEpsilon)
	for r := lo; r < hi; r++ {
		xr := x[r*d : (r+1)*d]
		variance := float32(m.ks.SumSquares(xr) / float64(d))
		inv := float32(1 / math.Sqrt(float64(variance+eps)))
		m.ks.RMSScale(dst[r*d:(r+1)*d], xr, w, inv)
	}
}

// logSoftmaxAt returns log_softmax(logits)[id], from float32 logits with the normaliser in
// float64.
func (m *Model) logSoftmaxAt(logits []float32, id int) float64 {
	return float64(logits[id]) - m.logSumExp(logits)
}

// logSumExp is log Σ exp(logits): the exponentials in float32 (kernels.Exp), their sum in
// float64.
func (m *Model) logSumExp(logits []float32) float64 {
	mx := m.ks.Max(logits)
	if math.IsInf(float64(mx), -1) {
		return math.Inf(-1)
	}
	return float64(mx) + math.Log(m.ks.ExpSum(nil, logits, mx))
}

// argmax returns the index of the first largest value (scalar; tests use it as the
// reference of Model.Argmax).
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// Argmax returns the index of the first largest value of a logits row, the token greedy
// decoding picks, with the model's vector kernels; for callers that drive Step themselves.
func (m *Model) Argmax(logits []float32) int { return m.ks.Argmax(logits) }
