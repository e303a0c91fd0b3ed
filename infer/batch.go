package infer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
	// MaxRows bounds the sequences (inputs × beams or samples) a step advances for inputs
	// beyond each request's first. A request with nothing decoding may always start one input
	// as long as the step stays within MaxRows + 64 (the widest input), so that a small
	// request never waits for a wide one to finish. Beyond its first input, a request takes
	// at most its share of MaxRows (MaxRows divided among the requests with work).
	// 0 means DefaultMaxRows.
	MaxRows int
	// MaxQueue bounds the inputs waiting to join the batch; Generate fails with
	// ErrQueueFull beyond it. 0 means no bound.
	MaxQueue int
	// EncodeTokens bounds the input tokens encoded between two decoder steps, so that a
	// request of many long inputs is encoded in pieces between the steps of the others
	// instead of stalling them (one input is always encoded, however long). 0 means
	// DefaultEncodeTokens.
	EncodeTokens int
	// Memory, if not nil, is charged for every input while it decodes (Model.GenerateBytes)
	// and credited when it leaves; an input whose charge is refused waits in the queue.
	Memory Memory
	// Observe, if not nil, is called after every decoder step on the Batcher's goroutine;
	// it must not block.
	Observe func(BatchStats)
}

// DefaultEncodeTokens is the EncodeTokens a zero BatcherOptions gets: a few milliseconds of
// encoder work for a small shape, a fraction of a second for a large one.
const DefaultEncodeTokens = 1024

// Memory is what a Batcher charges for the inputs it decodes: the server's memory budget.
// Its methods are called on the Batcher's goroutine and must not block.
type Memory interface {
	// TryAcquire takes n bytes if they are free now, reporting whether it did.
	TryAcquire(n int64) bool
	// Release gives back n bytes taken by TryAcquire.
	Release(n int64)
}

// memoryRetry is how often a Batcher whose queue waits only for memory (nothing decoding)
// tries again: memory is freed by other models' requests, which do not wake it.
const memoryRetry = 10 * time.Millisecond

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
	active  int          // inputs admitted or decoding (the loop's; mirrored here for Stats)
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
	stop *StopSet
	gens []Generation
	left int   // inputs not finished yet
	err  error // first failure
	done chan struct{}
	held int // rows of its inputs decoding or admitted (the loop's)
}

// batchItem is one input of a request.
type batchItem struct {
	req     *batchReq
	input   int
	ids     []int
	search  *Search
	emitted []int  // tokens reported per sequence
	charge  int64  // bytes taken from BatcherOptions.Memory while it decodes
	stopGen uint64 // the StopSet generation last applied
	rows    int    // its width: beams or samples
	joined  bool   // admitted: counted in req.held until it leaves
}

// NewBatcher starts a Batcher for m. Close stops it.
func NewBatcher(m *Model, opts BatcherOptions) *Batcher {
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultMaxRows
	}
	if opts.EncodeTokens <= 0 {
		opts.EncodeTokens = DefaultEncodeTokens
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
	return b.GenerateWith(ctx, inputs, opts, GenerateHooks{Token: fn})
}

