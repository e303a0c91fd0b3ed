package plain

import (
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
)

// Embed sets row i of dst to row ids[i] of table: the stored float32 values for F32 and
// BF16, float32(q)·scale for Int8.
func (b *Backend) Embed(dst backend.Tensor, table backend.Weight, ids []int) {
	b.live("Embed")
	b.check("Embed", "dst", dst)
	w := b.weight("Embed", table)
	if dst.Rows != len(ids) || dst.Cols != w.cols {
		panic(fmt.Sprintf("plain: Embed: %d ids of a %d×%d table into a %d×%d tensor", len(ids), w.rows, w.cols, dst.Rows, dst.Cols))
	}
	for i, id := range ids {
		if id < 0 || id >= w.rows {
			panic(fmt.Sprintf("plain: Embed: id %d (at %d) of a %d-row table", id, i, w.rows))
		}
		d := row(dst, i)
		k := w.cols
		if w.dt == backend.Int8 {
			s := w.scale[id]
			for j, q := range w.q[id*k : (id+1)*k] {
				d[j] = float32(float32(q) * s)
			}
			continue
		}
		copy(d, w.f[id*k:(id+1)*k])
	}
}

// RMSNorm sets each row of dst to w ⊙ x · inv with inv = rsqrt(mean(x²) + eps): the sum of
// squares accumulated in float64 (its products are exact), the mean rounded to float32,
// eps added in float32, inv = float32(1/√(float64 of that)), then float32(w·float32(x·inv)).
// dst may be x.
func (b *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	b.live("RMSNorm")
	b.check("RMSNorm", "dst", dst)
	b.check("RMSNorm", "x", x)
	b.check("RMSNorm", "w", w)
	if dst.Rows != x.Rows || dst.Cols != x.Cols || w.Rows != 1 || w.Cols != x.Cols {
		panic(fmt.Sprintf("plain: RMSNorm: dst %d×%d, x %d×%d, w %d×%d", dst.Rows, dst.Cols, x.Rows, x.Cols, w.Rows, w.Cols))
	}
	sameOrDisjoint("RMSNorm", "dst", "x", dst, x)
	disjoint("RMSNorm", "dst", "w", dst, w)
	if x.Cols == 0 {
		return
	}
	wr := row(w, 0)
	for i := range x.Rows {
		xr, dr := row(x, i), row(dst, i)
		var ss float64
		for _, v := range xr {
			ss += float64(float64(v) * float64(v))
		}
		variance := float32(ss / float64(len(xr)))
		inv := float32(1 / math.Sqrt(float64(float32(variance+eps))))
		for j, v := range xr {
			dr[j] = float32(wr[j] * float32(v*inv))
		}
	}
}

// Linear sets dst = ep(dst, x·wᵀ) (see mulRow for the arithmetic).
func (b *Backend) Linear(dst, x backend.Tensor, w backend.Weight, ep backend.Epilogue) {
	b.live("Linear")
	b.check("Linear", "dst", dst)
	b.check("Linear", "x", x)
	pw := b.weight("Linear", w)
	if dst.Rows != x.Rows || dst.Cols != pw.rows || x.Cols != pw.cols {
		panic(fmt.Sprintf("plain: Linear: dst %d×%d = x %d×%d · (%d×%d weight)ᵀ", dst.Rows, dst.Cols, x.Rows, x.Cols, pw.rows, pw.cols))
	}
	checkEpilogue("Linear", ep)
	disjoint("Linear", "dst", "x", dst, x)
	q := pw.scratch()
	for i := range x.Rows {
		pw.mulRow(row(dst, i), row(x, i), ep, q)
	}
}

func checkEpilogue(op string, ep backend.Epilogue) {
	if ep > backend.ReLU {
		panic(fmt.Sprintf("plain: %s: unknown epilogue %d", op, ep))
	}
}

// scratch returns the buffer mulRow quantizes an activation row into (nil unless Int8).
func (w *weight) scratch() []int8 {
	if w.dt != backend.Int8 {
		return nil
	}
	return make([]int8, w.cols)
}

// mulRow sets dst[j] = ep(dst[j], x·w[j]) for every row j of w.
//
// F32 and BF16: the chain acc = float32(acc + float32(x[k]·w[j][k])) for k = 0, 1, ...: the
// generic path of backend/cpu (kernels.TileF32's Go twin rounds the product and the sum;
// the assembly paths fuse them, so they differ from this in the last bits).
//
// Int8: what every path of backend/cpu computes (kernels.QuantizeRow then TileI8, exact in
// integers): x is quantized as quantizeRow does, giving q and scale sa; then
// acc = Σ_k int32(q[k])·int32(w.q[j][k]) exactly in int32 (the CPU's zero padding of K to a
// multiple of 4 adds nothing), and the result is float32(acc)·float32(sa·w.scale[j]).
func (w *weight) mulRow(dst, x []float32, ep backend.Epilogue, q []int8) {
	k := w.cols
	if w.dt == backend.Int8 {
		sa := quantizeRow(q, x)
		for j := range w.rows {
			var acc int32
			for kk, wq := range w.q[j*k : (j+1)*k] {
				acc += int32(q[kk]) * int32(wq)
			}
			dst[j] = epilogue(ep, dst[j], float32(float32(acc)*float32(sa*w.scale[j])))
		}
		return
	}
	for j := range w.rows {
		wr := w.f[j*k : (j+1)*k]
		var acc float32
		for kk, v := range x {
			acc = float32(acc + float32(v*wr[kk]))
		}
		dst[j] = epilogue(ep, dst[j], acc)
	}
}

