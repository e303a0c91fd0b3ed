package infer

import (
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
)

// TestBatcherSmallBesideLarge sends a request of many wide inputs (16 inputs × 8 samples,
// 60 tokens each, on a batch of 4 rows), then a 2-token request: the small one joins at the
// next step and finishes long before the large one, instead of waiting behind its inputs.
func TestBatcherSmallBesideLarge(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	var steps atomic.Int64
	b := NewBatcher(m, BatcherOptions{MaxRows: 4, Observe: func(BatchStats) { steps.Add(1) }})
	defer b.Close()
	big := randomInputs(1, 16, 20, s.VocabSize, s.EOSTokenID)
	started := make(chan struct{})
	var once sync.Once
	bigDone := make(chan error, 1)
	go func() {
		_, err := b.Generate(t.Context(), big, GenerateOptions{MaxNewTokens: 60, Sample: true, NumReturnSequences: 8, Seed: 1},
			func(Token) { once.Do(func() { close(started) }) })
		bigDone <- err
	}()
	<-started
	small := randomInputs(2, 1, 5, s.VocabSize, s.EOSTokenID)
	from := steps.Load()
	got, err := b.Generate(t.Context(), small, GenerateOptions{MaxNewTokens: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := steps.Load() - from
	select {
	case err := <-bigDone:
		t.Fatalf("the large request (%v) finished before the small one", err)
	default:
	}
	// Two decoder steps, plus the steps taken while this goroutine reached the queue on a
	// loaded machine; behind the large request's inputs it would be about 16×60.
	if took > 30 {
		t.Errorf("the 2-token request took %d steps of the batch", took)
	}
	want, err := m.Generate(t.Context(), small, GenerateOptions{MaxNewTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !genEqual(got[0], want[0]) {
		t.Error("the small request's result depends on the large one")
	}
	if err := <-bigDone; err != nil {
		t.Fatal(err)
	}
}

// TestBatcherEncodesInPieces checks that a request of many inputs is encoded a bounded number
// of tokens at a time, between the decoder steps of a request already running.
func TestBatcherEncodesInPieces(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	var mu sync.Mutex
	var stats []BatchStats
	b := NewBatcher(m, BatcherOptions{MaxRows: 64, EncodeTokens: 60, Observe: func(st BatchStats) {
		mu.Lock()
		stats = append(stats, st)
		mu.Unlock()
	}})
	defer b.Close()
	long := randomInputs(3, 1, 10, s.VocabSize, s.EOSTokenID)
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		_, err := b.Generate(t.Context(), long, GenerateOptions{MaxNewTokens: 40}, func(Token) { once.Do(func() { close(started) }) })
		done <- err
	}()
	<-started
	many := make([][]int, 12)
	for i := range many {
		many[i] = slices.Repeat([]int{5}, 30)
		many[i][29] = s.EOSTokenID
	}
	if _, err := b.Generate(t.Context(), many, GenerateOptions{MaxNewTokens: 3}, nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	encoded := 0
	for _, st := range stats {
		// 60 tokens a step: the first input (30 tokens) of the request, then one more.
		if st.Encoded > 2 {
			t.Errorf("a step encoded %d inputs of 30 tokens with EncodeTokens 60", st.Encoded)
		}
		encoded += st.Encoded
	}
	if encoded != 13 {
		t.Errorf("%d inputs encoded, want 13", encoded)
	}
}

// budget is a Memory with a fixed size that records its peak.
type budget struct {
	mu               sync.Mutex
	size, used, peak int64
	refused          int
}

func (b *budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.size {
		b.refused++
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

func (b *budget) Release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// TestBatcherMemory decodes concurrent requests under a memory budget that holds one input at
// a time: they all finish, correctly, one input decoding at a time, and the budget ends empty.
// A cancelled request gives its memory back too.
func TestBatcherMemory(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	opts := GenerateOptions{MaxNewTokens: 8}
	in := randomInputs(7, 6, 20, s.VocabSize, s.EOSTokenID)
	one, err := m.GenerateBytes(20, opts)
	if err != nil {
		t.Fatal(err)
	}
	mem := &budget{size: one + one/2}
	var maxInputs atomic.Int64
	b := NewBatcher(m, BatcherOptions{Memory: mem, Observe: func(st BatchStats) {
		for v := maxInputs.Load(); int64(st.Inputs) > v && !maxInputs.CompareAndSwap(v, int64(st.Inputs)); v = maxInputs.Load() {
		}
	}})
	defer b.Close()
	var wg sync.WaitGroup
	for i := range in {
		wg.Go(func() {
			got, err := b.Generate(t.Context(), in[i:i+1], opts, nil)
			if err != nil {
				t.Error(err)
				return
			}
			want, _ := m.Generate(t.Context(), in[i:i+1], opts)
			if !genEqual(got[0], want[0]) {
				t.Errorf("input %d differs under the memory budget", i)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Generate(ctx, in[:1], GenerateOptions{MaxNewTokens: 2000}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request past its deadline: %v", err)
	}
	time.Sleep(20 * time.Millisecond) // the loop drops it at its next step
	mem.mu.Lock()
	defer mem.mu.Unlock()
	if mem.used != 0 || mem.peak > mem.size || mem.refused == 0 {
		t.Errorf("budget of %d: %d still used, peak %d, %d refusals", mem.size, mem.used, mem.peak, mem.refused)
	}
	if n := maxInputs.Load(); n != 1 {
		t.Errorf("%d inputs decoded together in a budget for one", n)
	}
}

// TestBatcherStop ends sequences early through a StopSet: a greedy sequence stops after the
// token its caller saw, and one sample of two stops while the other runs to the end.
func TestBatcherStop(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	b := NewBatcher(m, BatcherOptions{})
	defer b.Close()
	in := randomInputs(11, 1, 10, s.VocabSize, s.EOSTokenID)

	var stops StopSet
	n := 0
	gens, err := b.GenerateWith(t.Context(), in, GenerateOptions{MaxNewTokens: 50}, GenerateHooks{
		Token: func(tok Token) {
			if n++; n == 3 {
				stops.Stop(tok.Input, tok.Sequence)
			}
		},
		Stop: &stops,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := gens[0].Hypotheses[0]
	if len(h.IDs)-1 != 3 || !h.Stopped || len(h.TokenLogprobs) != 3 {
		t.Errorf("stopped after the 3rd token: %d tokens, stopped %v", len(h.IDs)-1, h.Stopped)
	}

	var some StopSet
	opts := GenerateOptions{MaxNewTokens: 30, Sample: true, NumReturnSequences: 2, Seed: 3}
	gens, err = b.GenerateWith(t.Context(), in, opts, GenerateHooks{
		Token: func(tok Token) {
			if tok.Sequence == 1 {
				some.Stop(0, 1)
			}
		},
		Stop: &some,
	})
	if err != nil {
		t.Fatal(err)
	}
	alone, err := m.Generate(t.Context(), in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if h := gens[0].Hypotheses[1]; len(h.IDs) != 2 || !h.Stopped {
		t.Errorf("stopped sample: %d ids, stopped %v", len(h.IDs), h.Stopped)
	}
	if h := gens[0].Hypotheses[0]; !hypEqual(h, alone[0].Hypotheses[0]) || h.Stopped {
		t.Error("the sample beside a stopped one changed")
	}
}

// TestNonFiniteOutputs loads models whose weights make NaNs: every entry point says so with
// ErrNumerics instead of answering with garbage.
func TestNonFiniteOutputs(t *testing.T) {
	spec := randomVariants()[0].spec
	s := spec.shape
	in := randomInputs(1, 2, 10, s.VocabSize, s.EOSTokenID)
	for _, tc := range []struct {
		tensor string
		value  float32
	}{
		{"decoder.final_layer_norm.weight", float32(math.NaN())},
		{"encoder.final_layer_norm.weight", float32(math.Inf(1))},
	} {
		t.Run(tc.tensor, func(t *testing.T) {
			ts := randomTensors(spec, 1)
			for i := range ts[tc.tensor] {
				ts[tc.tensor][i] = tc.value
			}
			m, err := Load(t.Context(), writeModel(t, spec, ts), testOptions(t, LoadOptions{}))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if _, err := m.Generate(t.Context(), in, GenerateOptions{MaxNewTokens: 3}); !errors.Is(err, ErrNumerics) {
				t.Errorf("greedy: %v", err)
			}
			if _, err := m.Generate(t.Context(), in, GenerateOptions{MaxNewTokens: 3, NumBeams: 2}); !errors.Is(err, ErrNumerics) {
				t.Errorf("beam: %v", err)
			}
			if _, err := m.Score(t.Context(), []ScorePair{{Input: in[0], Target: in[1]}}); !errors.Is(err, ErrNumerics) {
				t.Errorf("score: %v", err)
			}
			b := NewBatcher(m, BatcherOptions{})
			defer b.Close()
			if _, err := b.Generate(t.Context(), in, GenerateOptions{MaxNewTokens: 3}, nil); !errors.Is(err, ErrNumerics) {
				t.Errorf("batcher: %v", err)
			}
			if tc.tensor == "encoder.final_layer_norm.weight" {
				if _, err := m.Encode(t.Context(), in); !errors.Is(err, ErrNumerics) {
					t.Errorf("encode: %v", err)
				}
			}
		})
	}
}

// TestLoadBytes checks the price of a load against what the load takes, exactly, for every
// variant and weight type.
func TestLoadBytes(t *testing.T) {
	skipOnPlain(t)
	for _, v := range randomVariants() {
		for _, dt := range []catalog.DType{catalog.F32, catalog.BF16, catalog.Int8} {
			t.Run(v.name+"/"+string(dt), func(t *testing.T) {
				opts := LoadOptions{DType: dt, MaxTokens: 300}
				m := loadRandom(t, v.spec, opts)
				got := m.WeightBytes() + m.t.TableBytes()
				want, err := LoadBytes(v.spec.shape, opts)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("the load took %d bytes, LoadBytes says %d", got, want)
				}
			})
		}
	}
}

// TestHostileShapes loads shapes whose config is legal field by field but whose tables or
// matrices would not fit: a huge relative_attention_max_distance with many heads costs a
// table bounded by MaxTokens; a shape over the memory limit, or whose sizes overflow, is
// refused with ErrMemory before anything is allocated (the fill function is never called).
func TestHostileShapes(t *testing.T) {
	wide := smallShape()
	wide.NumHeads, wide.DKV, wide.RelativeAttentionMaxDistance = 4096, 1, 131072
	need, err := LoadBytes(wide, LoadOptions{MaxTokens: 512})
	if err != nil {
		t.Fatal(err)
	}
	if need > 64<<20 {
		t.Errorf("4096 heads with max_distance 131072 priced at %d bytes", need)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := New(t.Context(), wide, func(_ string, _ int, dst []float32) error {
		for i := range dst {
			dst[i] = 0.01
		}
		return nil
	}, LoadOptions{MaxTokens: 512})
	if err != nil {
		t.Fatal(err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	m.Close()
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("the load allocated %d bytes", grew)
	}

	never := func(string, int, []float32) error {
		t.Error("a refused load read weights")
		return nil
	}
	huge := smallShape()
	huge.DModel, huge.DFF = 1<<17, 1<<17 // each FFN matrix 64 GiB
	for _, tc := range []struct {
		name  string
		shape catalog.Shape
		opts  LoadOptions
	}{
		{"over the limit", smallShape(), LoadOptions{MemoryLimit: 1000}},
		{"over the system", huge, LoadOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(t.Context(), tc.shape, never, tc.opts); !errors.Is(err, ErrMemory) {
				t.Errorf("New: %v, want ErrMemory", err)
			}
		})
	}
}

// TestMemoryPrices holds the request prices to what the engine allocates: everything Encode
// and Score allocate (garbage included) is within EncodeBytes and ScoreBytes, and what a
// decoding input holds after every step is within GenerateBytes.
func TestMemoryPrices(t *testing.T) {
	skipOnPlain(t)
	if raceEnabled {
		t.Skip("the race detector's allocations are not the program's")
	}
	for _, v := range randomVariants()[:2] {
		t.Run(v.name, func(t *testing.T) {
			m := loadRandom(t, v.spec, LoadOptions{})
			s := m.Shape()
			in := randomInputs(5, 12, 60, s.VocabSize, s.EOSTokenID)
			allocs := func(f func()) int64 {
				runtime.GC()
				var a, b runtime.MemStats
				runtime.ReadMemStats(&a)
				f()
				runtime.ReadMemStats(&b)
				return int64(b.TotalAlloc - a.TotalAlloc)
			}
			if got, price := allocs(func() { m.Encode(t.Context(), in) }), m.EncodeBytes(in); got > price {
				t.Errorf("Encode allocated %d bytes, priced %d", got, price)
			}
			pairs := make([]ScorePair, len(in)-1)
			for i := range pairs {
				pairs[i] = ScorePair{Input: in[i], Target: in[i+1]}
			}
			if got, price := allocs(func() { m.Score(t.Context(), pairs) }), m.ScoreBytes(pairs); got > price {
				t.Errorf("Score allocated %d bytes, priced %d", got, price)
			}
			sets := []ChoiceSet{{Input: in[0], Targets: [][]int{in[1], in[2], in[3]}}, {Input: in[4], Targets: [][]int{in[2]}}}
			if got, price := allocs(func() { m.ScoreChoices(t.Context(), sets) }), m.ScoreChoicesBytes(sets); got > price {
				t.Errorf("ScoreChoices allocated %d bytes, priced %d", got, price)
			}
			for _, opts := range []GenerateOptions{
				{MaxNewTokens: 30},
				{MaxNewTokens: 20, NumBeams: 4},
				{MaxNewTokens: 25, Sample: true, NumReturnSequences: 3, TopLogprobs: 5},
			} {
				ids := in[0]
				runtime.GC()
				var base runtime.MemStats
				runtime.ReadMemStats(&base)
				encs, err := m.RunEncoder(t.Context(), [][]int{ids})
				if err != nil {
					t.Fatal(err)
				}
				search, err := m.NewSearch(encs[0], opts)
				if err != nil {
					t.Fatal(err)
				}
				encs = nil
				var logits []float32
				var peak int64
				for !search.Done() {
					seqs, toks := search.Pending()
					if logits, err = m.Step(t.Context(), seqs, toks, logits); err != nil {
						t.Fatal(err)
					}
					if err := search.Advance(logits); err != nil {
						t.Fatal(err)
					}
					seqs = nil
					runtime.GC()
					var now runtime.MemStats
					runtime.ReadMemStats(&now)
					peak = max(peak, int64(now.HeapAlloc)-int64(base.HeapAlloc)-4*int64(cap(logits)))
				}
				price, err := m.GenerateBytes(len(ids), opts)
				if err != nil {
					t.Fatal(err)
				}
				if peak > price {
					t.Errorf("%+v: an input held %d bytes, priced %d", opts, peak, price)
				}
				runtime.KeepAlive(search)
			}
		})
	}
}

// TestSizesOverflow checks the overflow-safe arithmetic that prices shapes.
func TestSizesOverflow(t *testing.T) {
	var z sizes
	if got := z.add(z.mul(1<<20, 1<<20), 5); got != 1<<40+5 || z.overflow {
		t.Errorf("2^40+5 = %d (overflow %v)", got, z.overflow)
	}
	for _, f := range []func(*sizes){
		func(z *sizes) { z.mul(1<<32, 1<<32) },
		func(z *sizes) { z.mul(-1, 2) },
		func(z *sizes) { z.add(math.MaxInt64, 1) },
		func(z *sizes) { z.packed(1<<62, 1<<20, 0) },
	} {
		var z sizes
		if f(&z); !z.overflow {
			t.Error("overflow not noticed")
		}
	}
}
