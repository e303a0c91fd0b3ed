package plain

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
)

// The backward operations are checked against central finite differences of float64
// references of the forward operations written here (not the code under test), and the
// attention backward also against finite differences of plain's own float32 Attention.

// fdStep is the step of the float64 finite differences: their truncation error (~h²) and
// cancellation error (~1e-16/h) are both below 1e-9 for the smooth, O(1) functions here.
const fdStep = 1e-5

// gradFD returns the central-difference gradient of f at x with step fdStep (x is restored).
func gradFD(f func() float64, x []float64) []float64 { return gradStep(f, x, fdStep) }

// gradStep is gradFD with step h.
func gradStep(f func() float64, x []float64, h float64) []float64 {
	g := make([]float64, len(x))
	for i, v := range x {
		x[i] = v + h
		hi := f()
		x[i] = v - h
		lo := f()
		x[i] = v
		g[i] = (hi - lo) / (2 * h)
	}
	return g
}

func widen(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}

// dot64 is Σ a⊙b in float64.
func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// padded returns a rows × cols view (columns [2, 2+cols) of a rows × (cols+5) tensor, every
// element of which is random) and the whole tensor's values, to check what lies outside.
func padded(b *Backend, r *rand.Rand, rows, cols int) (view, whole backend.Tensor) {
	whole = upload(b, rows, cols+5, random(r, rows*(cols+5)))
	return whole.ColSlice(2, 2+cols), whole
}

// checkGrad reports the elements of got farther than atol + rtol·|want| from want.
func checkGrad(t *testing.T, name string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= atol+rtol*math.Abs(want[i])) {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %v, want %v (diff %.3g)", name, i, got[i], want[i], d)
			}
		}
	}
	if bad > 3 {
		t.Errorf("%s: %d of %d values off", name, bad, len(got))
	}
}

// outside checks that the elements of whole outside view kept their values before.
func outside(t *testing.T, b *Backend, name string, whole, view backend.Tensor, before []float32) {
	t.Helper()
	after := download(b, whole)
	for i := range whole.Rows {
		for j := range whole.Cols {
			o := whole.Off + i*whole.Stride + j
			in := false
			if r := (o - view.Off) / view.Stride; o >= view.Off && r < view.Rows {
				c := (o - view.Off) % view.Stride
				in = c < view.Cols
			}
			if !in && math.Float32bits(after[i*whole.Cols+j]) != math.Float32bits(before[i*whole.Cols+j]) {
				t.Fatalf("%s: element (%d, %d) outside the view changed", name, i, j)
			}
		}
	}
}

// plus returns old + g elementwise.
func plus(old []float32, g []float64) []float64 {
	w := make([]float64, len(g))
	for i := range g {
		w[i] = float64(old[i]) + g[i]
	}
	return w
}

func TestLinearBackward(t *testing.T) {
	const rows, in, out = 5, 8, 6 // a 6×8 weight: d_kv·heads ≠ d_model
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name       string
		ep         backend.Epilogue
		noDX, noDW bool
	}{
		{name: "store"},
		{name: "add", ep: backend.Add},
		{name: "dx only", noDW: true},
		{name: "dw only", noDX: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New()
			wv := random(r, out*in)
			w := prepare(t, b, out, in, wv, backend.F32)
			x, _ := padded(b, r, rows, in)
			dy, _ := padded(b, r, rows, out)
			dx, dxAll := padded(b, r, rows, in)
			dw, dwAll := padded(b, r, out, in)
			dxOld, dwOld := download(b, dx), download(b, dw)
			dxBefore, dwBefore := download(b, dxAll), download(b, dwAll)

			xs, ws, dys := widen(download(b, x)), widen(wv), widen(download(b, dy))
			loss := func() float64 { // Σ dy ⊙ (x·wᵀ)
				var s float64
				for i := range rows {
					for j := range out {
						s += dys[i*out+j] * dot64(xs[i*in:(i+1)*in], ws[j*in:(j+1)*in])
					}
				}
				return s
			}
			gx, gw := gradFD(loss, xs), gradFD(loss, ws)

			dxArg, dwArg := dx, dw
			if tc.noDX {
				dxArg = backend.Tensor{}
			}
			if tc.noDW {
				dwArg = backend.Tensor{}
			}
			b.LinearBackward(dxArg, dwArg, dy, x, w, tc.ep)
			wantDX, wantDW := gx, plus(dwOld, gw)
			if tc.ep == backend.Add {
				wantDX = plus(dxOld, gx)
			}
			if tc.noDX {
				wantDX = widen(dxOld)
			}
			if tc.noDW {
				wantDW = widen(dwOld)
			}
			checkGrad(t, "dx", download(b, dx), wantDX, 1e-6, 1e-6)
			checkGrad(t, "dw", download(b, dw), wantDW, 1e-6, 1e-6)
			outside(t, b, "dx", dxAll, dx, dxBefore)
			outside(t, b, "dw", dwAll, dw, dwBefore)
		})
	}
}

