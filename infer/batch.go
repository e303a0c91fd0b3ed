package infer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrQueueFull is returned by Batcher.Generate when more inputs wait to join the batch than
// BatcherOptions.MaxQueue allows.
var ErrQueueFull = errors.New("infer: batcher queue is full")

// ErrClosed is returned by Batcher.Generate once the Batcher is closed.
var ErrClosed = errors.New("infer: batcher closed")

// DefaultMaxRows is the MaxRows a zero BatcherOptions gets.
const DefaultMaxRows = 64

// BatcherOptions configure a Batcher. The zero value works.
type BatcherOptions struct {
	// MaxRows bounds the sequences (inputs × beams or samples) one decoder step advances;
	// inputs wait in the queue until their rows fit. An input wider than MaxRows joins
	// alone when nothing else is decoding. 0 means DefaultMaxRows.
	MaxRows int
	// MaxQueue bounds the inputs waiting to join the batch; Generate fails with
	// ErrQueueFull beyond it. 0 means no bound.
	MaxQueue int
	// Observe, if not nil, is called after every decoder step on the Batcher's goroutine;
	// it must not block.
	Observe func(BatchStats)
}

// BatchStats describes one decoder step of a Batcher.
type BatchStats struct {
	Rows     int // sequences the step advanced
	Inputs   int // inputs decoding during the step
	Encoded  int // inputs encoded (together, in one pass) just before the step
	Finished int // inputs that finished (or were cancelled) at the step
	Queued   int // inputs left waiting to join
}

// Token is one generated token, reported by Batcher.Generate as soon as it is decided
// (greedy decoding and sampling only: beam search reorders its beams until the end).
type Token struct {
	Input    int // index of the input in the Generate call
	Sequence int // index of the sample (0 for greedy decoding)
	ID       int
	Logprob  float64
	// Top holds the most likely tokens at this position when GenerateOptions.TopLogprobs
	// is set.
	Top []TokenLogprob
	// Last is true for the sequence's last token (</s> or the MaxNewTokens-th).
	Last bool
}

// Batcher runs continuous batching for an encoder-decoder model: concurrent Generate calls,
// with any mix of decoding options, share decoder steps. Between two steps, newly arrived
// inputs are encoded together in one pass and join the running batch, and finished (or
// cancelled) ones leave it; each input keeps its own cross-attention keys and values for its
// whole decode, so nothing is padded or recomputed. Results are bit-for-bit those of
// Model.Generate on each input alone.
//
// One goroutine, started by NewBatcher and stopped by Close, drives the steps.
type Batcher struct {
	m    *Model
	opts BatcherOptions

	mu      sync.Mutex
	queue   []*batchItem // waiting to join, in arrival order
	active  int          // inputs decoding (owned by the loop; mirrored here for Stats)
	closed  bool
	wake    chan struct{} // capacity 1: work arrived
	stop    context.CancelFunc
	stopped chan struct{}
}

// batchReq is one Generate call.
type batchReq struct {
	ctx  context.Context
	c    genConfig
	fn   func(Token)
	gens []Generation
	left int   // inputs not finished yet
	err  error // first failure
	done chan struct{}
}

// batchItem is one input of a request.
type batchItem struct {
	req     *batchReq
	input   int
	ids     []int
	search  *Search
	emitted []int // tokens reported per sequence
}

// NewBatcher starts a Batcher for m. Close stops it.
func NewBatcher(m *Model, opts BatcherOptions) *Batcher {
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultMaxRows
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Batcher{m: m, opts: opts, wake: make(chan struct{}, 1), stop: cancel, stopped: make(chan struct{})}
	go b.loop(ctx)
	return b
}

// Close stops the Batcher, failing the calls still waiting or decoding with ErrClosed, and
// waits for its goroutine to end. The model stays open.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.stop()
	<-b.stopped
}

