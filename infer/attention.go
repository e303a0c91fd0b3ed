package infer

import (
	"math"

	"github.com/t5zoo/t5zoo/infer/internal/mat"
)

// query describes what one query row attends to: the key and value rows (full inner width,
// num_heads·d_kv; the head's slice is taken from each) and the relative position of key 0
// (minus the query's position; used only with a position bias).
type query struct {
	keys, vals [][]float32
	rel0       int
}

// attend computes multi-head attention for every query row: for each head h,
// out[r, h] = Σ_j softmax_j(q[r, h]·k_j[h] + bias_h(bucket(j + rel0))) · v_j[h], without
// scaling the scores (T5 folds 1/√d_kv into its weights). bias is [head][bucket] or nil
// (cross-attention); buckets maps a clamped relative position r to its bucket at
// r+m.maxDist. Scores are float32, the softmax normaliser is accumulated in float64 and the
// weights are rounded to float32, as in HF's float32 softmax.
func (m *Model) attend(out, q []float32, qs []query, bias []float32, buckets []int32) {
	inner, dkv, heads := m.inner, m.dkv, m.heads
	nb := m.shape.RelativeAttentionNumBuckets
	longest := 0
	work := 0
	for _, qq := range qs {
		longest = max(longest, len(qq.keys))
		work += len(qq.keys)
	}
	items := len(qs) * heads
	workers := m.workers
	if work*inner < 1<<14 {
		workers = 1
	}
	mat.ForRange(workers, items, 8, func(lo, hi int) {
		scores := make([]float32, longest)
		exps := make([]float64, longest)
		for it := lo; it < hi; it++ {
			r, h := it/heads, it%heads
			qq := qs[r]
			off := h * dkv
			qh := q[r*inner+off : r*inner+off+dkv]
			oh := out[r*inner+off : r*inner+off+dkv]
			var hb []float32
			if bias != nil {
				hb = bias[h*nb : (h+1)*nb]
			}
			sc := scores[:len(qq.keys)]
			mx := float32(math.Inf(-1))
			for j, k := range qq.keys {
				s := mat.Dot(qh, k[off:off+dkv])
				if hb != nil {
					rel := min(max(j+qq.rel0, -m.maxDist), m.maxDist)
					s += hb[buckets[rel+m.maxDist]]
				}
				sc[j] = s
				mx = max(mx, s)
			}
			var sum float64
			ex := exps[:len(sc)]
			for j, s := range sc {
				e := math.Exp(float64(s - mx))
				ex[j] = e
				sum += e
			}
			clear(oh)
			inv := 1 / sum
			for j, v := range qq.vals {
				p := float32(ex[j] * inv)
				mat.Axpy(p, v[off:off+dkv], oh)
			}
		}
	})
}