func TestRMSNormBackward(t *testing.T) {
	const rows, cols, eps = 4, 7, 1e-6
	r := rand.New(rand.NewPCG(3, 4))
	for _, ep := range []backend.Epilogue{backend.Store, backend.Add} {
		b := New()
		x, _ := padded(b, r, rows, cols)
		xv := download(b, x)
		for j := range cols { // a row of small values, where eps matters more
			xv[j] *= 1e-3
		}
		b.Upload(x, xv)
		w, _ := padded(b, r, 1, cols)
		dy, _ := padded(b, r, rows, cols)
		dx, dxAll := padded(b, r, rows, cols)
		dw, dwAll := padded(b, r, 1, cols)
		dxOld, dwOld := download(b, dx), download(b, dw)
		dxBefore, dwBefore := download(b, dxAll), download(b, dwAll)

		xs, ws, dys := widen(xv), widen(download(b, w)), widen(download(b, dy))
		eps32 := float32(eps)
		loss := func() float64 { // Σ dy ⊙ w ⊙ x·rsqrt(mean(x²)+eps)
			var s float64
			for i := range rows {
				xr := xs[i*cols : (i+1)*cols]
				rs := 1 / math.Sqrt(dot64(xr, xr)/cols+float64(eps32))
				for j, v := range xr {
					s += dys[i*cols+j] * ws[j] * v * rs
				}
			}
			return s
		}
		// The small row's root mean square is ~1e-3: a step of 1e-8 keeps the truncation
		// error (~(h/rms)²) below 1e-9 relative.
		gx, gw := gradStep(loss, xs, 1e-8), gradFD(loss, ws)
		b.RMSNormBackward(dx, dw, dy, x, w, eps32, ep)
		wantDX := gx
		if ep == backend.Add {
			wantDX = plus(dxOld, gx)
		}
		checkGrad(t, "dx", download(b, dx), wantDX, 1e-5, 1e-5)
		checkGrad(t, "dw", download(b, dw), plus(dwOld, gw), 1e-6, 1e-6)
		outside(t, b, "dx", dxAll, dx, dxBefore)
		outside(t, b, "dw", dwAll, dw, dwBefore)
	}
}

// act64 is the activation's forward definition in float64 (HF's ACT2FN).
func act64(act backend.Activation, x float64) float64 {
	switch act {
	case backend.ActReLU:
		return max(x, 0)
	case backend.ActGELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case backend.ActGELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case backend.ActSiLU:
		return x / (1 + math.Exp(-x))
	}
	panic("unknown activation")
}

