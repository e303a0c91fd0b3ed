package backendtest

// The float64 reference of every operation, from the same float32 inputs the backend gets,
// and the tolerance each result is held to. Every tolerance is a bound on the float32
// rounding a correct backend may do, derived below with u = 2^-24 (float32's unit
// roundoff, half an ulp): a backend that computes what the contract says is always within
// it, whatever its summation order, blocking or fused multiply-adds; one that computes
// something else (a dropped term, a wrong mask, a missing epilogue) is far outside it.

import (
	"math"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/convert"
)

// u is float32's unit roundoff: |fl(x) - x| ≤ u·|x| for every correctly rounded operation.
const u = 0x1p-24

// expUlps bounds the relative error of a float32 exponential in units of u (8 u = 4 ulps;
// the CPU's Cephes polynomial is within 2 ulps, plain's float64 exp rounded within half).
const expUlps = 8

// roundBF16 rounds f to the nearest bfloat16, ties to even, and widens it back (exactly);
// NaN stays a quiet NaN. The logic of backend/cpu/kernels.ToBF16, copied so that the suite
// depends on no backend.
func roundBF16(f float32) float32 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return math.Float32frombits((b | 0x400000) &^ 0xffff)
	}
	b += 0x7fff + (b>>16)&1
	return math.Float32frombits(b &^ 0xffff)
}

// weightRef is a weight as a backend must see it.
type weightRef struct {
	rows, cols int
	// w is the value each element is multiplied by: the source value for f32, rounded to
	// bfloat16 for bf16, q·scale (exact in float64) of its int8 row for int8.
	w []float64
	// row is what Embed must return for each element: w as float32 (float32(q)·scale, one
	// rounding, for int8).
	row []float32
	// int8 is true for int8 weights, whose products quantize the activations.
	int8 bool
}

// refWeight is the weight prepared from m in type dt, quantized per row with
// convert.QuantizeInt8 for int8 (what Prepare does with a Source that is not quantized).
func refWeight(m mat, dt backend.DType) weightRef {
	r := weightRef{rows: m.rows, cols: m.cols, w: make([]float64, len(m.v)), row: make([]float32, len(m.v))}
	switch dt {
	case backend.F32:
		for i, x := range m.v {
			r.w[i], r.row[i] = float64(x), x
		}
	case backend.BF16:
		for i, x := range m.v {
			b := roundBF16(x)
			r.w[i], r.row[i] = float64(b), b
		}
	case backend.Int8:
		q, s := convert.QuantizeInt8(m.v, m.rows, m.cols)
		return refQuantized(m.rows, m.cols, q, s)
	default:
		panic("backendtest: unknown dtype " + dt.String())
	}
	return r
}

// refQuantized is the int8 weight of rows q with per-row scales s, used unchanged.
func refQuantized(rows, cols int, q []int8, s []float32) weightRef {
	r := weightRef{rows: rows, cols: cols, w: make([]float64, rows*cols), row: make([]float32, rows*cols), int8: true}
	for i := range rows {
		for j := range cols {
			k := i*cols + j
			r.w[k] = float64(q[k]) * float64(s[i])
			r.row[k] = float32(q[k]) * s[i]
		}
	}
	return r
}

// actQuantErr bounds |a - a_q| for the elements of an activation row that an int8 product
// quantizes on the fly: the backend rounds a/step to the nearest integer with step =
// absmax(row)/127, so |a - a_q| ≤ step/2, plus the float32 rounding of step and of 1/step
// (≤ 127·3u steps, below 2^-10·step). It is 0 for a row on its own grid (every element an
// integer multiple of a power of two 2^e, the absmax 127·2^e): there step and 1/step are
// exact powers of two and every a/step an integer, so quantization loses nothing, and the
// int8 product is as exact as the float ones; the suite feeds such rows to catch off-by-one
// errors that the step/2 bound of an arbitrary row is too wide to see.
func actQuantErr(row []float32) float64 {
	var amax float64
	for _, x := range row {
		amax = max(amax, math.Abs(float64(x)))
	}
	if amax == 0 {
		return 0
	}
	step := amax / 127
	if frac, _ := math.Frexp(step); frac == 0.5 {
		exact := true
		for _, x := range row {
			if v := float64(x) / step; v != math.Trunc(v) {
				exact = false
				break
			}
		}
		if exact {
			return 0
		}
	}
	return (0.5 + 0x1p-10) * step
}

