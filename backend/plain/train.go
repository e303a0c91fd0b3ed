package plain

import (
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
)

// Training numerics. The backward operations (backend.Trainer) are the accurate reference:
// they take float32 operands and write float32 results, but every value is computed in
// float64 from the float32 inputs and rounded to float32 once, when it is stored. Long sums
// are float64 chains in increasing index order: the dot products of LinearBackward (dx over
// the outputs, dw over the batch rows), the norm's row sums and its dw over the rows, every
// sum of the attention backward (dP, the softmax's row sum, dQ, dK, dV over queries, dbias
// over all groups), the softmax normaliser and log-sum-exp of CrossEntropy, SumSquares, and
// the rows EmbedBackward adds to one id. An accumulating destination (ep Add, dw, dbias,
// dtable) receives float32(float64(old) + sum): one rounding per call, never one per term.
// AddTo is float32(dst + src), exact to the rounding of the sum. Dropout stores
// float32(float64(x) / (1 − float64(p))). The derivatives are the exact ones of
// Activation.Func's definitions evaluated in float64 (relu' is 0 at 0, as torch's), and
// RMSNormBackward uses r = 1/√(mean(x²) + eps) in float64, not the forward's float32 inv.
// Determinism: one goroutine, fixed summation orders; every result depends only on the
// operands that define it, so batched and unbatched calls give the same bits.
var _ backend.Trainer = (*Backend)(nil)

// Zero sets every element of t to 0.
func (b *Backend) Zero(t backend.Tensor) {
	b.live("Zero")
	b.check("Zero", "t", t)
	for i := range t.Rows {
		clear(row(t, i))
	}
}

// Copy sets dst = src; they must have the same dims and be the same view or disjoint.
func (b *Backend) Copy(dst, src backend.Tensor) {
	const op = "Copy"
	b.live(op)
	b.check(op, "dst", dst)
	b.check(op, "src", src)
	sameDims(op, "dst", "src", dst, src)
	sameOrDisjoint(op, "dst", "src", dst, src)
	for i := range dst.Rows {
		copy(row(dst, i), row(src, i))
	}
}

// AddTo sets dst = float32(dst + src); dst may be src.
func (b *Backend) AddTo(dst, src backend.Tensor) {
	const op = "AddTo"
	b.live(op)
	b.check(op, "dst", dst)
	b.check(op, "src", src)
	sameDims(op, "dst", "src", dst, src)
	sameOrDisjoint(op, "dst", "src", dst, src)
	for i := range dst.Rows {
		d, s := row(dst, i), row(src, i)
		for j, v := range s {
			d[j] = float32(d[j] + v)
		}
	}
}

// SumSquares returns Σ t², each square exact in float64, summed in float64 row by row.
func (b *Backend) SumSquares(t backend.Tensor) float64 {
	b.live("SumSquares")
	b.check("SumSquares", "t", t)
	var s float64
	for i := range t.Rows {
		for _, v := range row(t, i) {
			s += float64(v) * float64(v)
		}
	}
	return s
}

// sameDims panics unless a and b have the same dims.
func sameDims(op, na, nb string, a, b backend.Tensor) {
	if a.Rows != b.Rows || a.Cols != b.Cols {
		panic(fmt.Sprintf("plain: %s: %s %d×%d, %s %d×%d", op, na, a.Rows, a.Cols, nb, b.Rows, b.Cols))
	}
}

// checkBackwardEpilogue panics unless ep is Store or Add.
func checkBackwardEpilogue(op string, ep backend.Epilogue) {
	if ep != backend.Store && ep != backend.Add {
		panic(fmt.Sprintf("plain: %s: epilogue %d (want Store or Add)", op, ep))
	}
}

// store returns what a backward epilogue writes for the float64 value v over old.
func store(ep backend.Epilogue, old float32, v float64) float32 {
	if ep == backend.Add {
		return float32(float64(old) + v)
	}
	return float32(v)
}