func TestActivateBackward(t *testing.T) {
	const rows, cols = 3, 9
	r := rand.New(rand.NewPCG(5, 6))
	acts := []backend.Activation{backend.ActReLU, backend.ActGELUTanh, backend.ActGELU, backend.ActSiLU}
	for _, act := range acts {
		for _, gated := range []bool{false, true} {
			for _, inPlace := range []bool{false, true} {
				b := New()
				a, _ := padded(b, r, rows, cols)
				av := download(b, a)
				for i, v := range []float32{0, 3, -3, 7, -9, 0.5, -0.25} {
					av[i] = v // the tails, and relu's 0 (its derivative is 0 there)
				}
				b.Upload(a, av)
				dy, _ := padded(b, r, rows, cols)
				dyv := download(b, dy)
				var g, db backend.Tensor
				var gv []float32
				if gated {
					g, _ = padded(b, r, rows, cols)
					gv = download(b, g)
					db, _ = padded(b, r, rows, cols)
				}
				da, daAll := padded(b, r, rows, cols)
				if inPlace {
					da, daAll = dy, dy // "da may be dy"
				}
				daBefore := download(b, daAll)

				wantDA, wantDB := make([]float64, rows*cols), make([]float64, rows*cols)
				for i, v := range av {
					x := float64(v)
					d := 0.0 // relu'(0) = 0, where the differences would give ½
					if act != backend.ActReLU || x != 0 {
						d = (act64(act, x+fdStep) - act64(act, x-fdStep)) / (2 * fdStep)
					}
					up := float64(dyv[i])
					if gated {
						wantDA[i] = up * float64(gv[i]) * d
						wantDB[i] = up * act64(act, x) // ∂(act(a)·b)/∂b
						continue
					}
					wantDA[i] = up * d
				}
				b.ActivateBackward(da, db, dy, a, g, act)
				checkGrad(t, "da", download(b, da), wantDA, 1e-7, 1e-6)
				if gated {
					checkGrad(t, "db", download(b, db), wantDB, 1e-7, 1e-7)
				}
				outside(t, b, "da", daAll, da, daBefore)
			}
		}
	}
}

// attnCase is a float64 picture of one attention group.
type attnCase struct {
	n, nk  int
	pos0   int
	causal bool
	fused  bool // Q and KV columns of one q/k/v tensor (n == nk), DQ and DKV of one gradient
}

// attention64 is the forward of Attention in float64: q n×inner, kv nk×2·inner, bias
// heads×(2D+1) or nil.
func attention64(c attnCase, heads, dkv int, q, kv, bias []float64, dist int) []float64 {
	inner := heads * dkv
	out := make([]float64, c.n*inner)
	s := make([]float64, c.nk)
	for h := range heads {
		for i := range c.n {
			pos := c.pos0 + i
			valid := c.nk
			if c.causal {
				valid = min(c.nk, pos+1)
			}
			mx := math.Inf(-1)
			for j := range valid {
				s[j] = dot64(q[i*inner+h*dkv:i*inner+(h+1)*dkv], kv[j*2*inner+h*dkv:j*2*inner+(h+1)*dkv])
				if bias != nil {
					s[j] += bias[h*(2*dist+1)+min(max(j-pos, -dist), dist)+dist]
				}
				mx = max(mx, s[j])
			}
			var sum float64
			for j := range valid {
				s[j] = math.Exp(s[j] - mx)
				sum += s[j]
			}
			for j := range valid {
				for d := range dkv {
					out[i*inner+h*dkv+d] += s[j] / sum * kv[j*2*inner+inner+h*dkv+d]
				}
			}
		}
	}
	return out
}

// attnOperands are one group's operands on the backend, and its float64 values.
type attnOperands struct {
	g                 backend.AttnGrad
	q, kv, dout       []float64
	wholeDQ, wholeDKV backend.Tensor
}

func makeGroup(b *Backend, r *rand.Rand, c attnCase, heads, dkv int) attnOperands {
	inner := heads * dkv
	var o attnOperands
	if c.fused {
		qkv, _ := padded(b, r, c.n, 3*inner)
		dqkv, whole := padded(b, r, c.n, 3*inner)
		o.g.Q, o.g.KV = qkv.ColSlice(0, inner), qkv.ColSlice(inner, 3*inner)
		o.g.DQ, o.g.DKV = dqkv.ColSlice(0, inner), dqkv.ColSlice(inner, 3*inner)
		o.wholeDQ, o.wholeDKV = whole, whole
	} else {
		o.g.Q, _ = padded(b, r, c.n, inner)
		o.g.KV, _ = padded(b, r, c.nk, 2*inner)
		o.g.DQ, o.wholeDQ = padded(b, r, c.n, inner)
		o.g.DKV, o.wholeDKV = padded(b, r, c.nk, 2*inner)
	}
	o.g.DOut, _ = padded(b, r, c.n, inner)
	o.g.Probs = b.Alloc(heads*c.n, c.nk)
	o.g.Pos0, o.g.Causal = c.pos0, c.causal
	o.q, o.kv, o.dout = widen(download(b, o.g.Q)), widen(download(b, o.g.KV)), widen(download(b, o.g.DOut))
	return o
}

