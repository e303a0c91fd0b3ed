package backendtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/t5zoo/t5zoo/backend"
)

// kvKind is where an attention check's keys and values come from.
type kvKind uint8

const (
	crossKV kvKind = iota // Backend.CrossKV, the source overwritten before Attention
	viewKV                // Backend.ViewKV, read in place
)

func (k kvKind) String() string {
	if k == viewKV {
		return "view"
	}
	return "cross"
}

// qGroup is one group of an attention check: n queries at positions pos0.. over l keys.
type qGroup struct {
	n, l, pos0 int
	causal     bool
}

// attnCase is one Attention check: a ragged batch of groups.
type attnCase struct {
	kind       kvKind
	heads, dkv int
	groups     []qGroup
	dist       int // the position bias's maximum distance D (a heads × 2D+1 table); < 0: none
	probs      bool
	view       bool // every operand a view (the bias in rows of a larger tensor)
	biasStride bool // the bias a view of rows and columns (Stride > Cols)
}

func (c attnCase) name() string {
	s := fmt.Sprintf("%v/heads=%d,dkv=%d,groups=", c.kind, c.heads, c.dkv)
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
		s += fmt.Sprintf(",bias=%d", c.dist)
	}
	if c.biasStride {
		s += ",biasstride"
	}
	if c.probs {
		s += ",probs"
	}
	return s + viewName(c.view)
}

// qkScale is the standard deviation of the queries' and keys' elements: q·k is then about
// N(0, 2), scores spread enough that every key matters and none dominates.
func qkScale(dkv int) float64 { return math.Pow(2/float64(dkv), 0.25) }

// randKV is n positions of keys (N(0, qkScale²)) then values (N(0, 1)), as CrossKV, ViewKV
// and Cache.Append take them.
func randKV(rng *rand.Rand, n, inner, dkv int) mat {
	kv := newMat(n, 2*inner)
	s := qkScale(dkv)
	for i := range n {
		r := kv.row(i)
		for j := range inner {
			r[j] = float32(rng.NormFloat64() * s)
			r[inner+j] = float32(rng.NormFloat64())
		}
	}
	return kv
}

// randBias places a heads × 2D+1 position bias (the zero Tensor when dist < 0): in rows of
// a larger tensor (Off > 0, Stride = Cols) when view, a view of rows and columns (Stride >
// Cols) when strided, a tensor of its own otherwise.
func randBias(be backend.Backend, heads, dist int, view, strided bool, rng *rand.Rand) (mat, region) {
	if dist < 0 {
		return mat{}, region{}
	}
	b := randMat(rng, heads, 2*dist+1, 1)
	switch {
	case strided:
		return b, place(be, b, true, rng)
	case view:
		return b, placeRows(be, b, rng)
	}
	return b, place(be, b, false, rng)
}

// groupOut checks one group's output and probabilities against the reference.
func groupOut(out, probs mat, q, kv mat, g qGroup, heads int, bias mat) error {
	inner := q.cols
	ref := refAttention(q, kv.colRange(0, inner), kv.colRange(inner, 2*inner), g.pos0, g.causal, heads, bias)
	if err := within(out.v, ref.out, ref.outTol, inner); err != nil {
		return fmt.Errorf("out: %w", err)
	}
	if probs.v != nil {
		if err := within(probs.v, ref.probs, ref.probsTol, g.l); err != nil {
			return fmt.Errorf("probs (row h·%d+i): %w", g.n, err)
		}
	}
	return nil
}

