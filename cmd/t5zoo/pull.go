package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/zoo"
)

// transferFlags are the flags pull and push share.
type transferFlags struct {
	concurrency int
	verbose     bool
}

func (f *transferFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&f.concurrency, "concurrency", zoo.DefaultConcurrency, "chunks transferred at once")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log resumes, reused files and retries")
}

func newPullCmd() *cobra.Command {
	var (
		flags      transferFlags
		fromHubToo bool
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "pull NAME[:TAG]",
		Short: "Download a model from the registry into the local cache",
		Long: `Pull downloads NAME:TAG (tag "latest" by default) from the registry (T5ZOO_REGISTRY;
unset, the local registry in $T5ZOO_HOME/registry) into $T5ZOO_HOME/models, as a model
directory that run and score load. Shape names are canonical: base-nl36 and
google/t5-efficient-base-nl36 both name t5-efficient-base-nl36.

Chunks download in parallel and each is verified before it counts, then every file's
sha256; an interrupted pull resumes where it stopped; files other local models already hold
are linked, not downloaded, once they verify. The model appears only when it is whole. A
transfer that stalls or crawls (under 1 KiB/s over 30s) is retried; --timeout bounds the
whole pull.

Pulling a model that is already present re-hashes it, as verify does, and repairs what is
damaged: only the damaged chunks are downloaded again.

A published catalog shape that the registry lacks can be imported from the Hugging Face
Hub first (as t5zoo import hf google/NAME does) with --import.`,
		Example: `  t5zoo pull t5-efficient-base-nl36
  t5zoo pull --import t5-efficient-small-el16
  T5ZOO_REGISTRY=s3://models/zoo AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000 t5zoo pull acme/sst2:v1`,
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
			pull := func() (*zoo.LocalModel, error) {
				ui := newProgressUI(cmd.ErrOrStderr(), "pull")
				lm, err := cache.Pull(cmd.Context(), store, ref, zoo.PullOptions{
					Concurrency: flags.concurrency,
					Progress:    ui.update,
					Logger:      ui.logger(flags.verbose),
					Timeout:     timeout,
				})
				ui.finish(err == nil)
				return lm, err
			}
			lm, err := pull()
			if err != nil && fromHubToo && errors.Is(err, zoo.ErrNotFound) {
				if err := importPublished(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), ref); err != nil {
					return err
				}
				lm, err = pull()
			}
			if err != nil {
				return withImportHint(args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pulled %s (%s, %s) to %s\n", ref, lm.Digest.Short(), formatSize(lm.Manifest.Size()), lm.Dir)
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up when the pull has not finished in this long (0: no limit); what it fetched is kept for the next pull")
	cmd.Flags().BoolVar(&fromHubToo, "import", false, "import a published shape from the Hugging Face Hub when the registry lacks it")
	return cmd
}
