package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

// modelRow is one model in ls and its --json output.
type modelRow struct {
	Ref     string    `json:"ref"`
	Name    string    `json:"name"`
	Tag     string    `json:"tag"`
	Size    int64     `json:"size"`
	Files   int       `json:"files"`
	Chunks  int       `json:"chunks"`
	Digest  string    `json:"digest"`
	Created time.Time `json:"created"`
	Dir     string    `json:"dir,omitempty"`   // local models
	Local   string    `json:"local,omitempty"` // --remote: "pulled", "outdated" or "absent"
	Error   string    `json:"error,omitempty"` // --remote: a manifest that could not be read
}

func formatSize(n int64) string { return humanize.IBytes(uint64(n)) }

func rowOf(m *zoo.Manifest, digest zoo.Digest) modelRow {
	return modelRow{Ref: m.Ref().String(), Name: m.Name, Tag: m.Tag, Size: m.Size(), Files: len(m.Files),
		Chunks: m.Chunks(), Digest: digest.String(), Created: m.Created}
}

// localState says how the local cache relates to a registry manifest.
func localState(cache *zoo.Cache, ref zoo.Ref, digest zoo.Digest) string {
	lm, err := cache.Model(ref)
	switch {
	case err != nil:
		return "absent"
	case lm.Digest == digest:
		return "pulled"
	}
	return "outdated"
}

func newLsCmd() *cobra.Command {
	var remote, asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the models in the local cache, or in the registry with --remote",
		Example: `  t5zoo ls
  t5zoo ls --remote --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			var rows []modelRow
			if remote {
				store, err := openRegistry(cache)
				if err != nil {
					return err
				}
				refs, err := store.ListManifests(cmd.Context())
				if err != nil {
					return fmt.Errorf("ls %s: %w", registryName(store), err)
				}
				for _, ref := range refs {
					m, digest, err := zoo.FetchManifest(cmd.Context(), store, ref, zoo.RetryPolicy{}, nil)
					if err != nil {
						if errors.Is(err, zoo.ErrAccessDenied) || errors.Is(err, zoo.ErrNoBucket) {
							return err
						}
						rows = append(rows, modelRow{Ref: ref.String(), Name: ref.Name, Tag: ref.Tag, Error: err.Error()})
						continue
					}
					row := rowOf(m, digest)
					row.Local = localState(cache, ref, digest)
					rows = append(rows, row)
				}
			} else {
				models, err := cache.List(cmd.Context())
				if err != nil {
					return err
				}
				for _, lm := range models {
					row := rowOf(lm.Manifest, lm.Digest)
					row.Dir = lm.Dir
					rows = append(rows, row)
				}
			}
			if asJSON {
				if rows == nil {
					rows = []modelRow{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return writeModelTable(cmd.OutOrStdout(), rows, remote)
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "list the registry (T5ZOO_REGISTRY) instead of the local cache")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func writeModelTable(w io.Writer, rows []modelRow, remote bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	last := "DIR"
	if remote {
		last = "LOCAL"
	}
	fmt.Fprintf(tw, "MODEL\tSIZE\tFILES\tMANIFEST\tCREATED\t%s\n", last)
	for _, r := range rows {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%s\n", r.Ref, r.Error)
			continue
		}
		extra := r.Dir
		if remote {
			extra = r.Local
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Ref, formatSize(r.Size), r.Files,
			zoo.Digest(r.Digest).Short(), r.Created.Format("2006-01-02 15:04"), extra)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d models\n", len(rows))
	return err
}
