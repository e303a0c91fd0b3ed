package backendtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/t5zoo/t5zoo/backend"
)

// The checks of one operation each: a check runs the operation on a backend with operands
// drawn from rng and returns what differs from the reference, or nil.

// epName names an epilogue.
func epName(ep backend.Epilogue) string {
	switch ep {
	case backend.Store:
		return "store"
	case backend.Add:
		return "add"
	case backend.ReLU:
		return "relu"
	}
	return fmt.Sprintf("Epilogue(%d)", ep)
}

// actName names an activation as HF does.
func actName(a backend.Activation) string {
	switch a {
	case backend.ActReLU:
		return "relu"
	case backend.ActGELUTanh:
		return "gelu_new"
	case backend.ActGELU:
		return "gelu"
	case backend.ActSiLU:
		return "silu"
	}
	return fmt.Sprintf("Activation(%d)", a)
}

func viewName(view bool) string {
	if view {
		return ",view"
	}
	return ""
}

// elemBytes is the least a weight element can occupy in dt.
func elemBytes(dt backend.DType) int64 {
	switch dt {
	case backend.BF16:
		return 2
	case backend.Int8:
		return 1
	}
	return 4
}

// prepareRand prepares a random rows × cols weight in dt, from a QuantizedSource of random
// int8 rows when quant (int8 only), and returns it with its reference.
func prepareRand(be backend.Backend, dt backend.DType, rows, cols int, quant bool, rng *rand.Rand) (backend.Weight, weightRef, error) {
	var src backend.Source
	var ref weightRef
	if quant && dt == backend.Int8 {
		qs := randQuant(rng, rows, cols)
		src, ref = qs, refQuantized(rows, cols, qs.q, qs.scales)
	} else {
		m := randMat(rng, rows, cols, 1)
		src, ref = source{m}, refWeight(m, dt)
	}
	w, err := be.Prepare(src, dt)
	if err != nil {
		return nil, ref, fmt.Errorf("prepare a %d×%d %v weight: %w", rows, cols, dt, err)
	}
	if err := checkWeight(w, dt, rows, cols); err != nil {
		return nil, ref, err
	}
	return w, ref, nil
}

// checkWeight checks what a weight reports of itself.
func checkWeight(w backend.Weight, dt backend.DType, rows, cols int) error {
	if r, c := w.Dims(); r != rows || c != cols {
		return fmt.Errorf("a %d×%d weight reports dims %d×%d", rows, cols, r, c)
	}
	if w.DType() != dt {
		return fmt.Errorf("a %v weight reports dtype %v", dt, w.DType())
	}
	if least := int64(rows*cols) * elemBytes(dt); w.Bytes() < least {
		return fmt.Errorf("a %d×%d %v weight reports %d bytes, below the %d of its elements", rows, cols, dt, w.Bytes(), least)
	}
	return nil
}

// linearAgainst runs dst = ep(d0, x·wᵀ) on be for the weight w whose reference is ref, with
// x and dst views when view.
func linearAgainst(be backend.Backend, w backend.Weight, ref weightRef, x, d0 mat, ep backend.Epilogue, view bool, rng *rand.Rand) error {
	xr, dr := place(be, x, view, rng), place(be, d0, view, rng)
	be.Linear(dr.t, xr.t, w, ep)
	got, err := dr.read(be)
	if err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	want, tol := refLinear(x, ref, d0, ep)
	if err := within(got.v, want, tol, ref.rows); err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	return xr.unchanged(be, "x")
}

// linearCase is one Linear check: dst (rows × out) = ep(dst, x (rows × in) · wᵀ).
type linearCase struct {
	dt            backend.DType
	rows, out, in int
	ep            backend.Epilogue
	view          bool // x and dst are views
	grid          bool // x's rows lie on their int8 grid (exact activation quantization)
	quant         bool // an int8 weight from a QuantizedSource
}

func (c linearCase) name() string {
	s := fmt.Sprintf("%v/rows=%d,out=%d,in=%d,%s%s", c.dt, c.rows, c.out, c.in, epName(c.ep), viewName(c.view))
	if c.grid {
		s += ",grid"
	}
	if c.quant {
		s += ",quantized"
	}
	return s
}

