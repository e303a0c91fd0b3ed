package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/t5zoo/t5zoo/t5"
)

// BatchConfig says how a Batcher cuts batches. At least one of Batch and BatchTokens is
// positive; with both, a batch ends at whichever limit comes first.
type BatchConfig struct {
	// Batch is the number of examples per batch (the epoch's last batch may be smaller).
	Batch int
	// BatchTokens bounds the sum of input and target tokens of a batch; an example longer
	// than it is a batch alone.
	BatchTokens int
	// Shuffle reorders the examples and the batches every epoch, from Seed, and groups
	// examples of similar length into batches. Without it batches are consecutive runs of
	// the examples in their order, the same every epoch (with Batch = len(examples) one
	// full batch every step).
	Shuffle bool
	// Seed determines every shuffle.
	Seed uint64
}

// Cursor is a Batcher's position: the batch Next returns next. It is plain JSON, for a
// checkpoint to hold.
type Cursor struct {
	// Epoch counts from 0, Batch from 0 within it.
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
	// Fingerprint identifies the examples and the BatchConfig the position is in; Seek
	// refuses a cursor of other ones (an empty one is not checked).
	Fingerprint string `json:"fingerprint,omitempty"`
}

// megaBatches is how many batches' worth of shuffled examples are sorted by length
// together, as HF's LengthGroupedSampler's mega_batch_mult: enough for batches of similar
// lengths, few enough that every epoch's batches differ.
const megaBatches = 50

// batcherVersion is part of the fingerprint: a change to how batches are cut must make old
// cursors fail to seek rather than seek to other batches.
const batcherVersion = "t5zoo-batcher-1"

// Batcher yields training batches, epoch after epoch. Batches are deterministic from the
// examples and the BatchConfig: a Batcher that Seeks to a Cursor yields what one that ran
// there without stopping yields. Not safe for concurrent use.
//
// With Shuffle, each epoch permutes the examples (a stream of Seed and the epoch), sorts
// each run of about megaBatches batches' worth by length (input + target tokens, longest
// first), cuts the runs into batches and permutes the batches (another stream): every
// example once per epoch, in batches of similar lengths, which wastes little of a token
// budget and keeps batches homogeneous.
type Batcher struct {
	examples    []t5.Example
	cfg         BatchConfig
	lens        []int // input + target tokens of each example
	run         int   // examples per length-sorted run
	fingerprint string
	cur         Cursor
	plan        *epochPlan // the plan of cur.Epoch, or nil
}

// epochPlan is one epoch's batches: batch b is order[starts[b]:starts[b+1]].
type epochPlan struct {
	epoch  int
	order  []int
	starts []int
}

func (p *epochPlan) batches() int { return len(p.starts) - 1 }

// NewBatcher returns a Batcher over examples, at epoch 0, batch 0. The batches it yields
// share the examples' id slices: do not modify them.
func NewBatcher(examples []t5.Example, c BatchConfig) (*Batcher, error) {
	switch {
	case len(examples) == 0:
		return nil, errors.New("batcher: no examples")
	case c.Batch < 0 || c.BatchTokens < 0:
		return nil, fmt.Errorf("batcher: negative batch size (%d examples, %d tokens)", c.Batch, c.BatchTokens)
	case c.Batch == 0 && c.BatchTokens == 0:
		return nil, errors.New("batcher: neither a batch size nor a token budget")
	}
	b := &Batcher{examples: examples, cfg: c, lens: make([]int, len(examples))}
	total := 0
	for i, ex := range examples {
		b.lens[i] = len(ex.Input) + len(ex.Target)
		total += b.lens[i]
	}
	// Examples per batch: Batch, or what the budget holds at the mean length.
	perBatch := len(examples)
	if c.Batch > 0 {
		perBatch = c.Batch
	}
	if c.BatchTokens > 0 {
		mean := max(1, total/len(examples))
		perBatch = min(perBatch, max(1, c.BatchTokens/mean))
	}
	b.run = min(len(examples), megaBatches*perBatch)
	b.fingerprint = fingerprint(examples, c)
	b.cur.Fingerprint = b.fingerprint
	return b, nil
}

