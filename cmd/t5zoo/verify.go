package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

func newVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify [NAME[:TAG]]",
		Short: "Re-hash local models against their manifests",
		Long: `Verify re-reads the local copy of NAME:TAG, or of every local model when no name is
given, and checks each file's size, each chunk's sha256 and each file's sha256 against the
manifest it was pulled with. For each model that fails it prints the command that repairs
it, t5zoo pull NAME:TAG, which re-hashes the model and downloads again only the damaged
chunks (from the registry of T5ZOO_REGISTRY), and it exits non-zero. A file that several
models share is damaged in all of them: run each printed command.`,
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
					fmt.Fprintf(w, "        %s%s\n", repairPrefix, repairCommand(ref))
				}
			}
			if failed > 0 {
				return fmt.Errorf("verify: %d of %d models failed; run the %q commands above", failed, len(refs), strings.TrimSpace(repairPrefix))
			}
			if len(refs) == 0 {
				fmt.Fprintln(w, "no local models")
			}
			return nil
		},
	}
	return cmd
}

// repairPrefix starts the line of verify's output that holds a repair command.
const repairPrefix = "repair: "

// repairCommand is what repairs a damaged local model: a pull, which re-hashes a present
// model and fetches again what is damaged.
func repairCommand(ref zoo.Ref) string { return "t5zoo pull " + ref.String() }
