package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/evaluate/task"
)

func newEvalTasksCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "tasks",
		Short: "List the built-in evaluation tasks and the files they read",
		Long: `Tasks lists every built-in task: its name, benchmark, version (which changes whenever
its preprocessing, postprocessing or metrics change, so old results are not reused),
whether rank mode applies, and the file it reads under --data.`,
		Example: `  t5zoo eval tasks
  t5zoo eval tasks --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type row struct {
				Name        string   `json:"name"`
				Benchmark   string   `json:"benchmark,omitempty"`
				Version     string   `json:"version"`
				Rankable    bool     `json:"rankable"`
				Files       []string `json:"files"`
				Description string   `json:"description"`
			}
			var rows []row
			for _, t := range task.Builtin() {
				rows = append(rows, row{t.Name(), t.Benchmark(), t.Version(), t.Rankable(), t.Files(), t.Description()})
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TASK\tVERSION\tMODES\tFILE (under --data)\tDESCRIPTION")
			for _, r := range rows {
				modes := "predict"
				if r.Rankable {
					modes = "predict,rank"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, modes, strings.Join(r.Files, " | "), r.Description)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print a JSON array")
	return cmd
}