// forward runs plain's Attention on the groups' Q and KV, writing their Probs, and returns
// each group's Out.
func forward(b *Backend, ops []attnOperands, heads int, bias backend.Tensor) [][]float32 {
	groups := make([]backend.AttnGroup, len(ops))
	for i, o := range ops {
		groups[i] = backend.AttnGroup{Q: o.g.Q, Out: b.Alloc(o.g.Q.Rows, o.g.Q.Cols), Pos0: o.g.Pos0,
			KV: b.ViewKV(o.g.KV), Causal: o.g.Causal, Probs: o.g.Probs}
	}
	b.Attention(groups, heads, bias)
	outs := make([][]float32, len(groups))
	for i, g := range groups {
		outs[i] = download(b, g.Out)
	}
	return outs
}

var attnCases = []struct {
	name       string
	heads, dkv int
	dist       int // -1: no bias (cross-attention)
	groups     []attnCase
}{
	{"encoder", 2, 3, 3, []attnCase{{n: 4, nk: 4, fused: true}, {n: 6, nk: 6, fused: true}}},
	{"decoder", 2, 3, 3, []attnCase{{n: 5, nk: 5, causal: true, fused: true}, {n: 2, nk: 2, causal: true, fused: true}}},
	{"cross", 3, 2, -1, []attnCase{{n: 3, nk: 5}, {n: 4, nk: 2}}},
	{"clamped causal from position 6", 2, 2, 3, []attnCase{{n: 4, nk: 10, pos0: 6, causal: true}, {n: 1, nk: 10, pos0: 9, causal: true}}},
	{"clamped both ways from position 2", 2, 4, 3, []attnCase{{n: 3, nk: 10, pos0: 2}, {n: 2, nk: 10, pos0: 0}}},
	{"no keys", 2, 2, 1, []attnCase{{n: 2, nk: 0}, {n: 2, nk: 3}}},
}

func TestAttentionBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			b := New()
			heads, dkv, dist := tc.heads, tc.dkv, tc.dist
			ops := make([]attnOperands, len(tc.groups))
			for i, c := range tc.groups {
				ops[i] = makeGroup(b, r, c, heads, dkv)
			}
			var bias, dbias, dbAll backend.Tensor
			var bs []float64
			if dist >= 0 {
				bias, _ = padded(b, r, heads, 2*dist+1)
				dbias, dbAll = padded(b, r, heads, 2*dist+1)
				bs = widen(download(b, bias))
			}
			forward(b, ops, heads, bias)

			loss := func() float64 { // Σ_groups Σ dOut ⊙ Out
				var s float64
				for i, c := range tc.groups {
					s += dot64(ops[i].dout, attention64(c, heads, dkv, ops[i].q, ops[i].kv, bs, dist))
				}
				return s
			}
			wantQ, wantKV := make([][]float64, len(ops)), make([][]float64, len(ops))
			for i := range ops {
				wantQ[i], wantKV[i] = gradFD(loss, ops[i].q), gradFD(loss, ops[i].kv)
			}
			var wantBias []float64
			var dbOld, dbBefore []float32
			if dist >= 0 {
				dbOld, dbBefore = download(b, dbias), download(b, dbAll)
				wantBias = plus(dbOld, gradFD(loss, bs))
			}
			before := make([][2][]float32, len(ops))
			for i, o := range ops {
				before[i] = [2][]float32{download(b, o.wholeDQ), download(b, o.wholeDKV)}
			}
			grads := make([]backend.AttnGrad, len(ops))
			for i, o := range ops {
				grads[i] = o.g
			}
			b.AttentionBackward(grads, heads, dbias)

			// The probabilities are the float32 forward's (a few units of 1e-7 off), so the
			// backward meets the float64 gradient to ~2e-7 (measured); 2e-6 leaves room.
			const tol = 2e-6
			for i, o := range ops {
				checkGrad(t, "DQ", download(b, o.g.DQ), wantQ[i], tol, tol)
				checkGrad(t, "DKV", download(b, o.g.DKV), wantKV[i], tol, tol)
				if !tc.groups[i].fused {
					outside(t, b, "DQ", o.wholeDQ, o.g.DQ, before[i][0])
					outside(t, b, "DKV", o.wholeDKV, o.g.DKV, before[i][1])
				}
			}
			if dist >= 0 {
				checkGrad(t, "dbias", download(b, dbias), wantBias, tol, tol)
				outside(t, b, "dbias", dbAll, dbias, dbBefore)
			}
		})
	}
}