// LinearBackward is the gradient of y = x·wᵀ for a float32 weight w (n × k): dx = ep(dx,
// dy·w) unless dx is empty, dw += dyᵀ·x unless dw is empty (both n × k and k-wide). dx[i][c]
// = Σ_j dy[i][j]·w[j][c] and dw[j][c] = Σ_i dy[i][j]·x[i][c] are float64 chains in increasing
// j and i, rounded once with the destination's old value. dx must not overlap dy or x; dw
// must not overlap dy, x or dx.
func (b *Backend) LinearBackward(dx, dw, dy, x backend.Tensor, w backend.Weight, ep backend.Epilogue) {
	const op = "LinearBackward"
	b.live(op)
	b.check(op, "dx", dx)
	b.check(op, "dw", dw)
	b.check(op, "dy", dy)
	b.check(op, "x", x)
	pw := b.weight(op, w)
	if pw.dt != backend.F32 {
		panic(fmt.Sprintf("plain: %s: a %s weight (the backward takes f32 weights only)", op, pw.dt))
	}
	n, k := pw.rows, pw.cols
	if dy.Rows != x.Rows || dy.Cols != n || x.Cols != k ||
		!dx.Empty() && (dx.Rows != x.Rows || dx.Cols != k) || !dw.Empty() && (dw.Rows != n || dw.Cols != k) {
		panic(fmt.Sprintf("plain: %s: dx %d×%d, dw %d×%d, dy %d×%d, x %d×%d for a %d×%d weight",
			op, dx.Rows, dx.Cols, dw.Rows, dw.Cols, dy.Rows, dy.Cols, x.Rows, x.Cols, n, k))
	}
	checkBackwardEpilogue(op, ep)
	disjoint(op, "dx", "dy", dx, dy)
	disjoint(op, "dx", "x", dx, x)
	disjoint(op, "dw", "dy", dw, dy)
	disjoint(op, "dw", "x", dw, x)
	disjoint(op, "dw", "dx", dw, dx)
	acc := make([]float64, k)
	if !dx.Empty() {
		for i := range dy.Rows {
			clear(acc)
			for j, g := range row(dy, i) {
				wr := pw.f[j*k : (j+1)*k]
				for c, v := range wr {
					acc[c] += float64(g) * float64(v)
				}
			}
			d := row(dx, i)
			for c, v := range acc {
				d[c] = store(ep, d[c], v)
			}
		}
	}
	if !dw.Empty() {
		for j := range n {
			clear(acc)
			for i := range dy.Rows {
				g := float64(row(dy, i)[j])
				for c, v := range row(x, i) {
					acc[c] += g * float64(v)
				}
			}
			d := row(dw, j)
			for c, v := range acc {
				d[c] = float32(float64(d[c]) + v)
			}
		}
	}
}

// RMSNormBackward is the gradient of y = w ⊙ x·r with r = 1/√(mean(x²) + eps) per row: with
// g = w ⊙ dy, dx = ep(dx, r·g − x·r³·mean(x ⊙ g)) and dw += Σ_rows dy ⊙ x·r, all in float64
// (see the numerics above). dx must not overlap dy, x or w; dw must not overlap dx, dy, x
// or w.
func (b *Backend) RMSNormBackward(dx, dw, dy, x, w backend.Tensor, eps float32, ep backend.Epilogue) {
	const op = "RMSNormBackward"
	b.live(op)
	b.check(op, "dx", dx)
	b.check(op, "dw", dw)
	b.check(op, "dy", dy)
	b.check(op, "x", x)
	b.check(op, "w", w)
	if dx.Rows != x.Rows || dx.Cols != x.Cols || dy.Rows != x.Rows || dy.Cols != x.Cols ||
		w.Rows != 1 || w.Cols != x.Cols || dw.Rows != 1 || dw.Cols != x.Cols {
		panic(fmt.Sprintf("plain: %s: dx %d×%d, dw %d×%d, dy %d×%d, x %d×%d, w %d×%d",
			op, dx.Rows, dx.Cols, dw.Rows, dw.Cols, dy.Rows, dy.Cols, x.Rows, x.Cols, w.Rows, w.Cols))
	}
	checkBackwardEpilogue(op, ep)
	disjoint(op, "dx", "dy", dx, dy)
	disjoint(op, "dx", "x", dx, x)
	disjoint(op, "dx", "w", dx, w)
	disjoint(op, "dw", "dx", dw, dx)
	disjoint(op, "dw", "dy", dw, dy)
	disjoint(op, "dw", "x", dw, x)
	disjoint(op, "dw", "w", dw, w)
	if x.Cols == 0 {
		return
	}
	cols := float64(x.Cols)
	wr := row(w, 0)
	dwAcc := make([]float64, x.Cols)
	for i := range x.Rows {
		xr, gr, dr := row(x, i), row(dy, i), row(dx, i)
		var ss, xg float64
		for j, v := range xr {
			ss += float64(v) * float64(v)
			xg += float64(v) * (float64(wr[j]) * float64(gr[j]))
		}
		r := 1 / math.Sqrt(ss/cols+float64(eps))
		c := r * r * r * xg / cols
		for j, v := range xr {
			xv := float64(v)
			dwAcc[j] += float64(gr[j]) * xv * r
			dr[j] = store(ep, dr[j], r*(float64(wr[j])*float64(gr[j]))-xv*c)
		}
	}
	d := row(dw, 0)
	for j, v := range dwAcc {
		d[j] = float32(float64(d[j]) + v)
	}
}

