package t5

import (
	"math"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/catalog"
)

// RelativePositionBucket is HF's T5Attention._relative_position_bucket for one relative
// position rel = key_position - query_position. Like HF it computes the logarithmic bucket
// in float32 and truncates it: log(rel/max_exact) / log(max_distance/max_exact) ·
// (num_buckets - max_exact), with the second logarithm taken in float64 and rounded to
// float32, as torch does with a Python scalar.
func RelativePositionBucket(rel int, bidirectional bool, numBuckets, maxDistance int) int {
	bucket := 0
	if bidirectional {
		numBuckets /= 2
		if rel > 0 {
			bucket += numBuckets
		}
		rel = max(rel, -rel)
	} else {
		rel = -min(rel, 0)
	}
	maxExact := numBuckets / 2
	if rel < maxExact {
		return bucket + rel
	}
	if maxExact == 0 {
		return bucket + numBuckets - 1
	}
	x := float32(rel) / float32(maxExact)
	logX := float32(math.Log(float64(x)))
	den := float32(math.Log(float64(maxDistance) / float64(maxExact)))
	scaled := logX / den * float32(numBuckets-maxExact)
	large := numBuckets - 1
	if scaled < float32(numBuckets) { // also false for NaN and +Inf
		large = min(large, maxExact+int(scaled))
	}
	return bucket + large
}

// buildBuckets tabulates the buckets of relative positions -maxDist..maxDist for both
// stacks. Beyond ±max_distance every bucket is saturated, so positions are clamped to
// ±(max_distance+1); and no two positions of a sequence are MaxTokens or more apart, so the
// tables never span more than that (relSpan): a config's max_distance of 131072 costs nothing.
func (m *Model) buildBuckets() {
	nb, md := m.shape.RelativeAttentionNumBuckets, m.shape.RelativeAttentionMaxDistance
	m.maxDist = RelSpan(m.shape, m.maxTokens)
	n := 2*m.maxDist + 1
	m.encBucket = make([]int32, n)
	m.decBucket = make([]int32, n)
	for i := range n {
		rel := i - m.maxDist
		m.encBucket[i] = int32(RelativePositionBucket(rel, true, nb, md))
		m.decBucket[i] = int32(RelativePositionBucket(rel, false, nb, md))
	}
	// The bias of each head for each clamped relative position, in the order attention adds it.
	// Uploaded a head at a time: the tables of a shape with thousands of heads are large.
	row := make([]float32, n)
	table := func(bias []float32, buckets []int32) backend.Tensor {
		t := m.be.Alloc(m.heads, n)
		for h := range m.heads {
			for i, b := range buckets {
				row[i] = bias[int(b)*m.heads+h]
			}
			m.be.Upload(t.RowSlice(h, h+1), row)
		}
		return t
	}
	m.encRel = table(m.encBias, m.encBucket)
	m.decRel = table(m.decBias, m.decBucket)
}

// RelSpan is the relative-position clamp of a model: ±max_distance+1, where the buckets
// saturate, but never more than a sequence can span (maxTokens), which bounds the bias
// tables of a config with a huge relative_attention_max_distance.
func RelSpan(shape catalog.Shape, maxTokens int) int {
	return min(shape.RelativeAttentionMaxDistance+1, maxTokens)
}

// Bucket returns the bucket the encoder (bidirectional) and the decoder (causal) give the
// relative position rel = key - query, from the model's clamped tables.
func (m *Model) Bucket(rel int) (encoder, decoder int) {
	c := min(max(rel, -m.maxDist), m.maxDist) + m.maxDist
	return int(m.encBucket[c]), int(m.decBucket[c])
}
