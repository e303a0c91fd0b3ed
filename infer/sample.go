package infer

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"slices"
)

// sampleToken draws the next token from row after HF v4.30.2's logits warpers, in HF's
// order: TemperatureLogitsWarper (scores / temperature, float32), TopKLogitsWarper
// (remove scores below the K-th largest), TopPLogitsWarper (sort ascending, remove the
// tokens whose cumulative probability is at most 1 - top_p, always keeping the most likely
// one); then softmax and a multinomial draw.
func (s *sampleSearch) sampleToken(row []float32, rng *rand.Rand) int {
	V := len(row)
	scores := make([]float32, V)
	t := float32(s.c.temperature)
	for i, x := range row {
		scores[i] = x
		if t != 1 {
			scores[i] = x / t
		}
	}
	negInf := float32(math.Inf(-1))
	if k := s.c.topK; k > 0 && k < V {
		thr := kthLargest(scores, k)
		for i, x := range scores {
			if x < thr {
				scores[i] = negInf
			}
		}
	}
	if p := s.c.topP; p < 1 {
		order := make([]int, V)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case scores[a] < scores[b]:
				return -1
			case scores[a] > scores[b]:
				return 1
			}
			return 0
		})
		probs := softmax64(scores)
		var cum float64
		for n, i := range order {
			cum += probs[i]
			if n < V-1 && cum <= 1-p {
				scores[i] = negInf
			}
		}
	}
	probs := softmax64(scores)
	u := rng.Float64()
	var acc float64
	last := 0
	for i, p := range probs {
		if p == 0 {
			continue
		}
		acc += p
		last = i
		if u < acc {
			return i
		}
	}
	return last // rounding left u above the total
}

// softmax64 returns softmax(scores) in float64; -Inf scores get probability 0.
func softmax64(scores []float32) []float64 {
	mx := math.Inf(-1)
	for _, x := range scores {
		mx = max(mx, float64(x))
	}
	out := make([]float64, len(scores))
	var sum float64
	for i, x := range scores {
		e := math.Exp(float64(x) - mx)
		out[i] = e
		sum += e
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// kthLargest returns the k-th largest value of v (1 ≤ k ≤ len(v)).
func kthLargest(v []float32, k int) float32 {
	h := make(minHeap, 0, k)
	for _, x := range v {
		if len(h) < k {
			heap.Push(&h, x)
		} else if x > h[0] {
			h[0] = x
			heap.Fix(&h, 0)
		}
	}
	return h[0]
}

type minHeap []float32

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(float32)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// topLogprobs returns the k most likely tokens of row, best first (ties by lower id), with
// their log-probabilities given the row's log-sum-exp lse.
func topLogprobs(row []float32, k int, lse float64) []TokenLogprob {
	k = min(k, len(row))
	top := make([]TokenLogprob, 0, k+1)
	for id, x := range row {
		if len(top) == k && x <= row[top[k-1].ID] {
			continue
		}
		i := len(top)
		for i > 0 && row[top[i-1].ID] < x {
			i--
		}
		top = slices.Insert(top, i, TokenLogprob{ID: id})
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Logprob = float64(row[top[i].ID]) - lse
	}
	return top
}