// actValue returns act(x) and act'(x) in float64, the definitions of Activation.Func.
func actValue(act backend.Activation, x float64) (y, dy float64) {
	switch act {
	case backend.ActReLU:
		if x > 0 {
			return x, 1
		}
		return 0, 0
	case backend.ActGELUTanh:
		const k = 0.044715
		c := math.Sqrt(2 / math.Pi)
		t := math.Tanh(c * (x + k*x*x*x))
		return 0.5 * x * (1 + t), 0.5*(1+t) + 0.5*x*(1-t*t)*c*(1+3*k*x*x)
	case backend.ActGELU:
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		pdf := math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
		return x * cdf, cdf + x*pdf
	case backend.ActSiLU:
		s := 1 / (1 + math.Exp(-x))
		return x * s, s * (1 + x*(1-s))
	}
	panic(fmt.Sprintf("plain: ActivateBackward: unknown activation %d", act))
}

// ActivateBackward is the gradient of y = act(a) ⊙ b (b empty: y = act(a)): da = dy ⊙ b ⊙
// act'(a) and, when b is not empty, db = dy ⊙ act(a), each element computed in float64 and
// rounded once. It works element by element, reading an element's operands before writing
// its results, so each of da and db may be any of dy, a and b (the same view) but must not
// overlap them otherwise; da and db must be disjoint.
func (b *Backend) ActivateBackward(da, db, dy, a, g backend.Tensor, act backend.Activation) {
	const op = "ActivateBackward"
	b.live(op)
	b.check(op, "da", da)
	b.check(op, "db", db)
	b.check(op, "dy", dy)
	b.check(op, "a", a)
	b.check(op, "b", g)
	gated := !g.Empty()
	sameDims(op, "da", "a", da, a)
	sameDims(op, "dy", "a", dy, a)
	if gated {
		sameDims(op, "b", "a", g, a)
		sameDims(op, "db", "a", db, a)
	} else if !db.Empty() {
		panic(fmt.Sprintf("plain: %s: db %d×%d without b", op, db.Rows, db.Cols))
	}
	actValue(act, 0) // panics on an unknown activation
	for _, out := range []struct {
		name string
		t    backend.Tensor
	}{{"da", da}, {"db", db}} {
		sameOrDisjoint(op, out.name, "dy", out.t, dy)
		sameOrDisjoint(op, out.name, "a", out.t, a)
		sameOrDisjoint(op, out.name, "b", out.t, g)
	}
	disjoint(op, "da", "db", da, db)
	for i := range a.Rows {
		ar, gr, dar := row(a, i), row(dy, i), row(da, i)
		var br, dbr []float32
		if gated {
			br, dbr = row(g, i), row(db, i)
		}
		for j, v := range ar {
			y, d := actValue(act, float64(v))
			up := float64(gr[j])
			if gated {
				bv := float64(br[j])
				dar[j] = float32(up * bv * d)
				dbr[j] = float32(up * y)
				continue
			}
			dar[j] = float32(up * d)
		}
	}
}

// EmbedBackward adds row i of dy to row ids[i] of dtable for every i: the rows of one id are
// summed in float64 in increasing i and added to the table's row once. dtable must not
// overlap dy.
func (b *Backend) EmbedBackward(dtable, dy backend.Tensor, ids []int) {
	const op = "EmbedBackward"
	b.live(op)
	b.check(op, "dtable", dtable)
	b.check(op, "dy", dy)
	if dy.Rows != len(ids) || dy.Cols != dtable.Cols {
		panic(fmt.Sprintf("plain: %s: %d ids, dy %d×%d, into a %d×%d dtable", op, len(ids), dy.Rows, dy.Cols, dtable.Rows, dtable.Cols))
	}
	disjoint(op, "dtable", "dy", dtable, dy)
	slot := make(map[int]int) // id → its accumulator in sums
	var order []int           // the ids in order of first appearance
	for i, id := range ids {
		if id < 0 || id >= dtable.Rows {
			panic(fmt.Sprintf("plain: %s: id %d (at %d) of a %d-row dtable", op, id, i, dtable.Rows))
		}
		if _, ok := slot[id]; !ok {
			slot[id] = len(order)
			order = append(order, id)
		}
	}
	k := dy.Cols
	sums := make([]float64, len(order)*k)
	for i, id := range ids {
		s := sums[slot[id]*k : (slot[id]+1)*k]
		for j, v := range row(dy, i) {
			s[j] += float64(v)
		}
	}
	for n, id := range order {
		d := row(dtable, id)
		for j, v := range sums[n*k : (n+1)*k] {
			d[j] = float32(float64(d[j]) + v)
		}
	}
}

