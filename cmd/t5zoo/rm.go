package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

func newRmCmd() *cobra.Command {
	var remote bool
	cmd := &cobra.Command{
		Use:   "rm NAME[:TAG]",
		Short: "Remove a model from the local cache, or its manifest from the registry with --remote",
		Long: `Rm removes the local copy of NAME:TAG (its manifest first, so it stops being whole at
once, then its directory and any partial pull). With --remote it deletes the registry's
manifest of NAME:TAG instead; the chunks stay, since other models may share them.`,
		Example: `  t5zoo rm t5-efficient-tiny
  t5zoo rm acme/sst2:v1 --remote`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := zoo.ParseRef(args[0])
			if err != nil {
				return err
			}
			cache, err := openCache()
			if err != nil {
				return err
			}
			if remote {
				store, err := openRegistry(cache)
				if err != nil {
					return err
				}
				if err := store.DeleteManifest(cmd.Context(), ref); err != nil {
					return fmt.Errorf("rm --remote %s: %w", ref, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s from %s\n", ref, registryName(store))
				return nil
			}
			if err := cache.Remove(cmd.Context(), ref); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", ref)
			return nil
		},
	}
	cmd.Flags().BoolVar(&remote, "remote", false, "delete the registry's manifest instead of the local copy")
	return cmd
}