func (c attnCase) check(be backend.Backend, rng *rand.Rand) error {
	inner := c.heads * c.dkv
	nq, nk := 0, 1+rng.IntN(3) // keys of no group lead kv
	spans := make([]backend.Span, len(c.groups))
	qoff := make([]int, len(c.groups))
	for i, g := range c.groups {
		qoff[i] = nq
		spans[i] = backend.Span{Off: nk, N: g.l}
		nq, nk = nq+g.n, nk+g.l
	}
	q := randMat(rng, nq, inner, qkScale(c.dkv))
	kv := randKV(rng, nk, inner, c.dkv)
	qr, kvr := place(be, q, c.view, rng), place(be, kv, c.view, rng)
	kvs := make([]backend.KV, len(c.groups))
	switch c.kind {
	case crossKV:
		be.CrossKV(kvs, kvr.t, spans, c.heads)
		// The KVs are the backend's own: the model reuses kv's memory at once.
		junk := make([]float32, len(kvr.host))
		for i := range junk {
			junk[i] = float32(math.NaN())
		}
		be.Upload(kvr.parent, junk)
	case viewKV:
		for i, sp := range spans {
			kvs[i] = be.ViewKV(kvr.t.RowSlice(sp.Off, sp.Off+sp.N))
		}
	}
	for i, g := range c.groups {
		if n := kvs[i].Len(); n != g.l {
			return fmt.Errorf("the %v KV of group %d has Len %d, want %d", c.kind, i, n, g.l)
		}
	}
	bias, br := randBias(be, c.heads, c.dist, c.view, c.biasStride, rng)
	outr := place(be, randMat(rng, nq, inner, 1), c.view, rng)
	prs := make([]region, len(c.groups))
	groups := make([]backend.AttnGroup, len(c.groups))
	for i, g := range c.groups {
		groups[i] = backend.AttnGroup{
			Q: qr.t.RowSlice(qoff[i], qoff[i]+g.n), Out: outr.t.RowSlice(qoff[i], qoff[i]+g.n),
			Pos0: g.pos0, KV: kvs[i], Causal: g.causal,
		}
		if c.probs && g.n > 0 {
			prs[i] = place(be, randMat(rng, c.heads*g.n, g.l, 1), c.view, rng)
			groups[i].Probs = prs[i].t
		}
	}
	be.Attention(groups, c.heads, br.t)
	out, err := outr.read(be)
	if err != nil {
		return fmt.Errorf("out: %w", err)
	}
	var errs []error
	for i, g := range c.groups {
		var probs mat
		if c.probs && g.n > 0 {
			if probs, err = prs[i].read(be); err != nil {
				errs = append(errs, fmt.Errorf("group %d: probs: %w", i, err))
				continue
			}
		}
		err := groupOut(out.rowRange(qoff[i], qoff[i]+g.n), probs, q.rowRange(qoff[i], qoff[i]+g.n),
			kv.rowRange(spans[i].Off, spans[i].Off+g.l), g, c.heads, bias)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %d (%d queries at %d, %d keys, causal %v): %w", i, g.n, g.pos0, g.l, g.causal, err))
		}
	}
	errs = append(errs, qr.unchanged(be, "q"))
	if c.dist >= 0 {
		errs = append(errs, br.unchanged(be, "bias"))
	}
	if c.kind == viewKV {
		errs = append(errs, kvr.unchanged(be, "kv"))
	}
	return errors.Join(errs...)
}

// seq is a decoder sequence's cache with a host copy of what it must hold.
type seq struct {
	c          backend.Cache
	heads, dkv int
	kv         []mat // per layer: every position's keys then values
}

func newSeq(be backend.Backend, layers, heads, dkv int) *seq {
	s := &seq{c: be.NewCache(layers, heads, dkv), heads: heads, dkv: dkv, kv: make([]mat, layers)}
	for l := range s.kv {
		s.kv[l] = newMat(0, 2*heads*dkv)
	}
	return s
}

func (s *seq) fork() *seq {
	f := &seq{c: s.c.Fork(), heads: s.heads, dkv: s.dkv, kv: make([]mat, len(s.kv))}
	for l, m := range s.kv {
		f.kv[l] = mat{rows: m.rows, cols: m.cols, v: append([]float32(nil), m.v...)}
	}
	return f
}

