package main

import (
	"fmt"
	"strings"
)

// Multi-panel AVX-512 kernels for the few rows of a decoder step: mr rows by np full panels
// (32·np columns), so that 2·mr·np independent accumulator chains hide the FMA (or
// VPDPBUSD) latency that a one-row, one-panel tile would wait on. Each output element is
// still one chain over k in order: the same bits as the one-panel kernels.
//
// Panels are contiguous in a packed weight, so panel p of the call starts p·pstride bytes
// after b (pstride = k·128 for f32, k·64 for bf16, kq·128 for int8). No masks: the caller
// uses these only for full panels.

// multiShapes lists the (mr, np) kernels generated.
var multiShapes = [][2]int{{1, 4}, {2, 4}, {3, 2}, {4, 2}}

func multiName(dtype string, mr, np int) string {
	return fmt.Sprintf("gemm%sx512m%dn%d", dtype, mr, np)
}

func multiArgs(dtype string) (string, int) {
	if dtype == "I8" {
		return "kq int, a *byte, lda int, b *int8, c *float32, ldc int, sa *float32, ws *float32, corr *int32, op int", 80
	}
	return fmt.Sprintf("k int, a *float32, lda int, b *%s, c *float32, ldc int, op int", map[string]string{"F32": "float32", "BF16": "uint16"}[dtype]), 56
}

func multiKernel(dtype string, mr, np int) string {
	g := &gen{f: family{"512", dtype, 4}, mr: mr}
	params, frame := multiArgs(dtype)
	fmt.Fprintf(&g.s, "// func %s(%s)\n// Requires: %s\n", multiName(dtype, mr, np), params, g.f.requires())
	fmt.Fprintf(&g.s, "TEXT ·%s(SB), NOSPLIT, $0-%d\n", multiName(dtype, mr, np), frame)
	kname := "k"
	if dtype == "I8" {
		kname = "kq"
	}
	g.p("MOVQ %s+0(FP), CX", kname)
	g.p("MOVQ a+8(FP), SI")
	g.p("MOVQ lda+16(FP), R8")
	g.p("MOVQ b+24(FP), DI")
	g.p("MOVQ c+32(FP), DX")
	g.p("MOVQ ldc+40(FP), R9")
	g.p("LEAQ (R8)(R8*2), R10")
	shift := 7
	if dtype == "BF16" {
		shift = 6
	}
	g.p("MOVQ CX, R13")
	g.p("SHLQ $%d, R13", shift)
	g.p("LEAQ (R13)(R13*2), R12")
	idx := []string{"(SI)", "(SI)(R8*1)", "(SI)(R8*2)", "(SI)(R10*1)"}
	g.rows = idx[:mr]
	panelAddr := func(p, d int) string {
		return fmt.Sprintf("%d%s", d, []string{"(DI)", "(DI)(R13*1)", "(DI)(R13*2)", "(DI)(R12*1)"}[p])
	}
	acc := func(r, p, h int) string { return fmt.Sprintf("Z%d", r*2*np+2*p+h) }
	breg := func(p, h int) string { return fmt.Sprintf("Z%d", 16+2*p+h) }
	for r := range mr {
		for p := range np {
			for h := range 2 {
				g.p("VPXORD %s, %s, %s", acc(r, p, h), acc(r, p, h), acc(r, p, h))
			}
		}
	}
	step := g.f.bStep()
	body := func(da, db int) {
		for p := range np {
			switch dtype {
			case "F32":
				g.p("VMOVUPS %s, %s", panelAddr(p, db), breg(p, 0))
				g.p("VMOVUPS %s, %s", panelAddr(p, db+64), breg(p, 1))
			case "BF16":
				g.p("VPMOVZXWD %s, %s", panelAddr(p, db), breg(p, 0))
				g.p("VPMOVZXWD %s, %s", panelAddr(p, db+32), breg(p, 1))
				g.p("VPSLLD $16, %s, %s", breg(p, 0), breg(p, 0))
				g.p("VPSLLD $16, %s, %s", breg(p, 1), breg(p, 1))
			case "I8":
				g.p("VMOVDQU32 %s, %s", panelAddr(p, db), breg(p, 0))
				g.p("VMOVDQU32 %s, %s", panelAddr(p, db+64), breg(p, 1))
			}
		}
		for r := range mr {
			bc := fmt.Sprintf("Z%d", 30+r%2)
			if dtype == "I8" {
				g.p("VPBROADCASTD %s, %s", g.rowAddr(r, da), bc)
			} else {
				g.p("VBROADCASTSS %s, %s", g.rowAddr(r, da), bc)
			}
			for p := range np {
				for h := range 2 {
					if dtype == "I8" {
						g.p("VPDPBUSD %s, %s, %s", breg(p, h), bc, acc(r, p, h))
					} else {
						g.p("VFMADD231PS %s, %s, %s", breg(p, h), bc, acc(r, p, h))
					}
				}
			}
		}
	}
	g.p("MOVQ CX, BX")
	g.p("SHRQ $1, CX")
	g.p("JZ tail")
	g.label("loop")
	body(0, 0)
	body(4, step)
	g.p("ADDQ $8, SI")
	g.p("ADDQ $%d, DI", 2*step)
	g.p("DECQ CX")
	g.p("JNZ loop")
	g.label("tail")
	g.p("ANDQ $1, BX")
	g.p("JZ epilogue")
	body(0, 0)
	g.label("epilogue")
	if dtype == "I8" {
		// (acc - corr[col]) → float · (sa[row] · ws[col]), columns from memory.
		g.p("MOVQ sa+48(FP), R11")
		g.p("MOVQ ws+56(FP), AX")
		g.p("MOVQ corr+64(FP), BX")
		for r := range mr {
			g.p("VBROADCASTSS %d(R11), Z30", 4*r)
			for p := range np {
				for h := range 2 {
					off := 128*p + 64*h
					a := acc(r, p, h)
					g.p("VPSUBD %d(BX), %s, %s", off, a, a)
					g.p("VCVTDQ2PS %s, %s", a, a)
					g.p("VMULPS %d(AX), Z30, Z31", off)
					g.p("VMULPS Z31, %s, %s", a, a)
				}
			}
		}
	}
	g.p("MOVQ op+%d(FP), BX", frame-8)
	g.p("CMPQ BX, $1")
	g.p("JEQ add")
	g.p("CMPQ BX, $2")
	g.p("JEQ relu")
	stores := func() {
		for r := range mr {
			for p := range np {
				for h := range 2 {
					g.p("VMOVUPS %s, %d(DX)", acc(r, p, h), 128*p+64*h)
				}
			}
			if r < mr-1 {
				g.p("ADDQ R9, DX")
			}
		}
		g.p("VZEROUPPER")
		g.p("RET")
	}
	g.label("store")
	stores()
	g.label("add")
	for r := range mr {
		for p := range np {
			for h := range 2 {
				a := acc(r, p, h)
				g.p("VADDPS %d(DX), %s, %s", 128*p+64*h, a, a)
			}
		}
		if r < mr-1 {
			g.p("ADDQ R9, DX")
		}
	}
	g.p("MOVQ c+32(FP), DX")
	stores()
	g.label("relu")
	g.p("VPXORD Z28, Z28, Z28")
	for r := range mr {
		for p := range np {
			for h := range 2 {
				a := acc(r, p, h)
				g.p("VMAXPS Z28, %s, %s", a, a)
			}
		}
	}
	stores()
	return g.s.String()
}