// quantizeRow quantizes x symmetrically into q and returns its scale, as
// kernels.QuantizeRow: amax = max |x[i]| (float32), inv = float32(127/amax),
// q[i] = clamp(roundToEven(float32(x[i]·inv)), -127, 127), scale = float32(amax/127); an
// all-zero row is all zeros with scale 0. (The CPU's AVX-512 path stores q+128 and corrects
// by 128·Σw in integers: the same values.)
func quantizeRow(q []int8, x []float32) float32 {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	if amax == 0 {
		clear(q[:len(x)])
		return 0
	}
	inv := 127 / amax
	for i, v := range x {
		r := math.RoundToEven(float64(float32(v * inv)))
		q[i] = int8(min(max(r, -127), 127))
	}
	return amax / 127
}

// epilogue returns ep(old, x): Store x, Add float32(old + x), ReLU x if x > 0 else 0 (NaN
// gives 0, as the CPU's epilogue).
func epilogue(ep backend.Epilogue, old, x float32) float32 {
	switch ep {
	case backend.Add:
		return float32(old + x)
	case backend.ReLU:
		if x > 0 {
			return x
		}
		return 0
	}
	return x
}

// Activate sets a = act(a) ⊙ b, or a = act(a) when b is empty. act is evaluated in float64
// from the float32 input and rounded once to float32 (relu is max(x, 0)); the gate product
// is float32(act(a)·b). b may be a.
func (b *Backend) Activate(a, g backend.Tensor, act backend.Activation) {
	b.live("Activate")
	b.check("Activate", "a", a)
	b.check("Activate", "b", g)
	gated := !g.Empty()
	if gated && (g.Rows != a.Rows || g.Cols != a.Cols) {
		panic(fmt.Sprintf("plain: Activate: a %d×%d, b %d×%d", a.Rows, a.Cols, g.Rows, g.Cols))
	}
	f := act.Func()
	sameOrDisjoint("Activate", "a", "b", a, g)
	for i := range a.Rows {
		ar := row(a, i)
		var gr []float32
		if gated {
			gr = row(g, i)
		}
		for j, v := range ar {
			y := f(v)
			if gated {
				y = float32(y * gr[j])
			}
			ar[j] = y
		}
	}
}

// Scale sets x = float32(s·x).
func (b *Backend) Scale(x backend.Tensor, s float32) {
	b.live("Scale")
	b.check("Scale", "x", x)
	for i := range x.Rows {
		xr := row(x, i)
		for j, v := range xr {
			xr[j] = float32(s * v)
		}
	}
}

// Logits sets dst (exactly hidden.Rows × vocab values) to (scale·hidden)·headᵀ, scaling
// hidden in place first when scale is not 1 (as Scale), then the product as Linear's.
func (b *Backend) Logits(dst []float32, hidden backend.Tensor, head backend.Weight, scale float32) {
	b.live("Logits")
	b.check("Logits", "hidden", hidden)
	w := b.weight("Logits", head)
	if hidden.Cols != w.cols || len(dst) != hidden.Rows*w.rows {
		panic(fmt.Sprintf("plain: Logits: %d values = %d×%d hidden · (%d×%d head)ᵀ", len(dst), hidden.Rows, hidden.Cols, w.rows, w.cols))
	}
	if scale != 1 {
		b.Scale(hidden, scale)
	}
	q := w.scratch()
	for i := range hidden.Rows {
		w.mulRow(dst[i*w.rows:(i+1)*w.rows], row(hidden, i), backend.Store, q)
	}
}

// LogSumExp returns max + log Σ exp(row[i] - max): each exponential
// float32(math.Exp(float64(row[i]-max))), their sum in float64; −Inf for a row of −Inf.
// It panics on an empty row.
func (b *Backend) LogSumExp(row []float32) float64 {
	if len(row) == 0 {
		panic("plain: LogSumExp of an empty row")
	}
	mx := row[0]
	for _, v := range row[1:] {
		mx = max(mx, v)
	}
	if math.IsInf(float64(mx), -1) {
		return math.Inf(-1)
	}
	var sum float64
	for _, v := range row {
		sum += float64(float32(math.Exp(float64(v - mx))))
	}
	return float64(mx) + math.Log(sum)
}

// Argmax returns the index of the first largest value of row; it panics on an empty row.
func (b *Backend) Argmax(row []float32) int {
	if len(row) == 0 {
		panic("plain: Argmax of an empty row")
	}
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}
