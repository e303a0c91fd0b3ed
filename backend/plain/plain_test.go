package plain

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/backendtest"
)

// TestConformance runs the conformance suite: every operation against its float64
// reference, and the determinism promise of the package doc.
func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Config{
		New:     func(testing.TB, int) backend.Backend { return New() },
		Promise: backendtest.BitIdenticalBatching,
		DTypes:  []backend.DType{backend.F32, backend.BF16, backend.Int8},
	})
}

// matrix is a row-major Source.
type matrix struct {
	rows, cols int
	v          []float32
	fail       error // returned by Float32 for rows past 0
}

func (m *matrix) Dims() (int, int) { return m.rows, m.cols }

func (m *matrix) Float32(r0 int, dst []float32) error {
	if m.fail != nil && r0+len(dst)/m.cols > 1 {
		return m.fail
	}
	copy(dst, m.v[r0*m.cols:])
	return nil
}

// qmatrix is a QuantizedSource.
type qmatrix struct {
	matrix
	q     []int8
	scale []float32
}

func (m *qmatrix) Int8(r0 int, q []int8, scales []float32) error {
	copy(q, m.q[r0*m.cols:])
	copy(scales, m.scale[r0:])
	return nil
}

func prepare(t *testing.T, b *Backend, rows, cols int, v []float32, dt backend.DType) backend.Weight {
	t.Helper()
	w, err := b.Prepare(&matrix{rows: rows, cols: cols, v: v}, dt)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func upload(b *Backend, rows, cols int, v []float32) backend.Tensor {
	t := b.Alloc(rows, cols)
	b.Upload(t, v)
	return t
}

func download(b *Backend, t backend.Tensor) []float32 {
	v := make([]float32, t.Rows*t.Cols)
	b.Download(v, t)
	return v
}

func random(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestLinearF32(t *testing.T) {
	b := New()
	// The second row checks the chain's order and rounding: 1 + 2⁻²⁴ rounds to 1 (a tie, to
	// even), twice, as 0.5 + 2⁻²⁵ rounds to 0.5; float64 or the reverse order would give
	// 1 + 2⁻²³ and 0.5 + 2⁻²⁴.
	tiny := float32(math.Ldexp(1, -24))
	w := prepare(t, b, 3, 3, []float32{1, 0, -1, 0.5, 0.5, 0.5, 1, 1, 1}, backend.F32)
	x := upload(b, 3, 3, []float32{1, 2, 3, 1, tiny, tiny, 0, 0, 0.5})
	for _, tc := range []struct {
		ep   backend.Epilogue
		want []float32
	}{
		{backend.Store, []float32{-2, 3, 6, 1 - tiny, 0.5, 1, -0.5, 0.25, 0.5}},
		{backend.Add, []float32{8, 13, 16, 11, 10.5, 11, 9.5, 10.25, 10.5}},
		{backend.ReLU, []float32{0, 3, 6, 1 - tiny, 0.5, 1, 0, 0.25, 0.5}},
	} {
		dst := upload(b, 3, 3, []float32{10, 10, 10, 10, 10, 10, 10, 10, 10})
		b.Linear(dst, x, w, tc.ep)
		if got := download(b, dst); !sameBits(got, tc.want) {
			t.Errorf("epilogue %d: got %v, want %v", tc.ep, got, tc.want)
		}
	}
}

func TestInt8Product(t *testing.T) {
	b := New()
	// Weight rows, quantized by convert.QuantizeInt8: w0 has amax 127 (scale 1, q = w0); w1
	// is zero (scale 0); w2 has amax 254 (scale 2, inv 0.5: -63.5 rounds to even -64, 0.5 to 0).
	w := prepare(t, b, 3, 4, []float32{
		127, -64, 1, 10,
		0, 0, 0, 0,
		254, -127, 0, 1,
	}, backend.Int8)
	emb := b.Alloc(3, 4)
	b.Embed(emb, w, []int{0, 1, 2})
	if got, want := download(b, emb), []float32{127, -64, 1, 10, 0, 0, 0, 0, 254, -128, 0, 0}; !sameBits(got, want) {
		t.Fatalf("int8 weight rows: got %v, want %v", got, want)
	}
	// Activation rows, quantized per row: x0 has amax 127 (scale 1; 0.5 rounds to 0);
	// x1 has amax 2 (inv 63.5: q = 127, 64 (63.5 to even), -32 (-31.75), 0; scale 2/127);
	// x2 is zero (scale 0).
	x := upload(b, 3, 4, []float32{
		127, 2, -3, 0.5,
		2, 1, -0.5, 0,
		0, 0, 0, 0,
	})
	s1 := float32(2) / 127
	want := []float32{
		// x0·w0 = 127·127 - 2·64 - 3 = 15998 (float32 would give 16003); x0·w2 = 16129 - 128 = 16001, ·2.
		15998, 0, 32002,
		// x1·w0 = 16129 - 64·64 - 32 = 12001; x1·w2 = 16129 - 4096 = 12033.
		float32(12001) * s1, 0, float32(12033) * float32(s1*2),
		0, 0, 0,
	}
	dst := b.Alloc(3, 3)
	b.Linear(dst, x, w, backend.Store)
	if got := download(b, dst); !sameBits(got, want) {
		t.Errorf("int8 product: got %v, want %v", got, want)
	}
	b.Linear(dst, x, w, backend.Add)
	for i := range want {
		want[i] += want[i]
	}
	if got := download(b, dst); !sameBits(got, want) {
		t.Errorf("int8 product, Add: got %v, want %v", got, want)
	}

	// A QuantizedSource is taken unchanged.
	qw, err := b.Prepare(&qmatrix{matrix: matrix{rows: 2, cols: 2}, q: []int8{3, -5, 127, 1}, scale: []float32{0.5, 0.25}}, backend.Int8)
	if err != nil {
		t.Fatal(err)
	}
	emb = b.Alloc(2, 2)
	b.Embed(emb, qw, []int{1, 0})
	if got, want := download(b, emb), []float32{31.75, 0.25, 1.5, -2.5}; !sameBits(got, want) {
		t.Errorf("quantized source rows: got %v, want %v", got, want)
	}
}

func TestBF16Rounding(t *testing.T) {
	one := float32(1)
	ulp := float32(math.Ldexp(1, -7)) // of bfloat16 at 1
	nan := float32(math.NaN())
	in := []float32{one + ulp/2, one + 3*ulp/2, -(one + ulp/2), one + ulp/2 + float32(math.Ldexp(1, -20)), float32(math.Inf(1)), 3}
	want := []float32{1, one + 2*ulp, -1, one + ulp, float32(math.Inf(1)), 3}
	b := New()
	w := prepare(t, b, 1, len(in)+1, append(in, nan), backend.BF16)
	dst := b.Alloc(1, len(in)+1)
	b.Embed(dst, w, []int{0})
	got := download(b, dst)
	if !sameBits(got[:len(in)], want) || !math.IsNaN(float64(got[len(in)])) {
		t.Errorf("bf16 rows: got %v, want %v then NaN", got, want)
	}
	if w.Bytes() != 4*int64(len(in)+1) {
		t.Errorf("bf16 weight of %d values: %d bytes", len(in)+1, w.Bytes())
	}
}

// attnProbs runs Attention over one group with Probs and returns Out and Probs.
func attnProbs(b *Backend, g backend.AttnGroup, heads int, bias backend.Tensor) (out, probs []float32) {
	g.Out = b.Alloc(g.Q.Rows, g.Q.Cols)
	g.Probs = b.Alloc(heads*g.Q.Rows, g.KV.Len())
	b.Attention([]backend.AttnGroup{g}, heads, bias)
	return download(b, g.Out), download(b, g.Probs)
}

func TestBiasClamp(t *testing.T) {
	b := New()
	const heads, d, nk = 2, 2, 8
	// Zero queries: the scores are the bias alone. Head 0's table is 0..4, head 1's 4..0.
	bias := upload(b, heads, 2*d+1, []float32{0, 1, 2, 3, 4, 4, 3, 2, 1, 0})
	kv := make([]float32, nk*2*heads) // d_kv 1: key h, then value h
	for j := range nk {
		kv[j*4+2], kv[j*4+3] = float32(j), float32(10*j) // values j and 10j
	}
	var kvs [1]backend.KV
	b.CrossKV(kvs[:], upload(b, nk, 2*heads, kv), []backend.Span{{Off: 0, N: nk}}, heads)
	q := b.Alloc(2, heads)
	out, probs := attnProbs(b, backend.AttnGroup{Q: q, Pos0: 3, KV: kvs[0]}, heads, bias)
	// Positions 3 and 4; keys 0..7: relative positions clamped to -2..2, as table indices.
	idx := [][]int{
		{0, 0, 1, 2, 3, 4, 4, 4}, // pos 3: j-3 = -3..4
		{0, 0, 0, 1, 2, 3, 4, 4}, // pos 4: j-4 = -4..3
	}
	tbl := download(b, bias)
	for h := range heads {
		for i, row := range idx {
			var sum, mean float64
			for _, k := range row {
				sum += math.Exp(float64(tbl[h*(2*d+1)+k]))
			}
			p := probs[(h*2+i)*nk : (h*2+i+1)*nk]
			for j, k := range row {
				want := math.Exp(float64(tbl[h*(2*d+1)+k])) / sum
				if math.Abs(float64(p[j])-want) > 1e-6 {
					t.Errorf("head %d, pos %d, key %d: probability %g, want %g (table index %d)", h, 3+i, j, p[j], want, k)
				}
				mean += want * float64(j) * math.Pow(10, float64(h))
			}
			if got := float64(out[i*heads+h]); math.Abs(got-mean) > 1e-5*math.Abs(mean) {
				t.Errorf("head %d, pos %d: out %g, want %g", h, 3+i, got, mean)
			}
		}
	}
}

func TestCausalMask(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := New()
	const heads, dkv, nk, pos0, n = 2, 3, 6, 2, 3
	kvData := b.Alloc(nk, 2*heads*dkv)
	b.Upload(kvData, random(r, nk*2*heads*dkv))
	bias := upload(b, heads, 5, random(r, heads*5))
	q := upload(b, n, heads*dkv, random(r, n*heads*dkv))
	var kv [1]backend.KV
	b.CrossKV(kv[:], kvData, []backend.Span{{Off: 0, N: nk}}, heads)
	out, probs := attnProbs(b, backend.AttnGroup{Q: q, Pos0: pos0, KV: kv[0], Causal: true}, heads, bias)
	for i := range n {
		pos := pos0 + i
		for h := range heads {
			p := probs[(h*n+i)*nk : (h*n+i+1)*nk]
			var sum float64
			for j, v := range p {
				if j > pos && v != 0 || j <= pos && !(v > 0) {
					t.Errorf("query at %d, head %d: probability %g for key %d", pos, h, v, j)
				}
				sum += float64(v)
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Errorf("query at %d, head %d: probabilities sum to %g", pos, h, sum)
			}
		}
		// The same query, not causal, over the keys 0..pos alone: the same bits.
		var vis [1]backend.KV
		b.CrossKV(vis[:], kvData, []backend.Span{{Off: 0, N: pos + 1}}, heads)
		alone, _ := attnProbs(b, backend.AttnGroup{Q: q.RowSlice(i, i+1), Pos0: pos, KV: vis[0]}, heads, bias)
		if got := out[i*heads*dkv : (i+1)*heads*dkv]; !sameBits(got, alone) {
			t.Errorf("query at %d: causal out %v, over the visible keys alone %v", pos, got, alone)
		}
	}
}

// positions returns a store's positions, keys then values.
func positions(kv backend.KV) [][]float32 {
	s := kv.(*kvStore)
	var p [][]float32
	for j := range s.Len() {
		p = append(p, append([]float32(nil), s.data[s.off+j*s.stride:s.off+j*s.stride+2*s.inner]...))
	}
	return p
}

func TestCacheFork(t *testing.T) {
	b := New()
	const layers, heads, dkv = 2, 1, 1
	pos := func(v ...float32) backend.Tensor { // a row per value: key v, value -v
		t := b.Alloc(len(v), 2)
		for i, x := range v {
			b.Upload(t.RowSlice(i, i+1), []float32{x, -x})
		}
		return t
	}
	check := func(name string, c backend.Cache, want ...float32) {
		t.Helper()
		if c.Len() != len(want) {
			t.Errorf("%s: %d positions, want %d", name, c.Len(), len(want))
		}
		for l := range layers {
			got := positions(c.Layer(l))
			if len(got) != len(want) {
				t.Errorf("%s, layer %d: %d positions, want %d", name, l, len(got), len(want))
				continue
			}
			for j, v := range want {
				if w := []float32{v + float32(l), -v - float32(l)}; !sameBits(got[j], w) {
					t.Errorf("%s, layer %d, position %d: %v, want %v", name, l, j, got[j], w)
				}
			}
		}
	}
	appendAll := func(c backend.Cache, v ...float32) {
		c.Reserve(len(v))
		for l := range layers {
			w := make([]float32, len(v))
			for i, x := range v {
				w[i] = x + float32(l)
			}
			c.Append(l, pos(w...))
		}
	}
	orig := b.NewCache(layers, heads, dkv)
	orig.Reserve(8) // room to spare: appends after the fork must not write into it
	appendAll(orig, 1, 2, 3)
	fork := orig.Fork()
	check("fork", fork, 1, 2, 3)
	appendAll(orig, 7)
	appendAll(fork, 4)
	check("original", orig, 1, 2, 3, 7)
	check("fork", fork, 1, 2, 3, 4)
	orig.Truncate(1)
	appendAll(orig, 20, 30)
	check("original, truncated and grown", orig, 1, 20, 30)
	check("fork", fork, 1, 2, 3, 4)
	fork2 := fork.Fork()
	fork.Truncate(2)
	appendAll(fork, 9) // into the array fork2 reads, were Truncate to keep its capacity
	appendAll(fork2, 5)
	check("original", orig, 1, 20, 30)
	check("fork, truncated and grown", fork, 1, 2, 9)
	check("fork of the fork", fork2, 1, 2, 3, 4, 5)
}

func TestViewKV(t *testing.T) {
	b := New()
	// A q/k/v product of 3 positions, 1 head of 2: the view reads columns 2..5 in place.
	qkv := upload(b, 3, 6, []float32{
		1, 0, 1, 0, 5, 6,
		0, 1, 0, 1, 7, 8,
		0, 0, 0, 0, 9, 10,
	})
	kv := b.ViewKV(qkv.ColSlice(2, 6))
	b.Upload(qkv.RowSlice(2, 3), []float32{0, 0, 100, 0, 11, 12}) // after the view: seen
	got := positions(kv)
	want := [][]float32{{1, 0, 5, 6}, {0, 1, 7, 8}, {100, 0, 11, 12}}
	for j := range want {
		if !sameBits(got[j], want[j]) {
			t.Errorf("position %d: %v, want %v", j, got[j], want[j])
		}
	}
	// In place: Out may be Q, never the viewed keys.
	q := qkv.ColSlice(0, 2)
	b.Attention([]backend.AttnGroup{{Q: q, Out: q, KV: kv}}, 1, backend.Tensor{})
	if p := expectPanic(func() {
		b.Attention([]backend.AttnGroup{{Q: q, Out: qkv.ColSlice(3, 5), KV: kv}}, 1, backend.Tensor{})
	}); !strings.Contains(p, "viewed KV") {
		t.Errorf("Out over the viewed keys: panic %q", p)
	}
}

func TestBatchedEqualsAlone(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	b := New()
	const heads, dkv = 2, 4
	inner := heads * dkv
	for _, dt := range []backend.DType{backend.F32, backend.BF16, backend.Int8} {
		w := prepare(t, b, 5, inner, random(r, 5*inner), dt)
		x := upload(b, 7, inner, random(r, 7*inner))
		all := b.Alloc(7, 5)
		b.Linear(all, x, w, backend.Store)
		for i := range 7 {
			one := b.Alloc(1, 5)
			b.Linear(one, x.RowSlice(i, i+1), w, backend.Store)
			if !sameBits(download(b, one), download(b, all.RowSlice(i, i+1))) {
				t.Errorf("%v: row %d alone differs from the batch", dt, i)
			}
		}
	}
	// Three groups of different lengths at once, and each alone.
	lens, pos0 := []int{3, 1, 5}, []int{0, 4, 2}
	bias := upload(b, heads, 7, random(r, heads*7))
	var groups []backend.AttnGroup
	q := upload(b, 9, inner, random(r, 9*inner))
	out := b.Alloc(9, inner)
	off := 0
	for i, n := range lens {
		c := b.NewCache(1, heads, dkv)
		c.Reserve(pos0[i] + n)
		c.Append(0, upload(b, pos0[i]+n, 2*inner, random(r, (pos0[i]+n)*2*inner)))
		groups = append(groups, backend.AttnGroup{Q: q.RowSlice(off, off+n), Out: out.RowSlice(off, off+n), Pos0: pos0[i], KV: c.Layer(0), Causal: true})
		off += n
	}
	b.Attention(groups, heads, bias)
	for i, g := range groups {
		alone := g
		alone.Out = b.Alloc(g.Q.Rows, inner)
		b.Attention([]backend.AttnGroup{alone}, heads, bias)
		if !sameBits(download(b, alone.Out), download(b, g.Out)) {
			t.Errorf("attention group %d alone differs from the batch", i)
		}
	}
}

func TestHostRows(t *testing.T) {
	b := New()
	inf := float32(math.Inf(-1))
	if got := b.LogSumExp([]float32{inf, inf}); !math.IsInf(got, -1) {
		t.Errorf("LogSumExp of -Inf: %g", got)
	}
	if got, want := b.LogSumExp([]float32{0, 0, inf, 0}), math.Log(3); math.Abs(got-want) > 1e-12 {
		t.Errorf("LogSumExp: %g, want %g", got, want)
	}
	if got := b.Argmax([]float32{1, 3, -2, 3}); got != 1 {
		t.Errorf("Argmax of a tie: %d, want 1", got)
	}
	w := prepare(t, b, 2, 2, []float32{1, 0, 0, 1}, backend.F32)
	h := upload(b, 1, 2, []float32{3, 5})
	logits := make([]float32, 2)
	b.Logits(logits, h, w, 0.5)
	if !sameBits(logits, []float32{1.5, 2.5}) || !sameBits(download(b, h), []float32{1.5, 2.5}) {
		t.Errorf("Logits with scale 0.5: %v, hidden %v", logits, download(b, h))
	}
}

func TestReload(t *testing.T) {
	b := New()
	w := prepare(t, b, 2, 2, []float32{1, 2, 3, 4}, backend.F32)
	bytes := b.WeightBytes()
	if bytes != 16 {
		t.Errorf("WeightBytes %d, want 16", bytes)
	}
	if err := b.Reload(w, &matrix{rows: 2, cols: 3, v: make([]float32, 6)}); err == nil {
		t.Error("Reload from a 2×3 source into a 2×2 weight: no error")
	}
	boom := errors.New("boom")
	if err := b.Reload(w, &matrix{rows: 2, cols: 2, v: []float32{9, 9, 9, 9}, fail: boom}); !errors.Is(err, boom) {
		t.Errorf("Reload from a failing source: %v", err)
	}
	dst := b.Alloc(2, 2)
	b.Embed(dst, w, []int{0, 1})
	if got := download(b, dst); !sameBits(got, []float32{1, 2, 3, 4}) {
		t.Errorf("after a failed Reload: %v", got)
	}
	if err := b.Reload(w, &matrix{rows: 2, cols: 2, v: []float32{5, 6, 7, 8}}); err != nil {
		t.Fatal(err)
	}
	b.Embed(dst, w, []int{1, 0})
	if got := download(b, dst); !sameBits(got, []float32{7, 8, 5, 6}) {
		t.Errorf("after Reload: %v", got)
	}
	if b.WeightBytes() != bytes {
		t.Errorf("WeightBytes after Reload %d, want %d", b.WeightBytes(), bytes)
	}
}

// expectPanic returns the message f panics with, "" if it returns.
func expectPanic(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
			if msg == "" {
				msg = "(empty panic)"
			}
		}
	}()
	f()
	return ""
}

