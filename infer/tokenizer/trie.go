package tokenizer

import (
	"slices"
	"strings"
)

// daUnit is one slot of a double-array trie. A node at index s has its child
// for byte c at t = base(s) + c when units[t].check == s. value is the id of
// the key that ends at the node, or -1.
type daUnit struct {
	base  int32
	check int32
	value int32
}

// daTrie is a byte-wise double-array trie (Aoe 1989) over a set of keys. Its
// lookups touch one 12-byte slot per input byte and allocate nothing, which is
// what makes the Viterbi segmentation fast.
type daTrie struct {
	units []daUnit
}

// noNode marks a free slot's check; the root is slot 0 with check rootCheck.
const (
	noNode    = -1
	rootCheck = -2
)

// buildTrie builds the trie of keys (which must be unique and non-empty) with
// the given values.
func buildTrie(keys []string, values []int32) *daTrie {
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	sorted := make([]string, len(keys))
	vals := make([]int32, len(keys))
	for i, o := range order {
		sorted[i], vals[i] = keys[o], values[o]
	}

	b := newTrieBuilder()
	// Breadth first, with a queue rather than recursion (a key may be very
	// long): the upper levels, which every lookup walks, end up side by side
	// in memory, which makes segmentation about 10% faster than depth first.
	type job struct {
		node, lo, hi, depth int
	}
	queue := []job{{0, 0, len(sorted), 0}}
	var labels []byte
	var starts []int
	for head := 0; head < len(queue); head++ {
		j := queue[head]
		lo := j.lo
		if lo < j.hi && len(sorted[lo]) == j.depth {
			b.units[j.node].value = vals[lo]
			lo++
		}
		if lo == j.hi {
			continue
		}
		labels, starts = labels[:0], starts[:0]
		for i := lo; i < j.hi; i++ {
			c := sorted[i][j.depth]
			if len(labels) == 0 || labels[len(labels)-1] != c {
				labels = append(labels, c)
				starts = append(starts, i)
			}
		}
		base := b.findBase(labels)
		b.units[j.node].base = int32(base)
		for k, c := range labels {
			t := base + int(c)
			b.units[t].check = int32(j.node)
			b.use(t)
			hi := j.hi
			if k+1 < len(labels) {
				hi = starts[k+1]
			}
			queue = append(queue, job{t, starts[k], hi, j.depth + 1})
		}
	}
	return &daTrie{units: slices.Clip(b.units)}
}

// trieBuilder places nodes in the double array. Free slots form a doubly
// linked list so that finding a base skips the slots already taken.
type trieBuilder struct {
	units      []daUnit
	used       []bool
	next, prev []int32 // free-list links, -1 at the ends
	head, tail int32
}

func newTrieBuilder() *trieBuilder {
	b := &trieBuilder{head: -1, tail: -1}
	b.grow(512)
	b.use(0)
	b.units[0] = daUnit{check: rootCheck, value: -1}
	return b
}

// grow extends the array to at least n slots, all free.
func (b *trieBuilder) grow(n int) {
	for i := len(b.units); i < n; i++ {
		b.units = append(b.units, daUnit{check: noNode, value: -1})
		b.used = append(b.used, false)
		b.next = append(b.next, -1)
		b.prev = append(b.prev, b.tail)
		if b.tail >= 0 {
			b.next[b.tail] = int32(i)
		} else {
			b.head = int32(i)
		}
		b.tail = int32(i)
	}
}

// use takes slot s off the free list.
func (b *trieBuilder) use(s int) {
	b.used[s] = true
	p, n := b.prev[s], b.next[s]
	if p >= 0 {
		b.next[p] = n
	} else {
		b.head = n
	}
	if n >= 0 {
		b.prev[n] = p
	} else {
		b.tail = p
	}
}

// findBase returns a base >= 1 for which every child slot base+c is free.
func (b *trieBuilder) findBase(labels []byte) int {
	first := int(labels[0])
	for s := b.head; ; s = b.next[s] {
		if s < 0 {
			// Unreachable: grow keeps free slots past every base tried.
			b.grow(len(b.units) + 256)
			s = b.tail
		}
		base := int(s) - first
		if base < 1 {
			continue
		}
		b.grow(base + 256 + 1)
		ok := true
		for _, c := range labels[1:] {
			if b.used[base+int(c)] {
				ok = false
				break
			}
		}
		if ok {
			return base
		}
	}
}

// exact returns the value of key, or -1.
func (t *daTrie) exact(key string) int32 {
	s := 0
	for i := 0; i < len(key); i++ {
		n := int(t.units[s].base) + int(key[i])
		if n >= len(t.units) || t.units[n].check != int32(s) {
			return -1
		}
		s = n
	}
	return t.units[s].value
}

// longestPrefix returns the length and value of the longest key that is a
// prefix of text, or (0, -1).
func (t *daTrie) longestPrefix(text string) (int, int32) {
	length, value := 0, int32(-1)
	s := 0
	for i := 0; i < len(text); i++ {
		n := int(t.units[s].base) + int(text[i])
		if n >= len(t.units) || t.units[n].check != int32(s) {
			break
		}
		s = n
		if v := t.units[s].value; v >= 0 {
			length, value = i+1, v
		}
	}
	return length, value
}
