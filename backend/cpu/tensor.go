package cpu

import (
	"fmt"
	"math"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// buffer is the storage of the CPU's tensors: Go memory (activations are short-lived and
// scanned by nobody; the weights are in the arena).
type buffer struct{ f []float32 }

// data returns the host elements a tensor view spans: row i at [i·Stride, i·Stride+Cols).
func data(t backend.Tensor) []float32 {
	if t.Empty() {
		return nil
	}
	b, ok := t.Buf.(*buffer)
	if !ok {
		panic(fmt.Sprintf("cpu: a tensor of another backend (%T)", t.Buf))
	}
	if t.Stride < t.Cols {
		panic(fmt.Sprintf("cpu: a %d×%d tensor with stride %d", t.Rows, t.Cols, t.Stride))
	}
	return b.f[t.Off : t.Off+(t.Rows-1)*t.Stride+t.Cols]
}

// Alloc returns a new zeroed rows × cols tensor (backend.Backend).
func (c *Backend) Alloc(rows, cols int) backend.Tensor {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("cpu: alloc %d×%d", rows, cols))
	}
	return backend.Tensor{Rows: rows, Cols: cols, Stride: cols, Buf: &buffer{f: make([]float32, rows*cols)}}
}

// Upload copies host values into dst (backend.Backend).
func (c *Backend) Upload(dst backend.Tensor, src []float32) {
	d := data(dst)
	for i := range dst.Rows {
		copy(d[i*dst.Stride:i*dst.Stride+dst.Cols], src[i*dst.Cols:(i+1)*dst.Cols])
	}
}

// Download copies src into host values (backend.Backend).
func (c *Backend) Download(dst []float32, src backend.Tensor) {
	s := data(src)
	for i := range src.Rows {
		copy(dst[i*src.Cols:(i+1)*src.Cols], s[i*src.Stride:i*src.Stride+src.Cols])
	}
}

// Embed gathers rows of a packed weight (backend.Backend): exact for f32 and bf16, q·scale
// for int8.
func (c *Backend) Embed(dst backend.Tensor, table backend.Weight, ids []int) {
	w := table.(*Packed)
	if len(ids) != dst.Rows || dst.Cols != w.k {
		panic(fmt.Sprintf("cpu: embed %d ids of a %d×%d table into %d×%d", len(ids), w.n, w.k, dst.Rows, dst.Cols))
	}
	d := data(dst)
	for i, id := range ids {
		w.Row(id, d[i*dst.Stride:i*dst.Stride+dst.Cols])
	}
}

// Linear sets dst = ep(dst, x·wᵀ) on the workers (backend.Backend).
func (c *Backend) Linear(dst, x backend.Tensor, w backend.Weight, ep backend.Epilogue) {
	p := w.(*Packed)
	if x.Rows != dst.Rows || x.Cols != p.k || dst.Cols != p.n {
		panic(fmt.Sprintf("cpu: linear %d×%d · (%d×%d)ᵀ into %d×%d", x.Rows, x.Cols, p.n, p.k, dst.Rows, dst.Cols))
	}
	if x.Rows == 0 {
		return
	}
	c.Gemm(data(dst), dst.Stride, data(x), x.Stride, x.Rows, p, kernels.Op(ep), c.pool)
}

// Scale sets x = s·x (backend.Backend).
func (c *Backend) Scale(x backend.Tensor, s float32) {
	d := data(x)
	for i := range x.Rows {
		c.k.Scale(d[i*x.Stride:i*x.Stride+x.Cols], s)
	}
}

// Logits is the LM head into host rows (backend.Backend): the CPU's tensors are host
// memory, so the product writes dst directly.
func (c *Backend) Logits(dst []float32, hidden backend.Tensor, head backend.Weight, scale float32) {
	p := head.(*Packed)
	if hidden.Cols != p.k || len(dst) < hidden.Rows*p.n {
		panic(fmt.Sprintf("cpu: logits of %d×%d hidden by a %d×%d head into %d values", hidden.Rows, hidden.Cols, p.n, p.k, len(dst)))
	}
	if hidden.Rows == 0 {
		return
	}
	if scale != 1 {
		c.Scale(hidden, scale)
	}
	c.Gemm(dst, p.n, data(hidden), hidden.Stride, hidden.Rows, p, kernels.Store, c.pool)
}

// LogSumExp is log Σ exp(row) with float32 exponentials (kernels.Exp) summed in float64
// (backend.Backend).
func (c *Backend) LogSumExp(row []float32) float64 {
	mx := c.k.Max(row)
	if math.IsInf(float64(mx), -1) {
		return math.Inf(-1)
	}
	return float64(mx) + math.Log(c.k.ExpSum(nil, row, mx))
}