// fingerprint hashes the batcher's version, config and every example's ids.
func fingerprint(examples []t5.Example, c BatchConfig) string {
	h := sha256.New()
	var buf []byte
	put := func(v uint64) { buf = binary.AppendUvarint(buf, v) }
	buf = append(buf, batcherVersion...)
	put(uint64(c.Batch))
	put(uint64(c.BatchTokens))
	if c.Shuffle {
		put(1)
	} else {
		put(0)
	}
	put(c.Seed)
	put(uint64(len(examples)))
	for _, ex := range examples {
		put(uint64(len(ex.Input)))
		for _, id := range ex.Input {
			put(uint64(int64(id)))
		}
		put(uint64(len(ex.Target)))
		for _, id := range ex.Target {
			put(uint64(int64(id)))
		}
		if len(buf) > 1<<16 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// planEpoch cuts epoch e into batches.
func (b *Batcher) planEpoch(e int) *epochPlan {
	n := len(b.examples)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	p := &epochPlan{epoch: e, order: order, starts: []int{0}}
	if !b.cfg.Shuffle {
		b.cut(p, order, 0)
		return p
	}
	shuffle(newRNG(b.cfg.Seed, streamExamples, uint64(e)), order)
	for lo := 0; lo < n; lo += b.run {
		run := order[lo:min(n, lo+b.run)]
		slices.SortStableFunc(run, func(x, y int) int { return b.lens[y] - b.lens[x] })
		b.cut(p, run, lo)
	}
	// Permute the batches.
	nb := p.batches()
	perm := make([]int, nb)
	for i := range perm {
		perm[i] = i
	}
	shuffle(newRNG(b.cfg.Seed, streamBatches, uint64(e)), perm)
	shuffled := make([]int, 0, n)
	starts := make([]int, 1, nb+1)
	for _, k := range perm {
		shuffled = append(shuffled, order[p.starts[k]:p.starts[k+1]]...)
		starts = append(starts, len(shuffled))
	}
	p.order, p.starts = shuffled, starts
	return p
}

// cut appends to p the batches of run, which starts at offset off of p.order: greedily, a
// batch ending at Batch examples or before the example that would carry it past
// BatchTokens (a batch holds at least one example).
func (b *Batcher) cut(p *epochPlan, run []int, off int) {
	count, tokens := 0, 0
	for i, ex := range run {
		l := b.lens[ex]
		if count > 0 && ((b.cfg.Batch > 0 && count == b.cfg.Batch) || (b.cfg.BatchTokens > 0 && tokens+l > b.cfg.BatchTokens)) {
			p.starts = append(p.starts, off+i)
			count, tokens = 0, 0
		}
		count++
		tokens += l
	}
	p.starts = append(p.starts, off+len(run))
}

// planFor returns the plan of epoch e, reusing the current one.
func (b *Batcher) planFor(e int) *epochPlan {
	if b.plan != nil && b.plan.epoch == e {
		return b.plan
	}
	return b.planEpoch(e)
}

// Next returns the next batch and the epoch it belongs to, and moves on; after an epoch's
// last batch comes the next epoch's first. The slice is new; the examples in it are the
// Batcher's.
func (b *Batcher) Next() (batch []t5.Example, epoch int) {
	b.plan = b.planFor(b.cur.Epoch)
	p := b.plan
	idx := p.order[p.starts[b.cur.Batch]:p.starts[b.cur.Batch+1]]
	batch = make([]t5.Example, len(idx))
	for i, k := range idx {
		batch[i] = b.examples[k]
	}
	epoch = b.cur.Epoch
	b.cur.Batch++
	if b.cur.Batch == p.batches() {
		b.cur.Epoch++
		b.cur.Batch = 0
	}
	return batch, epoch
}

// StepsPerEpoch is the number of batches in the current epoch (the one Next's batch comes
// from). It is the same every epoch except with Shuffle and a token budget, where the
// length-sorted runs cut into a few more or fewer batches from epoch to epoch; EpochSteps
// gives any epoch's.
func (b *Batcher) StepsPerEpoch() int { return b.EpochSteps(b.cur.Epoch) }

// EpochSteps is the number of batches in epoch e (e ≥ 0).
func (b *Batcher) EpochSteps(e int) int {
	b.plan = b.planFor(max(0, e))
	return b.plan.batches()
}

// Cursor is the position of the next batch.
func (b *Batcher) Cursor() Cursor { return b.cur }

// Seek moves to a position a Cursor recorded: the batches after it are those a Batcher
// that got there by Next yields. A cursor of other examples or settings (its fingerprint
// differs), a negative position or a batch past its epoch's end is an error; the position
// just past an epoch's last batch is the next epoch's first.
func (b *Batcher) Seek(c Cursor) error {
	if c.Fingerprint != "" && c.Fingerprint != b.fingerprint {
		return fmt.Errorf("batcher: the cursor is of other data or batch settings (fingerprint %s, these %s)", c.Fingerprint, b.fingerprint)
	}
	if c.Epoch < 0 || c.Batch < 0 {
		return fmt.Errorf("batcher: negative cursor (epoch %d, batch %d)", c.Epoch, c.Batch)
	}
	p := b.planFor(c.Epoch)
	switch {
	case c.Batch > p.batches():
		return fmt.Errorf("batcher: cursor batch %d past the %d batches of epoch %d", c.Batch, p.batches(), c.Epoch)
	case c.Batch == p.batches():
		c.Epoch, c.Batch = c.Epoch+1, 0
	}
	b.plan = p
	b.cur = Cursor{Epoch: c.Epoch, Batch: c.Batch, Fingerprint: b.fingerprint}
	return nil
}
