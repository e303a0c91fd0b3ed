package backendtest

// The float64 references of backend.Trainer's operations, from the same float32 inputs the
// backend gets, and the tolerance each result is held to: bounds on the float32 rounding a
// correct backend may do (u = 2^-24, as in ref.go), whatever its summation order, whether it
// sums into a scratch and adds the destination at the end or accumulates straight into the
// destination (a GEMM whose C is the gradient; a scatter-add row by row). A backend that
// computes something else (a missing term, a wrong mask or bucket, a lost accumulation) is
// far outside them. train_ref_test.go checks every reference against central finite
// differences of a float64 forward, so that the oracle is not the backward formula twice.

import (
	"math"

	"github.com/t5zoo/t5zoo/backend"
)

// m64 is a host row-major float64 matrix.
type m64 struct {
	rows, cols int
	v          []float64
}

func newM64(rows, cols int) m64 { return m64{rows: rows, cols: cols, v: make([]float64, rows*cols)} }

func (m m64) row(i int) []float64 { return m.v[i*m.cols : (i+1)*m.cols : (i+1)*m.cols] }

func (m m64) at(i, j int) float64 { return m.v[i*m.cols+j] }

// wide is m widened to float64 (exactly).
func wide(m mat) m64 { return m64{rows: m.rows, cols: m.cols, v: f64(m.v)} }

// refLinearDX is dx = ep(d0, dy·w) (ep Store or Add; d0 ignored for Store) for dy R × N and
// w N × K. The dot product of N float32 products in any order is within (N+1)·u·Σ|dy·w|;
// with Add a backend may add d0 at the end (u·|d0 + dot| more) or start its sum from it
// (d0 then takes part in every rounding): tol = (N+2)·u·(Σ|dy·w| + |d0|) covers both.
func refLinearDX(dy, w, d0 m64, ep backend.Epilogue) (want, tol []float64) {
	n, k := w.rows, w.cols
	want, tol = make([]float64, dy.rows*k), make([]float64, dy.rows*k)
	for i := range dy.rows {
		g := dy.row(i)
		for c := range k {
			var dot, abs float64
			for j, gv := range g {
				dot += gv * w.at(j, c)
				abs += math.Abs(gv * w.at(j, c))
			}
			switch ep {
			case backend.Store:
			case backend.Add:
				d := d0.at(i, c)
				dot += d
				abs += math.Abs(d)
			default:
				panic("backendtest: LinearBackward takes the Store and Add epilogues only")
			}
			want[i*k+c], tol[i*k+c] = dot, float64(n+2)*u*abs
		}
	}
	return want, tol
}

// refLinearDW is dw = d0 + dyᵀ·x for dy R × N and x R × K: a sum of R products onto d0,
// tol = (R+2)·u·(Σ|dy·x| + |d0|) as for dx; with no rows dw is d0 exactly.
func refLinearDW(dy, x, d0 m64) (want, tol []float64) {
	n, k := dy.cols, x.cols
	want, tol = make([]float64, n*k), make([]float64, n*k)
	for j := range n {
		for c := range k {
			d := d0.at(j, c)
			dot, abs := d, math.Abs(d)
			for i := range dy.rows {
				t := dy.at(i, j) * x.at(i, c)
				dot += t
				abs += math.Abs(t)
			}
			want[j*k+c] = dot
			if dy.rows > 0 {
				tol[j*k+c] = float64(dy.rows+2) * u * abs
			}
		}
	}
	return want, tol
}

// normGrad is the reference of one RMSNormBackward.
type normGrad struct {
	dx, dxTol []float64 // rows × cols
	dw, dwTol []float64 // 1 × cols
}

