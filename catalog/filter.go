package catalog

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Row is the flat view of an entry that listings print and that filters and sorts read:
// the config's dimensions beside its costs for one pair of sequence lengths.
type Row struct {
	Name              string `json:"name"`
	HFRepo            string `json:"hf_repo"`
	Published         bool   `json:"published"`
	Size              Size   `json:"size"`
	DModel            int    `json:"d_model"`
	DFF               int    `json:"d_ff"`
	DKV               int    `json:"d_kv"`
	NumHeads          int    `json:"num_heads"`
	NumLayers         int    `json:"num_layers"`
	NumDecoderLayers  int    `json:"num_decoder_layers"`
	VocabSize         int    `json:"vocab_size"`
	FeedForwardProj   string `json:"feed_forward_proj"`
	TieWordEmbeddings bool   `json:"tie_word_embeddings"`
	Params            int64  `json:"params"`
	// FLOPs is the forward cost (Shape.FLOPs(...).Total) at InputLen and TargetLen.
	FLOPs        int64    `json:"flops"`
	InputLen     int      `json:"input_len"`
	TargetLen    int      `json:"target_len"`
	BytesF32     int64    `json:"bytes_f32"`
	ConfigSource string   `json:"config_source"`
	Existence    string   `json:"existence,omitempty"`
	Notes        []string `json:"notes,omitempty"`
}

// Row flattens the entry, pricing FLOPs at the given lengths.
func (e Entry) Row(inputLen, targetLen int) Row {
	s := e.Shape()
	n, _ := ParseName(e.Name) // entries always parse; a zero Size marks the impossible case
	return Row{
		Name: e.Name, HFRepo: e.HFRepo, Published: e.Published, Size: n.Size,
		DModel: s.DModel, DFF: s.DFF, DKV: s.DKV, NumHeads: s.NumHeads,
		NumLayers: s.NumLayers, NumDecoderLayers: s.NumDecoderLayers, VocabSize: s.VocabSize,
		FeedForwardProj: s.FeedForwardProj, TieWordEmbeddings: s.TieWordEmbeddings,
		Params: e.Params, FLOPs: s.FLOPs(inputLen, targetLen).Total,
		InputLen: inputLen, TargetLen: targetLen, BytesF32: s.WeightBytes(F32),
		ConfigSource: e.ConfigSource, Existence: e.Existence, Notes: e.Notes,
	}
}

// field reads one value of a row: an int64, a float64 never (all dimensions are whole), a
// string or a bool.
type field struct {
	name string
	doc  string
	get  func(Row) any
}

func fields() []field {
	return []field{
		{"name", "canonical name", func(r Row) any { return r.Name }},
		{"hf_repo", "Hugging Face repository", func(r Row) any { return r.HFRepo }},
		{"published", "released as a checkpoint", func(r Row) any { return r.Published }},
		{"size", "base size (tiny … xxl)", func(r Row) any { return string(r.Size) }},
		{"d_model", "model width (alias dm)", func(r Row) any { return int64(r.DModel) }},
		{"d_ff", "FFN width (alias ff)", func(r Row) any { return int64(r.DFF) }},
		{"d_kv", "per-head width (alias kv)", func(r Row) any { return int64(r.DKV) }},
		{"num_heads", "attention heads (alias nh, heads)", func(r Row) any { return int64(r.NumHeads) }},
		{"num_layers", "encoder layers (alias el)", func(r Row) any { return int64(r.NumLayers) }},
		{"num_decoder_layers", "decoder layers (alias dl)", func(r Row) any { return int64(r.NumDecoderLayers) }},
		{"layers", "encoder + decoder layers", func(r Row) any { return int64(r.NumLayers + r.NumDecoderLayers) }},
		{"vocab_size", "embedding rows", func(r Row) any { return int64(r.VocabSize) }},
		{"feed_forward_proj", "relu, gated-gelu, …", func(r Row) any { return r.FeedForwardProj }},
		{"tie_word_embeddings", "LM head tied to the embedding", func(r Row) any { return r.TieWordEmbeddings }},
		{"params", "parameters", func(r Row) any { return r.Params }},
		{"flops", "forward FLOPs at the listing's lengths", func(r Row) any { return r.FLOPs }},
		{"bytes", "float32 weight bytes", func(r Row) any { return r.BytesF32 }},
		{"config_source", "exact, derived or name", func(r Row) any { return r.ConfigSource }},
		{"existence", "confirmed or inferred", func(r Row) any { return r.Existence }},
		{"anomaly", "the config departs from the name", func(r Row) any { return len(r.Notes) > 0 }},
	}
}

func fieldAliases() map[string]string {
	return map[string]string{"dm": "d_model", "ff": "d_ff", "kv": "d_kv", "nh": "num_heads", "heads": "num_heads",
		"el": "num_layers", "dl": "num_decoder_layers", "vocab": "vocab_size", "ffn": "feed_forward_proj"}
}

