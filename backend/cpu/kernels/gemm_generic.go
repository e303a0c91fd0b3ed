package kernels

// tileF32Generic is TileF32's reference loop, four columns at a time.
func tileF32Generic(mr, k int, a []float32, lda int, b []float32, c []float32, ldc int, mask uint32, op Op) {
	b = b[:k*Panel]
	for i := range mr {
		ai := a[i*lda : i*lda+k]
		ci := c[i*ldc:]
		for j := 0; j < Panel; j += 4 {
			m := mask >> j & 0xf
			if m == 0 {
				continue
			}
			var s0, s1, s2, s3 float32
			for kk, x := range ai {
				bb := b[kk*Panel+j : kk*Panel+j+4 : kk*Panel+j+4]
				s0 += x * bb[0]
				s1 += x * bb[1]
				s2 += x * bb[2]
				s3 += x * bb[3]
			}
			store4(ci[j:], m, op, s0, s1, s2, s3)
		}
	}
}

// tileBF16Generic is TileBF16's reference loop.
func tileBF16Generic(mr, k int, a []float32, lda int, b []uint16, c []float32, ldc int, mask uint32, op Op) {
	b = b[:k*Panel]
	for i := range mr {
		ai := a[i*lda : i*lda+k]
		ci := c[i*ldc:]
		for j := 0; j < Panel; j += 4 {
			m := mask >> j & 0xf
			if m == 0 {
				continue
			}
			var s0, s1, s2, s3 float32
			for kk, x := range ai {
				bb := b[kk*Panel+j : kk*Panel+j+4 : kk*Panel+j+4]
				s0 += x * BF16(bb[0])
				s1 += x * BF16(bb[1])
				s2 += x * BF16(bb[2])
				s3 += x * BF16(bb[3])
			}
			store4(ci[j:], m, op, s0, s1, s2, s3)
		}
	}
}

// tileI8Generic is TileI8's reference loop on plain int8 activations.
func tileI8Generic(mr, kq int, a []byte, lda int, sa []float32, b []int8, ws []float32, c []float32, ldc int, mask uint32, op Op) {
	b = b[:kq*4*Panel]
	for i := range mr {
		ai := a[i*lda : i*lda+4*kq]
		ci := c[i*ldc:]
		for j := range Panel {
			if mask&(1<<j) == 0 {
				continue
			}
			var acc int32
			for q := range kq {
				bb := b[q*4*Panel+j*4 : q*4*Panel+j*4+4 : q*4*Panel+j*4+4]
				aa := ai[q*4 : q*4+4 : q*4+4]
				acc += int32(int8(aa[0]))*int32(bb[0]) + int32(int8(aa[1]))*int32(bb[1]) +
					int32(int8(aa[2]))*int32(bb[2]) + int32(int8(aa[3]))*int32(bb[3])
			}
			ci[j] = apply(op, ci[j], float32(acc)*(sa[i]*ws[j]))
		}
	}
}

// store4 applies op to up to four results under the low four bits of m.
func store4(c []float32, m uint32, op Op, s0, s1, s2, s3 float32) {
	if m == 0xf {
		c = c[:4]
		c[0], c[1], c[2], c[3] = apply(op, c[0], s0), apply(op, c[1], s1), apply(op, c[2], s2), apply(op, c[3], s3)
		return
	}
	for t, s := range [4]float32{s0, s1, s2, s3} {
		if m&(1<<t) != 0 {
			c[t] = apply(op, c[t], s)
		}
	}
}