// refRMSNormBackward is the gradient of y = w ⊙ x·r, r = (mean(x²) + eps)^-½, row by row:
//
//	dx = ep(d0, r·(w⊙dy) − x·r³·mean(x⊙w⊙dy)),  dw = dw0 + Σ_rows dy ⊙ x·r.
//
// Tolerance. A backend's r is within ρ = (n/2 + 4)·u of the exact one, relative, whether it
// keeps the forward's (float64 mean, float32 variance and root: 3u) or recomputes the mean
// of squares in float32 (n·u, halved by the root). Then with a = r·w·dy, m the mean and S =
// mean(|x⊙w⊙dy|): a is within (ρ+2u)·|a|; m within (n+3)·u·S (products, sum, division; a
// common factor such as r in x̂ = x·r moves m by ρ·|m|); b = x·r³·m within
// |x|·r³·((3ρ+4u)·|m| + (n+3)·u·S); their difference rounds by u·|dx|. The Add epilogue
// adds u·(|d0| + |dx|). dw: each term dy·x·r within (ρ+2u), a sum of R terms onto dw0 within
// (R+2)·u·(Σ|t| + |dw0|).
func refRMSNormBackward(x, w, dy m64, eps float64, d0 m64, ep backend.Epilogue, dw0 m64) normGrad {
	rows, n := x.rows, x.cols
	g := normGrad{
		dx: make([]float64, rows*n), dxTol: make([]float64, rows*n),
		dw: make([]float64, n), dwTol: make([]float64, n),
	}
	rho := (float64(n)/2 + 4) * u
	wabs := make([]float64, n)
	copy(g.dw, dw0.v)
	for i := range rows {
		xr, gr := x.row(i), dy.row(i)
		var ss float64
		for _, v := range xr {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(n)+eps)
		var m, s float64
		for j := range n {
			t := xr[j] * w.v[j] * gr[j]
			m += t
			s += math.Abs(t)
		}
		m, s = m/float64(n), s/float64(n)
		r3 := r * r * r
		for k := range n {
			a := r * w.v[k] * gr[k]
			b := xr[k] * r3 * m
			dx := a - b
			t := (rho+3*u)*math.Abs(a) + math.Abs(xr[k])*r3*((3*rho+4*u)*math.Abs(m)+float64(n+3)*u*s) + u*math.Abs(dx)
			if ep == backend.Add {
				d := d0.at(i, k)
				t += u * (math.Abs(d) + math.Abs(dx))
				dx += d
			} else if ep != backend.Store {
				panic("backendtest: RMSNormBackward takes the Store and Add epilogues only")
			}
			g.dx[i*n+k], g.dxTol[i*n+k] = dx, t
			tw := gr[k] * xr[k] * r
			g.dw[k] += tw
			wabs[k] += math.Abs(tw)
		}
	}
	if rows > 0 {
		for k := range n {
			g.dwTol[k] = (rho+2*u)*wabs[k] + float64(rows+2)*u*(wabs[k]+math.Abs(dw0.v[k]))
		}
	}
	return g
}

// The constants of gelu_new: √(2/π) and the cubic's coefficient.
const (
	geluC = 0.7978845608028654
	geluK = 0.044715
)

// actDeriv is act'(x) in float64 (relu' is [x > 0], 0 at 0).
func actDeriv(a backend.Activation, x float64) float64 {
	switch a {
	case backend.ActReLU:
		if x > 0 {
			return 1
		}
		return 0
	case backend.ActGELUTanh:
		t := math.Tanh(geluC * (x + geluK*x*x*x))
		return 0.5*(1+t) + 0.5*x*(1-t*t)*geluC*(1+3*geluK*x*x)
	case backend.ActGELU:
		return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
	case backend.ActSiLU:
		s := 1 / (1 + math.Exp(-x))
		return s * (1 + x*(1-s))
	}
	panic("backendtest: unknown activation")
}

// derivErr bounds the absolute error of act'(x) evaluated in float32 from the float32 x: a
// few u (16) times the magnitudes the evaluation adds and cancels, plus what the rounding
// of a transcendental's argument moves the result by. relu' is exact. gelu_new' = ½(1+t) +
// ½x(1−t²)c(1+3kx²) with t = tanh z: 1+t and 1−t² cancel to absolute errors of u and u·t²,
// and an error of u·|z| in z moves the result by (1−t²)·|z|·(½ + |x|·|t|·c(1+3kx²)) u. gelu'
// = Φ(x) + x·φ(x): Φ absolute within u, x·φ relative, and the arguments' roundings (of
// x/√2 and x²/2) add φ·|x|·(1 + x²) u. silu' = σ(1 + x(1−σ)): σ relative within a few u, 1−σ
// absolute within u·σ, times x.
func derivErr(a backend.Activation, x float64) float64 {
	ax := math.Abs(x)
	switch a {
	case backend.ActReLU:
		return 0
	case backend.ActGELUTanh:
		z := geluC * (x + geluK*x*x*x)
		t := math.Tanh(z)
		p := geluC * (1 + 3*geluK*x*x)
		return 16 * u * (0.5*(1+math.Abs(t)) + 0.5*ax*(1+t*t)*p + (1-t*t)*math.Abs(z)*(0.5+ax*math.Abs(t)*p))
	case backend.ActGELU:
		phi := math.Exp(-x*x/2) / math.Sqrt(2*math.Pi)
		return 16 * u * (0.5*(1+math.Abs(math.Erf(x/math.Sqrt2))) + ax*phi*(2+x*x))
	case backend.ActSiLU:
		s := 1 / (1 + math.Exp(-x))
		return 16 * u * s * (1 + 2*ax)
	}
	panic("backendtest: unknown activation")
}