// refLinear is ep(d0, x·wᵀ) with its tolerance.
//
// Float weights: the dot product of K float32 products summed in any order is within
// γ_K·Σ|x·w| of the exact one, γ_K = K·u/(1-K·u) ≤ (K+1)·u for every K here; the Add
// epilogue rounds once more, u·|d0 + x·w| ≤ u·(|d0| + Σ|x·w|); ReLU is 1-Lipschitz and adds
// nothing. So tol = (K+2)·u·Σ|x·w| + u·|d0|.
//
// Int8 weights: the reference multiplies the dequantized weights w_q, so only the
// activations' quantization and the float rounding remain: |Σ(a - a_q)·w_q| ≤ e·Σ|w_q| with
// e = actQuantErr(row), and the int32 dot product is exact but its scaling (and a backend
// that sums in float32 instead) adds at most (K+2)·u·Σ|a_q·w_q| ≤ (K+2)·u·Σ(|a|+e)·|w_q|. So
// tol = e·Σ|w_q| + (K+2)·u·Σ(|a|+e)·|w_q| + u·|d0|.
func refLinear(x mat, w weightRef, d0 mat, ep backend.Epilogue) (want, tol []float64) {
	n, k := w.rows, w.cols
	want, tol = make([]float64, x.rows*n), make([]float64, x.rows*n)
	for i := range x.rows {
		a := x.row(i)
		e := 0.0
		if w.int8 {
			e = actQuantErr(a)
		}
		for j := range n {
			wr := w.w[j*k : (j+1)*k]
			var dot, abs, wabs float64
			for kk, av := range a {
				dot += float64(av) * wr[kk]
				abs += (math.Abs(float64(av)) + e) * math.Abs(wr[kk])
				wabs += math.Abs(wr[kk])
			}
			t := float64(k+2)*u*abs + e*wabs
			switch ep {
			case backend.Store:
			case backend.Add:
				d := float64(d0.v[i*n+j])
				dot += d
				t += u * math.Abs(d)
			case backend.ReLU:
				dot = max(dot, 0)
			default:
				panic("backendtest: unknown epilogue")
			}
			want[i*n+j], tol[i*n+j] = dot, t
		}
	}
	return want, tol
}

// refRMSNorm is w ⊙ x / √(mean(x²) + eps) with its tolerance. The contract's float32
// roundings: the variance u, variance + eps u, the reciprocal root (computed in float64) u,
// whose error is half its argument's: inv is within 2u; then x·inv and w·(x·inv) u each:
// 4u in all, and tol = 6u·|result| leaves room for second-order terms only (an eps
// dropped or added twice is 10⁻¹ or 1/2 off in the cases the suite draws).
func refRMSNorm(x mat, w []float32, eps float32) (want, tol []float64) {
	want, tol = make([]float64, len(x.v)), make([]float64, len(x.v))
	for i := range x.rows {
		r := x.row(i)
		var ss float64
		for _, v := range r {
			ss += float64(v) * float64(v)
		}
		inv := 1 / math.Sqrt(ss/float64(x.cols)+float64(eps))
		for j, v := range r {
			y := float64(w[j]) * float64(v) * inv
			want[i*x.cols+j], tol[i*x.cols+j] = y, 6*u*math.Abs(y)
		}
	}
	return want, tol
}

// act is the activation in float64.
func act(a backend.Activation, x float64) float64 {
	switch a {
	case backend.ActReLU:
		return max(x, 0)
	case backend.ActGELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case backend.ActGELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case backend.ActSiLU:
		return x / (1 + math.Exp(-x))
	}
	panic("backendtest: unknown activation")
}

// refActivate is act(a) ⊙ b (b.v nil: act(a)) with its tolerance. Each activation is x·g(x)
// with 0 ≤ g ≤ 1.2 (g = σ of a polynomial, Φ, a step) computed in float32 from a handful of
// operations: its error is a few u of |x|, not of the result (for negative x, x - x·σ(-z)
// cancels, as the CPU's x - x/(e^z+1) does); the product with b one u more. tol =
// 16u·|a|·|b| (|b| = 1 without b) is a bound with room, and 10⁻³ of |a| below the difference
// of the two GELU forms.
func refActivate(a, b mat, fn backend.Activation) (want, tol []float64) {
	want, tol = make([]float64, len(a.v)), make([]float64, len(a.v))
	for i, x := range a.v {
		y, m := act(fn, float64(x)), math.Abs(float64(x))
		if b.v != nil {
			y *= float64(b.v[i])
			m *= math.Abs(float64(b.v[i]))
		}
		want[i], tol[i] = y, 16*u*m
	}
	return want, tol
}

// attnRef is the reference of one attention group.
type attnRef struct {
	out, outTol     []float64 // N × heads·dkv
	probs, probsTol []float64 // heads·N × L, head after head; zero (tolerance 0) past a causal query's last key
}

