package zoo

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/t5zoo/t5zoo/catalog"
)

// CheckCatalogShape refuses a model under a shape name (the t5-efficient- namespace)
// whose config.json does not have that shape: a published name's catalog config, or for a
// name the grammar accepts but the catalog does not publish, the grammar's. A shape name is
// a promise to every puller about the tensors behind it (found: a 2-layer d_model 64 model
// was accepted as t5-efficient-tiny). A nil catalog checks nothing.
func CheckCatalogShape(cat *catalog.Catalog, dir string, ref Ref) error {
	if cat == nil {
		return nil
	}
	if _, err := catalog.ParseName(ref.Name); err != nil {
		return nil // a model name of its own, outside the shape grammar
	}
	entry, err := cat.Lookup(ref.Name)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
	}
	data, err := readFileLimit(filepath.Join(dir, "config.json"), 1<<20)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
	}
	got, err := catalog.ParseHFConfig(data)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrInvalidModel, dir, err)
	}
	diffs := shapeDiffs(got, entry.Shape())
	if len(diffs) == 0 {
		return nil
	}
	what := "the catalog's published config"
	if !entry.Published {
		what = "the shape its name spells (not published; from the name grammar)"
	}
	return fmt.Errorf("%w %s: config.json does not have the shape of %s, %s: %s; push it under a name of your own (e.g. acme/%s)",
		ErrInvalidModel, dir, entry.Name, what, strings.Join(diffs, ", "), strings.TrimPrefix(entry.Name, catalog.Prefix))
}

// shapeDiffs lists the hyper-parameters that fix a T5 model's tensors and attention, as
// "key got, want want", where got differs from want.
func shapeDiffs(got, want catalog.Shape) []string {
	var diffs []string
	for _, c := range []struct {
		key       string
		got, want int
	}{
		{"num_layers", got.NumLayers, want.NumLayers},
		{"num_decoder_layers", got.NumDecoderLayers, want.NumDecoderLayers},
		{"d_model", got.DModel, want.DModel},
		{"d_ff", got.DFF, want.DFF},
		{"d_kv", got.DKV, want.DKV},
		{"num_heads", got.NumHeads, want.NumHeads},
		{"vocab_size", got.VocabSize, want.VocabSize},
		{"relative_attention_num_buckets", got.RelativeAttentionNumBuckets, want.RelativeAttentionNumBuckets},
		{"relative_attention_max_distance", got.RelativeAttentionMaxDistance, want.RelativeAttentionMaxDistance},
	} {
		if c.got != c.want {
			diffs = append(diffs, fmt.Sprintf("%s %d, want %d", c.key, c.got, c.want))
		}
	}
	ga, gg, _ := got.Activation()
	wa, wg, _ := want.Activation()
	if ga != wa || gg != wg {
		diffs = append(diffs, fmt.Sprintf("feed_forward_proj %q, want %q", got.FeedForwardProj, want.FeedForwardProj))
	}
	if got.TieWordEmbeddings != want.TieWordEmbeddings {
		diffs = append(diffs, fmt.Sprintf("tie_word_embeddings %t, want %t", got.TieWordEmbeddings, want.TieWordEmbeddings))
	}
	return diffs
}