// CrossEntropy turns each row of logits into its gradient in place: for labels[i] ≥ 0,
// scale·(softmax(row) − onehot(labels[i])), the softmax in float64 (exp(x − max) summed in
// float64) and each element rounded once; for labels[i] < 0, zeros. It returns the sum of
// −log softmax(row)[label] = logsumexp(row) − row[label] over labelled rows (float64), and
// how many labelled rows have their label as their first argmax. Labels past the vocabulary
// (logits.Cols) panic.
func (b *Backend) CrossEntropy(logits backend.Tensor, labels []int, scale float32) (loss float64, correct int) {
	const op = "CrossEntropy"
	b.live(op)
	b.check(op, "logits", logits)
	if len(labels) != logits.Rows {
		panic(fmt.Sprintf("plain: %s: %d labels for %d rows of logits", op, len(labels), logits.Rows))
	}
	for i, l := range labels {
		if l >= logits.Cols {
			panic(fmt.Sprintf("plain: %s: label %d (at %d) of a %d-word vocabulary", op, l, i, logits.Cols))
		}
	}
	e := make([]float64, logits.Cols)
	s := float64(scale)
	for i, label := range labels {
		r := row(logits, i)
		if label < 0 {
			clear(r)
			continue
		}
		best := 0
		for j, v := range r {
			if v > r[best] {
				best = j
			}
		}
		if best == label {
			correct++
		}
		mx := float64(r[best])
		var sum float64
		for j, v := range r {
			e[j] = math.Exp(float64(v) - mx)
			sum += e[j]
		}
		loss += mx + math.Log(sum) - float64(r[label])
		for j := range r {
			p := e[j] / sum
			if j == label {
				p--
			}
			r[j] = float32(s * p)
		}
	}
	return loss, correct
}

// Dropout sets x = float32(float64(x) / (1 − p)) where backend.DropoutKeep(seed, i, j, p)
// keeps element (i, j) of the view, 0 where it drops it. p must be in [0, 1).
func (b *Backend) Dropout(x backend.Tensor, p float32, seed uint64) {
	const op = "Dropout"
	b.live(op)
	b.check(op, "x", x)
	if !(p >= 0 && p < 1) {
		panic(fmt.Sprintf("plain: %s: rate %v (want 0 ≤ p < 1)", op, p))
	}
	keep := 1 - float64(p)
	for i := range x.Rows {
		r := row(x, i)
		for j, v := range r {
			if backend.DropoutKeep(seed, i, j, p) {
				r[j] = float32(float64(v) / keep)
			} else {
				r[j] = 0
			}
		}
	}
}