// actErr bounds the absolute error of act(x) in float32: ref.go's 16·u·|x| (refActivate),
// none for relu.
func actErr(a backend.Activation, x float64) float64 {
	if a == backend.ActReLU {
		return 0
	}
	return 16 * u * math.Abs(x)
}

// actGrad is the reference of one ActivateBackward.
type actGrad struct {
	da, daTol []float64
	db, dbTol []float64 // nil without b
}

// refActivateBackward is the gradient of y = act(a) ⊙ b (b.v nil: y = act(a)): da = dy ⊙ b ⊙
// act'(a), db = dy ⊙ act(a). da is within |dy·b|·derivErr + 2u·|da| (act' and two products),
// db within |dy|·actErr + u·|db|.
func refActivateBackward(a, b, dy m64, fn backend.Activation) actGrad {
	n := len(a.v)
	g := actGrad{da: make([]float64, n), daTol: make([]float64, n)}
	if b.v != nil {
		g.db, g.dbTol = make([]float64, n), make([]float64, n)
	}
	for i, x := range a.v {
		gb := dy.v[i]
		if b.v != nil {
			gb *= b.v[i]
			y := act(fn, x)
			g.db[i] = dy.v[i] * y
			g.dbTol[i] = math.Abs(dy.v[i])*actErr(fn, x) + u*math.Abs(g.db[i])
		}
		g.da[i] = gb * actDeriv(fn, x)
		g.daTol[i] = math.Abs(gb)*derivErr(fn, x) + 2*u*math.Abs(g.da[i])
	}
	return g
}

// attnGrad is the reference of one group of an AttentionBackward.
type attnGrad struct {
	dq, dqTol   []float64 // N × heads·dkv
	dkv, dkvTol []float64 // L × 2·heads·dkv: keys then values
	// Per head and bias column (heads × 2D+1): the sum of the scores' gradients in that
	// bucket, the sum of their magnitudes, the bound on their errors, their count.
	bias, biasAbs, biasErr []float64
	biasN                  []int
}

