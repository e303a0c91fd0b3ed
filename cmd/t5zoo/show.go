package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

// showReport is show --json.
type showReport struct {
	Ref      string        `json:"ref"`
	Digest   string        `json:"digest"`
	Source   string        `json:"source"` // "registry" or "local" (not in the registry)
	Registry string        `json:"registry"`
	Local    string        `json:"local"` // "pulled", "outdated" or "absent"
	Dir      string        `json:"dir,omitempty"`
	Size     int64         `json:"size"`
	Chunks   int           `json:"chunks"`
	Blobs    int           `json:"blobs"` // distinct chunks
	Manifest *zoo.Manifest `json:"manifest"`
}

func newShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show NAME[:TAG]",
		Short: "Show a model's manifest: files, sizes, chunks, digests, and whether it is pulled",
		Long: `Show prints the registry's manifest of NAME:TAG — each file with its size, chunk count
and sha256 — and whether the local cache holds that version. A model that is only in the
local cache is shown from its local manifest.`,
		Example: `  t5zoo show t5-efficient-tiny
  t5zoo show acme/sst2:v1 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := zoo.ParseRef(args[0])
			if err != nil {
				return err
			}
			cache, store, err := openZoo()
			if err != nil {
				return err
			}
			rep := showReport{Ref: ref.String(), Registry: registryName(store), Source: "registry"}
			m, digest, err := zoo.FetchManifest(cmd.Context(), store, ref, zoo.RetryPolicy{}, nil)
			if errors.Is(err, zoo.ErrNotFound) {
				lm, lerr := cache.Model(ref)
				if lerr != nil {
					return showMissing(ref, rep.Registry, err)
				}
				m, digest, err, rep.Source = lm.Manifest, lm.Digest, nil, "local"
			}
			if err != nil {
				return fmt.Errorf("show %s: %w", ref, err)
			}
			rep.Digest, rep.Manifest = digest.String(), m
			rep.Size, rep.Chunks, rep.Blobs = m.Size(), m.Chunks(), len(m.Blobs())
			rep.Local = localState(cache, ref, digest)
			if rep.Local != "absent" {
				rep.Dir = cache.ModelDir(ref)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, rep.Ref)
			fmt.Fprintf(w, "  manifest   %s (created %s)\n", rep.Digest, m.Created.Format("2006-01-02 15:04:05 MST"))
			fmt.Fprintf(w, "  from       %s %s\n", rep.Source, rep.Registry)
			local := rep.Local
			if rep.Dir != "" {
				local += " in " + rep.Dir
			}
			fmt.Fprintf(w, "  local      %s\n", local)
			fmt.Fprintf(w, "  size       %s in %d files, %d chunks (%d distinct)\n", formatSize(rep.Size), len(m.Files), rep.Chunks, rep.Blobs)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FILE\tSIZE\tCHUNKS\tSHA256")
			for _, f := range m.Files {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", f.Path, formatSize(f.Size), len(f.Chunks), f.Digest.Hex())
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report and manifest as JSON")
	return cmd
}

// showMissing is show's error for a model neither the registry nor the cache has: for a
// catalog shape, with how to get it.
func showMissing(ref zoo.Ref, registry string, err error) error {
	err = fmt.Errorf("show %s: not in the registry %s nor in the local cache: %w", ref, registry, err)
	c, cerr := loadCatalog()
	if cerr != nil {
		return err
	}
	if e, ok := c.Published(ref.Name); ok {
		if ref.Tag != zoo.DefaultTag {
			return fmt.Errorf("%w\n%s is a published checkpoint: `t5zoo import hf %s --as %s` imports it under that tag (`t5zoo catalog show %s` describes the shape)", err, ref.Name, e.HFRepo, ref, ref.Name)
		}
		return fmt.Errorf("%w\n%s is a published checkpoint: get it with `t5zoo pull --import %s` (or `t5zoo import hf %s`; `t5zoo run %s ...` imports it on first use); `t5zoo catalog show %s` describes the shape", err, ref.Name, ref.Name, e.HFRepo, ref.Name, ref.Name)
	}
	if _, lerr := c.Lookup(ref.Name); lerr == nil {
		return fmt.Errorf("%w\n%s is a catalog shape with no published checkpoint: `t5zoo catalog show %s` describes it, `t5zoo bench --shape %s` measures its speed", err, ref.Name, ref.Name, ref.Name)
	}
	return err
}
