package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo"
	"github.com/t5zoo/t5zoo/catalog"
)

// Default lengths at which listings price FLOPs: T5's usual 512-token input and a
// 128-token target.
const (
	defaultInputLen  = 512
	defaultTargetLen = 128
)

func loadCatalog() (*catalog.Catalog, error) {
	c, err := catalog.Parse(t5zoo.CatalogJSON())
	if err != nil {
		return nil, fmt.Errorf("embedded catalog: %w", err)
	}
	return c, nil
}

func newCatalogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "List and describe the T5 shapes: config, parameters, FLOPs, bytes",
	}
	cmd.AddCommand(newCatalogLsCmd(), newCatalogShowCmd())
	return cmd
}

type lengthFlags struct{ input, target int }

func (l *lengthFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&l.input, "input-len", defaultInputLen, "input length (tokens) at which FLOPs are priced")
	cmd.Flags().IntVar(&l.target, "target-len", defaultTargetLen, "target length (tokens) at which FLOPs are priced")
}

func (l lengthFlags) check() error {
	if l.input < 0 || l.target < 0 || l.input > catalog.MaxSeqLen || l.target > catalog.MaxSeqLen {
		return fmt.Errorf("--input-len and --target-len must be between 0 and %d tokens", catalog.MaxSeqLen)
	}
	return nil
}

