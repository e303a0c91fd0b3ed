package data

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/t5"
)

// synthetic returns n examples of varied lengths; example i's first input id is i, so a
// batch tells which examples it holds.
func synthetic(n int) []t5.Example {
	exs := make([]t5.Example, n)
	for i := range exs {
		in := make([]int, 1+(i*7919)%61) // lengths 1..61, scattered
		in[0] = i
		tgt := make([]int, 1+(i*104729)%9)
		exs[i] = t5.Example{Input: in, Target: tgt}
	}
	return exs
}

func ids(batch []t5.Example) []int {
	out := make([]int, len(batch))
	for i, ex := range batch {
		out[i] = ex.Input[0]
	}
	return out
}

func tokens(ex t5.Example) int { return len(ex.Input) + len(ex.Target) }

var configs = map[string]BatchConfig{
	"batch":                {Batch: 8, Shuffle: true, Seed: 1},
	"tokens":               {BatchTokens: 300, Shuffle: true, Seed: 2},
	"both":                 {Batch: 5, BatchTokens: 150, Shuffle: true, Seed: 3},
	"batch, in order":      {Batch: 8},
	"tokens, in order":     {BatchTokens: 300},
	"budget under longest": {BatchTokens: 40, Shuffle: true, Seed: 4},
}

// epochs runs a batcher for whole epochs and returns each epoch's batches.
func epochs(t *testing.T, b *Batcher, n int) [][][]int {
	t.Helper()
	var out [][][]int
	for len(out) < n {
		steps := b.StepsPerEpoch()
		var ep [][]int
		for range steps {
			batch, e := b.Next()
			if e != len(out) {
				t.Fatalf("batch of epoch %d during epoch %d", e, len(out))
			}
			ep = append(ep, ids(batch))
		}
		if c := b.Cursor(); c.Epoch != len(out)+1 || c.Batch != 0 {
			t.Fatalf("after %d batches of epoch %d the cursor is %+v", steps, len(out), c)
		}
		out = append(out, ep)
	}
	return out
}

// TestBatcherEpochs: every example exactly once per epoch, the limits respected, the
// batches deterministic from the seed and, when shuffled, different every epoch.
func TestBatcherEpochs(t *testing.T) {
	const n = 203
	exs := synthetic(n)
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			b, err := NewBatcher(exs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := epochs(t, b, 3)
			for e, ep := range got {
				seen := make([]int, n)
				for _, batch := range ep {
					sum := 0
					for _, i := range batch {
						seen[i]++
						sum += tokens(exs[i])
					}
					if len(batch) == 0 || (cfg.Batch > 0 && len(batch) > cfg.Batch) {
						t.Fatalf("epoch %d: a batch of %d examples (Batch %d)", e, len(batch), cfg.Batch)
					}
					if cfg.BatchTokens > 0 && sum > cfg.BatchTokens && len(batch) > 1 {
						t.Fatalf("epoch %d: a batch of %d tokens over the budget %d", e, sum, cfg.BatchTokens)
					}
				}
				for i, c := range seen {
					if c != 1 {
						t.Fatalf("epoch %d: example %d seen %d times", e, i, c)
					}
				}
			}
			again, err := NewBatcher(exs, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(epochs(t, again, 3), got, func(a, b [][]int) bool { return slices.EqualFunc(a, b, slices.Equal) }) {
				t.Error("two batchers with the same config differ")
			}
			same := slices.EqualFunc(got[0], got[1], slices.Equal)
			if cfg.Shuffle == same {
				t.Errorf("shuffle %v, but epochs 0 and 1 equal: %v", cfg.Shuffle, same)
			}
			if !cfg.Shuffle {
				var flat []int
				for _, batch := range got[0] {
					flat = append(flat, batch...)
				}
				for i, v := range flat {
					if v != i {
						t.Fatalf("unshuffled batches are not in file order: %v", got[0][:3])
					}
				}
			}
			if cfg.Shuffle {
				other := cfg
				other.Seed += 100
				ob, _ := NewBatcher(exs, other)
				if slices.EqualFunc(epochs(t, ob, 1)[0], got[0], slices.Equal) {
					t.Error("another seed gave the same epoch")
				}
			}
		})
	}
}

