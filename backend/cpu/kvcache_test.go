package cpu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
)

// position reads position j of layer 0 of c back out of its packed buffers: keys then values.
func position(c *cache, j int) []float32 {
	lay := c.layers[0]
	b, dkv, inner := lay.buf, c.dkv, c.heads*c.dkv
	out := make([]float32, 2*inner)
	if b == nil {
		return append(out[:0], lay.first.a[j*lay.first.ld:j*lay.first.ld+2*inner]...)
	}
	for h := range c.heads {
		k := b.keys(h, lay.n)
		for kk := range dkv {
			out[h*dkv+kk] = k.f32[(j/panel)*dkv*panel+kk*panel+j%panel]
		}
		for q := range b.vp {
			v := b.vals(h, q, lay.n)
			for l := range v.n {
				out[inner+h*dkv+q*panel+l] = v.f32[j*panel+l]
			}
		}
	}
	return out
}

// TestCacheForksConcurrently grows forks of one cache on separate goroutines, past the
// room of the shared buffer and within it: each reads back exactly what it appended, and
// the parent's positions are unchanged (run with -race).
func TestCacheForksConcurrently(t *testing.T) {
	be := New(Options{Threads: 1})
	defer be.Close()
	for _, dkv := range []int{1, 20, 32, 40} {
		heads := 3
		inner := heads * dkv
		row := func(tag, j int) []float32 {
			r := make([]float32, 2*inner)
			for i := range r {
				r[i] = float32(tag*100000 + j*1000 + i)
			}
			return r
		}
		appendRows := func(c backend.Cache, tag, from, n int) {
			kv := be.Alloc(n, 2*inner)
			for j := range n {
				be.Upload(kv.RowSlice(j, j+1), row(tag, from+j))
			}
			c.Reserve(n)
			c.Append(0, kv)
		}
		parent := be.NewCache(1, heads, dkv)
		appendRows(parent, 0, 0, 4) // the first feed stays rows
		appendRows(parent, 0, 4, 1) // the second moves them to a packed buffer the forks share
		forks := make([]backend.Cache, 4)
		for i := range forks {
			forks[i] = parent.Fork()
		}
		var wg sync.WaitGroup
		var shared atomic.Int32 // forks whose first append claimed the parent's buffer in place
		for i, f := range forks {
			wg.Go(func() {
				for step := range 40 { // grows past the shared buffer's room of 32
					appendRows(f, i+1, 5+step, 1)
					if step == 0 && f.(*cache).layers[0].buf == parent.(*cache).layers[0].buf {
						shared.Add(1)
					}
				}
			})
		}
		wg.Wait()
		// check compares c with positions 0..4 of the parent (tag 0), then tag's rows; a
		// cache of its own (tag ≥ 7) has no parent's positions.
		check := func(name string, c backend.Cache, tag, n int) {
			t.Helper()
			if c.Len() != n {
				t.Fatalf("d_kv %d: %s holds %d positions, want %d", dkv, name, c.Len(), n)
			}
			for j := range n {
				want := row(tag, j)
				if j < 5 && tag < 7 {
					want = row(0, j)
				}
				if got := position(c.(*cache), j); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("d_kv %d: %s position %d = %v, want %v", dkv, name, j, got[:4], want[:4])
				}
			}
		}
		if shared.Load() != 1 {
			t.Errorf("d_kv %d: %d forks appended in place to the shared buffer, want exactly 1", dkv, shared.Load())
		}
		check("the parent", parent, 0, 5)
		// A cache fed once keeps its rows; feeding it again packs them.
		once := be.NewCache(1, heads, dkv)
		appendRows(once, 7, 0, 3)
		if once.(*cache).layers[0].buf != nil {
			t.Errorf("d_kv %d: a cache fed once was packed", dkv)
		}
		again := once.Fork()
		appendRows(again, 8, 3, 2)
		check("a cache fed once", once, 7, 3)
		if got, want := position(again.(*cache), 4), row(8, 4); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("d_kv %d: the second feed's position 4 = %v, want %v", dkv, got[:4], want[:4])
		}
		for i, f := range forks {
			check(fmt.Sprintf("fork %d", i), f, i+1, 45)
		}
		// A truncated fork gives its slots back and appends in place again.
		forks[0].Truncate(44)
		appendRows(forks[0], 9, 44, 1)
		if got, want := position(forks[0].(*cache), 44), row(9, 44); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("d_kv %d: the truncated fork's new position 44 = %v, want %v", dkv, got[:4], want[:4])
		}
		earlier := forks[0].Fork()
		earlier.Truncate(44)
		check("the truncated fork", earlier, 1, 44)
	}
}