func (c linearCase) check(be backend.Backend, rng *rand.Rand) error {
	w, ref, err := prepareRand(be, c.dt, c.out, c.in, c.quant, rng)
	if err != nil {
		return err
	}
	x := randMat(rng, c.rows, c.in, 1)
	if c.grid {
		x = gridMat(rng, c.rows, c.in)
	}
	return linearAgainst(be, w, ref, x, randMat(rng, c.rows, c.out, 1), c.ep, c.view, rng)
}

// embedCase is one Embed check: n ids into a table of vocab rows of d.
type embedCase struct {
	dt          backend.DType
	vocab, d, n int
	view, quant bool
}

func (c embedCase) name() string {
	s := fmt.Sprintf("%v/vocab=%d,d=%d,ids=%d%s", c.dt, c.vocab, c.d, c.n, viewName(c.view))
	if c.quant {
		s += ",quantized"
	}
	return s
}

func (c embedCase) check(be backend.Backend, rng *rand.Rand) error {
	w, ref, err := prepareRand(be, c.dt, c.vocab, c.d, c.quant, rng)
	if err != nil {
		return err
	}
	return embedAgainst(be, w, ref, c.n, c.view, rng)
}

// embedAgainst looks up n ids (the first and last rows among them) in w. The rows of f32 and
// bf16 tables are exact (bf16 widens exactly); an int8 row is float32(q)·scale, one
// rounding: tol = u·|q·scale|.
func embedAgainst(be backend.Backend, w backend.Weight, ref weightRef, n int, view bool, rng *rand.Rand) error {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(ref.rows)
	}
	if n > 1 {
		ids[0], ids[n-1] = ref.rows-1, 0
	}
	dr := place(be, randMat(rng, n, ref.cols, 1), view, rng)
	be.Embed(dr.t, w, ids)
	got, err := dr.read(be)
	if err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	want := newMat(n, ref.cols)
	for i, id := range ids {
		copy(want.row(i), ref.row[id*ref.cols:(id+1)*ref.cols])
	}
	if !ref.int8 {
		err = sameBits(got.v, want.v, ref.cols)
	} else {
		wf := f64(want.v)
		tol := make([]float64, len(wf))
		for i, v := range wf {
			tol[i] = u * math.Abs(v)
		}
		err = within(got.v, wf, tol, ref.cols)
	}
	if err != nil {
		return fmt.Errorf("ids %v: %w", ids[:min(n, 8)], err)
	}
	return nil
}

// uploadCase is one Upload/Download round trip through a view of rows × cols.
type uploadCase struct {
	rows, cols int
	view       bool
}

func (c uploadCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d%s", c.rows, c.cols, viewName(c.view))
}

// check: a fresh allocation reads as zeros; Upload into the view changes exactly the view;
// Download of the view and of the whole allocation read back exactly what was written; a
// view of a view (RowSlice of a ColSlice of a RowSlice) addresses the same elements.
func (c uploadCase) check(be backend.Backend, rng *rand.Rand) error {
	pr, pc, r0, c0 := c.rows, c.cols, 0, 0
	if c.view {
		r0, c0 = 1+rng.IntN(3), 1+rng.IntN(3)
		pr, pc = r0+c.rows+1+rng.IntN(2), c0+c.cols+1+rng.IntN(4)
	}
	p := be.Alloc(pr, pc)
	if p.Rows != pr || p.Cols != pc || p.Stride < pc {
		return fmt.Errorf("Alloc(%d, %d) returned a %d×%d tensor of stride %d", pr, pc, p.Rows, p.Cols, p.Stride)
	}
	all := make([]float32, pr*pc)
	for i := range all {
		all[i] = float32(math.NaN())
	}
	be.Download(all, p)
	if err := sameBits(all, make([]float32, pr*pc), pc); err != nil {
		return fmt.Errorf("a new %d×%d tensor is not zero: %w", pr, pc, err)
	}
	host := make([]float32, pr*pc)
	for i := range host {
		host[i] = sentinel(i)
	}
	be.Upload(p, host)
	v := p.RowSlice(r0, r0+c.rows).ColSlice(c0, c0+c.cols)
	src := randMat(rng, c.rows, c.cols, 1)
	be.Upload(v, slices.Clone(src.v))
	for i := range c.rows {
		copy(host[(r0+i)*pc+c0:], src.row(i))
	}
	be.Download(all, p)
	if err := sameBits(all, host, pc); err != nil {
		return fmt.Errorf("the %d×%d allocation after an upload into its %d×%d view at (%d, %d): %w", pr, pc, c.rows, c.cols, r0, c0, err)
	}
	got := make([]float32, c.rows*c.cols)
	be.Download(got, v)
	if err := sameBits(got, src.v, c.cols); err != nil {
		return fmt.Errorf("download of the view: %w", err)
	}
	if c.rows >= 2 && c.cols >= 2 {
		// The view of rows [1, rows) and columns [1, cols) of v, made in another order.
		vv := p.ColSlice(c0, c0+c.cols).RowSlice(r0, r0+c.rows).ColSlice(1, c.cols).RowSlice(1, c.rows)
		got := make([]float32, (c.rows-1)*(c.cols-1))
		be.Download(got, vv)
		if err := sameBits(got, src.rowRange(1, c.rows).colRange(1, c.cols).v, c.cols-1); err != nil {
			return fmt.Errorf("download of a view of the view: %w", err)
		}
	}
	return nil
}

