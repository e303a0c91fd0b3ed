package zoo_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/zoo"
)

// testCatalog publishes two shapes: t5-efficient-tiny with its real config (4+4 layers,
// d_model 256: not the test model) and t5-efficient-mini with the test model's own config.
func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testModel, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden, err := catalog.ParseHFConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	tiny := catalog.DefaultShape()
	tiny.DModel, tiny.DFF, tiny.NumHeads, tiny.NumLayers, tiny.NumDecoderLayers = 256, 1024, 4, 4, 4
	var entries []catalog.Entry
	for name, s := range map[string]catalog.Shape{"t5-efficient-tiny": tiny, "t5-efficient-mini": golden} {
		entries = append(entries, catalog.Entry{Name: name, HFRepo: "google/" + name, Published: true,
			Existence: "confirmed", ConfigSource: catalog.ConfigExact, Params: s.Params(), Config: s.HFConfig()})
	}
	c, err := catalog.New(entries)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPushChecksCatalogShape pushes the test model (2+2 layers, d_model 64) under shape names
// with PushOptions.Catalog set: a published name whose shape differs is refused, naming the
// differences (found: the model was accepted as t5-efficient-tiny); so is a name of the
// grammar whose shape differs; the shape's own name and names outside the t5-efficient-
// namespace are accepted, and a nil catalog checks nothing.
func TestPushChecksCatalogShape(t *testing.T) {
	t.Parallel()
	cat := testCatalog(t)
	for _, tc := range []struct {
		ref     string
		catalog *catalog.Catalog
		want    []string // in the error; none: accepted
	}{
		{"t5-efficient-tiny", cat, []string{"t5-efficient-tiny", "num_layers 2, want 4", "d_model 64, want 256", "vocab_size 2176, want 32128"}},
		{"google/t5-efficient-tiny:v2", cat, []string{"d_model 64, want 256"}},
		{"t5-efficient-base-nl40", cat, []string{"t5-efficient-base-nl40", "num_layers 2, want 40", "d_model 64, want 768"}},
		{"t5-efficient-mini", cat, nil},
		{"acme/tiny", cat, nil},
		{"t5-efficient-tiny:unchecked", nil, nil},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			t.Parallel()
			store, _ := zoo.NewLocalStore(t.TempDir())
			_, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef(tc.ref), zoo.PushOptions{Catalog: tc.catalog})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, zoo.ErrInvalidModel) {
				t.Fatalf("push: %v; want ErrInvalidModel", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("push error %q lacks %q", err, w)
				}
			}
			if refs, _ := store.ListManifests(t.Context()); len(refs) != 0 {
				t.Fatalf("a refused push left manifests: %v", refs)
			}
		})
	}
}