// TestAttentionBackwardOfForward ties the backward to plain's own float32 Attention: its
// gradient against central differences of Σ dOut ⊙ Attention(Q, KV, bias).
func TestAttentionBackwardOfForward(t *testing.T) {
	const heads, dkv, dist = 2, 3, 3
	// h balances the float32 forward's rounding noise (~1e-7·|L|/h) against the truncation
	// error (~h²·L'''), both near 1e-5 of the gradient here.
	const h = 1e-2
	r := rand.New(rand.NewPCG(9, 10))
	b := New()
	c := attnCase{n: 4, nk: 10, pos0: 6, causal: true}
	o := makeGroup(b, r, c, heads, dkv)
	bias, _ := padded(b, r, heads, 2*dist+1)
	dbias := b.Alloc(heads, 2*dist+1)
	loss := func() float64 {
		return dot64(o.dout, widen(forward(b, []attnOperands{o}, heads, bias)[0]))
	}
	fd32 := func(tt backend.Tensor) []float64 {
		v := download(b, tt)
		g := make([]float64, len(v))
		for i, x := range v {
			v[i] = x + h
			b.Upload(tt, v)
			hi := loss()
			v[i] = x - h
			b.Upload(tt, v)
			lo := loss()
			v[i] = x
			b.Upload(tt, v)
			// The perturbation actually applied is the float32 difference.
			g[i] = (hi - lo) / (float64(x+h) - float64(x-h))
		}
		return g
	}
	wantQ, wantKV, wantBias := fd32(o.g.Q), fd32(o.g.KV), fd32(bias)
	forward(b, []attnOperands{o}, heads, bias) // the probabilities of the unperturbed operands
	b.AttentionBackward([]backend.AttnGrad{o.g}, heads, dbias)
	var scale float64
	for _, g := range [][]float64{wantQ, wantKV, wantBias} {
		for _, v := range g {
			scale = max(scale, math.Abs(v))
		}
	}
	// 2e-4 of the largest gradient: the differences' error is ~2e-5 of it (measured), a
	// wrong term (a misplaced bias bucket, a transposed product) is of the gradient's size.
	tol := 2e-4 * scale
	checkGrad(t, "DQ", download(b, o.g.DQ), wantQ, tol, 0)
	checkGrad(t, "DKV", download(b, o.g.DKV), wantKV, tol, 0)
	checkGrad(t, "dbias", download(b, dbias), wantBias, tol, 0)
}

func TestEmbedBackward(t *testing.T) {
	const vocab, cols = 7, 5
	ids := []int{3, 1, 3, 0, 6, 3}
	r := rand.New(rand.NewPCG(11, 12))
	b := New()
	dtable, whole := padded(b, r, vocab, cols)
	dy, _ := padded(b, r, len(ids), cols)
	old, before := download(b, dtable), download(b, whole)
	table, dys := widen(random(r, vocab*cols)), widen(download(b, dy))
	loss := func() float64 { // Σ dy ⊙ table[ids]
		var s float64
		for i, id := range ids {
			s += dot64(dys[i*cols:(i+1)*cols], table[id*cols:(id+1)*cols])
		}
		return s
	}
	want := plus(old, gradFD(loss, table))
	b.EmbedBackward(dtable, dy, ids)
	checkGrad(t, "dtable", download(b, dtable), want, 1e-6, 1e-6)
	outside(t, b, "dtable", whole, dtable, before)
}

