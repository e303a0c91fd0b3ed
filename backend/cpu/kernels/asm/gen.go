// Command asm generates the assembly of package kernels: the GEMM micro-kernels
// (gemm_amd64.s, with their Go declarations and row-count dispatch in gemm_stubs_amd64.go)
// and the element-wise kernels (vec_amd64.s, declared in vec_amd64.go). Run it through go generate in
// the kernels directory (the //go:generate line in kernels.go).
//
// Every kernel computes one tile C[mr][cols] over the whole inner dimension, keeping the
// tile in registers: each output element is one chain of fused multiply-adds (or exact
// integer dot products) over k in increasing order, so that a row's result never depends
// on the rows or columns it is tiled with. A rows are read in place with a byte stride
// (broadcast one element, or four int8 values, per row and k step); B is a packed panel
// whose k-th row holds the panel's 32 columns contiguously (f32: 128 bytes, bf16: 64,
// int8: 128 bytes for four k values, [32 columns][4]).
//
// Families:
//
//	AVX-512 (Z registers), 32 columns, mr 1..12: 2·mr accumulators Z0..Z23, B in Z28/Z29,
//	  broadcasts alternating in Z30/Z31, opmask K1/K2 on the C loads and stores for
//	  partial panels. f32 (VFMADD231PS), bf16 (VPMOVZXWD + VPSLLD widening, then FMA),
//	  int8 (VPDPBUSD on u8 activations offset by 128; the epilogue subtracts 128·Σw per
//	  column, converts to float and applies the row and column scales).
//	AVX2 (Y registers), 16 columns (one half of a packed panel; the caller offsets B and
//	  calls twice), full width only: f32 and bf16 mr 1..6 (12 accumulators Y0..Y11),
//	  int8 mr 1..4 (VPSIGNB/VPABSB + VPMADDUBSW + VPMADDWD: exact, no saturation since
//	  |a|·|w| ≤ 127·127).
//
// The epilogue applies op: 0 stores, 1 adds to C, 2 stores max(x, 0).
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
	"strings"
)

type family struct {
	isa   string // "512" or "256"
	dtype string // "F32", "BF16", "I8"
	maxMR int
}

func (f family) name(mr int) string {
	return fmt.Sprintf("gemm%sx%sm%d", f.dtype, f.isa, mr)
}

var families = []family{
	{"512", "F32", 12}, {"512", "BF16", 12}, {"512", "I8", 12},
	{"256", "F32", 6}, {"256", "BF16", 6}, {"256", "I8", 4},
}

// prefetchAhead is how far ahead (bytes) the many-row AVX-512 kernels prefetch their panel.
const prefetchAhead = 2048

type gen struct {
	s    bytes.Buffer
	f    family
	mr   int
	rows []string // A addressing (without displacement) per row
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.s, "\t"+format+"\n", args...) }
func (g *gen) label(l string)               { fmt.Fprintf(&g.s, "%s:\n", l) }

// rowAddr returns the memory operand of row r at byte displacement d.
func (g *gen) rowAddr(r, d int) string {
	disp := ""
	if d != 0 {
		disp = fmt.Sprint(d)
	}
	return disp + g.rows[r]
}

func (g *gen) vec(i int) string {
	if g.f.isa == "512" {
		return fmt.Sprintf("Z%d", i)
	}
	return fmt.Sprintf("Y%d", i)
}

// args returns the Go parameter list and the frame size.
func (f family) args() (string, int) {
	switch {
	case f.dtype == "I8" && f.isa == "512":
		return "kq int, a *byte, lda int, b *int8, c *float32, ldc int, sa *float32, ws *float32, corr *int32, mask uint32, op int", 88
	case f.dtype == "I8":
		return "kq int, a *byte, lda int, b *int8, c *float32, ldc int, sa *float32, ws *float32, op int", 72
	case f.isa == "512":
		return fmt.Sprintf("k int, a *float32, lda int, b *%s, c *float32, ldc int, mask uint32, op int", map[string]string{"F32": "float32", "BF16": "uint16"}[f.dtype]), 64
	default:
		return fmt.Sprintf("k int, a *float32, lda int, b *%s, c *float32, ldc int, op int", map[string]string{"F32": "float32", "BF16": "uint16"}[f.dtype]), 56
	}
}

