package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

func newPushCmd() *cobra.Command {
	var (
		flags    transferFlags
		chunkMiB int64
		force    bool
	)
	cmd := &cobra.Command{
		Use:   "push DIR NAME[:TAG]",
		Short: "Upload a model directory to the registry",
		Long: `Push uploads the model directory DIR to the registry as NAME:TAG (tag "latest" by
default). DIR must hold config.json (a T5 config), model.safetensors whose tensors agree with it, and
spiece.model; a conversion whose t5zoo.json records a failed parity check is refused unless
--force. A shape name (t5-efficient-...) promises a shape: config.json must have the
catalog's config for a published name, or the one the name spells for another, and a model
that differs is refused (push it under a name of your own, such as acme/NAME). The
other files of a model (t5zoo.json, generation_config.json, tokenizer files, README.md,
LICENSE) go too, and anything else is skipped with a warning.

Files are cut into chunks, each stored once in the registry however many models share it;
chunks already there are not uploaded again. The manifest is written last, so a pull never
sees a model whose chunks are missing.`,
		Example: `  t5zoo push ./checkpoints/base-nl36 t5-efficient-base-nl36
  t5zoo push ./sst2-finetune acme/base-nl36-sst2:v1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := zoo.ParseRef(args[1])
			if err != nil {
				return err
			}
			_, store, err := openZoo()
			if err != nil {
				return err
			}
			cat, err := loadCatalog()
			if err != nil {
				return err
			}
			ui := newProgressUI(cmd.ErrOrStderr(), "push")
			res, err := zoo.Push(cmd.Context(), store, args[0], ref, zoo.PushOptions{
				ChunkSize:   chunkMiB << 20,
				Concurrency: flags.concurrency,
				Progress:    ui.update,
				Validate:    checkpointValidator(force),
				Catalog:     cat,
				// Logger at Warn at least: skipped files are always reported.
				Logger: ui.logger(flags.verbose),
			})
			ui.finish(err == nil)
			if err != nil {
				return err
			}
			m := res.Manifest
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s (%s) to %s: %d files, %s; %d chunks uploaded (%s stored), %d already there\n",
				ref, res.Digest.Short(), registryName(store), len(m.Files), formatSize(m.Size()),
				res.ChunksUploaded, formatSize(res.BytesUploaded), res.ChunksPresent)
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().Int64Var(&chunkMiB, "chunk-mib", zoo.DefaultChunkSize>>20, "chunk size in MiB")
	cmd.Flags().BoolVar(&force, "force", false, "push a conversion that failed its parity gate (t5zoo.json)")
	return cmd
}