func newCatalogLsCmd() *cobra.Command {
	var (
		where   []string
		sortBy  string
		asJSON  bool
		lengths lengthFlags
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the published shapes",
		Long: `List the published shapes, filtered with --where and ordered with --sort.

--where takes FIELD OP VALUE (OP: = != < <= > >= ~), repeated or comma-separated;
numbers take k/M/G suffixes. --sort takes fields, comma-separated, "-" for descending.
Fields:
` + catalog.FieldHelp(),
		Example: `  t5zoo catalog ls
  t5zoo catalog ls --where 'params<100M' --where size=small --sort -layers
  t5zoo catalog ls --where 'layers>=48,d_model<=512' --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lengths.check(); err != nil {
				return err
			}
			c, err := loadCatalog()
			if err != nil {
				return err
			}
			f, err := catalog.ParseFilter(where...)
			if err != nil {
				return err
			}
			rows := c.Rows(f, lengths.input, lengths.target)
			if err := catalog.SortRows(rows, sortBy); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, rows)
			}
			return writeTable(out, rows, lengths)
		},
	}
	cmd.Flags().StringArrayVarP(&where, "where", "w", nil, "filter: FIELD OP VALUE (repeatable)")
	cmd.Flags().StringVarP(&sortBy, "sort", "s", "name", "sort keys: params, flops, layers, d_model, … (-KEY descending)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "write a JSON array")
	lengths.register(cmd)
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeTable(w io.Writer, rows []catalog.Row, l lengthFlags) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tENC/DEC\tD_MODEL\tD_FF\tHEADS×D_KV\tFFN\tPARAMS\tGFLOPs %d→%d\tF32\n", l.input, l.target)
	for _, r := range rows {
		name := r.Name
		if len(r.Notes) > 0 {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%d\t%d×%d\t%s\t%s\t%.1f\t%s\n",
			name, r.NumLayers, r.NumDecoderLayers, r.DModel, r.DFF, r.NumHeads, r.DKV,
			r.FeedForwardProj, humanCount(r.Params), float64(r.FLOPs)/1e9, humanize.Bytes(uint64(r.BytesF32)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	anomalies := 0
	for _, r := range rows {
		if len(r.Notes) > 0 {
			anomalies++
		}
	}
	_, err := fmt.Fprintf(w, "%d shapes", len(rows))
	if anomalies > 0 {
		_, err = fmt.Fprintf(w, "; * = config departs from the name (%d; see catalog show)", anomalies)
	}
	fmt.Fprintln(w)
	return err
}

// humanCount prints a parameter count the way the model cards do: 222.9M, 11.3B.
func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// shapeReport is `catalog show --json`: the entry with its costs.
type shapeReport struct {
	catalog.Entry
	FLOPs   catalog.FLOPs           `json:"flops"`
	Bytes   map[catalog.DType]int64 `json:"bytes"`
	KVCache catalog.KVCache         `json:"kv_cache"`
	Request requestKV               `json:"request_kv"`
	Tensors int                     `json:"tensors"`
}

// requestKV is the cache one request of the report's lengths holds at its longest.
type requestKV struct {
	InputLen  int   `json:"input_len"`
	TargetLen int   `json:"target_len"`
	Bytes     int64 `json:"bytes"`
}

func newShapeReport(e catalog.Entry, l lengthFlags) shapeReport {
	s := e.Shape()
	r := shapeReport{
		Entry:   e,
		FLOPs:   s.FLOPs(l.input, l.target),
		Bytes:   map[catalog.DType]int64{},
		KVCache: s.KVCacheBytes(),
		Tensors: len(s.Tensors()),
	}
	for _, dt := range catalog.DTypes() {
		r.Bytes[dt] = s.WeightBytes(dt)
	}
	r.Request = requestKV{InputLen: l.input, TargetLen: l.target, Bytes: r.KVCache.RequestKVBytes(l.input, l.target)}
	return r
}

func newCatalogShowCmd() *cobra.Command {
	var (
		asJSON  bool
		lengths lengthFlags
	)
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one shape's config and costs (published or any name the grammar accepts)",
		Example: `  t5zoo catalog show t5-efficient-base
  t5zoo catalog show google/t5-efficient-base-nl36 --json
  t5zoo catalog show small-nl20-dm768 --input-len 256 --target-len 32`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lengths.check(); err != nil {
				return err
			}
			c, err := loadCatalog()
			if err != nil {
				return err
			}
			e, err := c.Lookup(args[0])
			if err != nil {
				return err
			}
			rep := newShapeReport(e, lengths)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return writeShow(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON")
	lengths.register(cmd)
	return cmd
}

func writeShow(w io.Writer, r shapeReport) error {
	s := r.Shape()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Name)
	switch {
	case r.Published:
		fmt.Fprintf(&b, "  published      %s (%s; config %s)\n", r.HFRepo, r.Existence, r.ConfigSource)
	default:
		fmt.Fprintf(&b, "  published      no: derived from the name (no checkpoint was released)\n")
	}
	act, gated, _ := s.Activation()
	ffn := act
	if gated {
		ffn = "gated " + act
	}
	tied := "tied to the embedding (output scaled by d_model^-0.5)"
	if !s.TieWordEmbeddings {
		tied = "untied lm_head"
	}
	fmt.Fprintf(&b, "  layers         %d encoder + %d decoder\n", s.NumLayers, s.NumDecoderLayers)
	fmt.Fprintf(&b, "  d_model        %d\n  d_ff           %d (%s)\n", s.DModel, s.DFF, ffn)
	fmt.Fprintf(&b, "  attention      %d heads × d_kv %d = %d\n", s.NumHeads, s.DKV, s.InnerDim())
	fmt.Fprintf(&b, "  vocab          %d, %s\n", s.VocabSize, tied)
	fmt.Fprintf(&b, "  position bias  %d buckets, max distance %d\n", s.RelativeAttentionNumBuckets, s.RelativeAttentionMaxDistance)
	fmt.Fprintf(&b, "  special ids    pad %d, eos %d, decoder start %d; layer_norm_epsilon %g\n", s.PadTokenID, s.EOSTokenID, s.DecoderStartTokenID, s.LayerNormEpsilon)
	fmt.Fprintf(&b, "  parameters     %s (%s)\n", humanize.Comma(r.Params), humanCount(r.Params))
	fmt.Fprintf(&b, "  weights        ")
	for i, dt := range catalog.DTypes() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", dt, humanize.Bytes(uint64(r.Bytes[dt])))
	}
	b.WriteString("\n")
	f := r.FLOPs
	fmt.Fprintf(&b, "  FLOPs          input %d, target %d: encoder %.2f GFLOP (%.1f MFLOP/token), decoder %.2f GFLOP (%.1f MFLOP/token), total %.2f GFLOP\n",
		f.InputLen, f.TargetLen, float64(f.Encoder)/1e9, f.EncoderPerToken/1e6, float64(f.Decoder)/1e9, f.DecoderPerToken/1e6, float64(f.Total)/1e9)
	fmt.Fprintf(&b, "  KV cache       %s per target token (self), %s per input token (cross); %s for this request\n",
		humanize.Bytes(uint64(r.KVCache.SelfPerTargetToken)), humanize.Bytes(uint64(r.KVCache.CrossPerInputToken)), humanize.Bytes(uint64(r.Request.Bytes)))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note           %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
