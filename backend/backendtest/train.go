package backendtest

// The checks of backend.Trainer, the backward half: Run calls runTrainer (subtest
// "Trainer") when the backend implements it. Every gradient is checked against train_ref.go's
// float64 reference, on the sizes around the CPU kernels' tile edges (1, 31, 32, 33, 65 and
// 130 rows and columns), on operands that are views with sentinels around them, with the
// accumulating operations (weight gradients, dbias, EmbedBackward) adding onto non-zero
// contents; and, for BitIdenticalBatching, every result against the same call on backends of
// 1, 2, 3 and 8 workers, and each attention group's gradients against the group computed
// alone and among others.

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
)

// trainChecker is a case of a Trainer operation.
type trainChecker interface {
	name() string
	check(tr backend.Trainer, rng *rand.Rand) error
}

// trainTest is one case of a Trainer operation's subtest.
type trainTest struct {
	name string
	run  func(tr backend.Trainer, rng *rand.Rand) error
}

// trainGroup is one Trainer operation's subtest.
type trainGroup struct {
	name  string
	tests []trainTest
}

func trainTests[C trainChecker](cs []C) []trainTest {
	ts := make([]trainTest, len(cs))
	for i, c := range cs {
		ts[i] = trainTest{c.name(), c.check}
	}
	return ts
}

// trainKey seeds a Trainer case's operands by its place and name.
func trainKey(group string, i int, name string) string {
	return fmt.Sprintf("Trainer/%s/%d/%s", group, i, name)
}