// refAttentionBackward is the gradient of one attention group, given its queries q (N ×
// inner), keys k and values v (L × inner), the probabilities p of the forward (heads·N × L,
// head after head), the gradient of its output dO (N × inner), and the bias's maximum
// distance dist (< 0: no bias). Per head, over the keys each query sees:
//
//	dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K, dK = dSᵀ·Q,
//	dbias[h][clamp(j − (pos0+i), −D, D) + D] += dS[i][j].
//
// Tolerance, with p taken as exact (the backend is given the same float32 values), A_ij =
// Σ_c |dO_ic·V_jc| and L_i the keys query i sees: dP_ij is within (dkv+1)·u·A_ij; the row
// sum ρ_i within (L_i + dkv + 2)·u·Σ_j P_ij·A_ij, whether summed as Σ_j dP_ij·P_ij or as dO·O
// with O = P·V recomputed; dS_ij within e_ij = P_ij·(the two + u·(|dP_ij| + |ρ_i|)) +
// u·|dS_ij|. Then dQ_ic within Σ_j e_ij·|K_jc| + (L_i+1)·u·Σ_j |dS_ij·K_jc|, dK_jc within Σ_i
// e_ij·|Q_ic| + (N+1)·u·Σ_i |dS_ij·Q_ic|, dV_jc within (N+1)·u·Σ_i |P_ij·dO_ic|. Keys no
// query sees get exactly 0.
func refAttentionBackward(q, k, v, p, dO m64, pos0 int, causal bool, heads, dist int) attnGrad {
	n, l, inner := q.rows, k.rows, q.cols
	dkv := inner / heads
	g := attnGrad{
		dq: make([]float64, n*inner), dqTol: make([]float64, n*inner),
		dkv: make([]float64, l*2*inner), dkvTol: make([]float64, l*2*inner),
	}
	nb := 0
	if dist >= 0 {
		nb = heads * (2*dist + 1)
	}
	g.bias, g.biasAbs, g.biasErr, g.biasN = make([]float64, nb), make([]float64, nb), make([]float64, nb), make([]int, nb)
	dP, ds, e := make([]float64, l), make([]float64, n*l), make([]float64, n*l)
	dkAbs, dkErr := make([]float64, l*dkv), make([]float64, l*dkv)
	dvAbs := make([]float64, l*dkv)
	for h := range heads {
		c0 := h * dkv
		clear(ds)
		clear(e)
		for i := range n {
			pos := pos0 + i
			valid := l
			if causal {
				valid = min(l, pos+1)
			}
			pr := p.row(h*n + i)
			gi := dO.row(i)[c0 : c0+dkv]
			var rho, rhoAbs float64
			for j := range valid {
				vj := v.row(j)[c0 : c0+dkv]
				var dot, a float64
				for c, gv := range gi {
					dot += gv * vj[c]
					a += math.Abs(gv * vj[c])
				}
				dP[j] = dot
				e[i*l+j] = float64(dkv+1) * u * a // dP's error for now
				rho += dot * pr[j]
				rhoAbs += pr[j] * a
			}
			eRho := float64(valid+dkv+2) * u * rhoAbs
			for j := range valid {
				s := pr[j] * (dP[j] - rho)
				ds[i*l+j] = s
				e[i*l+j] = pr[j]*(e[i*l+j]+eRho+u*(math.Abs(dP[j])+math.Abs(rho))) + u*math.Abs(s)
				if nb > 0 {
					b := h*(2*dist+1) + min(max(j-pos, -dist), dist) + dist
					g.bias[b] += s
					g.biasAbs[b] += math.Abs(s)
					g.biasErr[b] += e[i*l+j]
					g.biasN[b]++
				}
			}
			for c := range dkv {
				var dot, a, er float64
				for j := range valid {
					kv := k.at(j, c0+c)
					dot += ds[i*l+j] * kv
					a += math.Abs(ds[i*l+j] * kv)
					er += e[i*l+j] * math.Abs(kv)
				}
				g.dq[i*inner+c0+c] = dot
				g.dqTol[i*inner+c0+c] = er + float64(valid+1)*u*a
			}
		}
		clear(dkAbs)
		clear(dkErr)
		clear(dvAbs)
		for i := range n {
			qi := q.row(i)[c0 : c0+dkv]
			gi := dO.row(i)[c0 : c0+dkv]
			pr := p.row(h*n + i)
			for j := range l {
				s, er, pj := ds[i*l+j], e[i*l+j], pr[j]
				if s == 0 && er == 0 && pj == 0 {
					continue
				}
				kr, vr := g.dkv[j*2*inner+c0:], g.dkv[j*2*inner+inner+c0:]
				for c := range dkv {
					kr[c] += s * qi[c]
					dkAbs[j*dkv+c] += math.Abs(s * qi[c])
					dkErr[j*dkv+c] += er * math.Abs(qi[c])
					vr[c] += pj * gi[c]
					dvAbs[j*dkv+c] += math.Abs(pj * gi[c])
				}
			}
		}
		for j := range l {
			for c := range dkv {
				g.dkvTol[j*2*inner+c0+c] = dkErr[j*dkv+c] + float64(n+1)*u*dkAbs[j*dkv+c]
				g.dkvTol[j*2*inner+inner+c0+c] = float64(n+1) * u * dvAbs[j*dkv+c]
			}
		}
	}
	return g
}

// biasTotal is d0 plus the bias gradients of every group, with tol = the groups' error
// bounds + (count+1)·u·(Σ|dS| + |d0|): a sum of count terms onto d0, in any order. A
// bucket no score falls into keeps d0 exactly.
func biasTotal(d0 m64, gs []attnGrad) (want, tol []float64) {
	want, tol = make([]float64, len(d0.v)), make([]float64, len(d0.v))
	abs, cnt := make([]float64, len(d0.v)), make([]int, len(d0.v))
	copy(want, d0.v)
	for _, g := range gs {
		for b := range g.bias {
			want[b] += g.bias[b]
			abs[b] += g.biasAbs[b]
			tol[b] += g.biasErr[b]
			cnt[b] += g.biasN[b]
		}
	}
	for b := range tol {
		if cnt[b] > 0 {
			tol[b] += float64(cnt[b]+1) * u * (abs[b] + math.Abs(d0.v[b]))
		}
	}
	return want, tol
}