func TestCrossEntropy(t *testing.T) {
	const vocab = 7
	const scale = 0.25
	labels := []int{2, -100, 0, 4, -100, 1}
	r := rand.New(rand.NewPCG(13, 14))
	b := New()
	logits, whole := padded(b, r, len(labels), vocab)
	v := download(b, logits)
	v[0*vocab+2] = -4                 // row 0: its label is not the argmax
	v[2*vocab+0] = 6                  // row 2: its label is the argmax
	v[3*vocab+1], v[3*vocab+4] = 8, 8 // row 3: a tie, the label second: not correct
	v[5*vocab+1], v[5*vocab+5] = 9, 9 // row 5: a tie, the label first: correct
	b.Upload(logits, v)
	before := download(b, whole)
	xs := widen(v)
	loss64 := func() float64 {
		var s float64
		for i, l := range labels {
			if l < 0 {
				continue
			}
			xr := xs[i*vocab : (i+1)*vocab]
			var sum float64
			for _, x := range xr {
				sum += math.Exp(x)
			}
			s += math.Log(sum) - xr[l]
		}
		return s
	}
	wantLoss := loss64()
	g := gradFD(func() float64 { return scale * loss64() }, xs)
	loss, correct := b.CrossEntropy(logits, labels, scale)
	if math.Abs(loss-wantLoss) > 1e-12*wantLoss {
		t.Errorf("loss %v, want %v", loss, wantLoss)
	}
	if correct != 2 {
		t.Errorf("correct %d, want 2 (rows 2 and 5)", correct)
	}
	checkGrad(t, "gradient", download(b, logits), g, 1e-7, 1e-6)       // zero for the -100 rows
	for _, tie := range []struct{ row, correct int }{{3, 0}, {5, 1}} { // the first argmax counts
		one := upload(b, 1, vocab, v[tie.row*vocab:(tie.row+1)*vocab])
		if _, c := b.CrossEntropy(one, labels[tie.row:tie.row+1], scale); c != tie.correct {
			t.Errorf("row %d alone: correct %d, want %d", tie.row, c, tie.correct)
		}
	}
	outside(t, b, "logits", whole, logits, before)
}

func TestDropout(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	b := New()
	for _, p := range []float32{0.1, 0.5} {
		const rows, cols = 150, 201
		x, whole := padded(b, r, rows, cols)
		v, before := download(b, x), download(b, whole)
		const seed = 42
		b.Dropout(x, p, seed)
		got := download(b, x)
		kept := 0
		for i := range rows {
			for j := range cols {
				want := float32(0)
				if backend.DropoutKeep(seed, i, j, p) { // the view's own indices
					want = float32(float64(v[i*cols+j]) / (1 - float64(p)))
					kept++
				}
				if g := got[i*cols+j]; g != want {
					t.Fatalf("p %v: (%d, %d) = %v, want %v", p, i, j, g, want)
				}
			}
		}
		// 5 standard deviations of the kept fraction.
		n := float64(rows * cols)
		if frac, sd := float64(kept)/n, math.Sqrt(float64(p)*(1-float64(p))/n); math.Abs(frac-(1-float64(p))) > 5*sd {
			t.Errorf("p %v: kept %.4f, want %.4f ± %.4f", p, frac, 1-p, 5*sd)
		}
		outside(t, b, "x", whole, x, before)

		// The same seed drops the same elements; another seed others.
		y := upload(b, rows, cols, v)
		b.Dropout(y, p, seed)
		if !sameBits(download(b, y), got) {
			t.Errorf("p %v: the same seed gave another result", p)
		}
		z := upload(b, rows, cols, v)
		b.Dropout(z, p, seed+1)
		if sameBits(download(b, z), got) {
			t.Errorf("p %v: another seed gave the same mask", p)
		}
	}

	// The backward is the same call: the gradient of Σ g ⊙ dropout(x) is dropout(g).
	const rows, cols, p, seed = 6, 9, float32(0.3), 7
	xs := widen(random(r, rows*cols))
	gv := random(r, rows*cols)
	gs := widen(gv)
	want := gradFD(func() float64 {
		var s float64
		for i := range rows {
			for j := range cols {
				if backend.DropoutKeep(seed, i, j, p) {
					s += gs[i*cols+j] * xs[i*cols+j] / (1 - float64(p))
				}
			}
		}
		return s
	}, xs)
	g := upload(b, rows, cols, gv)
	b.Dropout(g, p, seed)
	checkGrad(t, "backward", download(b, g), want, 1e-7, 1e-7)

	// p = 0 is the identity.
	id := upload(b, rows, cols, gv)
	b.Dropout(id, 0, seed)
	if !sameBits(download(b, id), gv) {
		t.Error("p = 0 changed the values")
	}
}

