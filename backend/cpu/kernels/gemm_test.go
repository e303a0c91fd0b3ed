package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// paths returns the Sets this machine runs, generic first.
func paths(t testing.TB) []Set {
	var out []Set
	for _, p := range Paths() {
		if s, err := New(p); err == nil {
			out = append(out, s)
		}
	}
	if len(out) == 1 {
		t.Logf("only the generic path runs here")
	}
	return out
}

const guard = float32(-12345.5) // sentinel around and between tile rows

// tileCase is one tile call's operands laid out with guard bands and an alignment offset.
type tileCase struct {
	mr, k, lda, ldc, off int
	mask                 uint32
	op                   Op
	a, c0                []float32
}

func newTileCase(r *rand.Rand, mr, k, cols, off int, op Op) tileCase {
	tc := tileCase{mr: mr, k: k, lda: k + 3, ldc: Panel + 5, off: off, mask: Mask(cols), op: op}
	tc.a = make([]float32, off+(mr-1)*tc.lda+k+8)
	for i := range tc.a {
		tc.a[i] = float32(r.NormFloat64())
	}
	tc.c0 = make([]float32, off+mr*tc.ldc+8)
	for i := range tc.c0 {
		tc.c0[i] = guard
	}
	for i := range mr {
		for j := range Panel {
			if tc.mask&(1<<j) != 0 {
				tc.c0[off+i*tc.ldc+j] = float32(r.NormFloat64())
			}
		}
	}
	return tc
}

// check compares got with the float64 reference want (before op) and checks the guards.
func (tc tileCase) check(t *testing.T, name string, got []float32, want [][]float64, bound [][]float64) {
	t.Helper()
	for idx, v := range got {
		i, j := (idx-tc.off)/tc.ldc, (idx-tc.off)%tc.ldc
		inTile := idx >= tc.off && i < tc.mr && j < Panel && tc.mask&(1<<j) != 0
		if !inTile {
			if v != tc.c0[idx] {
				t.Fatalf("%s: wrote outside the tile at %d (row %d col %d): %v", name, idx, i, j, v)
			}
			continue
		}
		w := want[i][j]
		switch tc.op {
		case Add:
			w += float64(tc.c0[idx])
		case ReLU:
			w = max(w, 0)
		}
		tol := 1e-6*bound[i][j] + 1e-6*math.Abs(float64(tc.c0[idx]))
		if math.Abs(float64(v)-w) > tol {
			t.Fatalf("%s: c[%d][%d] = %v, want %v (tol %g)", name, i, j, v, w, tol)
		}
	}
}

func testSizes() (rows []int, ks []int, cols []int) {
	return []int{1, 2, 3, 4, 5, 6, 7, 11, 12}, []int{0, 1, 2, 3, 4, 7, 8, 9, 31, 64, 65, 130}, []int{1, 5, 16, 17, 31, 32}
}

