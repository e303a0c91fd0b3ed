package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in, canonical string
		edit          func(*Shape) // applied to the base size's shape
	}{
		{"t5-efficient-base", "t5-efficient-base", nil},
		{"google/t5-efficient-base-nl36", "t5-efficient-base-nl36", func(s *Shape) { s.NumLayers, s.NumDecoderLayers = 36, 36 }},
		{"base-nl36", "t5-efficient-base-nl36", func(s *Shape) { s.NumLayers, s.NumDecoderLayers = 36, 36 }},
		{"  T5-Efficient-BASE-NL36 ", "t5-efficient-base-nl36", func(s *Shape) { s.NumLayers, s.NumDecoderLayers = 36, 36 }},
		{"small-el16-dl2", "t5-efficient-small-el16-dl2", func(s *Shape) { s.NumLayers, s.NumDecoderLayers = 16, 2 }},
		{"large-nh8-nl32", "t5-efficient-large-nh8-nl32", func(s *Shape) { s.NumHeads, s.NumLayers, s.NumDecoderLayers = 8, 32, 32 }},
		// "thousands" are multiples of 1024 for dm and ff only
		{"base-ff6000", "t5-efficient-base-ff6000", func(s *Shape) { s.DFF = 6144 }},
		{"tiny-ff1000", "t5-efficient-tiny-ff1000", func(s *Shape) { s.DFF = 1024 }},
		{"base-dm2000", "t5-efficient-base-dm2000", func(s *Shape) { s.DModel = 2048 }},
		{"large-dm768", "t5-efficient-large-dm768", func(s *Shape) { s.DModel = 768 }},
		{"small-dm1500", "t5-efficient-small-dm1500", func(s *Shape) { s.DModel = 1500 }},
		// nh keeps d_kv; kv keeps heads
		{"base-nh24", "t5-efficient-base-nh24", func(s *Shape) { s.NumHeads = 24 }},
		{"small-kv128", "t5-efficient-small-kv128", func(s *Shape) { s.DKV = 128 }},
		{"xl-dm512-ff2000-kv32-nh4-el3-dl5", "t5-efficient-xl-dm512-ff2000-kv32-nh4-el3-dl5", func(s *Shape) {
			s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers = 512, 2048, 32, 4, 3, 5
		}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := ParseName(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if n.String() != tt.canonical {
				t.Fatalf("String() = %q, want %q", n.String(), tt.canonical)
			}
			if n.HFRepo() != "google/"+tt.canonical {
				t.Fatalf("HFRepo() = %q", n.HFRepo())
			}
			got, err := n.Shape()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := BaseShape(n.Size)
			if tt.edit != nil {
				tt.edit(&want)
			}
			if got != want {
				t.Fatalf("shape differs: %s", ShapeDiff(want, got))
			}
		})
	}
}

func TestParseNameErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "unknown size"},
		{"huge", "unknown size \"huge\""},
		{"bsae-nl36", "unknown size"},
		{"base-", "not <knob><number>"},
		{"base-nl", "not <knob><number>"},
		{"base-xx12", "unknown knob"},
		{"base-nl0", "positive integer"},
		{"base-nl012", "leading zeros"},
		{"base-nl+3", "positive integer"},
		{"base-nl3x", "positive integer"},
		{"base-nl3-nl4", "given twice"},
		{"base-nl3-el2", "combine it with neither"},
		{"base-nl99999999999999999999", "positive integer"},
		{"base-nl300", "num_layers = 300"},
		{"base-ff999000", "d_ff"},
		{"google/other-base", "unknown size"},
		{"t5-efficient-base/../../etc", "unknown size"},
		{strings.Repeat("a", 300), "longer than 200"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseName(tt.in)
			if err == nil {
				t.Fatalf("ParseName(%q) succeeded", tt.in)
			}
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("err %v is not ErrBadName", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDimValue(t *testing.T) {
	for written, want := range map[int]int{1000: 1024, 2000: 2048, 3000: 3072, 6000: 6144, 9000: 9216, 12000: 12288, 256: 256, 768: 768, 1500: 1500} {
		if got := DimValue(written); got != want {
			t.Errorf("DimValue(%d) = %d, want %d", written, got, want)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"base", "google/t5-efficient-base-nl36", "small-el16-dl2", "tiny-ff2000", "xl-dm512-kv32", "base-nl0", "base-nl3-nl3", "x-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
			return
		}
		// Round trip: the canonical spelling parses to the same name, and the name is safe
		// to use as a path or object key component.
		again, err := ParseName(n.String())
		if err != nil || again.String() != n.String() {
			t.Fatalf("canonical %q does not round-trip: %v", n.String(), err)
		}
		for _, r := range n.String() {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("canonical name %q has %q", n.String(), r)
			}
		}
		s2, err := n.Shape()
		if err != nil {
			t.Fatalf("parsed name has no shape: %v", err)
		}
		if s2.Params() <= 0 {
			t.Fatalf("params %d", s2.Params())
		}
	})
}