func (f family) requires() string {
	switch {
	case f.isa == "512" && f.dtype == "I8":
		return "AVX512F, AVX512VNNI"
	case f.isa == "512" && f.dtype == "BF16":
		return "AVX512F, AVX512BW"
	case f.isa == "512":
		return "AVX512F"
	case f.dtype == "F32":
		return "AVX, FMA"
	default:
		return "AVX, AVX2, FMA"
	}
}

// bStep is the bytes of B per k step (per four k values for int8).
func (f family) bStep() int {
	if f.dtype == "BF16" {
		return 64
	}
	return 128
}

func (g *gen) kernel() {
	f, mr := g.f, g.mr
	params, frame := f.args()
	fmt.Fprintf(&g.s, "// func %s(%s)\n// Requires: %s\n", f.name(mr), params, f.requires())
	fmt.Fprintf(&g.s, "TEXT ·%s(SB), NOSPLIT, $0-%d\n", f.name(mr), frame)
	kname := "k"
	if f.dtype == "I8" {
		kname = "kq"
	}
	g.p("MOVQ %s+0(FP), CX", kname)
	g.p("MOVQ a+8(FP), SI")
	g.p("MOVQ lda+16(FP), R8")
	g.p("MOVQ b+24(FP), DI")
	g.p("MOVQ c+32(FP), DX")
	g.p("MOVQ ldc+40(FP), R9")
	g.p("LEAQ (R8)(R8*2), R10")
	// Row addressing: rows 0-4 from SI, 5-9 from R11, 10-11 from R12.
	idx := []string{"(%s)", "(%s)(R8*1)", "(%s)(R8*2)", "(%s)(R10*1)", "(%s)(R8*4)"}
	bases := []string{"SI", "R11", "R12"}
	g.rows = nil
	for r := range mr {
		g.rows = append(g.rows, fmt.Sprintf(idx[r%5], bases[r/5]))
	}
	if mr > 5 {
		g.p("LEAQ (SI)(R8*4), R11")
		g.p("ADDQ R8, R11")
	}
	if mr > 10 {
		g.p("LEAQ (R11)(R8*4), R12")
		g.p("ADDQ R8, R12")
	}
	xor := "VPXORD" // EVEX: Z16..Z31 have no VEX form
	if f.isa == "256" {
		xor = "VPXOR" // VEX only: AVX2 machines may lack AVX-512
	}
	for i := range 2 * mr {
		v := g.vec(i)
		g.p("%s %s, %s, %s", xor, v, v, v)
	}
	if f.dtype == "I8" && f.isa == "256" {
		g.p("MOVL $0x00010001, AX")
		g.p("MOVQ AX, X8")
		g.p("VPBROADCASTD X8, Y8")
	}
	step := f.bStep()
	g.p("MOVQ CX, BX")
	g.p("SHRQ $1, CX")
	g.p("JZ tail")
	g.label("loop")
	if f.isa == "512" && mr >= 5 {
		// Rows enough to make the tile compute-bound: prefetch the panel ahead, so that a
		// panel streamed from RAM (a batched decoder step) overlaps its latency.
		for off := 0; off < 2*step; off += 64 {
			g.p("PREFETCHT0 %d(DI)", prefetchAhead+off)
		}
	}
	g.body(0, 0)
	g.body(4, step)
	for _, b := range bases[:(mr+4)/5] {
		g.p("ADDQ $8, %s", b)
	}
	g.p("ADDQ $%d, DI", 2*step)
	g.p("DECQ CX")
	g.p("JNZ loop")
	g.label("tail")
	g.p("ANDQ $1, BX")
	g.p("JZ epilogue")
	g.body(0, 0)
	g.label("epilogue")
	if f.dtype == "I8" {
		g.i8Scale()
	}
	g.epilogue()
}