// runTrainer runs the Trainer checks on tr (a backend c.New made), and the determinism
// checks on fresh backends of every worker count when c promises bit-identical batching.
func runTrainer(t *testing.T, c Config, tr backend.Trainer) {
	for _, g := range trainGroups() {
		t.Run(g.name, func(t *testing.T) {
			for i, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					err := guard(func() error { return tc.run(tr, rngFor(trainKey(g.name, i, tc.name))) })
					if err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
	if c.Promise != BitIdenticalBatching {
		return
	}
	t.Run("BitIdenticalBatching", func(t *testing.T) {
		trs := make([]backend.Trainer, len(detThreads))
		for i, n := range detThreads {
			be := newBackend(t, c, n)
			tr, ok := be.(backend.Trainer)
			if !ok {
				t.Fatalf("Config.New(%d) returned a %T, which is no backend.Trainer", n, be)
			}
			trs[i] = tr
		}
		for _, tc := range trainDetTests() {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.runOn(trs); err != nil {
					t.Error(err)
				}
			})
		}
	})
}

// The sizes of the backward checks: the CPU kernels' tile edges and twice past the largest.
var (
	backRows  = []int{0, 1, 31, 32, 33, 65, 130}
	backSizes = []int{1, 31, 32, 33, 65, 130}
)

// trainGroups are the reference checks of every Trainer operation.
func trainGroups() []trainGroup {
	gen := rand.New(rand.NewPCG(seed, 3))
	return []trainGroup{
		{"Zero", trainTests(fillCases(fillZero))},
		{"Copy", trainTests(fillCases(fillCopy))},
		{"AddTo", trainTests(fillCases(fillAddTo))},
		{"SumSquares", trainTests(sumSqCases())},
		{"LinearBackward", trainTests(linBackCases(gen))},
		{"RMSNormBackward", trainTests(normBackCases(gen))},
		{"ActivateBackward", trainTests(actBackCases(gen))},
		{"AttentionBackward", trainTests(attnBackCases(gen))},
		{"EmbedBackward", trainTests(embedBackCases())},
		{"CrossEntropy", trainTests(ceCases())},
		{"Dropout", trainTests(dropCases())},
	}
}

// read reads a region's view and checks it against want within tol, naming what.
func checkRegion(tr backend.Trainer, r region, what string, want, tol []float64) error {
	got, err := r.read(tr)
	if err == nil {
		err = within(got.v, want, tol, r.t.Cols)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// none is the region of an operand left out (the zero Tensor).
var none region

// fillKind is one of the element-wise operations Zero, Copy and AddTo.
type fillKind uint8

const (
	fillZero fillKind = iota
	fillCopy
	fillAddTo
)

// fillCase is one Zero, Copy or AddTo check on a rows × cols view.
type fillCase struct {
	kind       fillKind
	rows, cols int
	view       bool
}

func (c fillCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d%s", c.rows, c.cols, viewName(c.view))
}

func fillCases(k fillKind) []fillCase {
	var cs []fillCase
	for _, d := range [][2]int{{0, 3}, {1, 1}, {1, 33}, {31, 1}, {32, 32}, {33, 65}, {65, 130}, {130, 31}} {
		cs = append(cs, fillCase{k, d[0], d[1], false}, fillCase{k, d[0], d[1], true})
	}
	return cs
}

// check: Zero writes zeros, Copy the source's bits, AddTo dst + src (one rounding: u·|sum|),
// each exactly inside the view; the source is unchanged.
func (c fillCase) check(tr backend.Trainer, rng *rand.Rand) error {
	dst := randMat(rng, c.rows, c.cols, 1)
	dr := place(tr, dst, c.view, rng)
	var src mat
	var sr region
	if c.kind != fillZero {
		src = randMat(rng, c.rows, c.cols, 1)
		sr = place(tr, src, c.view, rng)
	}
	want, tol := make([]float64, len(dst.v)), make([]float64, len(dst.v))
	switch c.kind {
	case fillZero:
		tr.Zero(dr.t)
	case fillCopy:
		tr.Copy(dr.t, sr.t)
		copy(want, f64(src.v))
	case fillAddTo:
		tr.AddTo(dr.t, sr.t)
		for i := range want {
			want[i] = float64(dst.v[i]) + float64(src.v[i])
			tol[i] = u * math.Abs(want[i])
		}
	}
	got, err := dr.read(tr)
	if err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	if c.kind == fillAddTo {
		err = within(got.v, want, tol, c.cols)
	} else {
		w := make([]float32, len(want))
		for i, v := range want {
			w[i] = float32(v)
		}
		err = sameBits(got.v, w, c.cols)
	}
	if err != nil {
		return fmt.Errorf("dst: %w", err)
	}
	if c.kind != fillZero {
		return sr.unchanged(tr, "src")
	}
	return nil
}

// sumSqCase is one SumSquares check.
type sumSqCase struct {
	rows, cols int
	view       bool
}

func (c sumSqCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d%s", c.rows, c.cols, viewName(c.view))
}

// sumSqCases: small views, and one of 10⁵ elements, where a float32 sum is hundreds of u off.
func sumSqCases() []sumSqCase {
	return []sumSqCase{{0, 4, false}, {1, 1, true}, {3, 33, true}, {33, 65, false}, {65, 130, true}, {300, 400, false}, {250, 401, true}}
}

func (c sumSqCase) check(tr backend.Trainer, rng *rand.Rand) error {
	x := randMat(rng, c.rows, c.cols, 1)
	xr := place(tr, x, c.view, rng)
	got := tr.SumSquares(xr.t)
	want, tol := refSumSquares(wide(x))
	if got != want && !(math.Abs(got-want) <= tol) {
		return fmt.Errorf("got %.17g, want %.17g ± %.3g (error %.3g)", got, want, tol, math.Abs(got-want))
	}
	return xr.unchanged(tr, "t")
}

// prepareF32 prepares the float32 weight m (LinearBackward takes F32 weights).
func prepareF32(tr backend.Trainer, m mat) (backend.Weight, error) {
	w, err := tr.Prepare(source{m}, backend.F32)
	if err != nil {
		return nil, fmt.Errorf("prepare a %d×%d f32 weight: %w", m.rows, m.cols, err)
	}
	return w, nil
}

// linBackCase is one LinearBackward check: y (rows × out) = x (rows × in) · wᵀ.
type linBackCase struct {
	rows, out, in int
	ep            backend.Epilogue
	dx, dw        bool // compute dx, dw (else the zero Tensor)
	view          bool
}

func (c linBackCase) name() string {
	s := fmt.Sprintf("rows=%d,out=%d,in=%d,%s", c.rows, c.out, c.in, epName(c.ep))
	if !c.dx {
		s += ",no dx"
	}
	if !c.dw {
		s += ",no dw"
	}
	return s + viewName(c.view)
}

// linBackCases: every row count and size at least four times, both epilogues with and
// without views, cases without dx or without dw; and the largest in both epilogues.
func linBackCases(gen *rand.Rand) []linBackCase {
	var cs []linBackCase
	rows, out, in := newDeck(gen, backRows...), newDeck(gen, backSizes...), newDeck(gen, backSizes...)
	for i := range 28 {
		c := linBackCase{rows: rows.draw(), out: out.draw(), in: in.draw(), ep: [2]backend.Epilogue{backend.Store, backend.Add}[i%2], dx: true, dw: true, view: i/2%2 == 1}
		switch i % 7 {
		case 5:
			c.dx = false
		case 6:
			c.dw = false
		}
		cs = append(cs, c)
	}
	for _, ep := range []backend.Epilogue{backend.Store, backend.Add} {
		cs = append(cs, linBackCase{rows: 130, out: 130, in: 130, ep: ep, dx: true, dw: true, view: true})
	}
	return cs
}

// check: dx = ep(dx0, dy·w), dw = dw0 + dyᵀ·x onto random contents; dy, x unchanged.
func (c linBackCase) check(tr backend.Trainer, rng *rand.Rand) error {
	wm := randMat(rng, c.out, c.in, 1)
	w, err := prepareF32(tr, wm)
	if err != nil {
		return err
	}
	x, dy := randMat(rng, c.rows, c.in, 1), randMat(rng, c.rows, c.out, 1)
	dx0, dw0 := randMat(rng, c.rows, c.in, 1), randMat(rng, c.out, c.in, 1)
	xr, dyr := place(tr, x, c.view, rng), place(tr, dy, c.view, rng)
	dxr, dwr := none, none
	if c.dx {
		dxr = place(tr, dx0, c.view, rng)
	}
	if c.dw {
		dwr = place(tr, dw0, c.view, rng)
	}
	tr.LinearBackward(dxr.t, dwr.t, dyr.t, xr.t, w, c.ep)
	var errs []error
	if c.dx {
		want, tol := refLinearDX(wide(dy), wide(wm), wide(dx0), c.ep)
		errs = append(errs, checkRegion(tr, dxr, "dx", want, tol))
	}
	if c.dw {
		want, tol := refLinearDW(wide(dy), wide(x), wide(dw0))
		errs = append(errs, checkRegion(tr, dwr, "dw", want, tol))
	}
	errs = append(errs, xr.unchanged(tr, "x"), dyr.unchanged(tr, "dy"))
	return errors.Join(errs...)
}

// normBackCase is one RMSNormBackward check.
type normBackCase struct {
	rows, cols int
	eps        float32
	scale      float64 // of x (10⁻³: mean(x²) as large as eps = 10⁻⁶)
	ep         backend.Epilogue
	view       bool
}

func (c normBackCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d,eps=%g,x~%g,%s%s", c.rows, c.cols, c.eps, c.scale, epName(c.ep), viewName(c.view))
}

func normBackCases(gen *rand.Rand) []normBackCase {
	var cs []normBackCase
	rows, cols := newDeck(gen, backRows...), newDeck(gen, backSizes...)
	for i := range 16 {
		c := normBackCase{rows: rows.draw(), cols: cols.draw(), eps: 1e-6, scale: 1, ep: [2]backend.Epilogue{backend.Store, backend.Add}[i%2], view: i/2%2 == 1}
		if i%8 >= 4 {
			c.eps = 0.1
		}
		if i%16 >= 8 {
			c.scale = 1e-3
		}
		cs = append(cs, c)
	}
	return cs
}

// check: dx = ep(dx0, ∂L/∂x), dw = dw0 + Σ dy ⊙ x·r; x, w, dy unchanged.
func (c normBackCase) check(tr backend.Trainer, rng *rand.Rand) error {
	x, w, dy := randMat(rng, c.rows, c.cols, c.scale), randMat(rng, 1, c.cols, 1), randMat(rng, c.rows, c.cols, 1)
	dx0, dw0 := randMat(rng, c.rows, c.cols, 1), randMat(rng, 1, c.cols, 1)
	xr, wr, dyr := place(tr, x, c.view, rng), place(tr, w, c.view, rng), place(tr, dy, c.view, rng)
	dxr, dwr := place(tr, dx0, c.view, rng), place(tr, dw0, c.view, rng)
	tr.RMSNormBackward(dxr.t, dwr.t, dyr.t, xr.t, wr.t, c.eps, c.ep)
	g := refRMSNormBackward(wide(x), wide(w), wide(dy), float64(c.eps), wide(dx0), c.ep, wide(dw0))
	return errors.Join(
		checkRegion(tr, dxr, "dx", g.dx, g.dxTol), checkRegion(tr, dwr, "dw", g.dw, g.dwTol),
		xr.unchanged(tr, "x"), wr.unchanged(tr, "w"), dyr.unchanged(tr, "dy"))
}

// actBackCase is one ActivateBackward check.
type actBackCase struct {
	rows, cols int
	act        backend.Activation
	gated      bool // y = act(a) ⊙ b
	alias      bool // da is dy
	view       bool
}

func (c actBackCase) name() string {
	s := fmt.Sprintf("%s/rows=%d,cols=%d", actName(c.act), c.rows, c.cols)
	if c.gated {
		s += ",gated"
	}
	if c.alias {
		s += ",da=dy"
	}
	return s + viewName(c.view)
}

func actBackCases(gen *rand.Rand) []actBackCase {
	var cs []actBackCase
	rows, cols := newDeck(gen, backRows...), newDeck(gen, backSizes...)
	for _, a := range activations {
		for i := range 6 {
			cs = append(cs, actBackCase{rows: rows.draw(), cols: cols.draw(), act: a, gated: i%2 == 0, alias: i%3 == 1, view: i >= 3})
		}
	}
	return cs
}

// actInput is an activation's input: N(0, 2²) with a quarter exact zeros (relu' is 0 there,
// the others ½), some of them −0.
func actInput(rng *rand.Rand, rows, cols int) mat {
	a := randMat(rng, rows, cols, 2)
	for i := range a.v {
		switch rng.IntN(8) {
		case 0:
			a.v[i] = 0
		case 1:
			a.v[i] = float32(math.Copysign(0, -1))
		}
	}
	return a
}

// check: da = dy ⊙ b ⊙ act'(a), db = dy ⊙ act(a); a, b (and dy unless it is da) unchanged.
func (c actBackCase) check(tr backend.Trainer, rng *rand.Rand) error {
	a, dy := actInput(rng, c.rows, c.cols), randMat(rng, c.rows, c.cols, 1)
	ar, dyr := place(tr, a, c.view, rng), place(tr, dy, c.view, rng)
	var b mat
	br, dbr := none, none
	if c.gated {
		b = randMat(rng, c.rows, c.cols, 1)
		br, dbr = place(tr, b, c.view, rng), place(tr, randMat(rng, c.rows, c.cols, 1), c.view, rng)
	}
	dar := dyr
	if !c.alias {
		dar = place(tr, randMat(rng, c.rows, c.cols, 1), c.view, rng)
	}
	var bw m64
	if c.gated {
		bw = wide(b)
	}
	g := refActivateBackward(wide(a), bw, wide(dy), c.act)
	tr.ActivateBackward(dar.t, dbr.t, dyr.t, ar.t, br.t, c.act)
	errs := []error{checkRegion(tr, dar, "da", g.da, g.daTol), ar.unchanged(tr, "a")}
	if c.gated {
		errs = append(errs, checkRegion(tr, dbr, "db", g.db, g.dbTol), br.unchanged(tr, "b"))
	}
	if !c.alias {
		errs = append(errs, dyr.unchanged(tr, "dy"))
	}
	return errors.Join(errs...)
}

// attnBackCase is one AttentionBackward check: a ragged batch of groups.
type attnBackCase struct {
	heads, dkv int
	groups     []qGroup
	dist       int  // the bias's maximum distance D; < 0: no dbias (cross-attention)
	fused      bool // self-attention as the model lays it out: Q and KV column slices of one q/k/v tensor (every group n = l)
	view       bool // every operand a view (dbias with Stride > Cols)
}

func (c attnBackCase) name() string {
	s := fmt.Sprintf("heads=%d,dkv=%d,groups=", c.heads, c.dkv)
	for i, g := range c.groups {
		if i > 0 {
			s += "+"
		}
		s += fmt.Sprintf("%dx%d@%d", g.n, g.l, g.pos0)
		if g.causal {
			s += "c"
		}
	}
	if c.dist >= 0 {
		s += fmt.Sprintf(",dbias=%d", c.dist)
	}
	if c.fused {
		s += ",fused"
	}
	return s + viewName(c.view)
}

// attnBackCases: ragged batches of 1 to 4 groups of every query and key count, heads 1..4
// and every d_kv, positions from 0, the queries the last keys, and anywhere (causal with
// Pos0 > 0, keys past every query), biases of maximum distance 0 to 8 (clamped both ways
// when smaller than the key count) and none, fused q/k/v layouts; and the edge cases: a
// group of no queries (its DKV still written), one query over one key, the model's shapes.
func attnBackCases(gen *rand.Rand) []attnBackCase {
	var cs []attnBackCase
	heads, dkv := newDeck(gen, 1, 2, 3, 4), newDeck(gen, dkvSizes...)
	nq, nk, dist := newDeck(gen, querySizes...), newDeck(gen, querySizes...), newDeck(gen, -1, 0, 1, 3, 8)
	for i := range 24 {
		c := attnBackCase{heads: heads.draw(), dkv: dkv.draw(), dist: dist.draw(), fused: i%4 == 3, view: i%3 != 0}
		for range 1 + gen.IntN(4) {
			g := qGroup{n: nq.draw(), l: nk.draw(), causal: gen.IntN(2) == 0}
			if c.fused {
				g.l = g.n
			} else {
				switch gen.IntN(3) {
				case 1:
					g.pos0 = max(0, g.l-g.n)
				case 2:
					g.pos0 = gen.IntN(40)
				}
			}
			c.groups = append(c.groups, g)
		}
		cs = append(cs, c)
	}
	return append(cs,
		attnBackCase{heads: 2, dkv: 8, dist: 3, groups: []qGroup{{n: 0, l: 5}, {n: 3, l: 4, pos0: 1, causal: true}}, view: true},
		attnBackCase{heads: 1, dkv: 1, dist: 0, groups: []qGroup{{n: 1, l: 1}}},
		// Causal queries at 5.. over 33 keys: keys 18.. seen by none; D = 3 clamps both ways.
		attnBackCase{heads: 3, dkv: 7, dist: 3, groups: []qGroup{{n: 13, l: 33, pos0: 5, causal: true}, {n: 1, l: 17, pos0: 16, causal: true}}, view: true},
		// Cross-attention: decoder queries over encoder keys of other lengths, no dbias.
		attnBackCase{heads: 4, dkv: 8, dist: -1, groups: []qGroup{{n: 5, l: 33}, {n: 31, l: 7}, {n: 1, l: 65}}, view: true},
		// The encoder and decoder self-attention of a model with d_kv·heads ≠ d_model.
		attnBackCase{heads: 4, dkv: 64, dist: 8, fused: true, groups: []qGroup{{n: 65, l: 65}, {n: 31, l: 31}}, view: true},
		attnBackCase{heads: 3, dkv: 7, dist: 8, fused: true, groups: []qGroup{{n: 33, l: 33, causal: true}, {n: 2, l: 2, causal: true}, {n: 17, l: 17, causal: true}}},
	)
}

// attnBatch is the operands of one AttentionBackward check on one backend.
type attnBatch struct {
	q, kv, dO []mat // per group: N × inner, L × 2·inner, N × inner
	p         []mat // per group: heads·N × L, float32 as the forward wrote them
}

// newAttnBatch draws a batch's operands: queries and keys of qkScale, values and output
// gradients N(0, 1), and the probabilities as the forward computes them (with a position
// bias of maximum distance dist when dist ≥ 0), rounded to float32 and zero past a causal
// query's last key.
func newAttnBatch(rng *rand.Rand, heads, dkv, dist int, groups []qGroup) attnBatch {
	inner := heads * dkv
	var bias mat
	if dist >= 0 {
		bias = randMat(rng, heads, 2*dist+1, 1)
	}
	var b attnBatch
	for _, g := range groups {
		q, kv := randMat(rng, g.n, inner, qkScale(dkv)), randKV(rng, g.l, inner, dkv)
		ref := refAttention(q, kv.colRange(0, inner), kv.colRange(inner, 2*inner), g.pos0, g.causal, heads, bias)
		p := newMat(heads*g.n, g.l)
		for i, v := range ref.probs {
			p.v[i] = float32(v)
		}
		b.q, b.kv, b.dO, b.p = append(b.q, q), append(b.kv, kv), append(b.dO, randMat(rng, g.n, inner, 1)), append(b.p, p)
	}
	return b
}

// refs is every group's reference gradient.
func (b attnBatch) refs(heads, dist int, groups []qGroup) []attnGrad {
	gs := make([]attnGrad, len(groups))
	for i, g := range groups {
		inner := b.q[i].cols
		kv := wide(b.kv[i])
		k, v := newM64(g.l, inner), newM64(g.l, inner)
		for j := range g.l {
			copy(k.row(j), kv.row(j)[:inner])
			copy(v.row(j), kv.row(j)[inner:])
		}
		gs[i] = refAttentionBackward(wide(b.q[i]), k, v, wide(b.p[i]), wide(b.dO[i]), g.pos0, g.causal, heads, dist)
	}
	return gs
}

// attnPlaced is a batch placed on a backend, packed as the model packs it.
type attnPlaced struct {
	grads                  []backend.AttnGrad
	qr, kvr, dOr, dqr, dkr region   // packed; in the fused layout qr holds q and kv, dqr dq and dkv
	pr                     []region // per group
	qoff, koff             []int    // each group's first row in the packed q and kv rows
	kvCol                  int      // the column of kv (and dkv) in kvr (dkr)
	inner                  int
	fused                  bool
}

// place packs b's groups gs: queries, output gradients and DQ one group after another; keys
// and values after 1 to 3 rows of no group (whose DKV rows must stay untouched); in the
// fused layout q then k/v in the columns of one tensor (a group's keys its queries' rows),
// dq then dkv likewise; DQ and DKV filled with random values to be overwritten.
func (b attnBatch) place(tr backend.Trainer, gs []int, groups []qGroup, fused, view bool, rng *rand.Rand) attnPlaced {
	inner := b.q[0].cols
	a := attnPlaced{qoff: make([]int, len(gs)), koff: make([]int, len(gs)), pr: make([]region, len(gs)), inner: inner, fused: fused}
	nq, nk := 0, 0
	if !fused {
		nk = 1 + rng.IntN(3)
	}
	for i, g := range gs {
		a.qoff[i], a.koff[i] = nq, nk
		nq += groups[g].n
		if fused {
			a.koff[i] = a.qoff[i]
			nk = nq
		} else {
			nk += groups[g].l
		}
	}
	q, dO := newMat(nq, inner), newMat(nq, inner)
	kv := randKV(rng, nk, inner, 1)
	for i, g := range gs {
		copy(q.v[a.qoff[i]*inner:], b.q[g].v)
		copy(dO.v[a.qoff[i]*inner:], b.dO[g].v)
		copy(kv.v[a.koff[i]*2*inner:], b.kv[g].v)
	}
	if fused {
		qkv := newMat(nq, 3*inner)
		for r := range nq {
			copy(qkv.row(r), q.row(r))
			copy(qkv.row(r)[inner:], kv.row(r))
		}
		a.qr, a.dqr = place(tr, qkv, view, rng), place(tr, randMat(rng, nq, 3*inner, 1), view, rng)
		a.kvr, a.dkr, a.kvCol = a.qr, a.dqr, inner
	} else {
		a.qr, a.dqr = place(tr, q, view, rng), place(tr, randMat(rng, nq, inner, 1), view, rng)
		a.kvr, a.dkr = place(tr, kv, view, rng), place(tr, randMat(rng, nk, 2*inner, 1), view, rng)
	}
	a.dOr = place(tr, dO, view, rng)
	for i, g := range gs {
		n, l := groups[g].n, groups[g].l
		qt, dqt := a.qr.t.RowSlice(a.qoff[i], a.qoff[i]+n), a.dqr.t.RowSlice(a.qoff[i], a.qoff[i]+n)
		kvt, dkvt := a.kvr.t.RowSlice(a.koff[i], a.koff[i]+l), a.dkr.t.RowSlice(a.koff[i], a.koff[i]+l)
		a.pr[i] = place(tr, b.p[g], view, rng)
		a.grads = append(a.grads, backend.AttnGrad{
			Q: qt.ColSlice(0, inner), KV: kvt.ColSlice(a.kvCol, a.kvCol+2*inner), Probs: a.pr[i].t,
			DOut: a.dOr.t.RowSlice(a.qoff[i], a.qoff[i]+n),
			DQ:   dqt.ColSlice(0, inner), DKV: dkvt.ColSlice(a.kvCol, a.kvCol+2*inner),
			Pos0: groups[g].pos0, Causal: groups[g].causal,
		})
	}
	return a
}

// results reads back each group's DQ then DKV, checking that nothing outside them changed
// (the rows of no group, the sentinels, and in the fused layout the q/k/v tensor).
func (a attnPlaced) results(tr backend.Trainer, gs []int, groups []qGroup) ([][]float32, error) {
	dq, err := a.dqr.read(tr)
	if err != nil {
		return nil, fmt.Errorf("dq: %w", err)
	}
	dkv := dq
	if !a.fused {
		if dkv, err = a.dkr.read(tr); err != nil {
			return nil, fmt.Errorf("dkv: %w", err)
		}
	}
	inner := a.inner
	res := make([][]float32, len(gs))
	for i, g := range gs {
		n, l := groups[g].n, groups[g].l
		out := dq.rowRange(a.qoff[i], a.qoff[i]+n).colRange(0, inner).v
		res[i] = append(out, dkv.rowRange(a.koff[i], a.koff[i]+l).colRange(a.kvCol, a.kvCol+2*inner).v...)
	}
	if lead := a.koff[0]; !a.fused && lead > 0 {
		// The leading rows of no group keep their random contents.
		if err := sameBits(dkv.rowRange(0, lead).v, a.dkr.want.rowRange(0, lead).v, 2*inner); err != nil {
			return nil, fmt.Errorf("dkv rows of no group: %w", err)
		}
	}
	return res, nil
}

// unchanged checks the inputs.
func (a attnPlaced) unchanged(tr backend.Trainer) error {
	errs := []error{a.qr.unchanged(tr, "q"), a.dOr.unchanged(tr, "dOut")}
	if !a.fused {
		errs = append(errs, a.kvr.unchanged(tr, "kv"))
	}
	for i, r := range a.pr {
		if err := r.unchanged(tr, "probs"); err != nil {
			errs = append(errs, fmt.Errorf("group %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// placeDBias places a heads × 2D+1 dbias of random contents to accumulate onto (none when
// dist < 0): a view of rows and columns when view.
func placeDBias(tr backend.Trainer, heads, dist int, view bool, rng *rand.Rand) (mat, region) {
	if dist < 0 {
		return mat{}, none
	}
	d0 := randMat(rng, heads, 2*dist+1, 1)
	return d0, place(tr, d0, view, rng)
}

// check: every group's DQ and DKV (written over random contents) and dbias (accumulated
// onto random contents) against the references; the inputs unchanged.
func (c attnBackCase) check(tr backend.Trainer, rng *rand.Rand) error {
	b := newAttnBatch(rng, c.heads, c.dkv, c.dist, c.groups)
	gs := make([]int, len(c.groups))
	for i := range gs {
		gs[i] = i
	}
	a := b.place(tr, gs, c.groups, c.fused, c.view, rng)
	d0, dbr := placeDBias(tr, c.heads, c.dist, c.view, rng)
	tr.AttentionBackward(a.grads, c.heads, dbr.t)
	res, err := a.results(tr, gs, c.groups)
	if err != nil {
		return err
	}
	refs := b.refs(c.heads, c.dist, c.groups)
	var errs []error
	for i, g := range c.groups {
		inner := c.heads * c.dkv
		r := refs[i]
		e := errors.Join(within(res[i][:g.n*inner], r.dq, r.dqTol, inner), within(res[i][g.n*inner:], r.dkv, r.dkvTol, 2*inner))
		if e != nil {
			errs = append(errs, fmt.Errorf("group %d (%d queries at %d, %d keys, causal %v), dq then dkv (keys, then values): %w", i, g.n, g.pos0, g.l, g.causal, e))
		}
	}
	if c.dist >= 0 {
		want, tol := biasTotal(wide(d0), refs)
		errs = append(errs, checkRegion(tr, dbr, "dbias", want, tol))
	}
	errs = append(errs, a.unchanged(tr))
	return errors.Join(errs...)
}

// embedBackCase is one EmbedBackward check: n ids into a table of vocab rows of d.
type embedBackCase struct {
	vocab, d, n int
	repeat      bool // a third of the ids the same one
	view        bool
}

func (c embedBackCase) name() string {
	s := fmt.Sprintf("vocab=%d,d=%d,ids=%d", c.vocab, c.d, c.n)
	if c.repeat {
		s += ",repeated"
	}
	return s + viewName(c.view)
}

func embedBackCases() []embedBackCase {
	var cs []embedBackCase
	for i, d := range [][3]int{{1, 1, 1}, {5, 31, 7}, {33, 32, 0}, {100, 33, 65}, {130, 65, 130}, {7, 130, 33}, {65, 1, 31}, {2, 64, 32}} {
		cs = append(cs, embedBackCase{vocab: d[0], d: d[1], n: d[2], repeat: i%2 == 1, view: i%3 != 0})
	}
	return cs
}

// check: the rows the ids name get every dy row added (repeated ids accumulate), the
// others are unchanged; dy unchanged.
func (c embedBackCase) check(tr backend.Trainer, rng *rand.Rand) error {
	ids := make([]int, c.n)
	same := rng.IntN(c.vocab)
	for i := range ids {
		ids[i] = rng.IntN(c.vocab)
		if c.repeat && i%3 == 0 {
			ids[i] = same
		}
	}
	d0, dy := randMat(rng, c.vocab, c.d, 1), randMat(rng, c.n, c.d, 1)
	dtr, dyr := place(tr, d0, c.view, rng), place(tr, dy, c.view, rng)
	tr.EmbedBackward(dtr.t, dyr.t, slices.Clone(ids))
	want, tol := refEmbedBackward(wide(d0), wide(dy), ids)
	if err := checkRegion(tr, dtr, "dtable", want, tol); err != nil {
		return fmt.Errorf("ids %v: %w", ids[:min(len(ids), 8)], err)
	}
	return dyr.unchanged(tr, "dy")
}

// ceCase is one CrossEntropy check.
type ceCase struct {
	rows, vocab int
	scale       float32
	view        bool
}

func (c ceCase) name() string {
	return fmt.Sprintf("rows=%d,vocab=%d,scale=%g%s", c.rows, c.vocab, c.scale, viewName(c.view))
}

func ceCases() []ceCase {
	var cs []ceCase
	for i, d := range [][2]int{{0, 5}, {1, 1}, {1, 31}, {5, 32}, {13, 33}, {31, 65}, {33, 130}, {65, 257}, {8, 1000}} {
		c := ceCase{rows: d[0], vocab: d[1], scale: []float32{1, 0.125, 1 / 7.0}[i%3], view: i%2 == 1}
		cs = append(cs, c)
	}
	return cs
}

// ceOperands are logits N(0, 3²) and labels, a quarter of them -100; with rows enough, one
// row shifted by +100 (exponentials that overflow unless shifted), one whose label ties an
// earlier maximum (not correct) and one whose label is the first of a tie (correct), a row
// labelled with its own argmax.
func ceOperands(rng *rand.Rand, rows, vocab int) (mat, []int) {
	x := randMat(rng, rows, vocab, 3)
	labels := make([]int, rows)
	for i := range labels {
		labels[i] = rng.IntN(vocab)
		if rng.IntN(4) == 0 {
			labels[i] = -100
		}
	}
	if rows >= 5 && vocab >= 2 {
		for j := range vocab {
			x.row(0)[j] += 100
		}
		labels[0] = 0
		top := func(r []float32) float32 { return slices.Max(r) + 1 }
		r1 := x.row(1)
		m := top(r1)
		r1[0], r1[vocab-1] = m, m
		labels[1] = vocab - 1
		r2 := x.row(2)
		m = top(r2)
		r2[vocab/2], r2[vocab-1] = m, m
		labels[2] = vocab / 2
		labels[3] = refArgmax(x.row(3))
		labels[4] = -100
	}
	return x, labels
}

// check: labelled rows become scale·(softmax − onehot), the others exact zeros; the loss
// and the count of rows whose label is the first argmax.
func (c ceCase) check(tr backend.Trainer, rng *rand.Rand) error {
	x, labels := ceOperands(rng, c.rows, c.vocab)
	xr := place(tr, x, c.view, rng)
	loss, correct := tr.CrossEntropy(xr.t, slices.Clone(labels), c.scale)
	r := refCrossEntropy(wide(x), labels, float64(c.scale))
	var errs []error
	if loss != r.loss && !(math.Abs(loss-r.loss) <= r.lossTol) {
		errs = append(errs, fmt.Errorf("loss %.17g, want %.17g ± %.3g", loss, r.loss, r.lossTol))
	}
	if correct != r.correct {
		errs = append(errs, fmt.Errorf("correct %d, want %d", correct, r.correct))
	}
	errs = append(errs, checkRegion(tr, xr, "gradient", r.grad, r.gradTol))
	return errors.Join(errs...)
}

// dropCase is one Dropout check.
type dropCase struct {
	rows, cols int
	p          float32
	view       bool
}

func (c dropCase) name() string {
	return fmt.Sprintf("rows=%d,cols=%d,p=%g%s", c.rows, c.cols, c.p, viewName(c.view))
}

func dropCases() []dropCase {
	var cs []dropCase
	for i, d := range [][2]int{{0, 3}, {1, 1}, {31, 33}, {32, 65}, {33, 130}, {65, 31}, {130, 32}} {
		for j, p := range []float32{0.1, 0.5} {
			cs = append(cs, dropCase{rows: d[0], cols: d[1], p: p, view: (i+j)%2 == 1})
		}
	}
	return append(cs, dropCase{rows: 33, cols: 65, p: 0, view: true}, dropCase{rows: 17, cols: 9, p: 0.9, view: true})
}

// check: the elements DropoutKeep keeps (by the view's coordinates) scaled by 1/(1−p), the
// others exact zeros; applying the same call again (the backward) scales the survivors once
// more and drops nothing else.
func (c dropCase) check(tr backend.Trainer, rng *rand.Rand) error {
	x := randMat(rng, c.rows, c.cols, 1)
	xr := place(tr, x, c.view, rng)
	s := rng.Uint64()
	for times := 1; times <= 2; times++ {
		tr.Dropout(xr.t, c.p, s)
		want, tol := refDropout(wide(x), c.p, s, times)
		if err := checkRegion(tr, xr, fmt.Sprintf("x after %d applications", times), want, tol); err != nil {
			return err
		}
	}
	return nil
}

// trainDetTest is one check of BitIdenticalBatching for the backward: the same call on
// backends of every worker count gives the same bits.
type trainDetTest struct {
	name string
	run  func(trs []backend.Trainer, rng *rand.Rand) error
}

func (tc trainDetTest) runOn(trs []backend.Trainer) error {
	return guard(func() error { return tc.run(trs, rngFor("Trainer/BitIdenticalBatching/"+tc.name)) })
}

// trainDetTests are the determinism checks of the Trainer operations, on sizes that the CPU
// backend splits across workers.
func trainDetTests() []trainDetTest {
	ts := []trainDetTest{
		{"LinearBackward/store", func(trs []backend.Trainer, rng *rand.Rand) error { return detLinBack(trs, backend.Store, rng) }},
		{"LinearBackward/add", func(trs []backend.Trainer, rng *rand.Rand) error { return detLinBack(trs, backend.Add, rng) }},
		{"RMSNormBackward", detNormBack},
	}
	for _, a := range activations {
		ts = append(ts, trainDetTest{"ActivateBackward/" + actName(a), func(trs []backend.Trainer, rng *rand.Rand) error {
			return detActBack(trs, a, rng)
		}})
	}
	return append(ts,
		trainDetTest{"AttentionBackward/self", func(trs []backend.Trainer, rng *rand.Rand) error {
			return detAttnBack(trs, detSelfGroups, true, 8, rng)
		}},
		trainDetTest{"AttentionBackward/cross", func(trs []backend.Trainer, rng *rand.Rand) error {
			return detAttnBack(trs, detGroups, false, -1, rng)
		}},
		trainDetTest{"AttentionBackward/bias", func(trs []backend.Trainer, rng *rand.Rand) error {
			return detAttnBack(trs, detGroups, false, 3, rng)
		}},
		trainDetTest{"EmbedBackward", detEmbedBack},
		trainDetTest{"CrossEntropy", detCrossEntropy},
		trainDetTest{"SumSquares", detSumSquares},
		trainDetTest{"Dropout", detDropout},
	)
}

// sameAcross runs op on every backend and checks that each gives the first one's bits (op
// returns float32 results widened, which keeps their bits apart, and float64 ones as they
// are).
func sameAcross(trs []backend.Trainer, op func(tr backend.Trainer) ([]float64, error)) error {
	var want []float64
	for i, tr := range trs {
		got, err := op(tr)
		if err != nil {
			return fmt.Errorf("%s: %w", workers(i), err)
		}
		if i == 0 {
			want = got
			continue
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s: %d results, %s %d", workers(i), len(got), workers(0), len(want))
		}
		for k := range got {
			if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
				return fmt.Errorf("%s against %s: result %d is %.17g, not %.17g", workers(i), workers(0), k, got[k], want[k])
			}
		}
	}
	return nil
}

// readAll reads the regions' views one after another, widened.
func readAll(tr backend.Trainer, rs ...region) ([]float64, error) {
	var out []float64
	for _, r := range rs {
		m, err := r.read(tr)
		if err != nil {
			return nil, err
		}
		out = append(out, f64(m.v)...)
	}
	return out, nil
}

func detLinBack(trs []backend.Trainer, ep backend.Epilogue, rng *rand.Rand) error {
	const rows, out, in = 67, 96, 160
	wm, x, dy := randMat(rng, out, in, 1), randMat(rng, rows, in, 1), randMat(rng, rows, out, 1)
	dx0, dw0 := randMat(rng, rows, in, 1), randMat(rng, out, in, 1)
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		w, err := prepareF32(tr, wm)
		if err != nil {
			return nil, err
		}
		dxr, dwr := place(tr, dx0, true, rng), place(tr, dw0, false, rng)
		tr.LinearBackward(dxr.t, dwr.t, place(tr, dy, true, rng).t, place(tr, x, false, rng).t, w, ep)
		return readAll(tr, dxr, dwr)
	})
}

func detNormBack(trs []backend.Trainer, rng *rand.Rand) error {
	const rows, cols = 300, 64
	x, w, dy := randMat(rng, rows, cols, 1), randMat(rng, 1, cols, 1), randMat(rng, rows, cols, 1)
	dx0, dw0 := randMat(rng, rows, cols, 1), randMat(rng, 1, cols, 1)
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		dxr, dwr := place(tr, dx0, true, rng), place(tr, dw0, false, rng)
		tr.RMSNormBackward(dxr.t, dwr.t, place(tr, dy, false, rng).t, place(tr, x, true, rng).t, place(tr, w, false, rng).t, 1e-6, backend.Add)
		return readAll(tr, dxr, dwr)
	})
}

func detActBack(trs []backend.Trainer, fn backend.Activation, rng *rand.Rand) error {
	const rows, cols = 300, 64
	a, b, dy := actInput(rng, rows, cols), randMat(rng, rows, cols, 1), randMat(rng, rows, cols, 1)
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		dar, dbr := place(tr, newMat(rows, cols), true, rng), place(tr, newMat(rows, cols), false, rng)
		tr.ActivateBackward(dar.t, dbr.t, place(tr, dy, false, rng).t, place(tr, a, true, rng).t, place(tr, b, false, rng).t, fn)
		return readAll(tr, dar, dbr)
	})
}

// detSelfGroups are self-attention groups (queries and keys the same rows), causal and not.
var detSelfGroups = []qGroup{{n: 33, l: 33}, {n: 65, l: 65, causal: true}, {n: 1, l: 1}, {n: 20, l: 20, causal: true}, {n: 7, l: 7}}

// detAttnBack runs AttentionBackward on every backend with all groups in one call, each
// alone and all in reverse order, and checks that every group's DQ and DKV get the first
// run's bits, and dbias (of the call of all groups) too.
func detAttnBack(trs []backend.Trainer, groups []qGroup, fused bool, dist int, rng *rand.Rand) error {
	const heads, dkv = 4, 16
	b := newAttnBatch(rng, heads, dkv, dist, groups)
	var d0 mat
	if dist >= 0 {
		d0 = randMat(rng, heads, 2*dist+1, 1)
	}
	run := func(tr backend.Trainer, gs []int, view bool) ([][]float32, []float32, error) {
		a := b.place(tr, gs, groups, fused, view, rng)
		dbr := none
		if dist >= 0 {
			dbr = place(tr, d0, view, rng)
		}
		tr.AttentionBackward(a.grads, heads, dbr.t)
		res, err := a.results(tr, gs, groups)
		if err != nil || dist < 0 {
			return res, nil, err
		}
		db, err := dbr.read(tr)
		return res, db.v, err
	}
	n := len(groups)
	all, rev := make([]int, n), make([]int, n)
	for i := range all {
		all[i], rev[i] = i, n-1-i
	}
	var want [][]float32
	var wantBias []float32
	for bi, tr := range trs {
		got, db, err := run(tr, all, false)
		if err != nil {
			return fmt.Errorf("%s, all groups: %w", workers(bi), err)
		}
		if bi == 0 {
			want, wantBias = got, db
		} else {
			for g := range got {
				if err := sameBits(got[g], want[g], 0); err != nil {
					return fmt.Errorf("group %d on %s against %s (dq, then dkv): %w", g, workers(bi), workers(0), err)
				}
			}
			if err := sameBits(db, wantBias, 2*dist+1); err != nil {
				return fmt.Errorf("dbias on %s against %s: %w", workers(bi), workers(0), err)
			}
		}
		got, _, err = run(tr, rev, true)
		if err != nil {
			return fmt.Errorf("%s, the groups in reverse: %w", workers(bi), err)
		}
		for i, g := range rev {
			if err := sameBits(got[i], want[g], 0); err != nil {
				return fmt.Errorf("%s: group %d with the groups in reverse (dq, then dkv): %w", workers(bi), g, err)
			}
		}
		for g := range n {
			got, _, err := run(tr, []int{g}, g%2 == 1)
			if err != nil {
				return fmt.Errorf("%s, group %d alone: %w", workers(bi), g, err)
			}
			if err := sameBits(got[0], want[g], 0); err != nil {
				return fmt.Errorf("%s: group %d alone against all together (dq, then dkv): %w", workers(bi), g, err)
			}
		}
	}
	return nil
}

func detEmbedBack(trs []backend.Trainer, rng *rand.Rand) error {
	const vocab, d, n = 50, 64, 300
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	d0, dy := randMat(rng, vocab, d, 1), randMat(rng, n, d, 1)
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		dtr := place(tr, d0, true, rng)
		tr.EmbedBackward(dtr.t, place(tr, dy, false, rng).t, slices.Clone(ids))
		return readAll(tr, dtr)
	})
}

func detCrossEntropy(trs []backend.Trainer, rng *rand.Rand) error {
	x, labels := ceOperands(rng, 40, 300)
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		xr := place(tr, x, true, rng)
		loss, correct := tr.CrossEntropy(xr.t, slices.Clone(labels), 0.125)
		g, err := readAll(tr, xr)
		return append(g, loss, float64(correct)), err
	})
}

func detSumSquares(trs []backend.Trainer, rng *rand.Rand) error {
	x := randMat(rng, 300, 400, 1)
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		return []float64{tr.SumSquares(place(tr, x, true, rng).t)}, nil
	})
}

func detDropout(trs []backend.Trainer, rng *rand.Rand) error {
	x := randMat(rng, 300, 64, 1)
	s := rng.Uint64()
	return sameAcross(trs, func(tr backend.Trainer) ([]float64, error) {
		xr := place(tr, x, true, rng)
		tr.Dropout(xr.t, 0.1, s)
		return readAll(tr, xr)
	})
}