// prepareCase is one Prepare check.
type prepareCase struct {
	dt         backend.DType
	rows, cols int
	quant      bool
}

func (c prepareCase) name() string {
	s := fmt.Sprintf("%v/%dx%d", c.dt, c.rows, c.cols)
	if c.quant {
		s += ",quantized"
	}
	return s
}

// check: the weight reports its dims, dtype and at least its elements' bytes;
// WeightBytes grows by exactly its Bytes; a failing source is an error, not a weight.
func (c prepareCase) check(be backend.Backend, rng *rand.Rand) error {
	before := be.WeightBytes()
	w, _, err := prepareRand(be, c.dt, c.rows, c.cols, c.quant, rng)
	if err != nil {
		return err
	}
	if after := be.WeightBytes(); after-before != w.Bytes() {
		return fmt.Errorf("WeightBytes went from %d to %d for a weight of %d bytes", before, after, w.Bytes())
	}
	if w, err := be.Prepare(failing{c.rows, c.cols}, c.dt); err == nil {
		return fmt.Errorf("Prepare of a failing source returned %T and no error", w)
	}
	return nil
}

// reloadCase is one Reload check.
type reloadCase struct {
	dt         backend.DType
	rows, cols int
	quant      bool
}

func (c reloadCase) name() string { return prepareCase(c).name() }

// check: a weight reloaded from another source multiplies and embeds as that source, with
// the same dims, dtype and bytes (in place: WeightBytes unchanged); a source of other
// dims is an error.
func (c reloadCase) check(be backend.Backend, rng *rand.Rand) error {
	w, ref, err := prepareRand(be, c.dt, c.rows, c.cols, c.quant, rng)
	if err != nil {
		return err
	}
	x := randMat(rng, 7, c.cols, 1)
	if err := linearAgainst(be, w, ref, x, randMat(rng, 7, c.rows, 1), backend.Store, false, rng); err != nil {
		return fmt.Errorf("before Reload: %w", err)
	}
	bytes, total := w.Bytes(), be.WeightBytes()
	var src backend.Source
	if c.quant && c.dt == backend.Int8 {
		qs := randQuant(rng, c.rows, c.cols)
		src, ref = qs, refQuantized(c.rows, c.cols, qs.q, qs.scales)
	} else {
		m := randMat(rng, c.rows, c.cols, 1)
		src, ref = source{m}, refWeight(m, c.dt)
	}
	if err := be.Reload(w, src); err != nil {
		return fmt.Errorf("Reload: %w", err)
	}
	if err := checkWeight(w, c.dt, c.rows, c.cols); err != nil {
		return fmt.Errorf("after Reload: %w", err)
	}
	if w.Bytes() != bytes || be.WeightBytes() != total {
		return fmt.Errorf("Reload changed the weight's bytes from %d to %d, WeightBytes from %d to %d", bytes, w.Bytes(), total, be.WeightBytes())
	}
	if err := linearAgainst(be, w, ref, x, randMat(rng, 7, c.rows, 1), backend.Add, true, rng); err != nil {
		return fmt.Errorf("after Reload: %w", err)
	}
	if err := embedAgainst(be, w, ref, 5, true, rng); err != nil {
		return fmt.Errorf("after Reload: embed: %w", err)
	}
	if err := be.Reload(w, source{randMat(rng, c.rows+1, c.cols, 1)}); err == nil {
		return fmt.Errorf("Reload of a %d×%d weight from a %d×%d source: no error", c.rows, c.cols, c.rows+1, c.cols)
	}
	return nil
}