// Stats returns how many inputs wait to join the batch and how many are decoding.
func (b *Batcher) Stats() (queued, active int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue), b.active
}

// Generate decodes inputs with opts as Model.Generate does, in the shared batch. fn, if not
// nil, receives each token as it is decided (see Token) on the Batcher's goroutine: it must
// not block, and it is not called after Generate returns. When ctx ends, the inputs leave
// the batch before the next step and Generate returns ctx's error.
func (b *Batcher) Generate(ctx context.Context, inputs [][]int, opts GenerateOptions, fn func(Token)) ([]Generation, error) {
	c, err := b.m.genConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := b.m.checkInputs(inputs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &batchReq{ctx: ctx, c: c, fn: fn, gens: make([]Generation, len(inputs)), left: len(inputs), done: make(chan struct{})}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, ErrClosed
	case b.opts.MaxQueue > 0 && len(b.queue)+len(inputs) > b.opts.MaxQueue:
		n := len(b.queue)
		b.mu.Unlock()
		return nil, fmt.Errorf("%w: %d inputs waiting, %d more would pass the limit of %d", ErrQueueFull, n, len(inputs), b.opts.MaxQueue)
	}
	for i, ids := range inputs {
		b.queue = append(b.queue, &batchItem{req: r, input: i, ids: ids})
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	// The loop always finishes a request: at its end, at its failure, at the first step
	// after ctx ends, or at Close.
	<-r.done
	if r.err != nil {
		return nil, r.err
	}
	return r.gens, nil
}

// loop is the Batcher's goroutine.
func (b *Batcher) loop(ctx context.Context) {
	defer close(b.stopped)
	var active []*batchItem
	var logits []float32
	defer func() {
		b.mu.Lock()
		queued := b.queue
		b.queue, b.closed, b.active = nil, true, 0
		b.mu.Unlock()
		for _, it := range append(active, queued...) {
			it.fail(ErrClosed)
		}
	}()
	for {
		// Wait for work.
		b.mu.Lock()
		for len(b.queue) == 0 && len(active) == 0 {
			b.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-b.wake:
			}
			b.mu.Lock()
		}
		// Admit queued inputs, in order, while their rows fit; drop those whose request
		// ended while they waited.
		rows := 0
		for _, it := range active {
			rows += it.search.Rows()
		}
		var admitted []*batchItem
		finished := 0
		waiting := b.queue[:0]
		full := false
		for _, it := range b.queue {
			if it.ended() {
				finished++
				continue
			}
			w := max(it.req.c.beams, it.req.c.numReturn)
			if full || rows+w > b.opts.MaxRows && (rows > 0 || len(admitted) > 0) {
				full = true
				waiting = append(waiting, it)
				continue
			}
			rows += w
			admitted = append(admitted, it)
		}
		clear(b.queue[len(waiting):])
		b.queue = waiting
		b.mu.Unlock()

		// Drop the inputs of requests that ended, then encode the new ones together.
		active, finished = dropEnded(active, finished)
		if len(admitted) > 0 {
			in := make([][]int, len(admitted))
			for i, it := range admitted {
				in[i] = it.ids
			}
			encs, err := b.m.RunEncoder(ctx, in)
			if err != nil {
				if ctx.Err() != nil {
					active = append(active, admitted...)
					return
				}
				for _, it := range admitted {
					it.fail(err)
				}
				admitted = nil
			}
			for i, it := range admitted {
				it.search = b.m.newSearch(encs[i], it.req.c)
				it.emitted = make([]int, it.req.c.numReturn)
			}
			active = append(active, admitted...)
		}

		// One decoder step over every pending sequence.
		var seqs []*Sequence
		var toks []int
		counts := make([]int, len(active))
		for i, it := range active {
			ss, ts := it.search.Pending()
			seqs = append(seqs, ss...)
			toks = append(toks, ts...)
			counts[i] = len(ss)
		}
		if len(seqs) > 0 {
			var err error
			logits, err = b.m.Step(ctx, seqs, toks, logits)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				for _, it := range active {
					it.fail(fmt.Errorf("step: %w", err))
				}
				finished += len(active)
				active = nil
			}
		}
		errs := b.advance(active, counts, logits)
		eos := b.m.shape.EOSTokenID
		stepped := len(active)
		kept := active[:0]
		for i, it := range active {
			if counts[i] > 0 {
				if errs[i] != nil {
					it.fail(errs[i])
					finished++
					continue
				}
				it.report(eos)
			}
			if it.search.Done() {
				it.finish()
				finished++
				continue
			}
			kept = append(kept, it)
		}
		clear(active[len(kept):])
		active = kept

		b.mu.Lock()
		b.active = len(active)
		queued := len(b.queue)
		b.mu.Unlock()
		if b.opts.Observe != nil && (len(seqs) > 0 || len(admitted) > 0 || finished > 0) {
			b.opts.Observe(BatchStats{Rows: len(seqs), Inputs: stepped, Encoded: len(admitted), Finished: finished, Queued: queued})
		}
	}
}

