package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

func newVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [NAME[:TAG]]",
		Short: "Re-hash local models against their manifests",
		Long: `Verify re-reads the local copy of NAME:TAG, or of every local model when no name is
given, and checks each file's size, each chunk's sha256 and each file's sha256 against the
manifest it was pulled with. It exits non-zero if any model fails; pull the model again to
repair it (t5zoo rm NAME, then t5zoo pull NAME).`,
		Example: `  t5zoo verify
  t5zoo verify t5-efficient-base-nl36`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cache, err := openCache()
			if err != nil {
				return err
			}
			var refs []zoo.Ref
			if len(args) == 1 {
				ref, err := zoo.ParseRef(args[0])
				if err != nil {
					return err
				}
				refs = append(refs, ref)
			} else {
				models, err := cache.List(cmd.Context())
				if err != nil {
					return err
				}
				for _, lm := range models {
					refs = append(refs, lm.Ref)
				}
			}
			failed := 0
			w := cmd.OutOrStdout()
			for _, ref := range refs {
				ui := newProgressUI(cmd.ErrOrStderr(), "verify")
				err := cache.Verify(cmd.Context(), ref, ui.update)
				ui.finish(err == nil)
				switch {
				case err == nil:
					fmt.Fprintf(w, "ok      %s\n", ref)
				case errors.Is(err, zoo.ErrNotFound) && len(args) == 1:
					return err
				case cmd.Context().Err() != nil:
					return err
				default:
					failed++
					fmt.Fprintf(w, "FAILED  %v\n", err)
				}
			}
			if failed > 0 {
				return fmt.Errorf("verify: %d of %d models failed", failed, len(refs))
			}
			if len(refs) == 0 {
				fmt.Fprintln(w, "no local models")
			}
			return nil
		},
	}
	return cmd
}