func TestReductions(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	b := New()
	const rows, cols = 4, 6
	src, _ := padded(b, r, rows, cols)
	sv := download(b, src)

	dst, whole := padded(b, r, rows, cols)
	dv, before := download(b, dst), download(b, whole)
	b.AddTo(dst, src)
	for i, got := range download(b, dst) {
		if want := dv[i] + sv[i]; got != want {
			t.Fatalf("AddTo: %v, want %v", got, want)
		}
	}
	outside(t, b, "AddTo", whole, dst, before)

	b.AddTo(src, src) // the same view: 2·src, exactly
	for i, got := range download(b, src) {
		if got != 2*sv[i] {
			t.Fatalf("AddTo in place: %v, want %v", got, 2*sv[i])
		}
	}

	var want float64
	for _, v := range download(b, src) {
		want += float64(v) * float64(v)
	}
	if got := b.SumSquares(src); got != want {
		t.Errorf("SumSquares %v, want %v", got, want)
	}

	before = download(b, whole)
	b.Copy(dst, src)
	if !sameBits(download(b, dst), download(b, src)) {
		t.Error("Copy: dst is not src")
	}
	outside(t, b, "Copy", whole, dst, before)

	before = download(b, whole)
	b.Zero(dst)
	for _, v := range download(b, dst) {
		if v != 0 {
			t.Fatal("Zero left a value")
		}
	}
	outside(t, b, "Zero", whole, dst, before)
}