// normCase is one RMSNorm check.
type normCase struct {
	rows, cols int
	eps        float32
	scale      float64 // of x: 10⁻³ makes mean(x²) ~ 10⁻⁶, as large as eps = 10⁻⁶
	view       bool
}

func (c normCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d,eps=%g,x~%g%s", c.rows, c.cols, c.eps, c.scale, viewName(c.view))
}

func (c normCase) check(be backend.Backend, rng *rand.Rand) error {
	x, w := randMat(rng, c.rows, c.cols, c.scale), randMat(rng, 1, c.cols, 1)
	xr, wr := place(be, x, c.view, rng), place(be, w, c.view, rng)
	dr := place(be, randMat(rng, c.rows, c.cols, 1), c.view, rng)
	be.RMSNorm(dr.t, xr.t, wr.t, c.eps)
	got, err := dr.read(be)
	if err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	want, tol := refRMSNorm(x, w.v, c.eps)
	if err := within(got.v, want, tol, c.cols); err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	return errors.Join(xr.unchanged(be, "x"), wr.unchanged(be, "w"))
}

// actCase is one Activate check.
type actCase struct {
	rows, cols int
	act        backend.Activation
	gated      bool // with b
	view       bool
}

func (c actCase) name() string {
	s := fmt.Sprintf("%s/rows=%d,cols=%d%s", actName(c.act), c.rows, c.cols, viewName(c.view))
	if c.gated {
		s += ",gated"
	}
	return s
}

func (c actCase) check(be backend.Backend, rng *rand.Rand) error {
	a := randMat(rng, c.rows, c.cols, 2)
	ar := place(be, a, c.view, rng)
	var b mat
	var br region
	if c.gated {
		b = randMat(rng, c.rows, c.cols, 1)
		br = place(be, b, c.view, rng)
	}
	be.Activate(ar.t, br.t, c.act)
	got, err := ar.read(be)
	if err != nil {
		return fmt.Errorf("a: %w", err)
	}
	want, tol := refActivate(a, b, c.act)
	if err := within(got.v, want, tol, c.cols); err != nil {
		return fmt.Errorf("a: %w", err)
	}
	if c.gated {
		return br.unchanged(be, "b")
	}
	return nil
}

// scaleCase is one Scale check: x = s·x, one rounding (tol = u·|s·x|).
type scaleCase struct {
	rows, cols int
	s          float32
	view       bool
}

func (c scaleCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d,s=%g%s", c.rows, c.cols, c.s, viewName(c.view))
}

func (c scaleCase) check(be backend.Backend, rng *rand.Rand) error {
	x := randMat(rng, c.rows, c.cols, 1)
	xr := place(be, x, c.view, rng)
	be.Scale(xr.t, c.s)
	got, err := xr.read(be)
	if err != nil {
		return fmt.Errorf("x: %w", err)
	}
	want, tol := make([]float64, len(x.v)), make([]float64, len(x.v))
	for i, v := range x.v {
		want[i] = float64(c.s) * float64(v)
		tol[i] = u * math.Abs(want[i])
	}
	if err := within(got.v, want, tol, c.cols); err != nil {
		return fmt.Errorf("x: %w", err)
	}
	return nil
}

// logitsCase is one Logits check.
type logitsCase struct {
	dt             backend.DType
	rows, vocab, d int
	scale          float32
	view           bool
}

func (c logitsCase) name() string {
	return fmt.Sprintf("%v/rows=%d,vocab=%d,d=%d,scale=%g%s", c.dt, c.rows, c.vocab, c.d, c.scale, viewName(c.view))
}

// check: the host rows are (scale·hidden)·headᵀ; hidden is scaled in place (within u)
// when scale is not 1 and unchanged when it is.
func (c logitsCase) check(be backend.Backend, rng *rand.Rand) error {
	w, ref, err := prepareRand(be, c.dt, c.vocab, c.d, false, rng)
	if err != nil {
		return err
	}
	h := randMat(rng, c.rows, c.d, 1)
	hr := place(be, h, c.view, rng)
	dst := make([]float32, c.rows*c.vocab)
	for i := range dst {
		dst[i] = float32(math.NaN())
	}
	be.Logits(dst, hr.t, w, c.scale)
	want, tol := refLogits(h, ref, c.scale)
	if err := within(dst, want, tol, c.vocab); err != nil {
		return fmt.Errorf("logits: %w", err)
	}
	if c.scale == 1 {
		return hr.unchanged(be, "hidden")
	}
	got, err := hr.read(be)
	if err != nil {
		return fmt.Errorf("hidden: %w", err)
	}
	hs, htol := make([]float64, len(h.v)), make([]float64, len(h.v))
	for i, v := range h.v {
		hs[i] = float64(c.scale) * float64(v)
		htol[i] = u * math.Abs(hs[i])
	}
	if err := within(got.v, hs, htol, c.d); err != nil {
		return fmt.Errorf("hidden not scaled in place: %w", err)
	}
	return nil
}

