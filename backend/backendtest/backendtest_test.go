package backendtest

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/plain"
)

// newPlain makes plain backends (one goroutine: the worker count is ignored).
func newPlain(testing.TB, int) backend.Backend { return plain.New() }

// TestPlain runs the suite on the plain backend, which promises bit-identical batching.
func TestPlain(t *testing.T) {
	Run(t, Config{New: newPlain, Promise: BitIdenticalBatching})
}

// wrapper is a backend whose operations are the plain backend's except where a hook
// replaces one: the deliberately broken backends the suite must catch.
type wrapper struct {
	backend.Backend
	threads   int
	upload    func(inner backend.Backend, dst backend.Tensor, src []float32)
	reload    func(inner backend.Backend, w backend.Weight, src backend.Source) error
	embed     func(inner backend.Backend, dst backend.Tensor, table backend.Weight, ids []int)
	rmsNorm   func(inner backend.Backend, dst, x, w backend.Tensor, eps float32)
	linear    func(inner backend.Backend, dst, x backend.Tensor, w backend.Weight, ep backend.Epilogue)
	activate  func(inner backend.Backend, a, b backend.Tensor, act backend.Activation)
	scale     func(inner backend.Backend, x backend.Tensor, s float32)
	crossKV   func(inner backend.Backend, dst []backend.KV, kv backend.Tensor, spans []backend.Span, heads int)
	viewKV    func(inner backend.Backend, kv backend.Tensor) backend.KV
	newCache  func(inner backend.Backend, layers, heads, dkv int) backend.Cache
	attention func(inner backend.Backend, groups []backend.AttnGroup, heads int, bias backend.Tensor)
	logits    func(inner backend.Backend, dst []float32, hidden backend.Tensor, head backend.Weight, scale float32)
	logSumExp func(inner backend.Backend, row []float32) float64
	argmax    func(inner backend.Backend, row []float32) int
}

func (b *wrapper) Upload(dst backend.Tensor, src []float32) {
	if b.upload != nil {
		b.upload(b.Backend, dst, src)
		return
	}
	b.Backend.Upload(dst, src)
}

func (b *wrapper) Reload(w backend.Weight, src backend.Source) error {
	if b.reload != nil {
		return b.reload(b.Backend, w, src)
	}
	return b.Backend.Reload(w, src)
}

func (b *wrapper) Embed(dst backend.Tensor, table backend.Weight, ids []int) {
	if b.embed != nil {
		b.embed(b.Backend, dst, table, ids)
		return
	}
	b.Backend.Embed(dst, table, ids)
}

func (b *wrapper) RMSNorm(dst, x, w backend.Tensor, eps float32) {
	if b.rmsNorm != nil {
		b.rmsNorm(b.Backend, dst, x, w, eps)
		return
	}
	b.Backend.RMSNorm(dst, x, w, eps)
}

func (b *wrapper) Linear(dst, x backend.Tensor, w backend.Weight, ep backend.Epilogue) {
	if b.linear != nil {
		b.linear(b.Backend, dst, x, w, ep)
		return
	}
	b.Backend.Linear(dst, x, w, ep)
}

func (b *wrapper) Activate(a, g backend.Tensor, act backend.Activation) {
	if b.activate != nil {
		b.activate(b.Backend, a, g, act)
		return
	}
	b.Backend.Activate(a, g, act)
}

func (b *wrapper) Scale(x backend.Tensor, s float32) {
	if b.scale != nil {
		b.scale(b.Backend, x, s)
		return
	}
	b.Backend.Scale(x, s)
}

func (b *wrapper) CrossKV(dst []backend.KV, kv backend.Tensor, spans []backend.Span, heads int) {
	if b.crossKV != nil {
		b.crossKV(b.Backend, dst, kv, spans, heads)
		return
	}
	b.Backend.CrossKV(dst, kv, spans, heads)
}

func (b *wrapper) ViewKV(kv backend.Tensor) backend.KV {
	if b.viewKV != nil {
		return b.viewKV(b.Backend, kv)
	}
	return b.Backend.ViewKV(kv)
}

func (b *wrapper) NewCache(layers, heads, dkv int) backend.Cache {
	if b.newCache != nil {
		return b.newCache(b.Backend, layers, heads, dkv)
	}
	return b.Backend.NewCache(layers, heads, dkv)
}

