package infer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func genEqual(a, b Generation) bool {
	return slices.EqualFunc(a.Hypotheses, b.Hypotheses, func(x, y Hypothesis) bool {
		return hypEqual(x, y) && slices.EqualFunc(x.TopLogprobs, y.TopLogprobs, slices.Equal)
	})
}

// TestBatcherMatchesGenerate sends requests with every decoding strategy concurrently and
// staggered, through a Batcher whose row budget forces them to queue, join and leave the
// batch at different steps, and checks that each gets exactly what Model.Generate gives it
// alone, and that the streamed tokens spell the returned hypotheses.
func TestBatcherMatchesGenerate(t *testing.T) {
	lp := 0.7
	optsList := []GenerateOptions{
		{MaxNewTokens: 9},
		{MaxNewTokens: 6, NumBeams: 3, NumReturnSequences: 2, LengthPenalty: &lp},
		{MaxNewTokens: 11, Sample: true, TopK: 20, Seed: 5, NumReturnSequences: 2, TopLogprobs: 3},
		{MaxNewTokens: 4, TopLogprobs: 2},
		{MaxNewTokens: 7, NumBeams: 2, EarlyStopping: true},
	}
	for _, v := range randomVariants()[:2] {
		for _, zeroEOS := range []bool{true, false} {
			spec := v.spec
			spec.zeroEOS = zeroEOS
			t.Run(fmt.Sprintf("%s/zeroEOS=%v", v.name, zeroEOS), func(t *testing.T) {
				m := loadRandom(t, spec, LoadOptions{})
				s := m.Shape()
				var stats []BatchStats
				var statsMu sync.Mutex
				b := NewBatcher(m, BatcherOptions{MaxRows: 5, Observe: func(st BatchStats) {
					statsMu.Lock()
					stats = append(stats, st)
					statsMu.Unlock()
				}})
				defer b.Close()
				type call struct {
					inputs [][]int
					opts   GenerateOptions
				}
				var calls []call
				for i := range 12 {
					calls = append(calls, call{randomInputs(uint64(100+i), 1+i%3, 30, s.VocabSize, s.EOSTokenID), optsList[i%len(optsList)]})
				}
				var wg sync.WaitGroup
				for i, c := range calls {
					wg.Go(func() {
						time.Sleep(time.Duration(i%4) * 2 * time.Millisecond)
						var mu sync.Mutex
						streamed := map[[2]int][]int{}
						got, err := b.Generate(t.Context(), c.inputs, c.opts, func(tok Token) {
							mu.Lock()
							k := [2]int{tok.Input, tok.Sequence}
							streamed[k] = append(streamed[k], tok.ID)
							mu.Unlock()
						})
						if err != nil {
							t.Errorf("call %d: %v", i, err)
							return
						}
						want, err := m.Generate(context.Background(), c.inputs, c.opts)
						if err != nil {
							t.Errorf("call %d: alone: %v", i, err)
							return
						}
						for j := range want {
							if !genEqual(got[j], want[j]) {
								t.Errorf("call %d input %d: batched %+v, alone %+v", i, j, got[j], want[j])
							}
							if c.opts.NumBeams > 1 {
								continue
							}
							for k, h := range want[j].Hypotheses {
								if s := streamed[[2]int{j, k}]; !slices.Equal(s, h.IDs[1:]) {
									t.Errorf("call %d input %d seq %d: streamed %v, returned %v", i, j, k, s, h.IDs[1:])
								}
							}
						}
					})
				}
				wg.Wait()
				statsMu.Lock()
				defer statsMu.Unlock()
				maxInputs, encodedTogether := 0, false
				for _, st := range stats {
					// MaxRows, and each request's first input on top (at most 12 here,
					// each at most 3 wide), within MaxRows + 64.
					if st.Rows > 5+3*12 || st.Rows > 5+64 {
						t.Errorf("step of %d rows over %d inputs: more than MaxRows 5 and first inputs allow", st.Rows, st.Inputs)
					}
					maxInputs = max(maxInputs, st.Inputs)
					encodedTogether = encodedTogether || st.Encoded > 1
				}
				if maxInputs < 2 || !encodedTogether {
					t.Errorf("no step decoded several inputs (%d) or encoded several together (%v)", maxInputs, encodedTogether)
				}
				if q, a := b.Stats(); q != 0 || a != 0 {
					t.Errorf("Stats after all calls: %d queued, %d active", q, a)
				}
			})
		}
	}
}