// grow appends n new positions to every layer, as a decoder pass does: Reserve, then one
// Append a layer of kv rows that are a view of a fused q/k/v product (when view), whose
// memory the pass reuses at once (overwritten with NaN after the Append).
func (s *seq) grow(be backend.Backend, n int, view bool, rng *rand.Rand) {
	inner := s.heads * s.dkv
	s.c.Reserve(n)
	for l := range s.kv {
		kv := randKV(rng, n, inner, s.dkv)
		r := place(be, kv, view, rng)
		s.c.Append(l, r.t)
		junk := make([]float32, len(r.host))
		for i := range junk {
			junk[i] = float32(math.NaN())
		}
		be.Upload(r.parent, junk)
		s.kv[l] = mat{rows: s.kv[l].rows + n, cols: kv.cols, v: append(s.kv[l].v, kv.v...)}
	}
}

// truncate drops positions from n on.
func (s *seq) truncate(n int) {
	s.c.Truncate(n)
	for l, m := range s.kv {
		s.kv[l] = m.rowRange(0, min(n, m.rows))
	}
}

// attend checks the cache's lengths, then attention over every layer (one group a layer,
// in one call) of the last n positions' queries (all of them when n is the length), causal,
// with a bias of maximum distance dist.
func (s *seq) attend(be backend.Backend, n, dist int, view bool, rng *rand.Rand) error {
	total := s.kv[0].rows
	if got := s.c.Len(); got != total {
		return fmt.Errorf("cache Len %d, want %d", got, total)
	}
	for l := range s.kv {
		if got := s.c.Layer(l).Len(); got != total {
			return fmt.Errorf("layer %d: Len %d, want %d", l, got, total)
		}
	}
	if n == 0 || total == 0 {
		return nil
	}
	inner := s.heads * s.dkv
	layers := len(s.kv)
	q := randMat(rng, layers*n, inner, qkScale(s.dkv))
	qr := place(be, q, view, rng)
	outr := place(be, randMat(rng, layers*n, inner, 1), view, rng)
	bias, br := randBias(be, s.heads, dist, view, false, rng)
	groups := make([]backend.AttnGroup, layers)
	for l := range groups {
		groups[l] = backend.AttnGroup{
			Q: qr.t.RowSlice(l*n, (l+1)*n), Out: outr.t.RowSlice(l*n, (l+1)*n),
			Pos0: total - n, KV: s.c.Layer(l), Causal: true,
		}
	}
	be.Attention(groups, s.heads, br.t)
	out, err := outr.read(be)
	if err != nil {
		return fmt.Errorf("out: %w", err)
	}
	for l := range groups {
		g := qGroup{n: n, l: total, pos0: total - n, causal: true}
		if err := groupOut(out.rowRange(l*n, (l+1)*n), mat{}, q.rowRange(l*n, (l+1)*n), s.kv[l], g, s.heads, bias); err != nil {
			return fmt.Errorf("layer %d, %d queries at %d over %d positions: %w", l, n, total-n, total, err)
		}
	}
	return nil
}

// cacheKind is what a cache check exercises.
type cacheKind uint8

const (
	cacheGrowth   cacheKind = iota // many Reserve/Append rounds
	cacheFork                      // forks, then divergent appends
	cacheTruncate                  // Truncate, and the undo of a failed pass
)

func (k cacheKind) String() string {
	return [...]string{"growth", "fork", "truncate"}[k]
}

// cacheCase is one Cache check.
type cacheCase struct {
	kind               cacheKind
	layers, heads, dkv int
	dist               int
	view               bool
}

func (c cacheCase) name() string {
	return fmt.Sprintf("%v/layers=%d,heads=%d,dkv=%d,bias=%d%s", c.kind, c.layers, c.heads, c.dkv, c.dist, viewName(c.view))
}

func (c cacheCase) check(be backend.Backend, rng *rand.Rand) error {
	switch c.kind {
	case cacheGrowth:
		return c.growth(be, rng)
	case cacheFork:
		return c.forks(be, rng)
	case cacheTruncate:
		return c.truncation(be, rng)
	}
	return fmt.Errorf("unknown cache check %d", c.kind)
}