// refEmbedBackward is dtable = d0 with row i of dy added to row ids[i], for every i. A row
// that c ids name is a sum of c+1 terms: within c·u·(|d0| + Σ|dy|) in any order; the rows
// no id names keep d0 exactly.
func refEmbedBackward(d0, dy m64, ids []int) (want, tol []float64) {
	d := d0.cols
	want, tol = make([]float64, len(d0.v)), make([]float64, len(d0.v))
	copy(want, d0.v)
	abs := make([]float64, len(d0.v))
	cnt := make([]int, d0.rows)
	for i, id := range ids {
		cnt[id]++
		for c := range d {
			want[id*d+c] += dy.at(i, c)
			abs[id*d+c] += math.Abs(dy.at(i, c))
		}
	}
	for r, n := range cnt {
		for c := range d {
			if n > 0 {
				tol[r*d+c] = float64(n) * u * (abs[r*d+c] + math.Abs(d0.at(r, c)))
			}
		}
	}
	return want, tol
}

// ceRef is the reference of one CrossEntropy.
type ceRef struct {
	grad, gradTol []float64 // tokens × vocab
	loss, lossTol float64
	correct       int
}

// refCrossEntropy is, for each row with labels[i] ≥ 0, the gradient scale·(softmax(row) −
// onehot(label)), its −log softmax[label] summed into the loss, and whether the label is the
// row's first argmax; rows with labels[i] < 0 get zeros (exactly) and count nowhere.
//
// Tolerance. Each exponential exp(x_j − m) (m the row's maximum) is float32: relatively
// within η_j = u·(expUlps + |x_j − m| + |m| + log V + 1), which covers the rounding of x_j −
// m, or of x_j − lse for a backend working in the log domain. Their sum (float32 or float64)
// is within Σ_k p_k·η_k + (V+1)·u, so p_j within ε_j = η_j + Σ_k p_k·η_k + (V+2)·u; then the
// subtraction of the one-hot and the scaling: tol_j = |scale|·(ε_j·p_j + 2u·(p_j + y_j)). The
// row's loss lse − x_label is within Σ_k p_k·η_k + (V+2)·u (float64 from there on, 2^-50 of
// its terms).
func refCrossEntropy(logits m64, labels []int, scale float64) ceRef {
	rows, vocab := logits.rows, logits.cols
	r := ceRef{grad: make([]float64, rows*vocab), gradTol: make([]float64, rows*vocab)}
	eta, p := make([]float64, vocab), make([]float64, vocab)
	for i := range rows {
		lab := labels[i]
		if lab < 0 {
			continue
		}
		x := logits.row(i)
		m := math.Inf(-1)
		best := 0
		for j, v := range x {
			m = max(m, v)
			if v > x[best] {
				best = j
			}
		}
		if best == lab {
			r.correct++
		}
		var sum float64
		for j, v := range x {
			p[j] = math.Exp(v - m)
			sum += p[j]
		}
		var spread float64
		for j, v := range x {
			p[j] /= sum
			eta[j] = u * (expUlps + (m - v) + math.Abs(m) + math.Log(float64(vocab)) + 1)
			spread += p[j] * eta[j]
		}
		lse := m + math.Log(sum)
		r.loss += lse - x[lab]
		r.lossTol += spread + float64(vocab+2)*u + 0x1p-50*(math.Abs(lse)+math.Abs(x[lab]))
		for j := range x {
			y := 0.0
			if j == lab {
				y = 1
			}
			eps := eta[j] + spread + float64(vocab+2)*u
			r.grad[i*vocab+j] = scale * (p[j] - y)
			r.gradTol[i*vocab+j] = math.Abs(scale) * (eps*p[j] + 2*u*(p[j]+y))
		}
	}
	return r
}

// refDropout is x ⊙ keep / (1−p), keep(i, j) = DropoutKeep(seed, i, j, p), times times over
// (applying the same dropout again, the backward of the first): each survivor is scaled by
// 1/(1−p) (float32 1−p, its reciprocal, the product: 3u) per application; the dropped are
// exactly 0.
func refDropout(x m64, p float32, seed uint64, times int) (want, tol []float64) {
	want, tol = make([]float64, len(x.v)), make([]float64, len(x.v))
	s := math.Pow(1/(1-float64(p)), float64(times))
	for i := range x.rows {
		for j := range x.cols {
			k := i*x.cols + j
			if backend.DropoutKeep(seed, i, j, p) {
				want[k] = x.v[k] * s
				tol[k] = float64(3*times+1) * u * math.Abs(want[k])
			}
		}
	}
	return want, tol
}

// refSumSquares is Σ t² with its tolerance: a backend may square in float32 (u·Σt² in all)
// but sums in float64 ((n+1)·2^-53·Σt², and as much for the reference's own sum).
func refSumSquares(t m64) (want, tol float64) {
	for _, v := range t.v {
		want += v * v
	}
	return want, u*want + 2*float64(len(t.v)+1)*0x1p-53*want
}