// refAttention is attention of the N query rows q (at positions pos0...) over the L keys and
// values (rows of heads·dkv), with bias (heads × 2D+1, nil for none) by clamped relative
// position, keys past the query hidden when causal.
//
// Tolerance, per query row and head: a score s_j = q·k_j + b_j is computed with an error δ_j
// ≤ (dkv+1)·u·Σ|q·k_j| (the dot product) + u·|s_j| (adding the bias) + u·(|s_j| + |m|)
// (subtracting the row maximum m; the error of m itself cancels, the softmax being shift
// invariant), and its exponential with expUlps·u more. Perturbing every score by at most Δ
// = max_j δ_j + expUlps·u moves each probability by a factor within e^{±2Δ}; scaling by the
// rounded reciprocal of the float64 normaliser adds 2u: ε = 2.02·Δ + 2u bounds the relative
// error of each probability. An output Σ_j p_j·v_j is then within (ε + (L+1)·u)·Σ_j p_j·|v_j|
// (the probabilities' error and the float32 sum of L products). A key dropped, leaked or
// biased by a neighbouring bucket moves an output by ~p_j·|v_j - out|, orders above that.
func refAttention(q, keys, vals mat, pos0 int, causal bool, heads int, bias mat) attnRef {
	n, l, inner := q.rows, keys.rows, q.cols
	dkv := inner / heads
	r := attnRef{
		out: make([]float64, n*inner), outTol: make([]float64, n*inner),
		probs: make([]float64, heads*n*l), probsTol: make([]float64, heads*n*l),
	}
	dist := (bias.cols - 1) / 2
	s, a := make([]float64, l), make([]float64, l)
	for h := range heads {
		c0 := h * dkv
		for i := range n {
			pos := pos0 + i
			valid := l
			if causal {
				valid = min(l, pos+1)
			}
			qi := q.row(i)[c0 : c0+dkv]
			m := math.Inf(-1)
			for j := range valid {
				kj := keys.row(j)[c0 : c0+dkv]
				var dot, abs float64
				for d, qv := range qi {
					dot += float64(qv) * float64(kj[d])
					abs += math.Abs(float64(qv) * float64(kj[d]))
				}
				if bias.v != nil {
					dot += float64(bias.row(h)[min(max(j-pos, -dist), dist)+dist])
				}
				s[j], a[j] = dot, abs
				m = max(m, dot)
			}
			var delta, sum float64
			for j := range valid {
				d := float64(dkv+1)*u*a[j] + u*(math.Abs(s[j])+math.Abs(m))
				if bias.v != nil {
					d += u * math.Abs(s[j])
				}
				delta = max(delta, d)
				sum += math.Exp(s[j] - m)
			}
			eps := 2.02*(delta+expUlps*u) + 2*u
			prow := r.probs[(h*n+i)*l : (h*n+i+1)*l]
			ptol := r.probsTol[(h*n+i)*l : (h*n+i+1)*l]
			for j := range valid {
				prow[j] = math.Exp(s[j]-m) / sum
				ptol[j] = eps * prow[j]
			}
			for c := range dkv {
				var o, abs float64
				for j := range valid {
					v := float64(vals.row(j)[c0+c])
					o += prow[j] * v
					abs += prow[j] * math.Abs(v)
				}
				r.out[i*inner+c0+c] = o
				r.outTol[i*inner+c0+c] = (eps + float64(valid+1)*u) * abs
			}
		}
	}
	return r
}

// refLogits is (scale·h)·headᵀ, hidden scaled in float32 first as the contract says, with
// refLinear's tolerance times (K+3)/(K+2): a backend that scales the product instead is
// within u·Σ|scale·h·w| more.
func refLogits(h mat, w weightRef, scale float32) (want, tol []float64) {
	hs := newMat(h.rows, h.cols)
	for i, x := range h.v {
		hs.v[i] = scale * x
	}
	want, tol = refLinear(hs, w, mat{}, backend.Store)
	for i := range tol {
		tol[i] *= float64(w.cols+3) / float64(w.cols+2)
	}
	return want, tol
}

// refLogSumExp is log Σ exp(row) with its tolerance. Each exponential exp(x_j - m) is float32:
// the subtraction rounds by u·|x_j - m| and the exponential by expUlps·u, relative; the sum
// (float64) and the log add a few 2^-53. The sum's relative error, which is the result's
// absolute error, is within u·(expUlps + Σ_j p_j·|x_j - m|) with p_j the softmax weights;
// tol adds 2^-50·|result| for the float64 steps.
func refLogSumExp(row []float32) (want, tol float64) {
	m := math.Inf(-1)
	for _, x := range row {
		m = max(m, float64(x))
	}
	if math.IsInf(m, -1) {
		return m, 0
	}
	var sum, spread float64
	for _, x := range row {
		if math.IsInf(float64(x), -1) {
			continue // a masked entry: exp is 0 (or the backend's smallest, far below u)
		}
		e := math.Exp(float64(x) - m)
		sum += e
		spread += e * (m - float64(x))
	}
	want = m + math.Log(sum)
	return want, u*(expUlps+spread/sum) + 0x1p-50*(math.Abs(m)+math.Abs(math.Log(sum)))
}

// refArgmax is the index of the first largest value.
func refArgmax(row []float32) int {
	best := 0
	for i, x := range row {
		if x > row[best] {
			best = i
		}
	}
	return best
}