func (b *wrapper) Attention(groups []backend.AttnGroup, heads int, bias backend.Tensor) {
	if b.attention != nil {
		b.attention(b.Backend, groups, heads, bias)
		return
	}
	b.Backend.Attention(groups, heads, bias)
}

func (b *wrapper) Logits(dst []float32, hidden backend.Tensor, head backend.Weight, scale float32) {
	if b.logits != nil {
		b.logits(b.Backend, dst, hidden, head, scale)
		return
	}
	b.Backend.Logits(dst, hidden, head, scale)
}

func (b *wrapper) LogSumExp(row []float32) float64 {
	if b.logSumExp != nil {
		return b.logSumExp(b.Backend, row)
	}
	return b.Backend.LogSumExp(row)
}

func (b *wrapper) Argmax(row []float32) int {
	if b.argmax != nil {
		return b.argmax(b.Backend, row)
	}
	return b.Backend.Argmax(row)
}

func (b *wrapper) Threads() int { return b.threads }

// sharedFork is a cache whose Fork returns the cache itself.
type sharedFork struct{ backend.Cache }

func (c sharedFork) Fork() backend.Cache { return c }

// stuckCache is a cache whose Truncate does nothing.
type stuckCache struct{ backend.Cache }

func (c stuckCache) Truncate(int) {}

func (c stuckCache) Fork() backend.Cache { return stuckCache{c.Cache.Fork()} }

// shortKV is a KV of one key fewer than it reports.
type shortKV struct {
	backend.KV
	n int
}

func (kv shortKV) Len() int { return kv.n }

// checkFunc is a checker of a function.
type checkFunc struct {
	n string
	f func(be backend.Backend, rng *rand.Rand) error
}

func (c checkFunc) name() string                                   { return c.n }
func (c checkFunc) check(be backend.Backend, rng *rand.Rand) error { return c.f(be, rng) }

