package catalog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// Format identifies the layout of catalog.json; a reader refuses others.
const Format = "t5zoo-catalog/1"

// Where a published shape's config came from.
const (
	// ConfigExact: read from the repository's own config.json (or, for one shape, its
	// operative_config.gin).
	ConfigExact = "exact"
	// ConfigDerived: built from the naming rules and checked against the checkpoint's file
	// size where one was found.
	ConfigDerived = "derived"
	// ConfigFromName: an unpublished name, derived from the grammar alone.
	ConfigFromName = "name"
)

// ErrUnknownShape is returned (wrapped, inside an *UnknownShapeError) for a name that is
// neither published nor valid under the grammar.
var ErrUnknownShape = errors.New("catalog: unknown shape")

// Entry is one shape: a published checkpoint from catalog.json, or an unpublished name that
// the grammar accepts.
type Entry struct {
	Name      string `json:"name"`
	HFRepo    string `json:"hf_repo"`
	Published bool   `json:"published"`
	// Existence is how publication is known: "confirmed" (a page of that repository was
	// seen) or "inferred" (required by a mirror's id arithmetic). Empty when unpublished.
	Existence string `json:"existence,omitempty"`
	// ConfigSource is ConfigExact, ConfigDerived or ConfigFromName.
	ConfigSource string   `json:"config_source"`
	Params       int64    `json:"params"`
	Config       HFConfig `json:"config"`
	// Notes explain where the real config departs from what the name says.
	Notes []string `json:"notes,omitempty"`
	// Evidence cites the sources of existence and config.
	Evidence string `json:"evidence,omitempty"`
	// HFFlaxSize is the size HF shows for the repository's float32 flax_model.msgpack, as
	// printed ("62.3MB"), where one was seen: an independent check of Params.
	HFFlaxSize string `json:"hf_flax_size,omitempty"`
}

// Shape returns the entry's hyper-parameters.
func (e Entry) Shape() Shape { return e.Config.Shape }

// File is the layout of catalog.json.
type File struct {
	Format string  `json:"format"`
	Source string  `json:"source"`
	Shapes []Entry `json:"shapes"`
}

// Catalog is the set of published shapes, indexed by name. It is read-only after Parse and
// safe for concurrent use.
type Catalog struct {
	entries []Entry
	byName  map[string]int
}

// Parse reads catalog.json and checks every entry: the name parses, the config is valid,
// and the stored parameter count equals the cost model's.
func Parse(data []byte) (*Catalog, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse catalog: %w", err)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("parse catalog: format %q, want %q", f.Format, Format)
	}
	return New(f.Shapes)
}

// New builds a catalog from published entries, checking each as Parse does.
func New(entries []Entry) (*Catalog, error) {
	c := &Catalog{entries: slices.Clone(entries), byName: make(map[string]int, len(entries))}
	slices.SortFunc(c.entries, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
	for i, e := range c.entries {
		if _, err := ParseName(e.Name); err != nil {
			return nil, fmt.Errorf("catalog entry %d: %w", i, err)
		}
		if e.Name != Canonical(e.Name) {
			return nil, fmt.Errorf("catalog entry %q: name is not canonical", e.Name)
		}
		if _, dup := c.byName[e.Name]; dup {
			return nil, fmt.Errorf("catalog entry %q: listed twice", e.Name)
		}
		if err := e.Shape().Validate(); err != nil {
			return nil, fmt.Errorf("catalog entry %q: %w", e.Name, err)
		}
		if got := e.Shape().Params(); got != e.Params {
			return nil, fmt.Errorf("catalog entry %q: params %d, but the cost model gives %d", e.Name, e.Params, got)
		}
		if !e.Published {
			return nil, fmt.Errorf("catalog entry %q: not marked published", e.Name)
		}
		c.byName[e.Name] = i
	}
	return c, nil
}

// Entries returns the published shapes sorted by name.
func (c *Catalog) Entries() []Entry { return slices.Clone(c.entries) }

// Len is the number of published shapes.
func (c *Catalog) Len() int { return len(c.entries) }

// Published returns the published entry for name in any accepted spelling.
func (c *Catalog) Published(name string) (Entry, bool) {
	i, ok := c.byName[Canonical(name)]
	if !ok {
		return Entry{}, false
	}
	return c.entries[i], true
}

// UnknownShapeError reports a name that is neither published nor valid under the grammar,
// with the closest published names. It matches ErrUnknownShape and ErrBadName.
type UnknownShapeError struct {
	Name        string
	Suggestions []string
	Err         *NameError // the grammar's complaint
}

func (e *UnknownShapeError) Error() string {
	msg := fmt.Sprintf("catalog: unknown shape %q: %s", e.Name, e.Err.Reason)
	if len(e.Suggestions) > 0 {
		msg += "; did you mean " + strings.Join(e.Suggestions, ", ") + "?"
	}
	return msg
}

// Unwrap returns ErrUnknownShape and the grammar's *NameError.
func (e *UnknownShapeError) Unwrap() []error { return []error{ErrUnknownShape, e.Err} }

// Lookup resolves a name in any accepted spelling: the published entry if there is one,
// otherwise an unpublished entry derived from the grammar (sweeps use shapes that were never
// trained). A name that neither is published nor parses returns an *UnknownShapeError that
// suggests the closest published names.
func (c *Catalog) Lookup(name string) (Entry, error) {
	if e, ok := c.Published(name); ok {
		return e, nil
	}
	n, err := ParseName(name)
	if ne, ok := errors.AsType[*NameError](err); ok {
		return Entry{}, &UnknownShapeError{Name: name, Suggestions: c.Suggest(name, 3), Err: ne}
	}
	if err != nil {
		return Entry{}, fmt.Errorf("lookup %q: %w", name, err)
	}
	s, err := n.Shape()
	if err != nil { // ParseName has already derived the shape once
		return Entry{}, fmt.Errorf("lookup %q: %w", name, err)
	}
	return Entry{
		Name:         n.String(),
		HFRepo:       n.HFRepo(),
		ConfigSource: ConfigFromName,
		Params:       s.Params(),
		Config:       s.HFConfig(),
	}, nil
}

// Suggest returns up to n published names closest to name by edit distance (ties by name),
// leaving out those that share too little with it to help.
func (c *Catalog) Suggest(name string, n int) []string {
	q := strings.TrimPrefix(Canonical(name), Prefix)
	type cand struct {
		name string
		d    int
	}
	cands := make([]cand, 0, len(c.entries))
	for _, e := range c.entries {
		short := strings.TrimPrefix(e.Name, Prefix)
		d := levenshtein.ComputeDistance(q, short)
		if d <= max(len(q), len(short))/2+1 {
			cands = append(cands, cand{e.Name, d})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.d, b.d), cmp.Compare(a.name, b.name))
	})
	out := make([]string, 0, n)
	for _, c := range cands[:min(n, len(cands))] {
		out = append(out, c.name)
	}
	return out
}