func lookupField(name string) (field, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if a, ok := fieldAliases()[key]; ok {
		key = a
	}
	fs := fields()
	for _, f := range fs {
		if f.name == key {
			return f, nil
		}
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return field{}, fmt.Errorf("catalog: unknown field %q (fields: %s; aliases dm, ff, kv, nh, el, dl)", name, strings.Join(names, ", "))
}

// FieldHelp describes the fields that filters and sorts accept, one per line.
func FieldHelp() string {
	var b strings.Builder
	for _, f := range fields() {
		fmt.Fprintf(&b, "  %-20s %s\n", f.name, f.doc)
	}
	return b.String()
}

// Filter is a conjunction of conditions on rows.
type Filter struct {
	conds []cond
}

type cond struct {
	f   field
	op  string
	val any // int64, bool or string, the type of the field
}

// ParseFilter reads conditions "FIELD OP VALUE" joined by commas or given separately, e.g.
// "d_model=512", "params<100M", "num_layers>=12,ffn=relu", "name~nl". OP is one of
// = == != < <= > >= and ~ (substring, strings only). Numbers take the suffixes k, M, G/B
// (powers of 1000) and Ki, Mi, Gi (powers of 1024).
func ParseFilter(exprs ...string) (Filter, error) {
	var f Filter
	for _, expr := range exprs {
		for part := range strings.SplitSeq(expr, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			c, err := parseCond(part)
			if err != nil {
				return Filter{}, err
			}
			f.conds = append(f.conds, c)
		}
	}
	return f, nil
}

func parseCond(s string) (cond, error) {
	i := strings.IndexAny(s, "=!<>~")
	if i <= 0 {
		return cond{}, fmt.Errorf("catalog: filter %q: want FIELD OP VALUE with OP one of = != < <= > >= ~", s)
	}
	op := s[i : i+1]
	if i+1 < len(s) && s[i+1] == '=' {
		op += "="
	}
	raw := strings.TrimSpace(s[i+len(op):])
	switch op {
	case "==":
		op = "="
	case "!", "~=":
		return cond{}, fmt.Errorf("catalog: filter %q: unknown operator %q", s, op)
	}
	f, err := lookupField(s[:i])
	if err != nil {
		return cond{}, err
	}
	c := cond{f: f, op: op}
	switch f.get(Row{}).(type) {
	case int64:
		if op == "~" {
			return cond{}, fmt.Errorf("catalog: filter %q: ~ applies to text fields only", s)
		}
		v, err := ParseCount(raw)
		if err != nil {
			return cond{}, fmt.Errorf("catalog: filter %q: %w", s, err)
		}
		c.val = v
	case bool:
		if op != "=" && op != "!=" {
			return cond{}, fmt.Errorf("catalog: filter %q: %s is true or false; use = or !=", s, f.name)
		}
		v, err := strconv.ParseBool(raw)
		if err != nil {
			return cond{}, fmt.Errorf("catalog: filter %q: %s is true or false", s, f.name)
		}
		c.val = v
	default:
		c.val = strings.ToLower(raw)
	}
	return c, nil
}

// ParseCount reads a whole number with an optional suffix: k, M, G or B (10^3, 10^6, 10^9,
// 10^9) and Ki, Mi, Gi (2^10, 2^20, 2^30); "1.5M" is 1500000. It fails on fractions that do
// not come out whole and on values beyond int64.
func ParseCount(s string) (int64, error) {
	mult := 1.0
	suffixes := []struct {
		s string
		m float64
	}{{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1e9}}
	low := strings.ToLower(s)
	for _, sf := range suffixes {
		if strings.HasSuffix(low, sf.s) {
			mult, low = sf.m, strings.TrimSuffix(low, sf.s)
			break
		}
	}
	v, err := strconv.ParseFloat(low, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v *= mult
	if v != math.Trunc(v) || math.Abs(v) >= 1<<63 {
		return 0, fmt.Errorf("%q is not a whole number in range", s)
	}
	return int64(v), nil
}

// Match reports whether r satisfies every condition.
func (f Filter) Match(r Row) bool {
	for _, c := range f.conds {
		if !c.match(r) {
			return false
		}
	}
	return true
}

func (c cond) match(r Row) bool {
	var d int
	switch v := c.f.get(r).(type) {
	case int64:
		d = cmp.Compare(v, c.val.(int64))
	case bool:
		eq := v == c.val.(bool)
		return eq == (c.op == "=")
	case string:
		v = strings.ToLower(v)
		if c.op == "~" {
			return strings.Contains(v, c.val.(string))
		}
		d = strings.Compare(v, c.val.(string))
	}
	switch c.op {
	case "=":
		return d == 0
	case "!=":
		return d != 0
	case "<":
		return d < 0
	case "<=":
		return d <= 0
	case ">":
		return d > 0
	case ">=":
		return d >= 0
	}
	return false
}

// SortRows orders rows by the comma-separated keys, each a field name with an optional "-"
// for descending order ("-params", "layers,d_model"); ties fall back to the name.
func SortRows(rows []Row, keys string) error {
	type key struct {
		f    field
		desc bool
	}
	var ks []key
	for k := range strings.SplitSeq(keys, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		desc := strings.HasPrefix(k, "-")
		f, err := lookupField(strings.TrimPrefix(k, "-"))
		if err != nil {
			return err
		}
		ks = append(ks, key{f, desc})
	}
	slices.SortStableFunc(rows, func(a, b Row) int {
		for _, k := range ks {
			d := compareAny(k.f.get(a), k.f.get(b))
			if k.desc {
				d = -d
			}
			if d != 0 {
				return d
			}
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return nil
}

func compareAny(a, b any) int {
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case string:
		return cmp.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	return 0
}

// Rows flattens the published entries that match f, priced at the given lengths, in name
// order.
func (c *Catalog) Rows(f Filter, inputLen, targetLen int) []Row {
	var rows []Row
	for _, e := range c.entries {
		if r := e.Row(inputLen, targetLen); f.Match(r) {
			rows = append(rows, r)
		}
	}
	return rows
}
