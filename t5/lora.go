package t5

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/t5zoo/t5zoo/backend"
)

// LoRA adds low-rank adapters (PEFT's LoRA) to the named modules: every module whose name
// ends in "."+target (with the default targets "q" and "v": the SelfAttention and
// EncDecAttention query and value projections of every layer). A module is one of a layer's
// linear projections, named as its HF weight without ".weight" (for example
// "decoder.block.0.layer.1.EncDecAttention.v"); the embedding and the LM head take no adapter.
// The adapters are read from the model's Weights as "<module>.lora_A.weight" (R × in) and
// "<module>.lora_B.weight" (out × R) and prepared in float32; the module computes
// W·x + (Alpha/R)·B·(A·x). A model with LoRA trains the adapters only.
type LoRA struct {
	R       int
	Alpha   float32
	Targets []string // nil: "q", "v"
}

// defaultLoRATargets are PEFT's target modules for T5.
func defaultLoRATargets() []string { return []string{"q", "v"} }

// adapter is one module's LoRA pair, adding to columns [lo, hi) of the product of
// trainLayout.mats[mat] (the module's rows of the stacked weight).
type adapter struct {
	module string
	mat    int
	lo, hi int
	in     int
	a, b   backend.Weight // A: R × in, B: (hi-lo) × R
	index  int            // in trainLayout.adapters
}

func (a *adapter) nameA() string { return a.module + ".lora_A.weight" }
func (a *adapter) nameB() string { return a.module + ".lora_B.weight" }

// bindLoRA prepares the adapters of cfg from src for every matching module.
func (m *Model) bindLoRA(src Weights, cfg *LoRA) error {
	if cfg.R < 1 {
		return fmt.Errorf("%w: LoRA rank %d must be positive", ErrInvalidInput, cfg.R)
	}
	if a := float64(cfg.Alpha); math.IsNaN(a) || math.IsInf(a, 0) {
		return fmt.Errorf("%w: LoRA alpha %v is not finite", ErrInvalidInput, cfg.Alpha)
	}
	targets := cfg.Targets
	if len(targets) == 0 {
		targets = defaultLoRATargets()
	}
	tl := &m.tl
	matched := map[string]bool{}
	prepare := func(name string, rows, cols int) (backend.Weight, error) {
		s, err := src.Matrix(name, rows, cols)
		if err != nil {
			return nil, err
		}
		w, err := m.be.Prepare(s, backend.F32)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", name, err)
		}
		return w, nil
	}
	for mi := range tl.mats {
		if mi == tl.embed || mi == tl.head {
			continue
		}
		mt := &tl.mats[mi]
		lo := 0
		for _, part := range mt.parts {
			out, in := part.Shape[0], part.Shape[1]
			module := strings.TrimSuffix(part.Name, ".weight")
			hit := false
			for _, t := range targets {
				if strings.HasSuffix(module, "."+t) {
					matched[t], hit = true, true
				}
			}
			if hit {
				ad := &adapter{module: module, mat: mi, lo: lo, hi: lo + out, in: in, index: len(tl.adapters)}
				var err error
				if ad.a, err = prepare(ad.nameA(), cfg.R, in); err != nil {
					return err
				}
				if ad.b, err = prepare(ad.nameB(), out, cfg.R); err != nil {
					return err
				}
				mt.ad = append(mt.ad, ad)
				tl.adapters = append(tl.adapters, ad)
			}
			lo += out
		}
	}
	for _, t := range targets {
		if !matched[t] {
			return fmt.Errorf("%w: LoRA target %q names no module of the model", ErrInvalidInput, t)
		}
	}
	tl.lora = &LoRA{R: cfg.R, Alpha: cfg.Alpha, Targets: slices.Clone(targets)}
	tl.loraScale = cfg.Alpha / float32(cfg.R)
	return nil
}

// LoRAConfig returns the model's LoRA settings (targets resolved), or nil for a model
// without adapters.
func (m *Model) LoRAConfig() *LoRA {
	if m.tl.lora == nil {
		return nil
	}
	c := *m.tl.lora
	c.Targets = slices.Clone(c.Targets)
	return &c
}