// advance passes each item its rows of logits, on up to GOMAXPROCS goroutines: choosing
// the next tokens (a log-softmax over the vocabulary per row) is a fair part of a step's
// work once the step's rows are many.
func (b *Batcher) advance(items []*batchItem, counts []int, logits []float32) []error {
	V := b.m.shape.VocabSize
	errs := make([]error, len(items))
	offs := make([]int, len(items))
	r := 0
	for i, n := range counts {
		offs[i] = r
		r += n
	}
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1)) - 1; i < len(items); i = int(next.Add(1)) - 1 {
			if counts[i] > 0 {
				errs[i] = items[i].search.Advance(logits[offs[i]*V : (offs[i]+counts[i])*V])
			}
		}
	}
	if g := min(runtime.GOMAXPROCS(0), len(items)) - 1; g > 0 {
		var wg sync.WaitGroup
		for range g {
			wg.Go(work)
		}
		work()
		wg.Wait()
	} else {
		work()
	}
	return errs
}

// dropEnded removes the items whose request has ended (context done or failed), finishing
// them, and adds their count to finished.
func dropEnded(items []*batchItem, finished int) ([]*batchItem, int) {
	kept := items[:0]
	for _, it := range items {
		if it.ended() {
			finished++
			continue
		}
		kept = append(kept, it)
	}
	clear(items[len(kept):])
	return kept, finished
}

// ended reports whether the item's request has failed or its context has ended, failing it
// in the latter case.
func (it *batchItem) ended() bool {
	if it.req.err == nil && it.req.ctx.Err() != nil {
		it.fail(it.req.ctx.Err())
	}
	return it.req.err != nil
}

// report sends the tokens generated since the last report to the request's callback.
func (it *batchItem) report(eos int) {
	if it.req.fn == nil {
		return
	}
	for j, h := range it.search.Generated() {
		for k := it.emitted[j]; k < len(h.IDs); k++ {
			t := Token{Input: it.input, Sequence: j, ID: h.IDs[k], Logprob: h.TokenLogprobs[k]}
			if h.TopLogprobs != nil {
				t.Top = h.TopLogprobs[k]
			}
			t.Last = t.ID == eos || k+1 >= it.req.c.maxNew
			it.req.fn(t)
		}
		it.emitted[j] = len(h.IDs)
	}
}

// finish stores the item's result and completes the request after its last input.
func (it *batchItem) finish() {
	r := it.req
	if r.err != nil {
		return
	}
	r.gens[it.input] = it.search.Result()
	r.left--
	if r.left == 0 {
		close(r.done)
	}
}

// fail completes the item's request with err (the first failure wins).
func (it *batchItem) fail(err error) {
	r := it.req
	if r.err != nil || r.left == 0 {
		return
	}
	r.err = err
	close(r.done)
}
