package catalog

import (
	"bytes"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

func readFacts(t *testing.T) []FactsRecord {
	t.Helper()
	data, err := os.ReadFile("facts/t5_efficient_checkpoints.json")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := ParseFacts(data)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func readCatalog(t *testing.T) (*Catalog, []byte) {
	t.Helper()
	data, err := os.ReadFile("../catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return c, data
}

// The committed catalog.json is exactly what the generator makes from the facts: editing
// either alone fails here (run `go generate ./catalog`).
func TestCatalogJSONIsGeneratedFromFacts(t *testing.T) {
	entries, err := EntriesFromFacts(readFacts(t))
	if err != nil {
		t.Fatal(err)
	}
	want, err := MarshalFile(entries, FactsSource)
	if err != nil {
		t.Fatal(err)
	}
	_, got := readCatalog(t)
	if !bytes.Equal(got, want) {
		t.Fatal("catalog.json is stale or edited by hand: run `go generate ./catalog`")
	}
}

func TestCatalogHoldsThePublishedShapes(t *testing.T) {
	c, _ := readCatalog(t)
	recs := readFacts(t)
	count := map[string]int{}
	for _, r := range recs {
		count[r.Existence]++
		_, inCatalog := c.Published(r.Name)
		if want := r.Existence != "unverified"; inCatalog != want {
			t.Errorf("%s (%s): in catalog = %v", r.Name, r.Existence, inCatalog)
		}
	}
	// facts/catalog_facts.md: 127 confirmed, 3 inferred, 26 unverified.
	if count["confirmed"] != 127 || count["inferred"] != 3 || count["unverified"] != 26 {
		t.Fatalf("facts counts changed: %v", count)
	}
	if c.Len() != 130 {
		t.Fatalf("catalog has %d shapes, want 130", c.Len())
	}
	for _, r := range recs {
		e, ok := c.Published(r.Name)
		if !ok {
			continue
		}
		if e.Params != r.Params || e.Shape().Params() != r.Params {
			t.Errorf("%s: params %d / cost model %d, facts %d", r.Name, e.Params, e.Shape().Params(), r.Params)
		}
		if e.Shape() != r.Shape() || e.HFRepo != r.HFRepo || e.ConfigSource != r.Source {
			t.Errorf("%s: entry differs from facts", r.Name)
		}
	}
}

// Each shape whose real config departs from what its name says carries a note, and only
// those: the anomalies of facts/catalog_facts.md §2.3 (tiny el/dl centred on 12+12,
// tiny-ff2000, tiny-nh8, xxl-nl4).
func TestAnomaliesAreNoted(t *testing.T) {
	c, _ := readCatalog(t)
	want := map[string]bool{
		"t5-efficient-tiny-el2": true, "t5-efficient-tiny-el6": true, "t5-efficient-tiny-el8": true, "t5-efficient-tiny-el12": true,
		"t5-efficient-tiny-dl2": true, "t5-efficient-tiny-dl6": true, "t5-efficient-tiny-dl8": true,
		"t5-efficient-tiny-ff2000": true, "t5-efficient-tiny-nh8": true, "t5-efficient-xxl-nl4": true,
	}
	for _, e := range c.Entries() {
		n, err := ParseName(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		named, _ := n.Shape()
		departs := named != e.Shape()
		if departs != want[e.Name] {
			t.Errorf("%s: departs from its name = %v, want %v (%s)", e.Name, departs, want[e.Name], ShapeDiff(named, e.Shape()))
		}
		if departs != (len(e.Notes) > 0) {
			t.Errorf("%s: departs = %v but notes = %q", e.Name, departs, e.Notes)
		}
	}
	// Spot checks of the real configs (exact config.json: tiny-el12 12/12; xxl-nl4 32×64).
	for name, check := range map[string]func(Shape) bool{
		"tiny-el12":   func(s Shape) bool { return s.NumLayers == 12 && s.NumDecoderLayers == 12 },
		"tiny-el2":    func(s Shape) bool { return s.NumLayers == 2 && s.NumDecoderLayers == 12 },
		"tiny-dl8":    func(s Shape) bool { return s.NumLayers == 12 && s.NumDecoderLayers == 8 },
		"tiny-ff2000": func(s Shape) bool { return s.DFF == 1024 },
		"tiny-nh8":    func(s Shape) bool { return s.NumHeads == 8 && s.DKV == 32 },
		"xxl-nl4":     func(s Shape) bool { return s.NumHeads == 32 && s.DKV == 64 && s.DFF == 65536 && s.NumLayers == 4 },
	} {
		e, ok := c.Published(name)
		if !ok || !check(e.Shape()) {
			t.Errorf("%s: config %+v", name, e.Shape())
		}
	}
}

// Where HF's file page showed the float32 flax_model.msgpack size, 4 bytes per parameter
// reproduces it within 1.2% (facts/catalog_facts.md: all 92 sizes found agree that closely
// once the anomaly rules apply). An independent check of the configs and the count.
func TestParamsAgreeWithCheckpointFileSizes(t *testing.T) {
	c, _ := readCatalog(t)
	seen := 0
	for _, e := range c.Entries() {
		if e.HFFlaxSize == "" {
			continue
		}
		seen++
		size, err := parseDecimalSize(e.HFFlaxSize)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		rel := math.Abs(size-float64(e.Shape().WeightBytes(F32))) / size
		if rel > 0.012 {
			t.Errorf("%s: file %s vs 4·params %d: off by %.2f%%", e.Name, e.HFFlaxSize, e.Shape().WeightBytes(F32), 100*rel)
		}
	}
	if seen != 92 {
		t.Fatalf("%d file sizes, want the 92 of the facts", seen)
	}
}

func parseDecimalSize(s string) (float64, error) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f * u.mult, err
		}
	}
	return 0, strconv.ErrSyntax
}

func TestEntriesFromFactsRejectsDrift(t *testing.T) {
	base := readFacts(t)[0]
	tests := map[string]func(*FactsRecord){
		"params off by one": func(r *FactsRecord) { r.Params++ },
		"bad existence":     func(r *FactsRecord) { r.Existence = "rumoured" },
		"bad name":          func(r *FactsRecord) { r.Name = "t5-efficient-huge" },
		"repo mismatch":     func(r *FactsRecord) { r.HFRepo = "someone/t5-efficient-base" },
		"bad source":        func(r *FactsRecord) { r.Source = "guessed" },
		"invalid shape":     func(r *FactsRecord) { r.DModel = 0 },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			r := base
			edit(&r)
			if _, err := EntriesFromFacts([]FactsRecord{r}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := ParseFacts([]byte(`[{"name":"x","surprise":1}]`)); err == nil {
		t.Fatal("ParseFacts accepted an unknown key")
	}
}
