package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestTrie checks the double array against a map on random key sets.
func TestTrie(t *testing.T) {
	for _, tt := range []struct {
		name     string
		n        int
		alphabet string
		maxLen   int
	}{
		{"one", 1, "a", 1},
		{"dense", 200, "ab", 9},
		{"bytes", 3000, "\x01a\x7f\x80\xe2\x96\x81\xff", 6},
		{"long", 50, "xyz", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.n)))
			word := func() string {
				var b strings.Builder
				for range 1 + rng.IntN(tt.maxLen) {
					b.WriteByte(tt.alphabet[rng.IntN(len(tt.alphabet))])
				}
				return b.String()
			}
			want := map[string]int32{}
			var keys []string
			var vals []int32
			for len(keys) < tt.n {
				if k := word(); want[k] == 0 {
					want[k] = int32(len(keys) + 1)
					keys = append(keys, k)
					vals = append(vals, int32(len(keys)))
				}
				if len(want) == tt.n || len(keys) > 10*tt.n {
					break
				}
			}
			tr := buildTrie(keys, vals)
			for range 2000 {
				q := word() + word()
				v, ok := want[q]
				if got := tr.exact(q); (ok && got != v) || (!ok && got != -1) {
					t.Fatalf("exact(%q) = %d, want %d", q, got, v)
				}
				bestLen, bestVal := 0, int32(-1)
				for l := 1; l <= len(q); l++ {
					if v, ok := want[q[:l]]; ok {
						bestLen, bestVal = l, v
					}
				}
				if l, v := tr.longestPrefix(q); l != bestLen || v != bestVal {
					t.Fatalf("longestPrefix(%q) = %d %d, want %d %d", q, l, v, bestLen, bestVal)
				}
			}
			for k, v := range want {
				if got := tr.exact(k); got != v {
					t.Fatalf("exact(%q) = %d, want %d", k, got, v)
				}
			}
		})
	}
}
