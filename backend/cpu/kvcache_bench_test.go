package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// BenchmarkKVHead is one decoder layer's self-attention for one query row over nk cached
// positions on t5-efficient-base's 12 heads × d_kv 64, on one thread: "repack" as the engine
// did before the cache was packed as it grows (every cached key and value packed into the
// products' layout at every step, then the two products), "packed" as it does now (the
// products straight on the cache; the values in two 32-wide panels).
func BenchmarkKVHead(b *testing.B) {
	ks, _ := kernels.New(kernels.Best())
	c := New(Options{Threads: 1, Kernels: ks})
	defer c.Close()
	r := rand.New(rand.NewPCG(1, 2))
	const heads, dkv = 12, 64
	inner := heads * dkv
	for _, nk := range []int{8, 33, 64, 128} {
		rows := make([]float32, nk*2*inner) // position j: its keys, then its values
		for i := range rows {
			rows[i] = r.Float32()
		}
		buf := newKVBuf(heads, dkv, KVCap(nk))
		for j := range nk {
			row := rows[j*2*inner : (j+1)*2*inner]
			buf.writeKV(j, row[:inner], row[inner:])
		}
		q := make([]float32, inner)
		out := make([]float32, inner)
		scores := make([]float32, nk)
		kb := make([]float32, PackedLen(nk, dkv))
		vb := make([]float32, PackedLen(dkv, nk))
		b.Run(fmt.Sprintf("repack/%d", nk), func(b *testing.B) {
			for b.Loop() {
				for h := range heads {
					kp := PackStrided(kb, rows[h*dkv:], 2*inner, nk, dkv)
					vp := PackStridedT(vb, rows[inner+h*dkv:], 2*inner, dkv, nk)
					c.Gemm(scores, nk, q[h*dkv:], inner, 1, &kp, kernels.Store, nil)
					c.Gemm(out[h*dkv:], inner, scores, nk, 1, &vp, kernels.Store, nil)
				}
			}
		})
		b.Run(fmt.Sprintf("packed/%d", nk), func(b *testing.B) {
			var kp, vp Packed
			for b.Loop() {
				for h := range heads {
					kp = buf.keys(h, nk)
					c.Gemm(scores, nk, q[h*dkv:], inner, 1, &kp, kernels.Store, nil)
					for qq := range buf.vp {
						vp = buf.vals(h, qq, nk)
						c.Gemm(out[h*dkv+qq*panel:], inner, scores, nk, 1, &vp, kernels.Store, nil)
					}
				}
			}
		})
	}
}
