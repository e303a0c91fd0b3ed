package data

import "fmt"

// Holdout splits s into a training part and a held-out part of n pairs, chosen by seed.
// Pairs with the same input stay on one side, so that no held-out input is also trained on
// (a file with repeated inputs could otherwise leak them): inputs are taken in a seeded
// order, an input whose pairs would carry the held-out part past n being passed over, until
// it holds n pairs or no input fits. Both parts keep s's order; their digests are of their
// pairs (PairsDigest), their names s's with "#train" and "#holdout" and the split's
// parameters. n is clamped to [0, s.Len()]; n = 0 holds out nothing.
func Holdout(s *Set, n int, seed uint64) (train, valid *Set) {
	n = max(0, min(n, len(s.Pairs)))
	// Inputs in first-seen order, each with its pairs' indices.
	groupOf := make(map[string]int)
	var groups [][]int
	for i, p := range s.Pairs {
		g, ok := groupOf[p.Input]
		if !ok {
			g = len(groups)
			groupOf[p.Input] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	shuffle(newRNG(seed, streamHoldout, 0), order)
	held := make([]bool, len(s.Pairs))
	total := 0
	for _, g := range order {
		if total == n {
			break
		}
		if total+len(groups[g]) > n {
			continue
		}
		for _, i := range groups[g] {
			held[i] = true
		}
		total += len(groups[g])
	}
	var tp, vp []Pair
	for i, p := range s.Pairs {
		if held[i] {
			vp = append(vp, p)
		} else {
			tp = append(tp, p)
		}
	}
	suffix := fmt.Sprintf("(n=%d,seed=%d)", n, seed)
	train = &Set{Name: s.Name + "#train" + suffix, Digest: PairsDigest(tp), Pairs: tp}
	valid = &Set{Name: s.Name + "#holdout" + suffix, Digest: PairsDigest(vp), Pairs: vp}
	return train, valid
}