// filter returns the cases keep selects, as checkers.
func filter[C checker](cs []C, keep func(C) bool) []checker {
	var out []checker
	for _, c := range cs {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// biasMatters reports whether a position bias changes some group's softmax: some query
// sees keys in different buckets (a constant bias per head cancels in the softmax).
func biasMatters(c attnCase) bool {
	if c.dist < 1 {
		return false
	}
	for _, g := range c.groups {
		for i := range g.n {
			p := g.pos0 + i
			valid := g.l
			if g.causal {
				valid = min(g.l, p+1)
			}
			lo, hi := min(max(-p, -c.dist), c.dist), min(max(valid-1-p, -c.dist), c.dist)
			if lo != hi {
				return true
			}
		}
	}
	return false
}

// hasQueries reports whether some group of c has queries.
func hasQueries(c attnCase) bool {
	for _, g := range c.groups {
		if g.n > 0 {
			return true
		}
	}
	return false
}

// brokenCase is a deliberately broken backend and the cases that must catch it.
type brokenCase struct {
	what     string // what the backend gets wrong
	hooks    func(w *wrapper)
	mustFail []checker
	det      []detTest // determinism checks that must fail
}

func brokenCases() []brokenCase {
	dts := []backend.DType{backend.F32, backend.BF16, backend.Int8}
	gen := rand.New(rand.NewPCG(seed, 2))
	lin, attn := linearCases(dts, gen), attnCases(gen)
	acts, norms, embeds := actCases(gen), normCases(gen), embedCases(dts, gen)
	reloads, ups, logits := reloadCases(dts), uploadCases(), logitsCases(dts, gen)
	var scales []scaleCase
	for _, c := range scaleCases(gen) {
		c.view = true
		scales = append(scales, c)
	}
	caches := cacheCases()
	return []brokenCase{
		{
			what:     "Linear ignores the Add epilogue",
			hooks:    func(w *wrapper) { w.linear = withEpilogue(backend.Add, backend.Store) },
			mustFail: filter(lin, func(c linearCase) bool { return c.ep == backend.Add && c.rows > 0 }),
		},
		{
			what:  "Linear ignores the ReLU epilogue",
			hooks: func(w *wrapper) { w.linear = withEpilogue(backend.ReLU, backend.Store) },
			// 16 results or more: some are negative.
			mustFail: filter(lin, func(c linearCase) bool { return c.ep == backend.ReLU && c.rows*c.out >= 16 }),
		},
		{
			what:  "Linear drops the last inner term",
			hooks: func(w *wrapper) { w.linear = dropLastInput },
			// An int8 row off its grid has a tolerance wider than one term.
			mustFail: filter(lin, func(c linearCase) bool { return c.rows > 0 && (c.dt != backend.Int8 || c.grid) }),
		},
		{
			what: "Attention lets a causal query see later keys",
			hooks: func(w *wrapper) {
				w.attention = func(in backend.Backend, gs []backend.AttnGroup, heads int, bias backend.Tensor) {
					for i := range gs {
						gs[i].Causal = false
					}
					in.Attention(gs, heads, bias)
				}
			},
			mustFail: append(filter(attn, func(c attnCase) bool {
				for _, g := range c.groups {
					if g.causal && g.n > 0 && g.pos0 < g.l-1 {
						return true
					}
				}
				return false
			}), filter(caches, func(cacheCase) bool { return true })...),
		},
		{
			what: "Attention ignores the position bias",
			hooks: func(w *wrapper) {
				w.attention = func(in backend.Backend, gs []backend.AttnGroup, heads int, _ backend.Tensor) {
					in.Attention(gs, heads, backend.Tensor{})
				}
			},
			mustFail: append(filter(attn, biasMatters), filter(caches, func(c cacheCase) bool { return c.dist > 0 })...),
		},
		{
			what: "Attention puts the queries one position later",
			hooks: func(w *wrapper) {
				w.attention = func(in backend.Backend, gs []backend.AttnGroup, heads int, bias backend.Tensor) {
					for i := range gs {
						gs[i].Pos0++
					}
					in.Attention(gs, heads, bias)
				}
			},
			mustFail: filter(caches, func(cacheCase) bool { return true }),
		},
		{
			what:  "Attention drops the last key",
			hooks: dropLastKey,
			mustFail: filter(attn, func(c attnCase) bool {
				for _, g := range c.groups {
					if g.n > 0 && g.l >= 2 && (!g.causal || g.pos0+g.n >= g.l) {
						return true
					}
				}
				return false
			}),
		},
		{
			what: "Attention leaves the probabilities unwritten",
			hooks: func(w *wrapper) {
				w.attention = func(in backend.Backend, gs []backend.AttnGroup, heads int, bias backend.Tensor) {
					for i := range gs {
						gs[i].Probs = backend.Tensor{}
					}
					in.Attention(gs, heads, bias)
				}
			},
			mustFail: filter(attn, func(c attnCase) bool { return c.probs && hasQueries(c) }),
		},
		{
			what: "CrossKV keeps reading kv instead of copying it",
			hooks: func(w *wrapper) {
				w.crossKV = func(in backend.Backend, dst []backend.KV, kv backend.Tensor, spans []backend.Span, _ int) {
					for i, sp := range spans {
						dst[i] = in.ViewKV(kv.RowSlice(sp.Off, sp.Off+sp.N))
					}
				}
			},
			mustFail: filter(attn, func(c attnCase) bool { return c.kind == crossKV && hasQueries(c) }),
		},
		{
			what: "Cache.Fork shares the original",
			hooks: func(w *wrapper) {
				w.newCache = func(in backend.Backend, layers, heads, dkv int) backend.Cache {
					return sharedFork{in.NewCache(layers, heads, dkv)}
				}
			},
			mustFail: filter(caches, func(c cacheCase) bool { return c.kind == cacheFork }),
		},
		{
			what: "Cache.Truncate does nothing",
			hooks: func(w *wrapper) {
				w.newCache = func(in backend.Backend, layers, heads, dkv int) backend.Cache {
					return stuckCache{in.NewCache(layers, heads, dkv)}
				}
			},
			mustFail: filter(caches, func(c cacheCase) bool { return c.kind != cacheGrowth }),
		},
		{
			what: "Activate ignores b",
			hooks: func(w *wrapper) {
				w.activate = func(in backend.Backend, a, _ backend.Tensor, act backend.Activation) {
					in.Activate(a, backend.Tensor{}, act)
				}
			},
			mustFail: filter(acts, func(c actCase) bool { return c.gated && c.rows > 0 }),
		},
		{
			what: "Activate computes gelu as gelu_new",
			hooks: func(w *wrapper) {
				w.activate = func(in backend.Backend, a, b backend.Tensor, act backend.Activation) {
					if act == backend.ActGELU {
						act = backend.ActGELUTanh
					}
					in.Activate(a, b, act)
				}
			},
			mustFail: filter(acts, func(c actCase) bool { return c.act == backend.ActGELU && c.rows*c.cols >= 8 }),
		},
		{
			what: "RMSNorm drops eps",
			hooks: func(w *wrapper) {
				w.rmsNorm = func(in backend.Backend, dst, x, g backend.Tensor, _ float32) { in.RMSNorm(dst, x, g, 0) }
			},
			mustFail: filter(norms, func(c normCase) bool { return c.rows > 0 && (c.eps > 1e-3 || c.scale < 1) }),
		},
		{
			what: "Scale writes a column past its view",
			hooks: func(w *wrapper) {
				w.scale = func(in backend.Backend, x backend.Tensor, s float32) {
					if x.Stride > x.Cols {
						x.Cols++
					}
					in.Scale(x, s)
				}
			},
			mustFail: filter(scales, func(c scaleCase) bool { return c.rows > 0 && c.s != 1 }),
		},
		{
			what: "Upload ignores the view's offset",
			hooks: func(w *wrapper) {
				w.upload = func(in backend.Backend, dst backend.Tensor, src []float32) {
					dst.Off = 0
					in.Upload(dst, src)
				}
			},
			mustFail: filter(ups, func(c uploadCase) bool { return c.view && c.rows > 0 }),
		},
		{
			what: "Reload does nothing",
			hooks: func(w *wrapper) {
				w.reload = func(backend.Backend, backend.Weight, backend.Source) error { return nil }
			},
			mustFail: filter(reloads, func(reloadCase) bool { return true }),
		},
		{
			what: "Embed looks up the next row",
			hooks: func(w *wrapper) {
				w.embed = func(in backend.Backend, dst backend.Tensor, table backend.Weight, ids []int) {
					rows, _ := table.Dims()
					next := make([]int, len(ids))
					for i, id := range ids {
						next[i] = (id + 1) % rows
					}
					in.Embed(dst, table, next)
				}
			},
			mustFail: filter(embeds, func(c embedCase) bool { return c.n > 0 && c.vocab > 1 }),
		},
		{
			what: "Logits ignore the scale",
			hooks: func(w *wrapper) {
				w.logits = func(in backend.Backend, dst []float32, h backend.Tensor, head backend.Weight, _ float32) {
					in.Logits(dst, h, head, 1)
				}
			},
			mustFail: filter(logits, func(c logitsCase) bool { return c.scale != 1 && c.rows > 0 }),
		},
		{
			what:     "LogSumExp sums float32 exponentials without the maximum's shift",
			hooks:    func(w *wrapper) { w.logSumExp = naiveLogSumExp },
			mustFail: []checker{checkFunc{"LogSumExp", checkLogSumExp}},
		},
		{
			what: "Argmax picks the last of tied values",
			hooks: func(w *wrapper) {
				w.argmax = func(_ backend.Backend, row []float32) int {
					best := 0
					for i, x := range row {
						if x >= row[best] {
							best = i
						}
					}
					return best
				}
			},
			mustFail: []checker{checkFunc{"Argmax", checkArgmax}},
		},
		{
			what: "Linear results depend on the batch",
			hooks: func(w *wrapper) {
				w.linear = func(in backend.Backend, dst, x backend.Tensor, wt backend.Weight, ep backend.Epilogue) {
					in.Linear(dst, x, wt, ep)
					if dst.Rows > 1 {
						nudge(in, dst)
					}
				}
			},
			det: filterDet(detTests(dts), "Linear/"),
		},
		{
			what: "RMSNorm results depend on the worker count",
			hooks: func(w *wrapper) {
				w.rmsNorm = func(in backend.Backend, dst, x, g backend.Tensor, eps float32) {
					in.RMSNorm(dst, x, g, eps)
					if w.threads == 8 {
						nudge(in, dst)
					}
				}
			},
			det: filterDet(detTests(dts), "RMSNorm"),
		},
		{
			what: "Attention results depend on the other groups",
			hooks: func(w *wrapper) {
				w.attention = func(in backend.Backend, gs []backend.AttnGroup, heads int, bias backend.Tensor) {
					in.Attention(gs, heads, bias)
					if len(gs) > 1 {
						nudge(in, gs[0].Out)
					}
				}
			},
			det: filterDet(detTests(dts), "Attention/"),
		},
	}
}

// filterDet returns the determinism tests whose names start with prefix.
func filterDet(ts []detTest, prefix string) []detTest {
	var out []detTest
	for _, t := range ts {
		if len(t.name) >= len(prefix) && t.name[:len(prefix)] == prefix {
			out = append(out, t)
		}
	}
	return out
}

// withEpilogue returns a Linear that runs epilogue to instead of from.
func withEpilogue(from, to backend.Epilogue) func(backend.Backend, backend.Tensor, backend.Tensor, backend.Weight, backend.Epilogue) {
	return func(in backend.Backend, dst, x backend.Tensor, w backend.Weight, ep backend.Epilogue) {
		if ep == from {
			ep = to
		}
		in.Linear(dst, x, w, ep)
	}
}

// dropLastInput is a Linear that multiplies a copy of x whose last column is zero.
func dropLastInput(in backend.Backend, dst, x backend.Tensor, w backend.Weight, ep backend.Epilogue) {
	host := make([]float32, x.Rows*x.Cols)
	in.Download(host, x)
	for i := range x.Rows {
		host[i*x.Cols+x.Cols-1] = 0
	}
	c := in.Alloc(x.Rows, x.Cols)
	in.Upload(c, host)
	in.Linear(dst, c, w, ep)
}

// nudge moves the first element of t by one ulp.
func nudge(in backend.Backend, t backend.Tensor) {
	if t.Empty() {
		return
	}
	host := make([]float32, t.Rows*t.Cols)
	in.Download(host, t)
	host[0] = math.Nextafter32(host[0], float32(math.Inf(1)))
	in.Upload(t, host)
}

// dropLastKey makes every KV of CrossKV and ViewKV one key short of what it reports.
func dropLastKey(w *wrapper) {
	short := func(in backend.Backend, kv backend.Tensor) backend.KV {
		if kv.Rows < 2 {
			return in.ViewKV(kv)
		}
		return shortKV{in.ViewKV(kv.RowSlice(0, kv.Rows-1)), kv.Rows}
	}
	w.viewKV = short
	w.crossKV = func(in backend.Backend, dst []backend.KV, kv backend.Tensor, spans []backend.Span, heads int) {
		inner := make([]backend.KV, len(spans))
		in.CrossKV(inner, kv, spans, heads)
		for i, sp := range spans {
			dst[i] = inner[i]
			if sp.N >= 2 {
				// The last key copied, the rest the CrossKV of one key fewer.
				part := make([]backend.KV, 1)
				in.CrossKV(part, kv, []backend.Span{{Off: sp.Off, N: sp.N - 1}}, heads)
				dst[i] = shortKV{part[0], sp.N}
			}
		}
	}
	w.attention = func(in backend.Backend, gs []backend.AttnGroup, heads int, bias backend.Tensor) {
		for i := range gs {
			if s, ok := gs[i].KV.(shortKV); ok {
				gs[i].KV = s.KV
				if !gs[i].Probs.Empty() {
					gs[i].Probs = gs[i].Probs.ColSlice(0, s.KV.Len())
				}
			}
		}
		in.Attention(gs, heads, bias)
	}
}

// naiveLogSumExp is log Σ exp(x) summed in float32 from exp(x), without the shift.
func naiveLogSumExp(_ backend.Backend, row []float32) float64 {
	var s float32
	for _, x := range row {
		s += float32(math.Exp(float64(x)))
	}
	return math.Log(float64(s))
}

// TestBrokenBackendsFail checks that the suite's checks catch each deliberately broken
// backend in every case that exercises what it breaks, and that the same cases pass on
// the plain backend (so that the failure is the breakage, not the case).
func TestBrokenBackendsFail(t *testing.T) {
	for _, bc := range brokenCases() {
		t.Run(bc.what, func(t *testing.T) {
			if len(bc.mustFail)+len(bc.det) == 0 {
				t.Fatal("no case exercises the breakage")
			}
			good := plain.New()
			bad := &wrapper{Backend: plain.New(), threads: 1}
			bc.hooks(bad)
			for _, c := range bc.mustFail {
				if err := guard(func() error { return c.check(good, rngFor(c.name())) }); err != nil {
					t.Fatalf("%s fails on the plain backend: %v", c.name(), err)
				}
				err := guard(func() error { return c.check(bad, rngFor(c.name())) })
				if err == nil {
					t.Errorf("%s passes", c.name())
					continue
				}
				t.Logf("%s: %.200v", c.name(), err)
			}
			for _, d := range bc.det {
				var goods, bads []backend.Backend
				for _, n := range detThreads {
					goods = append(goods, plain.New())
					w := &wrapper{Backend: plain.New(), threads: n}
					bc.hooks(w)
					bads = append(bads, w)
				}
				if err := d.runOn(goods); err != nil {
					t.Fatalf("%s fails on plain backends: %v", d.name, err)
				}
				err := d.runOn(bads)
				if err == nil {
					t.Errorf("BitIdenticalBatching/%s passes", d.name)
					continue
				}
				t.Logf("BitIdenticalBatching/%s: %.200v", d.name, err)
			}
		})
	}
}

// TestWithin checks the comparison itself: tolerances are inclusive, NaN never matches,
// equal infinities do, and the worst element is named.
func TestWithin(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		got       []float32
		want, tol []float64
		ok        bool
	}{
		{[]float32{1, 2}, []float64{1, 2}, []float64{0, 0}, true},
		{[]float32{1.5}, []float64{1}, []float64{0.5}, true},
		{[]float32{1.5}, []float64{1}, []float64{0.25}, false},
		{[]float32{float32(math.NaN())}, []float64{1}, []float64{inf}, false},
		{[]float32{float32(math.Inf(-1))}, []float64{-inf}, []float64{0}, true},
		{[]float32{float32(inf)}, []float64{-inf}, []float64{0}, false},
		{[]float32{0}, []float64{1e-30}, []float64{0}, false},
	} {
		if err := within(c.got, c.want, c.tol, 1); (err == nil) != c.ok {
			t.Errorf("within(%v, %v, %v) = %v, want ok %v", c.got, c.want, c.tol, err, c.ok)
		}
	}
	err := within([]float32{1, 2, 3, 4}, []float64{1, 2.1, 3, 5}, []float64{0, 0.01, 0, 0.01}, 2)
	if err == nil || !strings.HasPrefix(err.Error(), "2 of 4 values off; the worst at [1, 1]") {
		t.Errorf("within of two values off: %v", err)
	}
}

// TestActQuantErr checks the int8 activation bound: zero exactly for rows on their grid,
// half a step (and a little) otherwise.
func TestActQuantErr(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := gridMat(rng, 20, 33)
	for i := range g.rows {
		if e := actQuantErr(g.row(i)); e != 0 {
			t.Errorf("grid row %d: bound %g, want 0", i, e)
		}
	}
	row := []float32{1, 0.3, -0.7}
	if e, want := actQuantErr(row), (0.5+0x1p-10)/127; e != want {
		t.Errorf("bound %g, want %g", e, want)
	}
	if e := actQuantErr(make([]float32, 4)); e != 0 {
		t.Errorf("zero row: bound %g", e)
	}
	// 127·2^-3 with one element off the grid.
	off := []float32{127.0 / 8, 1.0 / 16}
	if actQuantErr(off) == 0 {
		t.Error("a row off its grid has bound 0")
	}
}

// TestRoundBF16 checks the bfloat16 rounding: ties to even, NaN quiet.
func TestRoundBF16(t *testing.T) {
	for _, c := range []struct{ in, want uint32 }{
		{0x3f800000, 0x3f800000}, // 1
		{0x3f808000, 0x3f800000}, // tie, even below
		{0x3f818000, 0x3f820000}, // tie, even above
		{0x3f808001, 0x3f810000}, // above the tie
		{0x7f7fffff, 0x7f800000}, // max float32 rounds to +Inf
		{0x7f800001, 0x7fc00000}, // signalling NaN made quiet
	} {
		if got := math.Float32bits(roundBF16(math.Float32frombits(c.in))); got != c.want {
			t.Errorf("roundBF16(%#08x) = %#08x, want %#08x", c.in, got, c.want)
		}
	}
}
