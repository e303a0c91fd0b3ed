// Package backendtest is the conformance suite of backend.Backend: every operation of a
// backend against a float64 reference computed from the same float32 inputs, and the
// backend's determinism promise. A backend's tests run it in one line:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, backendtest.Config{
//			New:     func(t testing.TB, threads int) backend.Backend { return mybackend.New(threads) },
//			Promise: backendtest.BitIdenticalBatching,
//			DTypes:  []backend.DType{backend.F32, backend.BF16, backend.Int8},
//		})
//	}
//
// Each operation is a subtest, and each case of it one below (Run's output names the
// operation, the sizes, the weight type and whether the operands were views). The cases
// cover the sizes around every tile edge of the CPU kernels (rows 0..65, weight rows 1..100,
// inner dimensions 1..129, sampled with a fixed seed rather than crossed), operands that are
// views (Off > 0, Stride > Cols, made with RowSlice and ColSlice) with sentinels around them
// that must be neither read nor written, ragged attention batches (causal and not, with and
// without a position bias, positions past 0, probabilities requested), caches grown over
// many rounds, forked, truncated, and the host-row operations on rows with ties and
// infinities. A backend that implements backend.Trainer gets its backward half checked too
// (subtest Trainer, train.go): every gradient against a float64 reference, and the same
// determinism promise.
//
// Results are compared with tolerances derived from float32 rounding (ref.go states each
// formula): a correct backend is within them whatever its summation order, and an
// off-by-one (a dropped key, a leaked future position, a bias bucket too far, a missing
// epilogue) is far outside. Exact equality is asked only where the contract promises it:
// Upload and Download, Embed of f32 and bf16 tables, Argmax, the zeros of a fresh tensor
// and of the probabilities past a causal query's last key, and the bits of the
// determinism promise.
package backendtest

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
)

// Promise is a backend's determinism promise, which the suite holds it to.
type Promise uint8

const (
	// WithinTolerance promises results within the reference's tolerances only: batched
	// and unbatched calls, or calls on different worker counts, may differ in their bits.
	WithinTolerance Promise = iota
	// BitIdenticalBatching promises that a row's result (an attention group's) never
	// depends on the other rows (groups) of the call nor on the number of workers: the
	// same rows computed alone and inside a larger batch, and on backends made with 1, 2,
	// 3 and 8 workers, give identical bits (Linear in every epilogue and weight type,
	// RMSNorm, Activate, Attention over every kind of KV, Logits).
	BitIdenticalBatching
)

// Config is a backend under test.
type Config struct {
	// New returns a fresh backend with the given worker count (the suite checks results do
	// not depend on it); backends with one goroutine ignore it. Run closes what New
	// returns.
	New func(t testing.TB, threads int) backend.Backend
	// Promise is the backend's determinism promise the suite holds it to.
	Promise Promise
	// DTypes are the weight types to test (nil: F32, BF16 and Int8).
	DTypes []backend.DType
}

// refThreads is the worker count of the backend the reference checks run on: odd, so that
// work split evenly between workers leaves a remainder.
const refThreads = 3

// seed fixes the suite's random operands and sampled sizes.
const seed = 0x7435_7a6f6f