// step grows s by n positions and checks attention of the new ones (of all of them every
// fifth round, which checks every causal prefix).
func (c cacheCase) step(be backend.Backend, s *seq, n, round int, rng *rand.Rand) error {
	s.grow(be, n, c.view, rng)
	q := n
	if round%5 == 4 {
		q = s.kv[0].rows
	}
	if err := s.attend(be, q, c.dist, c.view, rng); err != nil {
		return fmt.Errorf("round %d (+%d positions): %w", round, n, err)
	}
	return nil
}

// growth: 48 rounds, mostly of one position (decoder steps), some of several (a prompt).
func (c cacheCase) growth(be backend.Backend, rng *rand.Rand) error {
	s := newSeq(be, c.layers, c.heads, c.dkv)
	if err := s.attend(be, 0, c.dist, c.view, rng); err != nil {
		return fmt.Errorf("new cache: %w", err)
	}
	for r := range 48 {
		n := 1
		if r%7 == 0 {
			n = 1 + rng.IntN(9)
		}
		if err := c.step(be, s, n, r, rng); err != nil {
			return err
		}
	}
	return nil
}

// forks: a fork holds the original's positions; appends to the original, the fork and a
// fork of the fork diverge without touching one another; truncating one leaves the others.
func (c cacheCase) forks(be backend.Backend, rng *rand.Rand) error {
	a := newSeq(be, c.layers, c.heads, c.dkv)
	for r := range 5 {
		if err := c.step(be, a, 1+r%3, r, rng); err != nil {
			return fmt.Errorf("before the fork: %w", err)
		}
	}
	b := a.fork()
	if err := b.attend(be, b.kv[0].rows, c.dist, c.view, rng); err != nil {
		return fmt.Errorf("the new fork: %w", err)
	}
	var d *seq
	for r := range 12 {
		if err := c.step(be, a, 1, r, rng); err != nil {
			return fmt.Errorf("original: %w", err)
		}
		if err := c.step(be, b, 1+r%2, r, rng); err != nil {
			return fmt.Errorf("fork: %w", err)
		}
		if r == 4 {
			d = b.fork()
		}
		if d != nil {
			if err := c.step(be, d, 1, r, rng); err != nil {
				return fmt.Errorf("fork of the fork: %w", err)
			}
		}
	}
	a.truncate(3)
	var errs []error
	for i, s := range []*seq{a, b, d} {
		if err := s.attend(be, s.kv[0].rows, c.dist, c.view, rng); err != nil {
			errs = append(errs, fmt.Errorf("%s, after truncating the original: %w", [...]string{"original", "fork", "fork of the fork"}[i], err))
		}
	}
	return errors.Join(errs...)
}

// truncation: Truncate to fewer positions, to as many (no-op), the undo of a pass that
// failed after appending some layers, to none; growth resumes after each.
func (c cacheCase) truncation(be backend.Backend, rng *rand.Rand) error {
	s := newSeq(be, c.layers, c.heads, c.dkv)
	round := 0
	grow := func(rounds int) error {
		for range rounds {
			if err := c.step(be, s, 1+rng.IntN(3), round, rng); err != nil {
				return err
			}
			round++
		}
		return nil
	}
	check := func(what string) error {
		if err := s.attend(be, s.kv[0].rows, c.dist, c.view, rng); err != nil {
			return fmt.Errorf("after %s: %w", what, err)
		}
		return nil
	}
	if err := grow(8); err != nil {
		return err
	}
	s.truncate(s.kv[0].rows - 3)
	if err := errors.Join(check("Truncate(Len-3)"), grow(3)); err != nil {
		return err
	}
	s.truncate(s.kv[0].rows)
	if err := errors.Join(check("Truncate(Len)"), grow(2)); err != nil {
		return err
	}
	// A failed pass: room for 4 positions, layer 0 appended, then undone.
	n := s.kv[0].rows
	s.c.Reserve(4)
	r := place(be, randKV(rng, 4, c.heads*c.dkv, c.dkv), c.view, rng)
	s.c.Append(0, r.t)
	s.truncate(n)
	if err := errors.Join(check("a failed pass undone"), grow(3)); err != nil {
		return err
	}
	s.truncate(0)
	if err := errors.Join(check("Truncate(0)"), grow(4)); err != nil {
		return err
	}
	return nil
}