func TestChecks(t *testing.T) {
	b, other := New(), New()
	w := prepare(t, b, 3, 4, make([]float32, 12), backend.F32)
	ow := prepare(t, other, 3, 4, make([]float32, 12), backend.F32)
	big := b.Alloc(4, 8)
	x := big.ColSlice(2, 6) // 4×4, stride 8, offset 2
	past := x
	past.Off = 5 // last row ends at 5 + 24 + 4 = 33 > 32
	narrow := x
	narrow.Stride = 3
	c := b.NewCache(1, 1, 2)
	for _, tc := range []struct {
		name, want string
		f          func()
	}{
		{"view past its buffer", "past its buffer", func() { b.Scale(past, 2) }},
		{"stride below cols", "stride 3", func() { b.Scale(narrow, 2) }},
		{"foreign buffer", "not a plain tensor", func() { b.Scale(backend.Tensor{Rows: 1, Cols: 1, Stride: 1, Buf: []float32{1}}, 2) }},
		{"another backend's tensor", "another plain backend", func() { b.Scale(other.Alloc(1, 1), 2) }},
		{"another backend's weight", "another plain backend", func() { b.Linear(b.Alloc(4, 3), x, ow, backend.Store) }},
		{"Linear dims", "Linear", func() { b.Linear(b.Alloc(4, 2), x, w, backend.Store) }},
		{"Linear dst over x", "overlap", func() { b.Linear(big.ColSlice(5, 8), x, w, backend.Store) }},
		{"Linear epilogue", "epilogue", func() { b.Linear(b.Alloc(4, 3), x, w, 7) }},
		{"RMSNorm shifted in place", "overlap", func() { b.RMSNorm(big.ColSlice(3, 7), x, b.Alloc(1, 4), 1e-6) }},
		{"Embed id", "id 3", func() { b.Embed(b.Alloc(1, 4), w, []int{3}) }},
		{"Embed rows", "Embed", func() { b.Embed(b.Alloc(2, 4), w, []int{0}) }},
		{"Upload length", "Upload", func() { b.Upload(x, make([]float32, 15)) }},
		{"Download length", "Download", func() { b.Download(make([]float32, 17), x) }},
		{"Logits length", "Logits", func() { b.Logits(make([]float32, 11), x, w, 1) }},
		{"Append columns", "Append", func() { c.Append(0, b.Alloc(1, 3)) }},
		{"Append layer", "layer 1 of 1", func() { c.Append(1, b.Alloc(1, 4)) }},
		{"Attention heads", "Attention", func() {
			b.Attention([]backend.AttnGroup{{Q: b.Alloc(1, 2), Out: b.Alloc(1, 2), KV: c.Layer(0)}}, 2, backend.Tensor{})
		}},
		{"Attention Probs shape", "Probs", func() {
			b.Attention([]backend.AttnGroup{{Q: b.Alloc(1, 2), Out: b.Alloc(1, 2), KV: c.Layer(0), Probs: b.Alloc(1, 1)}}, 1, backend.Tensor{})
		}},
		{"Attention bias shape", "bias", func() {
			b.Attention([]backend.AttnGroup{{Q: b.Alloc(1, 2), Out: b.Alloc(1, 2), KV: c.Layer(0)}}, 1, b.Alloc(1, 4))
		}},
		{"CrossKV span", "span 0", func() { b.CrossKV(make([]backend.KV, 1), b.Alloc(2, 4), []backend.Span{{Off: 1, N: 2}}, 1) }},
		{"Activation", "activation", func() { b.Activate(x, backend.Tensor{}, 9) }},
		{"Argmax empty", "empty", func() { b.Argmax(nil) }},
		{"use after Close", "after Close", func() { other.Close(); other.Alloc(1, 1) }},
	} {
		if got := expectPanic(tc.f); !strings.Contains(got, tc.want) {
			t.Errorf("%s: panic %q, want one naming %q", tc.name, got, tc.want)
		}
	}
	// A view with an offset and a stride works and leaves its neighbours alone.
	v := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	b.Upload(x, v)
	b.Scale(x, 2)
	got := download(b, big)
	for i := range 4 {
		for j := range 8 {
			want := float32(0)
			if j >= 2 && j < 6 {
				want = 2 * v[i*4+j-2]
			}
			if got[i*8+j] != want {
				t.Fatalf("element (%d, %d) of the strided tensor: %g, want %g", i, j, got[i*8+j], want)
			}
		}
	}
	if _, err := b.Prepare(&matrix{rows: 0, cols: 3}, backend.F32); err == nil {
		t.Error("Prepare of a 0×3 source: no error")
	}
	if _, err := b.Prepare(&matrix{rows: 1, cols: 1, v: []float32{1}}, 9); err == nil {
		t.Error("Prepare of an unknown dtype: no error")
	}
}
