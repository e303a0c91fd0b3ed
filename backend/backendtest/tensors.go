package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/t5zoo/t5zoo/backend"
)

// mat is a host row-major matrix.
type mat struct {
	rows, cols int
	v          []float32
}

func newMat(rows, cols int) mat { return mat{rows: rows, cols: cols, v: make([]float32, rows*cols)} }

func (m mat) row(i int) []float32 { return m.v[i*m.cols : (i+1)*m.cols : (i+1)*m.cols] }

// rowRange returns rows [lo, hi) of m (sharing its values).
func (m mat) rowRange(lo, hi int) mat {
	return mat{rows: hi - lo, cols: m.cols, v: m.v[lo*m.cols : hi*m.cols : hi*m.cols]}
}

// colRange returns a copy of columns [lo, hi) of m.
func (m mat) colRange(lo, hi int) mat {
	c := newMat(m.rows, hi-lo)
	for i := range m.rows {
		copy(c.row(i), m.row(i)[lo:hi])
	}
	return c
}

// randMat is a rows × cols matrix of N(0, sd²) values.
func randMat(rng *rand.Rand, rows, cols int, sd float64) mat {
	m := newMat(rows, cols)
	for i := range m.v {
		m.v[i] = float32(rng.NormFloat64() * sd)
	}
	return m
}

// gridMat is a matrix whose rows lie on their own int8 grid (see actQuantErr): row i is
// n_k·2^e for integers n_k in [-127, 127], one of them ±127, e in [-8, 0].
func gridMat(rng *rand.Rand, rows, cols int) mat {
	m := newMat(rows, cols)
	for i := range rows {
		r, s := m.row(i), math.Ldexp(1, -rng.IntN(9))
		for k := range r {
			r[k] = float32(float64(rng.IntN(255)-127) * s)
		}
		r[rng.IntN(cols)] = float32(float64(127-254*rng.IntN(2)) * s)
	}
	return m
}

// source is a backend.Source over a host matrix.
type source struct{ m mat }

func (s source) Dims() (rows, cols int) { return s.m.rows, s.m.cols }

func (s source) Float32(r0 int, dst []float32) error {
	c := s.m.cols
	if c == 0 || len(dst)%c != 0 || r0 < 0 || r0*c+len(dst) > len(s.m.v) {
		return fmt.Errorf("backendtest: source: %d values from row %d of a %d×%d matrix", len(dst), r0, s.m.rows, c)
	}
	copy(dst, s.m.v[r0*c:])
	return nil
}

// quantSource is a backend.QuantizedSource of int8 rows and their scales.
type quantSource struct {
	rows, cols int
	q          []int8
	scales     []float32
}

func (s quantSource) Dims() (rows, cols int) { return s.rows, s.cols }

func (s quantSource) Float32(r0 int, dst []float32) error {
	c := s.cols
	if len(dst)%c != 0 || r0 < 0 || r0*c+len(dst) > len(s.q) {
		return fmt.Errorf("backendtest: quantized source: %d values from row %d of a %d×%d matrix", len(dst), r0, s.rows, c)
	}
	for i := range dst {
		k := r0*c + i
		dst[i] = float32(s.q[k]) * s.scales[k/c]
	}
	return nil
}

func (s quantSource) Int8(r0 int, q []int8, scales []float32) error {
	n := len(scales)
	if len(q) != n*s.cols || r0 < 0 || r0+n > s.rows {
		return fmt.Errorf("backendtest: quantized source: %d rows (%d values) from row %d of a %d×%d matrix", n, len(q), r0, s.rows, s.cols)
	}
	copy(q, s.q[r0*s.cols:(r0+n)*s.cols])
	copy(scales, s.scales[r0:r0+n])
	return nil
}

// randQuant is a quantized source of random int8 rows whose largest |q| is below 127 and
// whose scales are random: a backend that requantized it from its Float32 values would
// change every row.
func randQuant(rng *rand.Rand, rows, cols int) quantSource {
	s := quantSource{rows: rows, cols: cols, q: make([]int8, rows*cols), scales: make([]float32, rows)}
	for i := range s.q {
		s.q[i] = int8(rng.IntN(201) - 100)
	}
	for i := range s.scales {
		s.scales[i] = float32(0.005 + 0.02*rng.Float64())
	}
	return s
}

// failing is a Source whose reads fail.
type failing struct{ rows, cols int }

func (f failing) Dims() (rows, cols int) { return f.rows, f.cols }

func (f failing) Float32(int, []float32) error { return errFailing }

var errFailing = fmt.Errorf("backendtest: the source fails on purpose")

// sentinel is the value of element i of an allocation outside the view under test: large,
// so that a backend that reads it instead of the view is far off, and distinct, so that one
// that writes over it is seen.
func sentinel(i int) float32 { return float32(1000 + i%257) }