// TestBatcherBuckets: length bucketing (on input + target tokens) leaves much less
// padding than random batches would.
func TestBatcherBuckets(t *testing.T) {
	exs := synthetic(2000)
	waste := func(ep [][]int) (pad, total int) {
		for _, batch := range ep {
			longest := 0
			for _, i := range batch {
				longest = max(longest, tokens(exs[i]))
				total += tokens(exs[i])
			}
			pad += longest * len(batch)
		}
		return pad - total, total
	}
	b, _ := NewBatcher(exs, BatchConfig{Batch: 16, Shuffle: true, Seed: 9})
	bucketed, total := waste(epochs(t, b, 1)[0])
	// Random batches of 16: the same examples in a seeded random order, cut in runs.
	order := make([]int, len(exs))
	for i := range order {
		order[i] = i
	}
	shuffle(newRNG(9, 99, 0), order)
	var random [][]int
	for lo := 0; lo < len(order); lo += 16 {
		random = append(random, order[lo:min(len(order), lo+16)])
	}
	unbucketed, _ := waste(random)
	t.Logf("padding: bucketed %d, random %d (of %d)", bucketed, unbucketed, total)
	if bucketed*10 > unbucketed {
		t.Errorf("bucketed batches pad %d tokens, random ones %d: want under a tenth", bucketed, unbucketed)
	}

	// A token budget fills batches: all but a few per run are near full.
	tb, _ := NewBatcher(exs, BatchConfig{BatchTokens: 512, Shuffle: true, Seed: 9})
	ep := epochs(t, tb, 1)[0]
	sum := 0
	for _, batch := range ep {
		for _, i := range batch {
			sum += tokens(exs[i])
		}
	}
	if fill := float64(sum) / float64(len(ep)*512); fill < 0.9 {
		t.Errorf("token-budget batches are %.0f%% full on average, want ≥ 90%%", 100*fill)
	}
}

// TestBatcherFullBatch: Batch = len(examples) without shuffling is one full batch in file
// order every step, one epoch per step.
func TestBatcherFullBatch(t *testing.T) {
	exs := synthetic(37)
	b, err := NewBatcher(exs, BatchConfig{Batch: len(exs)})
	if err != nil {
		t.Fatal(err)
	}
	for step := range 5 {
		if b.StepsPerEpoch() != 1 {
			t.Fatalf("%d steps per epoch", b.StepsPerEpoch())
		}
		batch, e := b.Next()
		if e != step || len(batch) != len(exs) {
			t.Fatalf("step %d: epoch %d, %d examples", step, e, len(batch))
		}
		for i := range batch {
			if &batch[i].Input[0] != &exs[i].Input[0] {
				t.Fatalf("step %d: example %d is not the file's %d-th", step, i, i)
			}
		}
	}
}

// TestBatcherSeek: a batcher that seeks to a cursor (through JSON) yields the batches an
// uninterrupted one yields from there.
func TestBatcherSeek(t *testing.T) {
	exs := synthetic(101)
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			ref, _ := NewBatcher(exs, cfg)
			var stream [][]int
			var cursors []Cursor
			for range 60 {
				cursors = append(cursors, ref.Cursor())
				batch, _ := ref.Next()
				stream = append(stream, ids(batch))
			}
			for _, k := range []int{0, 1, 13, 14, 15, 29, 30, 31, 45} {
				data, err := json.Marshal(cursors[k])
				if err != nil {
					t.Fatal(err)
				}
				var c Cursor
				if err := json.Unmarshal(data, &c); err != nil {
					t.Fatal(err)
				}
				b, _ := NewBatcher(exs, cfg)
				b.Next() // a batcher elsewhere, which the seek must move
				if err := b.Seek(c); err != nil {
					t.Fatalf("seek %s: %v", data, err)
				}
				for j := k; j < len(stream); j++ {
					batch, _ := b.Next()
					if !slices.Equal(ids(batch), stream[j]) {
						t.Fatalf("after seeking to step %d (%s), step %d differs", k, data, j)
					}
				}
			}
		})
	}
}