// TestBatcherCancel cancels one of two requests mid-decode: it returns the context's error
// at once and the other still gets its full, correct result.
func TestBatcherCancel(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	b := NewBatcher(m, BatcherOptions{})
	defer b.Close()
	in := randomInputs(3, 2, 20, s.VocabSize, s.EOSTokenID)
	opts := GenerateOptions{MaxNewTokens: 200}
	ctx, cancel := context.WithCancel(t.Context())
	var tokens int
	errc := make(chan error, 1)
	go func() {
		_, err := b.Generate(ctx, in[:1], opts, func(Token) {
			tokens++
			if tokens == 3 {
				cancel()
			}
		})
		errc <- err
	}()
	got, err := b.Generate(t.Context(), in[1:], opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v, want context.Canceled", err)
	}
	if tokens >= 200 {
		t.Errorf("cancelled request decoded %d tokens", tokens)
	}
	want, err := m.Generate(t.Context(), in[1:], opts)
	if err != nil {
		t.Fatal(err)
	}
	if !genEqual(got[0], want[0]) {
		t.Error("the request beside a cancelled one changed")
	}
}

// TestBatcherQueueAndClose fills a Batcher of one row with an input 64 samples wide (the
// most a first input may take beyond MaxRows): the second request waits in the queue, the
// third is refused with ErrQueueFull, and Close fails both waiting ones.
func TestBatcherQueueAndClose(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{MaxTokens: 100000})
	s := m.Shape()
	b := NewBatcher(m, BatcherOptions{MaxRows: 1, MaxQueue: 1})
	in := randomInputs(4, 1, 10, s.VocabSize, s.EOSTokenID)
	long := GenerateOptions{MaxNewTokens: 100000}
	wide := GenerateOptions{MaxNewTokens: 100000, Sample: true, NumReturnSequences: 64}
	errs := make(chan error, 2)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := b.Generate(t.Context(), in, wide, func(Token) { once.Do(func() { close(started) }) })
		errs <- err
	}()
	<-started
	go func() {
		_, err := b.Generate(t.Context(), in, wide, nil)
		errs <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if q, a := b.Stats(); q == 1 && a == 1 {
			break
		}
		if time.Now().After(deadline) {
			b.Close()
			t.Fatal("the second request never queued")
		}
	}
	if _, err := b.Generate(t.Context(), in, long, nil); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third request: %v, want ErrQueueFull", err)
	}
	b.Close()
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
	if _, err := b.Generate(t.Context(), in, long, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Generate after Close: %v, want ErrClosed", err)
	}
}