// region is a view under test in its own allocation: the view itself (view false), or rows
// and columns inside a larger tensor (view true: Off > 0, Stride > Cols), made with RowSlice
// and ColSlice, with sentinels around it.
type region struct {
	parent, t backend.Tensor
	host      []float32 // the parent's contents as uploaded
	want      mat       // the view's contents as uploaded
	r0, c0    int
}

// place uploads m into a new region of be: a view with Off > 0 and Stride > Cols when
// view, the whole allocation otherwise.
func place(be backend.Backend, m mat, view bool, rng *rand.Rand) region {
	if !view {
		return placeAt(be, m, 0, 0, max(m.rows, 1), m.cols)
	}
	r0, c0 := 1+rng.IntN(3), 1+rng.IntN(4)
	return placeAt(be, m, r0, c0, r0+m.rows+rng.IntN(3), c0+m.cols+1+rng.IntN(5))
}

// placeRows uploads m into rows of a new allocation: Off > 0 but Stride = Cols.
func placeRows(be backend.Backend, m mat, rng *rand.Rand) region {
	r0 := 1 + rng.IntN(3)
	return placeAt(be, m, r0, 0, r0+m.rows+rng.IntN(3), m.cols)
}

// placeAt uploads m at (r0, c0) of a new pr × pc allocation.
func placeAt(be backend.Backend, m mat, r0, c0, pr, pc int) region {
	p := be.Alloc(pr, pc)
	host := make([]float32, pr*pc)
	for i := range host {
		host[i] = sentinel(i)
	}
	for i := range m.rows {
		copy(host[(r0+i)*pc+c0:], m.row(i))
	}
	be.Upload(p, host)
	t := p.RowSlice(r0, r0+m.rows).ColSlice(c0, c0+m.cols)
	return region{parent: p, t: t, host: host, want: m, r0: r0, c0: c0}
}

// read downloads the region's view, and fails if the backend wrote outside it.
func (r region) read(be backend.Backend) (mat, error) {
	all := make([]float32, len(r.host))
	be.Download(all, r.parent)
	m := newMat(r.t.Rows, r.t.Cols)
	pc := r.parent.Cols
	bad, first := 0, -1
	for k, v := range all {
		i, j := k/pc-r.r0, k%pc-r.c0
		if i >= 0 && i < m.rows && j >= 0 && j < m.cols {
			m.v[i*m.cols+j] = v
			continue
		}
		if math.Float32bits(v) != math.Float32bits(r.host[k]) {
			if bad++; first < 0 {
				first = k
			}
		}
	}
	if bad > 0 {
		return m, fmt.Errorf("%d elements written outside the %d×%d view at (%d, %d) of a %d×%d tensor, the first at (%d, %d): %g, was %g",
			bad, m.rows, m.cols, r.r0, r.c0, r.parent.Rows, pc, first/pc, first%pc, all[first], r.host[first])
	}
	return m, nil
}

// unchanged fails if the region's view no longer holds what was uploaded (an input the
// operation must only read), or anything around it changed.
func (r region) unchanged(be backend.Backend, name string) error {
	m, err := r.read(be)
	if err == nil {
		err = sameBits(m.v, r.want.v, m.cols)
	}
	if err != nil {
		return fmt.Errorf("input %s changed: %w", name, err)
	}
	return nil
}

// within fails unless |got[i] - want[i]| ≤ tol[i] for every i (equal infinities match; NaN
// matches nothing), naming how many are off and the worst, by error over tolerance, as
// [row, column] of a matrix of cols columns.
func within(got []float32, want, tol []float64, cols int) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	bad, worst, ratio := 0, -1, 0.0
	for i, g := range got {
		gv := float64(g)
		if gv == want[i] {
			continue
		}
		e := math.Abs(gv - want[i])
		if e <= tol[i] {
			continue
		}
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		r := e / tol[i]
		if bad++; worst < 0 || r > ratio || math.IsNaN(r) {
			worst, ratio = i, r
		}
	}
	if bad == 0 {
		return nil
	}
	cols = max(cols, 1)
	return fmt.Errorf("%d of %d values off; the worst at [%d, %d]: got %.9g, want %.9g ± %.3g (error %.3g)",
		bad, len(got), worst/cols, worst%cols, got[worst], want[worst], tol[worst], math.Abs(float64(got[worst])-want[worst]))
}

// sameBits fails unless got and want hold the same float32 values bit for bit.
func sameBits(got, want []float32, cols int) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d values, want %d", len(got), len(want))
	}
	bad, first := 0, -1
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad++; first < 0 {
				first = i
			}
		}
	}
	if bad == 0 {
		return nil
	}
	cols = max(cols, 1)
	return fmt.Errorf("%d of %d values differ; the first at [%d, %d]: %.9g (%#08x), want %.9g (%#08x)",
		bad, len(got), first/cols, first%cols, got[first], math.Float32bits(got[first]), want[first], math.Float32bits(want[first]))
}

// f64 widens v.
func f64(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}