func TestBatcherSeekErrors(t *testing.T) {
	exs := synthetic(30)
	b, _ := NewBatcher(exs, BatchConfig{Batch: 8, Shuffle: true, Seed: 5})
	steps := b.StepsPerEpoch()
	if steps != 4 {
		t.Fatalf("%d steps per epoch, want ceil(30/8) = 4", steps)
	}
	fp := b.Cursor().Fingerprint
	other, _ := NewBatcher(exs, BatchConfig{Batch: 8, Shuffle: true, Seed: 6})
	changed := slices.Clone(exs)
	changed[3] = t5.Example{Input: []int{3, 9}, Target: []int{1}}
	third, _ := NewBatcher(changed, BatchConfig{Batch: 8, Shuffle: true, Seed: 5})
	if fp == "" || fp == other.Cursor().Fingerprint || fp == third.Cursor().Fingerprint {
		t.Fatalf("fingerprints %q %q %q should tell config and data apart", fp, other.Cursor().Fingerprint, third.Cursor().Fingerprint)
	}
	for _, c := range []Cursor{
		{Epoch: 0, Batch: 1, Fingerprint: other.Cursor().Fingerprint},
		{Epoch: -1, Batch: 0, Fingerprint: fp},
		{Epoch: 0, Batch: -2},
		{Epoch: 2, Batch: steps + 1, Fingerprint: fp},
	} {
		if err := b.Seek(c); err == nil || !strings.HasPrefix(err.Error(), "batcher: ") {
			t.Errorf("Seek(%+v): err = %v", c, err)
		}
	}
	// The end of an epoch is the start of the next; a cursor without fingerprint is taken.
	if err := b.Seek(Cursor{Epoch: 2, Batch: steps}); err != nil {
		t.Fatal(err)
	}
	if c := b.Cursor(); c.Epoch != 3 || c.Batch != 0 || c.Fingerprint != fp {
		t.Errorf("cursor %+v, want epoch 3 batch 0", c)
	}
	if _, e := b.Next(); e != 3 {
		t.Errorf("next batch from epoch %d, want 3", e)
	}
}

func TestNewBatcherErrors(t *testing.T) {
	exs := synthetic(3)
	for _, c := range []struct {
		exs []t5.Example
		cfg BatchConfig
	}{
		{nil, BatchConfig{Batch: 1}},
		{exs, BatchConfig{}},
		{exs, BatchConfig{Batch: -1}},
		{exs, BatchConfig{BatchTokens: -5, Batch: 2}},
	} {
		if _, err := NewBatcher(c.exs, c.cfg); err == nil {
			t.Errorf("NewBatcher(%d examples, %+v): no error", len(c.exs), c.cfg)
		}
	}
}

// TestBatcherEpochSteps: StepsPerEpoch counts the batches until the epoch rolls over,
// and EpochSteps gives any epoch's count without moving.
func TestBatcherEpochSteps(t *testing.T) {
	exs := synthetic(500)
	b, _ := NewBatcher(exs, BatchConfig{BatchTokens: 256, Shuffle: true, Seed: 11})
	want := []int{b.EpochSteps(0), b.EpochSteps(1), b.EpochSteps(2)}
	if c := b.Cursor(); c.Epoch != 0 || c.Batch != 0 {
		t.Fatalf("EpochSteps moved the cursor to %+v", c)
	}
	for e, w := range want {
		n := 0
		for {
			_, got := b.Next()
			if got != e {
				t.Fatalf("epoch %d ended after %d batches, EpochSteps said %d", e, n, w)
			}
			n++
			if b.Cursor().Epoch != e {
				break
			}
		}
		if n != w {
			t.Errorf("epoch %d: %d batches, EpochSteps %d", e, n, w)
		}
	}
}