// lseCase is one LogSumExp row.
type lseCase struct {
	what string
	row  []float32
}

// lseCases are rows around the kernels' vector widths, rows whose exponentials overflow
// float32 unless shifted by the maximum, rows with −Inf entries, an all −Inf row.
func lseCases(rng *rand.Rand) []lseCase {
	var cs []lseCase
	for _, n := range []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 100, 1000, 32128} {
		cs = append(cs, lseCase{fmt.Sprintf("n=%d", n), randMat(rng, 1, n, 3).v})
	}
	big := randMat(rng, 1, 300, 3).v
	for i := range big {
		big[i] += 100
	}
	cs = append(cs, lseCase{"n=300,x~100", big})
	small := randMat(rng, 1, 300, 3).v
	for i := range small {
		small[i] -= 200
	}
	cs = append(cs, lseCase{"n=300,x~-200", small})
	masked := randMat(rng, 1, 70, 3).v
	for i := range masked {
		if i%3 != 1 {
			masked[i] = float32(math.Inf(-1))
		}
	}
	cs = append(cs, lseCase{"n=70,two thirds -Inf", masked})
	inf := make([]float32, 40)
	for i := range inf {
		inf[i] = float32(math.Inf(-1))
	}
	cs = append(cs, lseCase{"n=40,all -Inf", inf}, lseCase{"n=1,-Inf", inf[:1]})
	cs = append(cs, lseCase{"n=50,equal", make([]float32, 50)})
	return cs
}

// checkLogSumExp checks every lseCase.
func checkLogSumExp(be backend.Backend, rng *rand.Rand) error {
	var errs []error
	for _, c := range lseCases(rng) {
		got := be.LogSumExp(slices.Clone(c.row))
		want, tol := refLogSumExp(c.row)
		if got == want || math.Abs(got-want) <= tol {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: got %.17g, want %.17g ± %.3g", c.what, got, want, tol))
	}
	return errors.Join(errs...)
}

// checkArgmax checks rows of every length to 70 and long ones, the largest value anywhere
// (first, last, in a vector's tail), tied with a later or an earlier copy, −Inf and +Inf
// entries, all equal: the index of the first largest, exactly.
func checkArgmax(be backend.Backend, rng *rand.Rand) error {
	var errs []error
	try := func(what string, row []float32) {
		if got, want := be.Argmax(slices.Clone(row)), refArgmax(row); got != want {
			errs = append(errs, fmt.Errorf("%s (n=%d): got %d (%g), want %d (%g)", what, len(row), got, row[got], want, row[want]))
		}
	}
	lengths := []int{100, 127, 128, 129, 1000, 4096, 32128}
	for n := 1; n <= 70; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		row := randMat(rng, 1, n, 1).v
		try("random", row)
		p := rng.IntN(n)
		row[p] = 10
		try("max at a random place", row)
		if n > 1 {
			q := p + 1 + rng.IntN(n-p)
			if q < n {
				row[q] = 10
				try("tie with a later one", row)
				row[q] = 0
			}
			q = rng.IntN(n)
			if q != p {
				row[q] = 10
				try("tie with another", row)
				row[q] = 0
			}
			row[p] = 0
			row[n-1] = 11
			try("max last", row)
			row[0] = 11
			try("tie first and last", row)
		}
		eq := make([]float32, n)
		for i := range eq {
			eq[i] = -3
		}
		try("all equal", eq)
		inf := make([]float32, n)
		for i := range inf {
			inf[i] = float32(math.Inf(-1))
		}
		try("all -Inf", inf)
		inf[rng.IntN(n)] = -1e30
		try("one finite among -Inf", inf)
		pos := randMat(rng, 1, n, 1).v
		pos[rng.IntN(n)] = float32(math.Inf(1))
		pos[rng.IntN(n)] = float32(math.Inf(1))
		try("+Inf entries", pos)
	}
	return errors.Join(errs...)
}