// Run runs the conformance suite on the backend c.New makes.
func Run(t *testing.T, c Config) {
	t.Helper()
	if c.New == nil {
		t.Fatal("backendtest: Config.New is nil")
	}
	dts := c.DTypes
	if len(dts) == 0 {
		dts = []backend.DType{backend.F32, backend.BF16, backend.Int8}
	}
	be := newBackend(t, c, refThreads)
	if be.Name() == "" || be.Threads() < 1 {
		t.Errorf("backend names itself %q with %d threads", be.Name(), be.Threads())
	}
	for _, g := range groups(dts) {
		t.Run(g.name, func(t *testing.T) {
			for i, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					if err := tc.runOn(be, fmt.Sprintf("%s/%d", g.name, i)); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
	if tr, ok := be.(backend.Trainer); ok {
		t.Run("Trainer", func(t *testing.T) { runTrainer(t, c, tr) })
	}
	if c.Promise == BitIdenticalBatching {
		t.Run("BitIdenticalBatching", func(t *testing.T) {
			bes := make([]backend.Backend, len(detThreads))
			for i, n := range detThreads {
				bes[i] = newBackend(t, c, n)
			}
			for _, tc := range detTests(dts) {
				t.Run(tc.name, func(t *testing.T) {
					if err := tc.runOn(bes); err != nil {
						t.Error(err)
					}
				})
			}
		})
	}
}

// newBackend makes a backend closed at the end of t.
func newBackend(t *testing.T, c Config, threads int) backend.Backend {
	be := c.New(t, threads)
	if be == nil {
		t.Fatalf("backendtest: Config.New(%d) returned nil", threads)
	}
	t.Cleanup(func() {
		if err := be.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return be
}

// rngFor is the random source of the test named name: each test draws its own operands,
// whatever ran before it.
func rngFor(name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// guard runs f, turning a panic into an error with the stack from where it was raised.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, panicStack(debug.Stack()))
		}
	}()
	return f()
}

// panicStack is the part of a recovered panic's stack that says where it came from: the
// frames below the runtime's panic, up to 8.
func panicStack(stack []byte) string {
	lines := strings.Split(string(stack), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") && i+2 <= len(lines) {
			lines = lines[i+2:]
			break
		}
	}
	return strings.Join(lines[:min(len(lines), 16)], "\n")
}

// test is one case of an operation's subtest.
type test struct {
	name string
	run  func(be backend.Backend, rng *rand.Rand) error
}

// runOn runs the test on be, its operands drawn from a source seeded by the test's name
// and key (its place in the suite, which tells apart two cases of the same name).
func (tc test) runOn(be backend.Backend, key string) error {
	return guard(func() error { return tc.run(be, rngFor(key+"/"+tc.name)) })
}

func (tc detTest) runOn(bes []backend.Backend) error {
	return guard(func() error { return tc.run(bes, rngFor("BitIdenticalBatching/"+tc.name)) })
}

// group is one operation's subtest.
type group struct {
	name  string
	tests []test
}

// checker is a case of an operation.
type checker interface {
	name() string
	check(be backend.Backend, rng *rand.Rand) error
}

func tests[C checker](cs []C) []test {
	ts := make([]test, len(cs))
	for i, c := range cs {
		ts[i] = test{c.name(), c.check}
	}
	return ts
}

// The sizes around the CPU kernels' tile edges: rows of activations (strips of up to 4 or
// 16 rows, blocks of 64), weight rows (panels of 32 outputs), inner dimensions (int8 groups
// of 4, vectors of 8 and 16).
var (
	rowSizes   = []int{0, 1, 2, 3, 4, 5, 7, 8, 13, 14, 15, 16, 17, 31, 32, 33, 63, 64, 65}
	outSizes   = []int{1, 31, 32, 33, 64, 65, 100}
	innerSizes = []int{1, 3, 4, 5, 31, 32, 33, 64, 129}
	querySizes = []int{1, 2, 3, 5, 8, 13, 17, 33, 64, 65}
	dkvSizes   = []int{1, 7, 8, 64}
)

// deck deals the values of a list in random order, reshuffled after every pass, so that
// cases drawn from several decks cover every value of each without the cross product.
type deck struct {
	vals []int
	next int
	rng  *rand.Rand
}

func newDeck(rng *rand.Rand, vals ...int) *deck {
	return &deck{vals: append([]int(nil), vals...), next: len(vals), rng: rng}
}

func (d *deck) draw() int {
	if d.next == len(d.vals) {
		d.rng.Shuffle(len(d.vals), func(i, j int) { d.vals[i], d.vals[j] = d.vals[j], d.vals[i] })
		d.next = 0
	}
	d.next++
	return d.vals[d.next-1]
}

var epilogues = []backend.Epilogue{backend.Store, backend.Add, backend.ReLU}

var activations = []backend.Activation{backend.ActReLU, backend.ActGELUTanh, backend.ActGELU, backend.ActSiLU}

// groups are the reference checks of every operation, for the weight types dts.
func groups(dts []backend.DType) []group {
	gen := rand.New(rand.NewPCG(seed, 1))
	return []group{
		{"UploadDownload", tests(uploadCases())},
		{"Prepare", tests(prepareCases(dts))},
		{"Reload", tests(reloadCases(dts))},
		{"Embed", tests(embedCases(dts, gen))},
		{"Linear", tests(linearCases(dts, gen))},
		{"RMSNorm", tests(normCases(gen))},
		{"Activate", tests(actCases(gen))},
		{"Scale", tests(scaleCases(gen))},
		{"Attention", tests(attnCases(gen))},
		{"Cache", tests(cacheCases())},
		{"Logits", tests(logitsCases(dts, gen))},
		{"LogSumExp", []test{{"rows", checkLogSumExp}}},
		{"Argmax", []test{{"rows", checkArgmax}}},
		{"Concurrent", []test{{"goroutines=4", checkConcurrent(dts)}}},
	}
}

func uploadCases() []uploadCase {
	var cs []uploadCase
	for _, d := range [][2]int{{0, 5}, {1, 1}, {3, 7}, {5, 1}, {13, 33}, {64, 129}} {
		cs = append(cs, uploadCase{d[0], d[1], false}, uploadCase{d[0], d[1], true})
	}
	return cs
}

func prepareCases(dts []backend.DType) []prepareCase {
	var cs []prepareCase
	for _, dt := range dts {
		for _, d := range [][2]int{{1, 1}, {33, 5}, {100, 129}} {
			cs = append(cs, prepareCase{dt: dt, rows: d[0], cols: d[1]})
		}
		if dt == backend.Int8 {
			cs = append(cs, prepareCase{dt: dt, rows: 65, cols: 33, quant: true})
		}
	}
	return cs
}

func reloadCases(dts []backend.DType) []reloadCase {
	var cs []reloadCase
	for _, dt := range dts {
		cs = append(cs, reloadCase{dt: dt, rows: 33, cols: 31}, reloadCase{dt: dt, rows: 65, cols: 4})
		if dt == backend.Int8 {
			cs = append(cs, reloadCase{dt: dt, rows: 32, cols: 64, quant: true})
		}
	}
	return cs
}

func embedCases(dts []backend.DType, gen *rand.Rand) []embedCase {
	var cs []embedCase
	vocab, d, n := newDeck(gen, 1, 5, 33, 100), newDeck(gen, innerSizes...), newDeck(gen, 0, 1, 2, 7, 33, 65)
	for _, dt := range dts {
		for i := range 6 {
			cs = append(cs, embedCase{dt: dt, vocab: vocab.draw(), d: d.draw(), n: n.draw(), view: i%2 == 1, quant: dt == backend.Int8 && i%3 == 2})
		}
	}
	return cs
}

// linearCases: per weight type, every activation row count twice, every weight row count
// and inner dimension at least four times, every epilogue with and without views; for int8
// half the rows on their grid and some weights from a QuantizedSource. And the largest
// sizes in every epilogue.
func linearCases(dts []backend.DType, gen *rand.Rand) []linearCase {
	var cs []linearCase
	rows, out, in := newDeck(gen, rowSizes...), newDeck(gen, outSizes...), newDeck(gen, innerSizes...)
	for _, dt := range dts {
		for i := range 2 * len(rowSizes) {
			int8 := dt == backend.Int8
			cs = append(cs, linearCase{
				dt: dt, rows: rows.draw(), out: out.draw(), in: in.draw(), ep: epilogues[i%3], view: i%2 == 1,
				grid: int8 && i/2%2 == 0, quant: int8 && i%5 == 2,
			})
		}
		for _, ep := range epilogues {
			cs = append(cs, linearCase{dt: dt, rows: 65, out: 100, in: 129, ep: ep, view: true, grid: dt == backend.Int8})
		}
	}
	return cs
}

func normCases(gen *rand.Rand) []normCase {
	var cs []normCase
	rows, cols := newDeck(gen, rowSizes...), newDeck(gen, innerSizes...)
	for i := range 20 {
		c := normCase{rows: rows.draw(), cols: cols.draw(), eps: 1e-6, scale: 1, view: i%2 == 1}
		if i%4 >= 2 {
			c.eps = 0.1
		}
		if i%8 >= 4 {
			c.scale = 1e-3
		}
		cs = append(cs, c)
	}
	return cs
}

func actCases(gen *rand.Rand) []actCase {
	var cs []actCase
	rows, cols := newDeck(gen, rowSizes...), newDeck(gen, innerSizes...)
	for _, a := range activations {
		for i := range 6 {
			cs = append(cs, actCase{rows: rows.draw(), cols: cols.draw(), act: a, gated: i%2 == 0, view: i%3 != 0})
		}
	}
	return cs
}

func scaleCases(gen *rand.Rand) []scaleCase {
	var cs []scaleCase
	rows, cols := newDeck(gen, rowSizes...), newDeck(gen, innerSizes...)
	for i, s := range []float32{0.5, -3, 0.125, 1.7, float32(1 / math.Sqrt(512)), 1} {
		cs = append(cs, scaleCase{rows: rows.draw(), cols: cols.draw(), s: s, view: i%2 == 0})
	}
	return cs
}

// attnCases: ragged batches of 1 to 4 groups of every query and key count, heads 1..4 and
// every d_kv, positions from 0 and past it (decoder-like: the queries the last keys; and
// anywhere), causal and not, biases of maximum distance 0 to 8 (relative positions clamped
// both ways) and none, probabilities requested, both kinds of KV; and the edge cases: no
// groups, a group of no queries, one query over one key.
func attnCases(gen *rand.Rand) []attnCase {
	var cs []attnCase
	heads, dkv := newDeck(gen, 1, 2, 3, 4), newDeck(gen, dkvSizes...)
	nq, nk, dist := newDeck(gen, querySizes...), newDeck(gen, querySizes...), newDeck(gen, -1, 0, 1, 3, 8)
	for i := range 40 {
		c := attnCase{kind: kvKind(i % 2), heads: heads.draw(), dkv: dkv.draw(), dist: dist.draw(), probs: i%3 == 0, view: i%4 < 2}
		for range 1 + gen.IntN(4) {
			g := qGroup{n: nq.draw(), l: nk.draw(), causal: gen.IntN(2) == 0}
			switch gen.IntN(3) {
			case 1:
				g.pos0 = max(0, g.l-g.n)
			case 2:
				g.pos0 = gen.IntN(40)
			}
			c.groups = append(c.groups, g)
		}
		cs = append(cs, c)
	}
	cs = append(cs,
		attnCase{kind: crossKV, heads: 2, dkv: 8, dist: 3},
		attnCase{kind: viewKV, heads: 2, dkv: 8, dist: -1, groups: []qGroup{{n: 0, l: 5}, {n: 3, l: 4, pos0: 1, causal: true}}, probs: true, view: true},
		attnCase{kind: crossKV, heads: 1, dkv: 1, dist: 0, groups: []qGroup{{n: 1, l: 1}}, probs: true},
		attnCase{kind: viewKV, heads: 4, dkv: 64, dist: 8, groups: []qGroup{{n: 65, l: 65, causal: true}, {n: 1, l: 65, pos0: 64, causal: true}}, probs: true, view: true},
		// The position bias is a Tensor like any other: a view of rows and columns too.
		attnCase{kind: crossKV, heads: 3, dkv: 8, dist: 3, biasStride: true, groups: []qGroup{{n: 13, l: 17, pos0: 2}, {n: 5, l: 9, causal: true}}},
		attnCase{kind: viewKV, heads: 1, dkv: 7, dist: 8, biasStride: true, groups: []qGroup{{n: 33, l: 33, causal: true}}, view: true},
	)
	return cs
}

func cacheCases() []cacheCase {
	return []cacheCase{
		{kind: cacheGrowth, layers: 2, heads: 1, dkv: 1, dist: 3},
		{kind: cacheGrowth, layers: 1, heads: 3, dkv: 7, dist: 8, view: true},
		{kind: cacheGrowth, layers: 2, heads: 2, dkv: 64, dist: -1},
		{kind: cacheFork, layers: 2, heads: 2, dkv: 8, dist: 3, view: true},
		{kind: cacheFork, layers: 1, heads: 1, dkv: 64, dist: 0},
		{kind: cacheTruncate, layers: 3, heads: 4, dkv: 7, dist: 8},
		{kind: cacheTruncate, layers: 2, heads: 2, dkv: 1, dist: 1, view: true},
	}
}

func logitsCases(dts []backend.DType, gen *rand.Rand) []logitsCase {
	var cs []logitsCase
	rows, vocab, d := newDeck(gen, 0, 1, 2, 5, 13, 33), newDeck(gen, 1, 31, 33, 100, 257), newDeck(gen, innerSizes...)
	for _, dt := range dts {
		for i := range 6 {
			c := logitsCase{dt: dt, rows: rows.draw(), vocab: vocab.draw(), d: d.draw(), view: i%2 == 1}
			switch i % 3 {
			case 0:
				c.scale = 1
			case 1:
				c.scale = 0.125
			case 2:
				c.scale = float32(1 / math.Sqrt(float64(c.d)))
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// checkConcurrent runs checks of the operations from four goroutines at once on one
// backend (whose methods are safe for concurrent use): products, norms, attention over
// each kind of KV and a growing cache, each on its own operands.
func checkConcurrent(dts []backend.DType) func(be backend.Backend, rng *rand.Rand) error {
	return func(be backend.Backend, rng *rand.Rand) error {
		var cs []checker
		for _, dt := range dts {
			cs = append(cs, linearCase{dt: dt, rows: 33, out: 65, in: 129, ep: backend.Add, view: true, grid: dt == backend.Int8})
		}
		cs = append(cs,
			normCase{rows: 64, cols: 129, eps: 1e-6, scale: 1, view: true},
			actCase{rows: 31, cols: 64, act: backend.ActGELUTanh, gated: true},
			attnCase{kind: crossKV, heads: 4, dkv: 8, dist: 8, groups: []qGroup{{n: 33, l: 17}, {n: 5, l: 64, pos0: 7}}, probs: true},
			attnCase{kind: viewKV, heads: 2, dkv: 64, dist: 3, groups: []qGroup{{n: 64, l: 64, causal: true}}, view: true},
			cacheCase{kind: cacheGrowth, layers: 2, heads: 2, dkv: 8, dist: 3},
		)
		const workers = 4
		errs := make([]error, workers)
		seeds := make([]uint64, workers)
		for i := range seeds {
			seeds[i] = rng.Uint64()
		}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, seeds[w]))
				for i := range cs {
					c := cs[(i+w)%len(cs)]
					if err := guard(func() error { return c.check(be, r) }); err != nil {
						errs[w] = fmt.Errorf("goroutine %d: %s: %w", w, c.name(), err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
}
