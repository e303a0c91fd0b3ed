package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	c, _ := readCatalog(t)
	tests := []struct {
		in, name  string
		published bool
		source    string
	}{
		{"t5-efficient-base", "t5-efficient-base", true, ConfigDerived},
		{"google/t5-efficient-base-nl36", "t5-efficient-base-nl36", true, ConfigExact},
		{"base-nl36", "t5-efficient-base-nl36", true, ConfigExact},
		{"xl-nl4", "t5-efficient-xl-nl4", true, ConfigDerived},         // inferred
		{"base-nl40", "t5-efficient-base-nl40", false, ConfigFromName}, // unverified: not published
		{"small-nl20-dm768", "t5-efficient-small-nl20-dm768", false, ConfigFromName},
		{"tiny-el4", "t5-efficient-tiny-el4", false, ConfigFromName},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			e, err := c.Lookup(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if e.Name != tt.name || e.Published != tt.published || e.ConfigSource != tt.source {
				t.Fatalf("got %s published=%v source=%s", e.Name, e.Published, e.ConfigSource)
			}
			if e.HFRepo != "google/"+tt.name || e.Params != e.Shape().Params() {
				t.Fatalf("repo %s params %d", e.HFRepo, e.Params)
			}
		})
	}
	// An unpublished name follows the plain grammar: tiny-el4 is 4/4 (the 12+12 centring
	// is an anomaly of the released tiny el/dl checkpoints, not a rule).
	e, _ := c.Lookup("tiny-el4")
	if e.Shape().NumLayers != 4 || e.Shape().NumDecoderLayers != 4 {
		t.Fatalf("tiny-el4: %d/%d", e.Shape().NumLayers, e.Shape().NumDecoderLayers)
	}
	if base, _ := c.Lookup("base"); base.Params != 222_903_552 {
		t.Fatalf("base params %d", base.Params)
	}
}

func TestLookupUnknownSuggests(t *testing.T) {
	c, _ := readCatalog(t)
	tests := []struct{ in, first string }{
		{"bsae-nl36", "t5-efficient-base-nl36"},
		{"t5-efficient-smal-el16", "t5-efficient-small-el16"},
		{"google/t5-efficient-larg", "t5-efficient-large"},
		{"tiny-nl2x", "t5-efficient-tiny-nl2"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := c.Lookup(tt.in)
			var ue *UnknownShapeError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnknownShape) || !errors.Is(err, ErrBadName) {
				t.Fatalf("err = %v (%T), want *UnknownShapeError matching both sentinels", err, err)
			}
			if len(ue.Suggestions) == 0 || ue.Suggestions[0] != tt.first {
				t.Fatalf("suggestions %v, want %s first", ue.Suggestions, tt.first)
			}
			if !strings.Contains(err.Error(), "did you mean "+tt.first) {
				t.Fatalf("message %q lacks the suggestion", err)
			}
		})
	}
	// Nothing close: no suggestion rather than a random one.
	_, err := c.Lookup("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")
	var ue *UnknownShapeError
	if !errors.As(err, &ue) || len(ue.Suggestions) != 0 {
		t.Fatalf("err = %v, suggestions %v", err, ue)
	}
}

func TestParseRejectsBadCatalogs(t *testing.T) {
	_, good := readCatalog(t)
	tests := map[string]string{
		"not json":      `{"format":`,
		"wrong format":  `{"format":"t5zoo-catalog/0","shapes":[]}`,
		"unknown field": `{"format":"t5zoo-catalog/1","shapes":[],"extra":1}`,
		"wrong params":  strings.Replace(string(good), `"params": 222903552`, `"params": 222903553`, 1),
		"duplicate":     strings.Replace(string(good), `"name": "t5-efficient-base-dl2"`, `"name": "t5-efficient-base"`, 1),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse([]byte(data)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func names(rows []Row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.TrimPrefix(r.Name, Prefix)
	}
	return out
}

func TestFilterAndSort(t *testing.T) {
	c, _ := readCatalog(t)
	tests := []struct {
		where []string
		sort  string
		want  []string
	}{
		{[]string{"size=xl"}, "params", []string{"xl-nl4", "xl-nl6", "xl-nl8", "xl"}},
		{[]string{"size=xl", "num_layers>=8"}, "-params", []string{"xl", "xl-nl8"}},
		{[]string{"size=large,el<=4"}, "el,name", []string{"large-el2", "large-nl2", "large-el4", "large-nl4"}},
		{[]string{"name~nh", "size==tiny"}, "nh", []string{"tiny-nh1", "tiny-nh8", "tiny-nh16", "tiny-nh32"}},
		{[]string{"params<12M"}, "", []string{"tiny-nl2"}},
		{[]string{"layers>=72"}, "-layers", []string{"small-nl40", "base-nl36", "large-nl36", "small-nl36"}},
		{[]string{"layers>=96"}, "", nil},
		{[]string{"d_model=2048", "size!=base"}, "", []string{"large-dm2000", "small-dm2000"}},
		{[]string{"anomaly=true", "size=xxl"}, "", []string{"xxl-nl4"}},
		{[]string{"existence=inferred"}, "", []string{"small-nl4", "xl-nl4", "xl-nl6"}},
		{[]string{"ff>=1.5Ki", "dm<300", "size=small"}, "", []string{"small-dm256"}},
		{[]string{"bytes>40G"}, "", []string{"xxl"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.where, "&")+"/"+tt.sort, func(t *testing.T) {
			f, err := ParseFilter(tt.where...)
			if err != nil {
				t.Fatal(err)
			}
			rows := c.Rows(f, 512, 128)
			if err := SortRows(rows, tt.sort); err != nil {
				t.Fatal(err)
			}
			if got := names(rows); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSortByFLOPsAndLayers(t *testing.T) {
	c, _ := readCatalog(t)
	rows := c.Rows(Filter{}, 512, 128)
	if err := SortRows(rows, "-flops"); err != nil {
		t.Fatal(err)
	}
	if rows[0].Name != "t5-efficient-xxl" {
		t.Fatalf("most FLOPs: %s", rows[0].Name)
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].FLOPs > rows[i-1].FLOPs {
			t.Fatalf("not descending at %d", i)
		}
	}
	if err := SortRows(rows, "layers"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		if la, lb := a.NumLayers+a.NumDecoderLayers, b.NumLayers+b.NumDecoderLayers; la > lb || la == lb && a.Name > b.Name {
			t.Fatalf("not ascending by layers then name at %d: %s, %s", i, a.Name, b.Name)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, expr := range []string{"colour=red", "params", "params<lots", "published<true", "d_model~5", "params!3", "params~=3", "params<1.5", "=5"} {
		t.Run(expr, func(t *testing.T) {
			if _, err := ParseFilter(expr); err == nil {
				t.Fatalf("ParseFilter(%q) succeeded", expr)
			}
		})
	}
	if err := SortRows(nil, "colour"); err == nil {
		t.Fatal("SortRows accepted an unknown field")
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int64{"12": 12, "100M": 100_000_000, "1.5k": 1500, "2G": 2e9, "3B": 3e9, "1Ki": 1024, "1.5Mi": 1572864, "-1": -1} {
		if got, err := ParseCount(in); err != nil || got != want {
			t.Errorf("ParseCount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "1.5", "NaN", "1e30", "inf"} {
		if _, err := ParseCount(in); err == nil {
			t.Errorf("ParseCount(%q) succeeded", in)
		}
	}
}