func TestTileF32AndBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sets := paths(t)
	rows, ks, colss := testSizes()
	for _, bf := range []bool{false, true} {
		for _, mr := range rows {
			for _, k := range ks {
				for _, cols := range colss {
					for _, op := range []Op{Store, Add, ReLU} {
						off := r.IntN(16)
						tc := newTileCase(r, mr, k, cols, off, op)
						bw := make([]float32, off+k*Panel+8)
						bh := make([]uint16, off+k*Panel+8)
						for i := range bw {
							bh[i] = ToBF16(float32(r.NormFloat64()))
							bw[i] = float32(r.NormFloat64())
							if bf {
								bw[i] = BF16(bh[i])
							}
						}
						want := make([][]float64, mr)
						bound := make([][]float64, mr)
						for i := range mr {
							want[i], bound[i] = make([]float64, Panel), make([]float64, Panel)
							for j := range Panel {
								for kk := range k {
									p := float64(tc.a[off+i*tc.lda+kk]) * float64(bw[off+kk*Panel+j])
									want[i][j] += p
									bound[i][j] += math.Abs(p)
								}
							}
						}
						var first []float32
						for _, s := range sets {
							if mr > s.Rows() {
								continue
							}
							c := append([]float32(nil), tc.c0...)
							a, cc := tc.a[off:], c[off:]
							if bf {
								s.TileBF16(mr, k, a, tc.lda, bh[off:], cc, tc.ldc, tc.mask, op)
							} else {
								s.TileF32(mr, k, a, tc.lda, bw[off:], cc, tc.ldc, tc.mask, op)
							}
							name := fmt.Sprintf("%s bf16=%v mr=%d k=%d cols=%d op=%d off=%d", s.Path(), bf, mr, k, cols, op, off)
							tc.check(t, name, c, want, bound)
							if s.Path() == Generic {
								continue
							}
							// The assembly paths are one FMA chain per element: identical bits.
							if first == nil {
								first = c
							} else {
								for i := range c {
									if math.Float32bits(c[i]) != math.Float32bits(first[i]) {
										t.Fatalf("%s: differs from the other assembly path at %d: %v vs %v", name, i, c[i], first[i])
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// packI8 builds a random int8 panel of kq groups with its column scales and corrections.
func packI8(r *rand.Rand, kq int) (b []int8, w [][]int8, ws []float32, corr []int32) {
	b = make([]int8, kq*4*Panel)
	w = make([][]int8, Panel)
	ws = make([]float32, Panel)
	corr = make([]int32, Panel)
	for j := range Panel {
		w[j] = make([]int8, 4*kq)
		ws[j] = float32(r.Float64()) / 100
		for kk := range 4 * kq {
			v := int8(r.IntN(255) - 127)
			w[j][kk] = v
			b[(kk/4)*4*Panel+j*4+kk%4] = v
			corr[j] += 128 * int32(v)
		}
	}
	return b, w, ws, corr
}

func TestTileI8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sets := paths(t)
	rows, ks, colss := testSizes()
	for _, mr := range rows {
		for _, k := range ks {
			kq := (k + 3) / 4
			for _, cols := range colss {
				for _, op := range []Op{Store, Add, ReLU} {
					off := r.IntN(16)
					tc := newTileCase(r, mr, k, cols, off, op)
					b, w, ws, corr := packI8(r, kq)
					sa := make([]float32, mr)
					var want []float32
					for _, s := range sets {
						if mr > s.RowsI8() {
							continue
						}
						lda := 4*kq + 5
						qa := make([]byte, off+mr*lda)
						qs := make([][]int8, mr)
						for i := range mr {
							sa[i] = s.QuantizeRow(qa[off+i*lda:off+i*lda+4*kq], tc.a[off+i*tc.lda:off+i*tc.lda+k])
							qs[i] = make([]int8, 4*kq)
							for kk := range 4 * kq {
								qs[i][kk] = int8(qa[off+i*lda+kk])
								if s.I8Offset() {
									qs[i][kk] = int8(qa[off+i*lda+kk] ^ 0x80)
								}
							}
						}
						// Reference from the quantized values: exact integer sums.
						ref := append([]float32(nil), tc.c0...)
						for i := range mr {
							for j := range Panel {
								if tc.mask&(1<<j) == 0 {
									continue
								}
								var acc int32
								for kk := range 4 * kq {
									acc += int32(qs[i][kk]) * int32(w[j][kk])
								}
								idx := off + i*tc.ldc + j
								ref[idx] = apply(op, ref[idx], float32(acc)*(sa[i]*ws[j]))
							}
						}
						c := append([]float32(nil), tc.c0...)
						s.TileI8(mr, kq, qa[off:], lda, sa, b, ws, corr, c[off:], tc.ldc, tc.mask, op)
						name := fmt.Sprintf("%s mr=%d k=%d cols=%d op=%d", s.Path(), mr, k, cols, op)
						for i := range c {
							if c[i] != ref[i] {
								t.Fatalf("%s: c[%d] = %v, want %v", name, i, c[i], ref[i])
							}
						}
						if want == nil {
							want = c
						} else {
							for i := range c {
								if c[i] != want[i] {
									t.Fatalf("%s: differs from the generic path at %d: %v vs %v", name, i, c[i], want[i])
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestTilePanics(t *testing.T) {
	s := Set{}
	for name, fn := range map[string]func(){
		"rows":   func() { s.TileF32(0, 1, make([]float32, 1), 1, make([]float32, 32), make([]float32, 32), 32, 1, Store) },
		"shortB": func() { s.TileF32(1, 2, make([]float32, 2), 2, make([]float32, 32), make([]float32, 32), 32, 1, Store) },
		"shortC": func() { s.TileF32(2, 1, make([]float32, 2), 1, make([]float32, 32), make([]float32, 32), 32, 1, Store) },
		"shortA": func() {
			s.TileBF16(2, 4, make([]float32, 5), 4, make([]uint16, 128), make([]float32, 64), 32, 1, Store)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

var sinkF32 []float32

// BenchmarkTile measures one tile's inner loop on cache-resident operands (the kernel
// alone), in GFLOP/s (GOP/s for int8).
func BenchmarkTile(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const k = 256
	for _, s := range paths(b) {
		for _, mr := range []int{1, 4, s.Rows()} {
			for _, dt := range []string{"f32", "bf16", "i8"} {
				if dt == "i8" && mr > s.RowsI8() {
					continue
				}
				b.Run(fmt.Sprintf("%s/%s/mr%d", s.Path(), dt, mr), func(b *testing.B) {
					a := make([]float32, mr*k)
					for i := range a {
						a[i] = float32(r.NormFloat64())
					}
					bw := make([]float32, k*Panel)
					bh := make([]uint16, k*Panel)
					qa := make([]byte, mr*k)
					sa := make([]float32, mr)
					bi, _, ws, corr := packI8(r, k/4)
					c := make([]float32, mr*Panel)
					for b.Loop() {
						switch dt {
						case "f32":
							s.TileF32(mr, k, a, k, bw, c, Panel, ^uint32(0), Store)
						case "bf16":
							s.TileBF16(mr, k, a, k, bh, c, Panel, ^uint32(0), Store)
						case "i8":
							s.TileI8(mr, k/4, qa, k, sa, bi, ws, corr, c, Panel, ^uint32(0), Store)
						}
					}
					b.ReportMetric(float64(2*mr*Panel*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					sinkF32 = c
				})
			}
		}
	}
}

// TestTileN checks the multi-panel tiles against one-panel tiles of the same Set, bit for
// bit, with guard bands, for the row counts of a decoder step.
func TestTileN(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range paths(t) {
		for mr := 1; mr <= min(5, s.Rows()); mr++ {
			for _, np := range []int{s.Panels(mr), 3} {
				for _, k := range []int{1, 2, 3, 8, 33, 256} {
					for _, op := range []Op{Store, Add, ReLU} {
						name := fmt.Sprintf("%s mr=%d np=%d k=%d op=%d", s.Path(), mr, np, k, op)
						lda, ldc := k+1, np*Panel+7
						a := make([]float32, mr*lda)
						for i := range a {
							a[i] = float32(r.NormFloat64())
						}
						bw := make([]float32, np*k*Panel)
						bh := make([]uint16, np*k*Panel)
						for i := range bw {
							bw[i] = float32(r.NormFloat64())
							bh[i] = ToBF16(bw[i])
						}
						c0 := make([]float32, mr*ldc+3)
						for i := range c0 {
							c0[i] = float32(r.NormFloat64())
						}
						run := func(multi bool, dt string) []float32 {
							c := append([]float32(nil), c0...)
							if multi {
								switch dt {
								case "f32":
									s.TileF32N(mr, np, k, a, lda, bw, c, ldc, op)
								case "bf16":
									s.TileBF16N(mr, np, k, a, lda, bh, c, ldc, op)
								}
								return c
							}
							for p := range np {
								switch dt {
								case "f32":
									s.TileF32(mr, k, a, lda, bw[p*k*Panel:], c[p*Panel:], ldc, ^uint32(0), op)
								case "bf16":
									s.TileBF16(mr, k, a, lda, bh[p*k*Panel:], c[p*Panel:], ldc, ^uint32(0), op)
								}
							}
							return c
						}
						for _, dt := range []string{"f32", "bf16"} {
							want, got := run(false, dt), run(true, dt)
							for i := range want {
								if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
									t.Fatalf("%s %s: c[%d] = %v, one-panel tiles give %v", name, dt, i, got[i], want[i])
								}
							}
						}
						if mr > s.RowsI8() {
							continue
						}
						kq := (k + 3) / 4
						qa := make([]byte, mr*4*kq)
						sa := make([]float32, mr)
						for i := range mr {
							sa[i] = s.QuantizeRow(qa[i*4*kq:(i+1)*4*kq], a[i*lda:i*lda+k])
						}
						var bs []int8
						var wss []float32
						var corrs []int32
						for range np {
							b, _, ws, corr := packI8(r, kq)
							bs, wss, corrs = append(bs, b...), append(wss, ws...), append(corrs, corr...)
						}
						want := append([]float32(nil), c0...)
						for p := range np {
							s.TileI8(mr, kq, qa, 4*kq, sa, bs[p*kq*4*Panel:], wss[p*Panel:], corrs[p*Panel:], want[p*Panel:], ldc, ^uint32(0), op)
						}
						got := append([]float32(nil), c0...)
						s.TileI8N(mr, np, kq, qa, 4*kq, sa, bs, wss, corrs, got, ldc, op)
						for i := range want {
							if got[i] != want[i] {
								t.Fatalf("%s int8: c[%d] = %v, one-panel tiles give %v", name, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}