// body emits one k step (four k values for int8) with A displacement da and B displacement db.
func (g *gen) body(da, db int) {
	f := g.f
	if f.isa == "512" {
		switch f.dtype {
		case "F32":
			g.p("VMOVUPS %d(DI), Z28", db)
			g.p("VMOVUPS %d(DI), Z29", db+64)
		case "BF16":
			g.p("VPMOVZXWD %d(DI), Z28", db)
			g.p("VPMOVZXWD %d(DI), Z29", db+32)
			g.p("VPSLLD $16, Z28, Z28")
			g.p("VPSLLD $16, Z29, Z29")
		case "I8":
			g.p("VMOVDQU32 %d(DI), Z28", db)
			g.p("VMOVDQU32 %d(DI), Z29", db+64)
		}
		for r := range g.mr {
			bc := fmt.Sprintf("Z%d", 30+r%2)
			if f.dtype == "I8" {
				g.p("VPBROADCASTD %s, %s", g.rowAddr(r, da), bc)
				g.p("VPDPBUSD Z28, %s, Z%d", bc, 2*r)
				g.p("VPDPBUSD Z29, %s, Z%d", bc, 2*r+1)
			} else {
				g.p("VBROADCASTSS %s, %s", g.rowAddr(r, da), bc)
				g.p("VFMADD231PS Z28, %s, Z%d", bc, 2*r)
				g.p("VFMADD231PS Z29, %s, Z%d", bc, 2*r+1)
			}
		}
		return
	}
	switch f.dtype {
	case "F32":
		g.p("VMOVUPS %d(DI), Y12", db)
		g.p("VMOVUPS %d(DI), Y13", db+32)
	case "BF16":
		g.p("VPMOVZXWD %d(DI), Y12", db)
		g.p("VPMOVZXWD %d(DI), Y13", db+16)
		g.p("VPSLLD $16, Y12, Y12")
		g.p("VPSLLD $16, Y13, Y13")
	case "I8":
		g.p("VMOVDQU %d(DI), Y11", db)
		g.p("VMOVDQU %d(DI), Y12", db+32)
	}
	for r := range g.mr {
		if f.dtype == "I8" {
			g.p("VPBROADCASTD %s, Y9", g.rowAddr(r, da))
			g.p("VPABSB Y9, Y10")
			g.p("VPSIGNB Y9, Y11, Y13")
			g.p("VPSIGNB Y9, Y12, Y14")
			g.p("VPMADDUBSW Y13, Y10, Y13")
			g.p("VPMADDUBSW Y14, Y10, Y14")
			g.p("VPMADDWD Y8, Y13, Y13")
			g.p("VPMADDWD Y8, Y14, Y14")
			g.p("VPADDD Y13, Y%d, Y%d", 2*r, 2*r)
			g.p("VPADDD Y14, Y%d, Y%d", 2*r+1, 2*r+1)
			continue
		}
		bc := fmt.Sprintf("Y%d", 14+r%2)
		g.p("VBROADCASTSS %s, %s", g.rowAddr(r, da), bc)
		g.p("VFMADD231PS Y12, %s, Y%d", bc, 2*r)
		g.p("VFMADD231PS Y13, %s, Y%d", bc, 2*r+1)
	}
}

// i8Scale turns the int32 accumulators into float32: (acc - corr) · (sa[row] · ws[col]).
func (g *gen) i8Scale() {
	g.p("MOVQ sa+48(FP), R13")
	g.p("MOVQ ws+56(FP), AX")
	if g.f.isa == "512" {
		g.p("MOVQ corr+64(FP), BX")
		g.p("VMOVDQU32 (BX), Z24")
		g.p("VMOVDQU32 64(BX), Z25")
		g.p("VMOVUPS (AX), Z26")
		g.p("VMOVUPS 64(AX), Z27")
		for r := range g.mr {
			a, b := 2*r, 2*r+1
			g.p("VPSUBD Z24, Z%d, Z%d", a, a)
			g.p("VPSUBD Z25, Z%d, Z%d", b, b)
			g.p("VCVTDQ2PS Z%d, Z%d", a, a)
			g.p("VCVTDQ2PS Z%d, Z%d", b, b)
			g.p("VBROADCASTSS %d(R13), Z30", 4*r)
			g.p("VMULPS Z26, Z30, Z31")
			g.p("VMULPS Z31, Z%d, Z%d", a, a)
			g.p("VMULPS Z27, Z30, Z31")
			g.p("VMULPS Z31, Z%d, Z%d", b, b)
		}
		return
	}
	g.p("VMOVUPS (AX), Y11")
	g.p("VMOVUPS 32(AX), Y12")
	for r := range g.mr {
		a, b := 2*r, 2*r+1
		g.p("VCVTDQ2PS Y%d, Y%d", a, a)
		g.p("VCVTDQ2PS Y%d, Y%d", b, b)
		g.p("VBROADCASTSS %d(R13), Y9", 4*r)
		g.p("VMULPS Y11, Y9, Y10")
		g.p("VMULPS Y10, Y%d, Y%d", a, a)
		g.p("VMULPS Y12, Y9, Y10")
		g.p("VMULPS Y10, Y%d, Y%d", b, b)
	}
}