func TestTrainChecks(t *testing.T) {
	b, other := New(), New()
	w := prepare(t, b, 3, 4, make([]float32, 12), backend.F32)
	bf := prepare(t, b, 3, 4, make([]float32, 12), backend.BF16)
	x, dy := b.Alloc(2, 4), b.Alloc(2, 3)
	dx, dw := b.Alloc(2, 4), b.Alloc(3, 4)
	big := b.Alloc(2, 8)
	n1, nw := b.Alloc(2, 4), b.Alloc(1, 4)
	q, kv, probs, dout := b.Alloc(3, 4), b.Alloc(5, 8), b.Alloc(6, 5), b.Alloc(3, 4)
	dq, dkv := b.Alloc(3, 4), b.Alloc(5, 8)
	grad := func(mod func(*backend.AttnGrad)) []backend.AttnGrad {
		g := backend.AttnGrad{Q: q, KV: kv, Probs: probs, DOut: dout, DQ: dq, DKV: dkv}
		mod(&g)
		return []backend.AttnGrad{g}
	}
	for _, tc := range []struct {
		name, want string
		f          func()
	}{
		{"bf16 weight", "plain: LinearBackward: a bf16 weight", func() { b.LinearBackward(dx, dw, dy, x, bf, backend.Store) }},
		{"linear shapes", "plain: LinearBackward: dx 2×4, dw 3×4, dy 2×3, x 2×3", func() { b.LinearBackward(dx, dw, dy, dy, w, backend.Store) }},
		{"linear epilogue", "plain: LinearBackward: epilogue 2", func() { b.LinearBackward(dx, dw, dy, x, w, backend.ReLU) }},
		{"dx over x", "plain: LinearBackward: dx and x overlap", func() { b.LinearBackward(x, dw, dy, x, w, backend.Store) }},
		{"dw over dx", "plain: LinearBackward: dw and dx overlap", func() {
			d := b.Alloc(3, 4)
			b.LinearBackward(d.RowSlice(0, 2), d, dy, x, w, backend.Store)
		}},
		{"other backend", "plain: LinearBackward: x belongs to another plain backend", func() {
			b.LinearBackward(dx, dw, dy, other.Alloc(2, 4), w, backend.Store)
		}},
		{"norm dw", "plain: RMSNormBackward: dx 2×4, dw 2×4", func() { b.RMSNormBackward(dx, n1, dy.ColSlice(0, 3), x, nw, 1e-6, backend.Store) }},
		{"norm dx over dy", "plain: RMSNormBackward: dx and dy overlap", func() { b.RMSNormBackward(n1, b.Alloc(1, 4), n1, x, nw, 1e-6, backend.Store) }},
		{"activate shifted", "plain: ActivateBackward: da and a overlap without being the same view", func() {
			b.ActivateBackward(big.ColSlice(1, 5), backend.Tensor{}, dx, big.ColSlice(0, 4), backend.Tensor{}, backend.ActSiLU)
		}},
		{"activate db without b", "plain: ActivateBackward: db 2×4 without b", func() { b.ActivateBackward(dx, n1, dx, x, backend.Tensor{}, backend.ActGELU) }},
		{"activate da is db", "plain: ActivateBackward: da and db overlap", func() { b.ActivateBackward(dx, dx, n1, x, n1, backend.ActReLU) }},
		{"activation", "plain: ActivateBackward: unknown activation 9", func() { b.ActivateBackward(dx, backend.Tensor{}, dx, x, backend.Tensor{}, 9) }},
		{"attention dq over kv", "plain: AttentionBackward: group 0's DQ and group 0's KV overlap", func() {
			b.AttentionBackward(grad(func(g *backend.AttnGrad) { g.DQ = kv.RowSlice(0, 3).ColSlice(0, 4) }), 2, backend.Tensor{})
		}},
		{"attention groups share dkv", "plain: AttentionBackward: group 0's DKV and group 1's DKV overlap", func() {
			gs := append(grad(func(*backend.AttnGrad) {}), grad(func(g *backend.AttnGrad) { g.DQ = b.Alloc(3, 4) })...)
			b.AttentionBackward(gs, 2, backend.Tensor{})
		}},
		{"attention probs", "plain: AttentionBackward: group 0: Q 3×4, KV 5×8, Probs 3×5", func() {
			b.AttentionBackward(grad(func(g *backend.AttnGrad) { g.Probs = probs.RowSlice(0, 3) }), 2, backend.Tensor{})
		}},
		{"attention dbias", "plain: AttentionBackward: a 2×4 dbias for 2 heads", func() {
			b.AttentionBackward(grad(func(*backend.AttnGrad) {}), 2, b.Alloc(2, 4))
		}},
		{"attention dbias over dq", "plain: AttentionBackward: dbias and group 0's DQ overlap", func() {
			b.AttentionBackward(grad(func(*backend.AttnGrad) {}), 2, dq.RowSlice(0, 2).ColSlice(0, 3))
		}},
		{"embed id", "plain: EmbedBackward: id 5 (at 1) of a 5-row dtable", func() { b.EmbedBackward(b.Alloc(5, 4), x, []int{0, 5}) }},
		{"embed overlap", "plain: EmbedBackward: dtable and dy overlap", func() { b.EmbedBackward(dw, dw.RowSlice(0, 2), []int{0, 1}) }},
		{"cross-entropy label", "plain: CrossEntropy: label 4 (at 1) of a 4-word vocabulary", func() { b.CrossEntropy(x, []int{0, 4}, 1) }},
		{"cross-entropy rows", "plain: CrossEntropy: 1 labels for 2 rows", func() { b.CrossEntropy(x, []int{0}, 1) }},
		{"dropout rate", "plain: Dropout: rate 1", func() { b.Dropout(x, 1, 0) }},
		{"dropout NaN", "plain: Dropout: rate NaN", func() { b.Dropout(x, float32(math.NaN()), 0) }},
		{"copy dims", "plain: Copy: dst 2×4, src 2×3", func() { b.Copy(x, dy) }},
		{"copy shifted", "plain: Copy: dst and src overlap without being the same view", func() { b.Copy(big.ColSlice(0, 4), big.ColSlice(2, 6)) }},
		{"add dims", "plain: AddTo: dst 2×4, src 3×4", func() { b.AddTo(x, dw) }},
	} {
		msg := expectPanic(tc.f)
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("%s: panic %q, want %q…", tc.name, msg, tc.want)
		}
	}
	closed := New()
	z := closed.Alloc(1, 1)
	closed.Close()
	if msg := expectPanic(func() { closed.Zero(z) }); msg != "plain: Zero after Close" {
		t.Errorf("after Close: %q", msg)
	}
}