// Argmax is the index of the first largest value of row (backend.Backend).
func (c *Backend) Argmax(row []float32) int { return c.k.Argmax(row) }

// rowsPerItem is how many rows of an element-wise pass one parallel work item takes, for
// rows of d values: about 16K values, a few µs.
func rowsPerItem(d int) int { return max(1, 16384/d) }

// RMSNorm is HF's T5LayerNorm of every row, in blocks of rows on the workers
// (backend.Backend).
func (c *Backend) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	if dst.Rows != x.Rows || dst.Cols != x.Cols || w.Cols != x.Cols || w.Rows != 1 {
		panic(fmt.Sprintf("cpu: rms norm of %d×%d by %d×%d into %d×%d", x.Rows, x.Cols, w.Rows, w.Cols, dst.Rows, dst.Cols))
	}
	j := normJob{c: c, dst: data(dst), x: data(x), w: data(w), lddst: dst.Stride, ldx: x.Stride, d: x.Cols, eps: eps, per: rowsPerItem(x.Cols), rows: x.Rows}
	if j.rows <= j.per {
		j.normRows(0, j.rows)
		return
	}
	DoRecycled(c.pool, &c.normJobs, (j.rows+j.per-1)/j.per, j)
}

// normJob is one RMSNorm cut into blocks of per rows (Job).
type normJob struct {
	c          *Backend
	dst, x, w  []float32
	lddst, ldx int
	d          int
	eps        float32
	per, rows  int
}

// Item normalises block i.
func (j *normJob) Item(_, i int) { j.normRows(i*j.per, min(j.rows, (i+1)*j.per)) }

func (j *normJob) normRows(lo, hi int) {
	d, ks := j.d, j.c.k
	for r := lo; r < hi; r++ {
		xr := j.x[r*j.ldx : r*j.ldx+d]
		variance := float32(ks.SumSquares(xr) / float64(d))
		inv := float32(1 / math.Sqrt(float64(variance+j.eps)))
		ks.RMSScale(j.dst[r*j.lddst:r*j.lddst+d], xr, j.w, inv)
	}
}

// Activate applies an FFN activation, gated or not, in blocks of rows on the workers
// (backend.Backend). gelu_new has a vector kernel; the others are scalar, in float64.
func (c *Backend) Activate(a, b backend.Tensor, act backend.Activation) {
	if !b.Empty() && (b.Rows != a.Rows || b.Cols != a.Cols) {
		panic(fmt.Sprintf("cpu: activate %d×%d gated by %d×%d", a.Rows, a.Cols, b.Rows, b.Cols))
	}
	j := actJob{c: c, a: data(a), lda: a.Stride, d: a.Cols, act: act, per: rowsPerItem(a.Cols), rows: a.Rows}
	if !b.Empty() {
		j.b, j.ldb = data(b), b.Stride
	}
	if j.rows <= j.per {
		j.rowsOf(0, j.rows)
		return
	}
	DoRecycled(c.pool, &c.actJobs, (j.rows+j.per-1)/j.per, j)
}

// actJob is one Activate cut into blocks of per rows (Job).
type actJob struct {
	c         *Backend
	a, b      []float32
	lda, ldb  int
	d         int
	act       backend.Activation
	per, rows int
}

// Item activates block i.
func (j *actJob) Item(_, i int) { j.rowsOf(i*j.per, min(j.rows, (i+1)*j.per)) }

func (j *actJob) rowsOf(lo, hi int) {
	d := j.d
	if j.lda == d && (j.b == nil || j.ldb == d) {
		// Contiguous rows go to the kernel as one run, as the engine always did (a tail per
		// run, not per row, when d is not a multiple of the vector width).
		var b []float32
		if j.b != nil {
			b = j.b[lo*d : hi*d]
		}
		j.run(j.a[lo*d:hi*d], b)
		return
	}
	for r := lo; r < hi; r++ {
		var b []float32
		if j.b != nil {
			b = j.b[r*j.ldb : r*j.ldb+d]
		}
		j.run(j.a[r*j.lda:r*j.lda+d], b)
	}
}

func (j *actJob) run(a, b []float32) {
	if j.act == backend.ActGELUTanh {
		j.c.k.GELUTanh(a, b)
		return
	}
	f := j.act.Func()
	for i, x := range a {
		a[i] = f(x)
		if b != nil {
			a[i] *= b[i]
		}
	}
}