// multiAsm returns the kernels and their Go declarations and dispatch.
func multiAsm() (asm, stubs string) {
	var a, s strings.Builder
	for _, dtype := range []string{"F32", "BF16", "I8"} {
		params, _ := multiArgs(dtype)
		var call []string
		for _, p := range strings.Split(params, ", ") {
			call = append(call, strings.Fields(p)[0])
		}
		fmt.Fprintf(&s, "// gemm%sx512N dispatches to the multi-panel %s kernel for mr rows (1..4): four panels for\n// one or two rows, two for three or four.\nfunc gemm%sx512N(mr int, %s) {\n\tswitch mr {\n", dtype, dtype, dtype, params)
		for _, sh := range multiShapes {
			fmt.Fprintf(&s, "\tcase %d:\n\t\t%s(%s)\n", sh[0], multiName(dtype, sh[0], sh[1]), strings.Join(call, ", "))
		}
		fmt.Fprintf(&s, "\tdefault:\n\t\tpanic(\"infer: kernels: gemm%sx512N: bad row count\")\n\t}\n}\n\n", dtype)
		for _, sh := range multiShapes {
			a.WriteString("\n")
			a.WriteString(multiKernel(dtype, sh[0], sh[1]))
			fmt.Fprintf(&s, "//go:noescape\nfunc %s(%s)\n\n", multiName(dtype, sh[0], sh[1]), params)
		}
	}
	return a.String(), s.String()
}