// GenerateWith is Generate with hooks: the tokens as they are decided, and sequences the
// caller ends early (h.Stop).
func (b *Batcher) GenerateWith(ctx context.Context, inputs [][]int, opts GenerateOptions, h GenerateHooks) ([]Generation, error) {
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
	r := &batchReq{ctx: ctx, c: c, fn: h.Token, stop: h.Stop, gens: make([]Generation, len(inputs)), left: len(inputs), done: make(chan struct{})}
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
	width := max(c.beams, c.numReturn)
	for i, ids := range inputs {
		b.queue = append(b.queue, &batchItem{req: r, input: i, ids: ids, rows: width})
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

// hardRows bounds the rows of any step: MaxRows, and room for one input of the widest kind.
func (b *Batcher) hardRows() int { return b.opts.MaxRows + maxBeamsOrSamples }

// batchState is the loop's state, owned by the Batcher's goroutine: nothing else reads or
// writes it. An admitted input is in exactly one of pending and active until it leaves the
// batch (finished, failed or dropped); shutdown fails the ones still there.
type batchState struct {
	// pending holds the inputs admitted but not encoded yet, in admission order: their
	// rows are counted in their requests' held and their memory is charged.
	pending []*batchItem
	// active holds the encoded inputs, each with its search, in the order they joined.
	active []*batchItem
	// counts and errs are the last step's, aligned with active: the rows each input
	// advanced, and its failure choosing its next tokens.
	counts []int
	errs   []error
	// logits is the decoder's output, reused from step to step.
	logits []float32
	// waitingForMemory is set when the last admission admitted nothing and some input
	// waits only for memory: the next wait retries after memoryRetry.
	waitingForMemory bool
	// round is what this round did, for Observe; observe fills Queued.
	round BatchStats
}

// loop is the Batcher's goroutine: it runs rounds of the schedule below until ctx ends
// (Close), then fails what is left.
func (b *Batcher) loop(ctx context.Context) {
	defer close(b.stopped)
	st := &batchState{}
	defer b.shutdown(st)
	for {
		if !b.wait(ctx, st) {
			return
		}
		st.round = BatchStats{}
		b.admit(st)
		if !b.encode(ctx, st, len(st.pending)) {
			return
		}
		if !b.step(ctx, st) {
			return
		}
		b.report(st)
		b.observe(st)
	}
}

// wait blocks until there is work for a round: inputs queued, or inputs admitted or
// decoding. While the queue waits only for memory and nothing is in the batch (so nothing
// here will free any: other models' requests do, without waking this one), it tries again
// every memoryRetry. It reports false when ctx ends while it waits; with work at hand it
// returns at once, and the encoder or the step sees ctx's end.
func (b *Batcher) wait(ctx context.Context, st *batchState) bool {
	b.mu.Lock()
	for len(st.active)+len(st.pending) == 0 && (len(b.queue) == 0 || st.waitingForMemory) {
		b.mu.Unlock()
		var retry <-chan time.Time
		if st.waitingForMemory {
			retry = time.After(memoryRetry)
		}
		select {
		case <-ctx.Done():
			return false
		case <-b.wake:
		case <-retry:
		}
		st.waitingForMemory = false
		b.mu.Lock()
	}
	b.mu.Unlock()
	return true
}

// admit is the admission phase: it decides which inputs are in the batch for the next
// step. It moves the queued inputs that may join (admitLocked's rules: rows, fairness,
// EncodeTokens, memory) to the end of st.pending, each charged and counted in its
// request's held, and drops the queued, active and pending inputs of requests that ended
// (failing a request whose context ended with its error), giving back what they hold and
// counting them in st.round.Finished. It fails nothing else and runs no model code; it
// sets st.waitingForMemory for the next wait.
func (b *Batcher) admit(st *batchState) {
	b.mu.Lock()
	admitted, finished, memoryBound := b.admitLocked(st)
	b.mu.Unlock()
	st.waitingForMemory = memoryBound
	var dropped int
	st.active, dropped = b.dropEnded(st.active)
	finished += dropped
	st.pending, dropped = b.dropEnded(st.pending)
	finished += dropped
	st.pending = append(st.pending, admitted...)
	st.round.Finished += finished
}

// encode is the encoding phase: it encodes the first n inputs of st.pending together, in
// one encoder pass, and moves them, each with its search, to the end of st.active, where
// the next step advances them; the rest of st.pending waits for a later call. The loop
// encodes all it admitted at once (admission keeps a round's new inputs within
// EncodeTokens). A scheduler interleaving encoder work with decoder steps may instead call
// it with any n between steps, as often as it likes, reordering st.pending first to choose
// the piece: inputs wait there, holding their rows and memory, and each input's encoding,
// hence its result, does not depend on the inputs it is encoded with.
//
// An encoder failure fails only these n inputs' requests (they leave the batch, counted in
// st.round.Finished); the others are untouched. encode reports false when ctx ended during
// the pass: the n inputs stay pending, for shutdown to fail.
func (b *Batcher) encode(ctx context.Context, st *batchState, n int) bool {
	if n == 0 {
		return true
	}
	piece := st.pending[:n]
	in := make([][]int, n)
	for i, it := range piece {
		in[i] = it.ids
	}
	encs, err := b.m.RunEncoder(ctx, in)
	switch {
	case err != nil && ctx.Err() != nil:
		return false
	case err != nil:
		for _, it := range piece {
			b.leave(it)
			it.fail(err)
		}
		st.round.Finished += n
	default:
		for i, it := range piece {
			it.search = b.m.newSearch(encs[i], it.req.c)
			it.emitted = make([]int, it.req.c.numReturn)
		}
		st.active = append(st.active, piece...)
		st.round.Encoded += n
	}
	rest := copy(st.pending, st.pending[n:])
	clear(st.pending[rest:])
	st.pending = st.pending[:rest]
	return true
}

// step is the stepping phase: it ends the sequences their callers stopped (StopSet), runs
// one decoder step over the pending sequences of every input in st.active, and has each
// input choose its next tokens from its rows of logits. It leaves st.counts and st.errs,
// aligned with st.active, for report. A step failure fails every active input's request
// (they leave the batch, counted in st.round.Finished; pending inputs stay); a failure
// choosing one input's tokens is that input's alone, left in st.errs. step reports false
// when ctx ended during the step: the inputs stay active, for shutdown to fail.
func (b *Batcher) step(ctx context.Context, st *batchState) bool {
	for _, it := range st.active {
		it.applyStops()
	}
	var seqs []*Sequence
	var toks []int
	st.counts = make([]int, len(st.active))
	for i, it := range st.active {
		ss, ts := it.search.Pending()
		seqs = append(seqs, ss...)
		toks = append(toks, ts...)
		st.counts[i] = len(ss)
	}
	if len(seqs) > 0 {
		var err error
		st.logits, err = b.m.Step(ctx, seqs, toks, st.logits)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			for _, it := range st.active {
				b.leave(it)
				it.fail(fmt.Errorf("step: %w", err))
			}
			st.round.Finished += len(st.active)
			st.active, st.counts = nil, nil
		}
	}
	st.round.Rows = len(seqs)
	st.round.Inputs = len(st.active)
	st.errs = b.advance(st.active, st.counts, st.logits)
	return true
}

// report is the reporting phase, after step: it sends each stepped input's new tokens to
// its caller, and takes out of st.active the inputs that failed choosing their tokens
// (failing their requests) and those whose search is done (storing the result, completing
// a request at its last input), giving back what they hold and counting them in
// st.round.Finished. It consumes st.counts and st.errs; what stays in st.active decodes on.
func (b *Batcher) report(st *batchState) {
	eos := b.m.Shape().EOSTokenID
	kept := st.active[:0]
	for i, it := range st.active {
		if st.counts[i] > 0 {
			if st.errs[i] != nil {
				b.leave(it)
				it.fail(st.errs[i])
				st.round.Finished++
				continue
			}
			it.report(eos)
		}
		if it.search.Done() {
			b.leave(it)
			it.finish()
			st.round.Finished++
			continue
		}
		kept = append(kept, it)
	}
	clear(st.active[len(kept):])
	st.active = kept
	st.counts, st.errs = nil, nil
}

// observe ends a round: it publishes the inputs in the batch for Stats and, when the round
// stepped, encoded or finished anything, passes its BatchStats to BatcherOptions.Observe.
func (b *Batcher) observe(st *batchState) {
	b.mu.Lock()
	b.active = len(st.active) + len(st.pending)
	st.round.Queued = len(b.queue)
	b.mu.Unlock()
	if r := st.round; b.opts.Observe != nil && (r.Rows > 0 || r.Encoded > 0 || r.Finished > 0) {
		b.opts.Observe(r)
	}
}

// shutdown runs as the loop ends: it marks the Batcher closed, so that Generate refuses new
// calls, and fails every input left, active, pending and queued in that order, with
// ErrClosed, giving back what each holds.
func (b *Batcher) shutdown(st *batchState) {
	b.mu.Lock()
	queued := b.queue
	b.queue, b.closed, b.active = nil, true, 0
	b.mu.Unlock()
	for _, items := range [][]*batchItem{st.active, st.pending, queued} {
		for _, it := range items {
			b.leave(it)
			it.fail(ErrClosed)
		}
	}
}

// admitLocked picks the queued inputs that join the batch before the next step, fairly
// between requests: requests take turns in the order they arrived, one input a turn; a
// request with nothing decoding may start one input whenever the step stays within
// hardRows, and takes more only within MaxRows and its share of it (MaxRows over the
// requests with work); the new inputs' tokens stay within EncodeTokens (one is always
// admitted); and each input's memory must be granted. The inputs already in the batch
// (active or pending) count in the rows. It drops the queued inputs of requests that ended,
// counting them in finished, and reports whether an input waits only for memory with none
// admitted. b.mu is held.
func (b *Batcher) admitLocked(st *batchState) (admitted []*batchItem, finished int, memoryBound bool) {
	rows := 0
	reqs := map[*batchReq]bool{}
	for _, items := range [][]*batchItem{st.active, st.pending} {
		for _, it := range items {
			rows += it.rows
			reqs[it.req] = true
		}
	}
	// The queue by request, in arrival order.
	var order []*batchReq
	byReq := map[*batchReq][]*batchItem{}
	kept := b.queue[:0]
	for _, it := range b.queue {
		if it.ended() {
			finished++
			continue
		}
		kept = append(kept, it)
		if byReq[it.req] == nil {
			order = append(order, it.req)
		}
		byReq[it.req] = append(byReq[it.req], it)
		reqs[it.req] = true
	}
	clear(b.queue[len(kept):])
	b.queue = kept
	share := max(1, b.opts.MaxRows/max(1, len(reqs)))
	tokens := 0
	for progress := true; progress; {
		progress = false
		for _, r := range order {
			items := byReq[r]
			if len(items) == 0 {
				continue
			}
			it := items[0]
			first := r.held == 0
			switch {
			case first && rows+it.rows > b.hardRows():
				continue
			case !first && (rows+it.rows > b.opts.MaxRows || r.held+it.rows > share):
				continue
			case len(admitted) > 0 && tokens+len(it.ids) > b.opts.EncodeTokens:
				continue
			}
			if b.opts.Memory != nil {
				need := b.m.genBytes(len(it.ids), r.c)
				if !b.opts.Memory.TryAcquire(need) {
					memoryBound = true
					continue
				}
				it.charge = need
			}
			byReq[r] = items[1:]
			it.joined = true
			r.held += it.rows
			rows += it.rows
			tokens += len(it.ids)
			admitted = append(admitted, it)
			progress = true
		}
	}
	if len(admitted) > 0 {
		kept := b.queue[:0]
		for _, it := range b.queue {
			if !it.joined {
				kept = append(kept, it)
			}
		}
		clear(b.queue[len(kept):])
		b.queue = kept
	}
	return admitted, finished, memoryBound && len(admitted) == 0
}

// leave returns what an admitted item holds: its rows in its request's count and its memory.
func (b *Batcher) leave(it *batchItem) {
	if it.joined {
		it.req.held -= it.rows
		it.joined = false
	}
	if it.charge > 0 {
		b.opts.Memory.Release(it.charge)
		it.charge = 0
	}
}

// applyStops ends the sequences the item's caller stopped since the last step.
func (it *batchItem) applyStops() {
	st := it.req.stop
	if st == nil || it.search == nil {
		return
	}
	if g := st.gen.Load(); g != it.stopGen {
		it.stopGen = g
		for j := range it.req.c.numReturn {
			if st.stopped(it.input, j) {
				it.search.stop(j)
			}
		}
	}
}

// advance passes each item its rows of logits, on up to GOMAXPROCS goroutines: choosing
// the next tokens (a log-softmax over the vocabulary per row) is a fair part of a step's
// work once the step's rows are many.
func (b *Batcher) advance(items []*batchItem, counts []int, logits []float32) []error {
	V := b.m.Shape().VocabSize
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

// dropEnded removes the items whose request has ended (context done or failed), giving back
// what they hold, and returns the rest and how many it removed.
func (b *Batcher) dropEnded(items []*batchItem) (kept []*batchItem, dropped int) {
	kept = items[:0]
	for _, it := range items {
		if it.ended() {
			b.leave(it)
			dropped++
			continue
		}
		kept = append(kept, it)
	}
	clear(items[len(kept):])
	return kept, dropped
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
