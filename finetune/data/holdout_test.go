package data

import (
	"fmt"
	"slices"
	"testing"
)

func numbered(n int) *Set {
	s := &Set{Name: "f.jsonl"}
	for i := range n {
		s.Pairs = append(s.Pairs, Pair{fmt.Sprintf("in %d", i), fmt.Sprintf("out %d", i)})
	}
	s.Digest = PairsDigest(s.Pairs)
	return s
}

// TestHoldout: the parts are disjoint, together the whole in order, of the asked sizes,
// and the same for the same seed only.
func TestHoldout(t *testing.T) {
	s := numbered(100)
	for _, n := range []int{0, 1, 10, 99, 100, 150, -3} {
		train, valid := Holdout(s, n, 7)
		want := max(0, min(n, 100))
		if valid.Len() != want || train.Len() != 100-want {
			t.Fatalf("n=%d: %d train, %d held out", n, train.Len(), valid.Len())
		}
		// Merging the parts by their order in s gives s back: disjoint, complete, ordered.
		var merged []Pair
		ti, vi := 0, 0
		for _, p := range s.Pairs {
			switch {
			case ti < train.Len() && train.Pairs[ti] == p:
				ti++
			case vi < valid.Len() && valid.Pairs[vi] == p:
				vi++
			default:
				t.Fatalf("n=%d: pair %q is in neither part (or out of order)", n, p)
			}
			merged = append(merged, p)
		}
		if ti != train.Len() || vi != valid.Len() || !slices.Equal(merged, s.Pairs) {
			t.Fatalf("n=%d: parts are not a partition of the set", n)
		}
		if train.Digest != PairsDigest(train.Pairs) || valid.Digest != PairsDigest(valid.Pairs) || train.Name == valid.Name {
			t.Errorf("n=%d: names %q %q or digests wrong", n, train.Name, valid.Name)
		}
	}
	_, a := Holdout(s, 10, 1)
	_, b := Holdout(s, 10, 1)
	_, c := Holdout(s, 10, 2)
	if !slices.Equal(a.Pairs, b.Pairs) {
		t.Error("the same seed gave different held-out pairs")
	}
	if slices.Equal(a.Pairs, c.Pairs) {
		t.Error("seeds 1 and 2 held out the same pairs")
	}
	if slices.Equal(a.Pairs, s.Pairs[:10]) || slices.Equal(a.Pairs, s.Pairs[90:]) {
		t.Error("the held-out pairs are not spread over the set")
	}
}

// TestHoldoutRepeatedInputs: an input's pairs stay together, and n is still met exactly.
func TestHoldoutRepeatedInputs(t *testing.T) {
	s := numbered(20)
	for i := range 10 { // inputs 0..9 twice, with other targets
		s.Pairs = append(s.Pairs, Pair{fmt.Sprintf("in %d", i), "again"})
	}
	for seed := range uint64(20) {
		train, valid := Holdout(s, 5, seed)
		if valid.Len() != 5 || train.Len() != 25 {
			t.Fatalf("seed %d: %d held out, want 5", seed, valid.Len())
		}
		inTrain := map[string]bool{}
		for _, p := range train.Pairs {
			inTrain[p.Input] = true
		}
		for _, p := range valid.Pairs {
			if inTrain[p.Input] {
				t.Fatalf("seed %d: input %q is on both sides", seed, p.Input)
			}
		}
	}
}