func (g *gen) epilogue() {
	f := g.f
	_, frame := f.args()
	opOff := frame - 8
	g.p("MOVQ op+%d(FP), BX", opOff)
	if f.isa == "512" {
		g.p("MOVL mask+%d(FP), AX", frame-16)
		g.p("KMOVW AX, K1")
		g.p("SHRL $16, AX")
		g.p("KMOVW AX, K2")
	}
	g.p("CMPQ BX, $1")
	g.p("JEQ add")
	g.p("CMPQ BX, $2")
	g.p("JEQ relu")
	g.label("store")
	g.stores()
	g.label("add")
	for r := range g.mr {
		if f.isa == "512" {
			g.p("VMOVUPS.Z (DX), K1, Z28")
			g.p("VMOVUPS.Z 64(DX), K2, Z29")
			g.p("VADDPS Z28, Z%d, Z%d", 2*r, 2*r)
			g.p("VADDPS Z29, Z%d, Z%d", 2*r+1, 2*r+1)
			g.p("VMOVUPS Z%d, K1, (DX)", 2*r)
			g.p("VMOVUPS Z%d, K2, 64(DX)", 2*r+1)
		} else {
			g.p("VADDPS (DX), Y%d, Y%d", 2*r, 2*r)
			g.p("VADDPS 32(DX), Y%d, Y%d", 2*r+1, 2*r+1)
			g.p("VMOVUPS Y%d, (DX)", 2*r)
			g.p("VMOVUPS Y%d, 32(DX)", 2*r+1)
		}
		g.p("ADDQ R9, DX")
	}
	g.p("VZEROUPPER")
	g.p("RET")
	g.label("relu")
	zero := "Z28"
	if f.isa == "512" {
		g.p("VPXORD Z28, Z28, Z28")
	} else {
		zero = "Y15"
		g.p("VPXOR Y15, Y15, Y15")
	}
	for i := range 2 * g.mr {
		v := g.vec(i)
		g.p("VMAXPS %s, %s, %s", zero, v, v)
	}
	g.stores()
}

func (g *gen) stores() {
	for r := range g.mr {
		if g.f.isa == "512" {
			g.p("VMOVUPS Z%d, K1, (DX)", 2*r)
			g.p("VMOVUPS Z%d, K2, 64(DX)", 2*r+1)
		} else {
			g.p("VMOVUPS Y%d, (DX)", 2*r)
			g.p("VMOVUPS Y%d, 32(DX)", 2*r+1)
		}
		if r < g.mr-1 {
			g.p("ADDQ R9, DX")
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
}

func main() {
	var asm, stubs bytes.Buffer
	asm.WriteString("// Code generated by go run ./asm. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\n#include \"textflag.h\"\n")
	stubs.WriteString("// Code generated by go run ./asm. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage kernels\n\n")
	for _, f := range families {
		params, _ := f.args()
		var call []string
		for _, p := range strings.Split(params, ", ") {
			call = append(call, strings.Fields(p)[0])
		}
		// Dispatch on the row count.
		fmt.Fprintf(&stubs, "// %s dispatches to the %s kernel for mr rows (1..%d).\nfunc %s(mr int, %s) {\n\tswitch mr {\n",
			strings.TrimSuffix(f.name(0), "m0"), strings.TrimSuffix(f.name(0), "m0"), f.maxMR, strings.TrimSuffix(f.name(0), "m0"), params)
		for mr := 1; mr <= f.maxMR; mr++ {
			fmt.Fprintf(&stubs, "\tcase %d:\n\t\t%s(%s)\n", mr, f.name(mr), strings.Join(call, ", "))
		}
		fmt.Fprintf(&stubs, "\tdefault:\n\t\tpanic(\"infer: kernels: %s: bad row count\")\n\t}\n}\n\n", strings.TrimSuffix(f.name(0), "m0"))
		for mr := 1; mr <= f.maxMR; mr++ {
			g := &gen{f: f, mr: mr}
			g.kernel()
			// Labels are local to a TEXT block in Go asm.
			asm.WriteString("\n")
			asm.Write(g.s.Bytes())
			fmt.Fprintf(&stubs, "//go:noescape\nfunc %s(%s)\n\n", f.name(mr), params)
		}
	}
	ma, ms := multiAsm()
	asm.WriteString(ma)
	stubs.WriteString(ms)
	src, err := format.Source(stubs.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("gemm_amd64.s", asm.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("gemm_stubs_amd64.go", src, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("vec_amd64.s", []byte(vecAsm()), 0o644); err != nil {
		log.Fatal(err)
	}
}
