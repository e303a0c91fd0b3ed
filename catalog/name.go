package catalog

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Prefix is the common prefix of every shape name; HFOrg is the Hugging Face organisation
// that published them.
const (
	Prefix = "t5-efficient-"
	HFOrg  = "google"
)

// ErrBadName is returned (wrapped) for a name that does not follow the shape grammar.
var ErrBadName = errors.New("catalog: malformed shape name")

// Size is one of the seven base sizes of the Scale Efficiently grid.
type Size string

// The base sizes, smallest first.
const (
	Tiny  Size = "tiny"
	Mini  Size = "mini"
	Small Size = "small"
	Base  Size = "base"
	Large Size = "large"
	XL    Size = "xl"
	XXL   Size = "xxl"
)

// Sizes lists the base sizes, smallest first.
func Sizes() []Size { return []Size{Tiny, Mini, Small, Base, Large, XL, XXL} }

// BaseShape returns the dimensions of a base size as released (facts/catalog_facts.md §2.3
// rule 1; d_kv is 64 for tiny/mini/small, not the model card's 32) on the T5 v1.0 defaults.
func BaseShape(size Size) (Shape, bool) {
	s := DefaultShape()
	switch size {
	case Tiny:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 256, 1024, 64, 4, 4
	case Mini:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 384, 1536, 64, 8, 4
	case Small:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 512, 2048, 64, 8, 6
	case Base:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 768, 3072, 64, 12, 12
	case Large:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 1024, 4096, 64, 16, 24
	case XL:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 1024, 16384, 128, 32, 24
	case XXL:
		s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers = 1024, 65536, 128, 128, 24
	default:
		return Shape{}, false
	}
	s.NumDecoderLayers = s.NumLayers
	return s, true
}

// Knob is one dimension a name can change from its base size.
type Knob string

// The knobs of the grammar, in the order the published names use them.
const (
	KnobLayers        Knob = "nl" // both stacks
	KnobEncoderLayers Knob = "el"
	KnobDecoderLayers Knob = "dl"
	KnobDModel        Knob = "dm"
	KnobDFF           Knob = "ff"
	KnobDKV           Knob = "kv"
	KnobHeads         Knob = "nh"
)

// Knobs lists the knobs in a fixed order. All are two letters, so parsing takes the first
// two letters of a part as its knob.
func Knobs() []Knob {
	return []Knob{KnobLayers, KnobEncoderLayers, KnobDecoderLayers, KnobDModel, KnobDFF, KnobDKV, KnobHeads}
}

// Setting is one knob with the number written in the name.
type Setting struct {
	Knob  Knob
	Value int // as written: ff6000 has Value 6000
}

// Name is a parsed shape name.
type Name struct {
	Size     Size
	Settings []Setting // in the order written
}

// String returns the canonical name, e.g. "t5-efficient-base-nl36".
func (n Name) String() string {
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString(string(n.Size))
	for _, s := range n.Settings {
		fmt.Fprintf(&b, "-%s%d", s.Knob, s.Value)
	}
	return b.String()
}

// HFRepo returns the Hugging Face repository the name was (or would be) published under.
func (n Name) HFRepo() string { return HFOrg + "/" + n.String() }

// Canonical trims the accepted spellings of a shape name to "t5-efficient-…": it drops a
// "google/" organisation, adds the prefix to a bare "base-nl36", and lower-cases. It checks
// nothing else; ParseName does.
func Canonical(name string) string {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.TrimPrefix(s, HFOrg+"/")
	if !strings.HasPrefix(s, Prefix) {
		s = Prefix + s
	}
	return s
}

// NameError is a name that does not follow the grammar. It wraps ErrBadName.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("catalog: malformed shape name %q: %s", e.Name, e.Reason)
}

func (e *NameError) Unwrap() error { return ErrBadName }

// ParseName parses "google/t5-efficient-base-nl36", "t5-efficient-base-nl36" or "base-nl36".
// Each knob may appear once, nl excludes el and dl, and values are positive integers written
// without leading zeros.
func ParseName(name string) (Name, error) {
	bad := func(format string, args ...any) (Name, error) {
		return Name{}, &NameError{Name: name, Reason: fmt.Sprintf(format, args...)}
	}
	if len(name) > 200 {
		return bad("longer than 200 bytes")
	}
	parts := strings.Split(strings.TrimPrefix(Canonical(name), Prefix), "-")
	n := Name{Size: Size(parts[0])}
	if _, ok := BaseShape(n.Size); !ok {
		return bad("unknown size %q (want one of tiny, mini, small, base, large, xl, xxl)", parts[0])
	}
	seen := map[Knob]bool{}
	for _, p := range parts[1:] {
		if len(p) < 3 {
			return bad("part %q is not <knob><number>", p)
		}
		k := Knob(p[:2])
		if !slices.Contains(Knobs(), k) {
			return bad("unknown knob %q (want nl, el, dl, dm, ff, kv or nh)", k)
		}
		digits := p[2:]
		v, err := strconv.Atoi(digits)
		if err != nil || v < 1 || digits[0] == '0' || strings.ContainsAny(digits, "+-") {
			return bad("knob %s needs a positive integer without leading zeros, got %q", k, digits)
		}
		if seen[k] {
			return bad("knob %s given twice", k)
		}
		seen[k] = true
		n.Settings = append(n.Settings, Setting{Knob: k, Value: v})
	}
	if seen[KnobLayers] && (seen[KnobEncoderLayers] || seen[KnobDecoderLayers]) {
		return bad("nl sets both stacks; combine it with neither el nor dl")
	}
	if _, err := n.Shape(); err != nil {
		return bad("%s", strings.TrimPrefix(err.Error(), ErrInvalidShape.Error()+": "))
	}
	return n, nil
}

// DimValue converts the number written after dm or ff to a dimension: "thousands" in the
// published names are multiples of 1024 (ff6000 → 6144, dm2000 → 2048; checked against the
// released configs and file sizes, facts/catalog_facts.md §2.3 rule 3). Other values are
// literal (dm768 → 768).
func DimValue(written int) int {
	if written%1000 == 0 {
		return written / 1000 * 1024
	}
	return written
}

// Shape derives the hyper-parameters from the grammar: the base size's dimensions with each
// knob applied, and nothing else changed (an nh knob keeps d_kv, a dm knob keeps d_ff). It is
// what an unpublished name means. Published names can differ: Catalog entries carry the real
// configs (see the anomaly notes there).
func (n Name) Shape() (Shape, error) {
	s, ok := BaseShape(n.Size)
	if !ok {
		return Shape{}, fmt.Errorf("%w: unknown size %q", ErrBadName, n.Size)
	}
	for _, st := range n.Settings {
		switch st.Knob {
		case KnobLayers:
			s.NumLayers, s.NumDecoderLayers = st.Value, st.Value
		case KnobEncoderLayers:
			s.NumLayers = st.Value
		case KnobDecoderLayers:
			s.NumDecoderLayers = st.Value
		case KnobDModel:
			s.DModel = DimValue(st.Value)
		case KnobDFF:
			s.DFF = DimValue(st.Value)
		case KnobDKV:
			s.DKV = st.Value
		case KnobHeads:
			s.NumHeads = st.Value
		default:
			return Shape{}, fmt.Errorf("%w: unknown knob %q", ErrBadName, st.Knob)
		}
	}
	if err := s.Validate(); err != nil {
		return Shape{}, err
	}
	return s, nil
}