// AttentionBackward is the gradient of Attention (attend) for every group: for head h, with
// P the forward's probabilities (Probs rows [h·N, (h+1)·N)), K_h and V_h the KV columns
// [h·dkv, (h+1)·dkv) and [inner+h·dkv, inner+(h+1)·dkv), and only the keys a query sees
// (causal: 0..Pos0+i):
//
//	dV_h = Pᵀ·dO_h    dP = dO_h·V_hᵀ    dS = P ⊙ (dP − rowsum(dP ⊙ P))
//	dQ_h = dS·K_h     dK_h = dSᵀ·Q_h    dbias[h][clamp(j − (Pos0+i), −D, D) + D] += dS[i][j]
//
// every sum a float64 chain, DQ and DKV written once per element (keys no query sees get
// zeros), dbias's sums over all groups added to it once. What the call writes (DQ, DKV of
// every group, dbias) must not overlap anything it reads or any other thing it writes.
func (b *Backend) AttentionBackward(groups []backend.AttnGrad, heads int, dbias backend.Tensor) {
	const op = "AttentionBackward"
	b.live(op)
	b.check(op, "dbias", dbias)
	if heads < 1 {
		panic(fmt.Sprintf("plain: %s: %d heads", op, heads))
	}
	dist := -1 // no bias
	if !dbias.Empty() {
		if dbias.Rows != heads || dbias.Cols%2 != 1 {
			panic(fmt.Sprintf("plain: %s: a %d×%d dbias for %d heads (want %d × 2D+1)", op, dbias.Rows, dbias.Cols, heads, heads))
		}
		dist = (dbias.Cols - 1) / 2
	}
	type named struct {
		name string
		t    backend.Tensor
	}
	writes := []named{{"dbias", dbias}}
	var reads []named
	for i := range groups {
		g := &groups[i]
		name := func(s string) string { return fmt.Sprintf("group %d's %s", i, s) }
		for _, t := range []named{{"Q", g.Q}, {"KV", g.KV}, {"Probs", g.Probs}, {"DOut", g.DOut}, {"DQ", g.DQ}, {"DKV", g.DKV}} {
			b.check(op, name(t.name), t.t)
		}
		n, inner := g.Q.Rows, g.Q.Cols
		if inner == 0 || inner%heads != 0 || g.Pos0 < 0 || g.KV.Cols != 2*inner ||
			g.DOut.Rows != n || g.DOut.Cols != inner || g.DQ.Rows != n || g.DQ.Cols != inner ||
			g.DKV.Rows != g.KV.Rows || g.DKV.Cols != g.KV.Cols ||
			!(g.Probs.Rows == heads*n && g.Probs.Cols == g.KV.Rows || g.Probs.Empty() && (n == 0 || g.KV.Rows == 0)) {
			panic(fmt.Sprintf("plain: %s: group %d: Q %d×%d, KV %d×%d, Probs %d×%d, DOut %d×%d, DQ %d×%d, DKV %d×%d, position %d, for %d heads",
				op, i, n, inner, g.KV.Rows, g.KV.Cols, g.Probs.Rows, g.Probs.Cols, g.DOut.Rows, g.DOut.Cols,
				g.DQ.Rows, g.DQ.Cols, g.DKV.Rows, g.DKV.Cols, g.Pos0, heads))
		}
		writes = append(writes, named{name("DQ"), g.DQ}, named{name("DKV"), g.DKV})
		reads = append(reads, named{name("Q"), g.Q}, named{name("KV"), g.KV}, named{name("Probs"), g.Probs}, named{name("DOut"), g.DOut})
	}
	for i, w := range writes {
		for _, o := range writes[i+1:] {
			disjoint(op, w.name, o.name, w.t, o.t)
		}
		for _, r := range reads {
			disjoint(op, w.name, r.name, w.t, r.t)
		}
	}
	var bsum []float64 // heads × (2D+1), the dbias sums of every group
	if dist >= 0 {
		bsum = make([]float64, heads*dbias.Cols)
	}
	for i := range groups {
		attendBackward(&groups[i], heads, bsum, dist)
	}
	for h := 0; h < heads && dist >= 0; h++ {
		d := row(dbias, h)
		for c, v := range bsum[h*dbias.Cols : (h+1)*dbias.Cols] {
			d[c] = float32(float64(d[c]) + v)
		}
	}
}

// attendBackward computes one group's DQ and DKV and adds its bias gradient to bsum (heads
// rows of 2·dist+1; nil when dist < 0).
func attendBackward(g *backend.AttnGrad, heads int, bsum []float64, dist int) {
	n, nk, inner := g.Q.Rows, g.KV.Rows, g.Q.Cols
	dkv := inner / heads
	width := 2*dist + 1
	dK, dV := make([]float64, nk*dkv), make([]float64, nk*dkv)
	dS, dq := make([]float64, nk), make([]float64, dkv)
	for h := range heads {
		clear(dK)
		clear(dV)
		lo, hi := h*dkv, (h+1)*dkv
		for i := range n {
			pos := g.Pos0 + i
			valid := nk
			if g.Causal {
				valid = min(nk, pos+1)
			}
			q, do := row(g.Q, i)[lo:hi], row(g.DOut, i)[lo:hi]
			var p []float32
			if valid > 0 {
				p = row(g.Probs, h*n+i)[:valid]
			}
			var rs float64
			for j, pj := range p {
				v := row(g.KV, j)[inner+lo : inner+hi]
				var dp float64
				for d, o := range do {
					dp += float64(o) * float64(v[d])
					dV[j*dkv+d] += float64(pj) * float64(o)
				}
				dS[j] = dp
				rs += dp * float64(pj)
			}
			clear(dq)
			for j, pj := range p {
				s := float64(pj) * (dS[j] - rs)
				k := row(g.KV, j)[lo:hi]
				for d := range dq {
					dq[d] += s * float64(k[d])
					dK[j*dkv+d] += s * float64(q[d])
				}
				if bsum != nil {
					bsum[h*width+min(max(j-pos, -dist), dist)+dist] += s
				}
			}
			out := row(g.DQ, i)[lo:hi]
			for d, v := range dq {
				out[d] = float32(v)
			}
		}
		for j := range nk {
			r := row(g.DKV, j)
			for d := range dkv {
				r[lo+d] = float32(dK[j*dkv+d])
				r[inner+lo+d] = float32(dV[j*dkv+d])
			}
		}
	}
}