// TestTopLogprobs checks that the recorded alternatives are sorted, start with the greedy
// token and its log-probability, and that options refusing them are errors.
func TestTopLogprobs(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	in := randomInputs(8, 2, 15, s.VocabSize, s.EOSTokenID)
	gens, err := m.Generate(t.Context(), in, GenerateOptions{MaxNewTokens: 5, TopLogprobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gens {
		h := g.Hypotheses[0]
		if len(h.TopLogprobs) != len(h.IDs)-1 {
			t.Fatalf("input %d: %d top lists for %d tokens", i, len(h.TopLogprobs), len(h.IDs)-1)
		}
		for j, top := range h.TopLogprobs {
			if len(top) != 4 || top[0].ID != h.IDs[j+1] || top[0].Logprob != h.TokenLogprobs[j] {
				t.Errorf("input %d position %d: top %v, token %d (%v)", i, j, top, h.IDs[j+1], h.TokenLogprobs[j])
			}
			if !slices.IsSortedFunc(top, func(a, b TokenLogprob) int {
				switch {
				case a.Logprob > b.Logprob:
					return -1
				case a.Logprob < b.Logprob:
					return 1
				}
				return 0
			}) {
				t.Errorf("input %d position %d: not sorted: %v", i, j, top)
			}
		}
	}
	for _, o := range []GenerateOptions{{TopLogprobs: -1}, {TopLogprobs: 21}, {NumBeams: 2, TopLogprobs: 1}} {
		if _, err := m.Generate(t.Context(), in, o); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%+v: %v, want ErrInvalidInput", o, err)
		}
	}
}

// TestBatcherPhases drives the loop's phases by hand, as a scheduler interleaving encoder
// work with decoder steps would: the admitted inputs of two requests are encoded in three
// pieces with decoder steps between them, and each request still gets exactly what
// Model.Generate gives it alone, with its memory given back. Then an input whose encoding
// meets the end of the loop's context stays pending, and shutdown fails it with ErrClosed
// and releases its memory.
func TestBatcherPhases(t *testing.T) {
	m := loadRandom(t, randomVariants()[0].spec, LoadOptions{})
	s := m.Shape()
	mem := &budget{size: 1 << 40}
	// No goroutine: the test is the loop.
	b := &Batcher{m: m, opts: BatcherOptions{MaxRows: DefaultMaxRows, EncodeTokens: DefaultEncodeTokens, Memory: mem}, wake: make(chan struct{}, 1)}
	queued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if q, _ := b.Stats(); q == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d inputs never queued", n)
			}
		}
	}
	type result struct {
		gens []Generation
		err  error
	}
	greedy := GenerateOptions{MaxNewTokens: 7}
	sample := GenerateOptions{MaxNewTokens: 9, Sample: true, TopK: 10, Seed: 2, NumReturnSequences: 2}
	inA := randomInputs(21, 3, 20, s.VocabSize, s.EOSTokenID)
	inB := randomInputs(22, 2, 20, s.VocabSize, s.EOSTokenID)
	resA, resB := make(chan result, 1), make(chan result, 1)
	streamed := map[[2]int][]int{} // request A's, written on this goroutine (report's)
	go func() {
		g, err := b.Generate(t.Context(), inA, greedy, func(tok Token) {
			k := [2]int{tok.Input, tok.Sequence}
			streamed[k] = append(streamed[k], tok.ID)
		})
		resA <- result{g, err}
	}()
	queued(3)
	go func() {
		g, err := b.Generate(t.Context(), inB, sample, nil)
		resB <- result{g, err}
	}()
	queued(5)

	ctx := t.Context()
	st := &batchState{}
	b.admit(st)
	if len(st.pending) != 5 || len(st.active) != 0 || st.round.Finished != 0 {
		t.Fatalf("admitted %d pending, %d active, %d finished; want 5, 0, 0", len(st.pending), len(st.active), st.round.Finished)
	}
	for round, piece := range []int{2, 1, 2} {
		st.round = BatchStats{}
		if !b.encode(ctx, st, piece) || !b.step(ctx, st) {
			t.Fatal("the context ended")
		}
		b.report(st)
		if st.round.Encoded != piece || st.round.Inputs != len(st.active)+st.round.Finished {
			t.Errorf("round %d: %+v with %d active", round, st.round, len(st.active))
		}
	}
	if len(st.pending) != 0 {
		t.Fatalf("%d inputs still pending after encoding all", len(st.pending))
	}
	for len(st.active) > 0 {
		st.round = BatchStats{}
		b.admit(st)
		if !b.step(ctx, st) {
			t.Fatal("the context ended")
		}
		b.report(st)
	}
	for _, c := range []struct {
		name string
		res  chan result
		in   [][]int
		opts GenerateOptions
	}{{"greedy", resA, inA, greedy}, {"sample", resB, inB, sample}} {
		r := <-c.res
		if r.err != nil {
			t.Fatalf("%s: %v", c.name, r.err)
		}
		want, err := m.Generate(t.Context(), c.in, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if !genEqual(r.gens[j], want[j]) {
				t.Errorf("%s input %d: encoded in pieces %+v, alone %+v", c.name, j, r.gens[j], want[j])
			}
		}
		if c.name == "greedy" {
			for j := range want {
				if s := streamed[[2]int{j, 0}]; !slices.Equal(s, want[j].Hypotheses[0].IDs[1:]) {
					t.Errorf("input %d: streamed %v, returned %v", j, s, want[j].Hypotheses[0].IDs[1:])
				}
			}
		}
	}
	if mem.used != 0 {
		t.Errorf("%d bytes still charged after both requests", mem.used)
	}

	go func() {
		_, err := b.Generate(t.Context(), inA[:1], greedy, nil)
		resA <- result{nil, err}
	}()
	queued(1)
	b.admit(st)
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if b.encode(ended, st, len(st.pending)) {
		t.Fatal("encode went on past the end of its context")
	}
	if len(st.pending) != 1 || mem.used == 0 {
		t.Fatalf("after the context ended: %d pending, %d bytes charged; want 1 and its charge", len(st.pending), mem.used)
	}
	b.shutdown(st)
	select {
	case r := <-resA:
		if !errors.Is(r.err, ErrClosed) {
			t.Errorf("an input pending at shutdown: %v, want ErrClosed", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown left a pending input's call waiting")
	}
	if mem.used != 0 {
		t.Errorf("%d bytes still charged after shutdown", mem.used)
	}
	if _, err := b.Generate(t.Context(), inA, greedy, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Generate after shutdown: %v, want ErrClosed", err)
	}
}
