package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/zoo"
)

// importOptions are the settings of one Hub import.
type importOptions struct {
	repo, revision string
	ref            zoo.Ref
	dtype          catalog.DType
	force          bool
	keepDownload   bool
}

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import checkpoints from elsewhere into the zoo",
	}
	cmd.AddCommand(newImportHFCmd())
	return cmd
}

func newImportHFCmd() *cobra.Command {
	var (
		revision, as, dtype, quantize string
		force, keep                   bool
	)
	cmd := &cobra.Command{
		Use:   "hf REPO_ID",
		Short: "Download a checkpoint from the Hugging Face Hub, convert it and push it to the registry",
		Long: `Import fetches REPO_ID at --revision from the Hugging Face Hub (HF_ENDPOINT overrides
the address, HF_TOKEN authorises gated repositories): config.json, the weights
(model.safetensors, or pytorch_model.bin when the repository has no safetensors; sharded
or not) and the tokenizer files. Downloads resume where an interrupted run stopped and are
checked against the Hub's sizes and hashes. The checkpoint is then converted (--dtype,
--quantize) with the parity check of convert and pushed to the registry as
NAME[:TAG]: by default a Scale Efficiently repository goes under its catalog name
(google/t5-efficient-base-dl2 → t5-efficient-base-dl2) and any other under its repo id.
A lossy conversion below the parity gate is not pushed unless --force. Under a published
catalog name the checkpoint's config.json must be that catalog shape (otherwise give
another name with --as).`,
		Example: `  t5zoo import hf google/t5-efficient-tiny
  t5zoo import hf google/t5-efficient-base-dl2 --revision main --dtype bf16 --as t5-efficient-base-dl2:bf16
  HF_TOKEN=hf_... t5zoo import hf my-org/private-t5 --as my-org/private-t5:v1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dt, err := catalog.ParseDType(dtype)
			if err != nil {
				return err
			}
			if quantize == "int8" {
				dt = catalog.Int8
			} else if quantize != "" {
				return fmt.Errorf("--quantize %q: only int8 is supported", quantize)
			}
			ref, err := importRef(args[0], as)
			if err != nil {
				return err
			}
			return importHF(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), importOptions{
				repo: args[0], revision: revision, ref: ref, dtype: dt, force: force, keepDownload: keep,
			})
		},
	}
	cmd.Flags().StringVar(&revision, "revision", "main", "branch, tag or commit of the repository")
	cmd.Flags().StringVar(&as, "as", "", "registry name NAME[:TAG] (default: the catalog name, else the repo id)")
	cmd.Flags().StringVar(&dtype, "dtype", "f32", "storage dtype: f32, bf16 or f16")
	cmd.Flags().StringVar(&quantize, "quantize", "", "int8: per-output-row weight-only quantization")
	cmd.Flags().BoolVar(&force, "force", false, "push even when the conversion fails the parity gate")
	cmd.Flags().BoolVar(&keep, "keep-download", false, "keep the downloaded files in $T5ZOO_HOME/downloads")
	return cmd
}

// importRef is the registry name an import goes under: --as, else the catalog name of a
// Scale Efficiently repository, else the repo id itself.
func importRef(repo, as string) (zoo.Ref, error) {
	if as != "" {
		return zoo.ParseRef(as)
	}
	if n, err := catalog.ParseName(repo); err == nil && strings.HasPrefix(strings.ToLower(repo), catalog.HFOrg+"/") {
		return zoo.ParseRef(n.String())
	}
	ref, err := zoo.ParseRef(repo)
	if err != nil {
		return zoo.Ref{}, fmt.Errorf("repo id %q is not a valid registry name (%w); give one with --as", repo, err)
	}
	return ref, nil
}

// importHF downloads, converts with the parity gate and pushes (fetch.Import). The download
// directory is kept on failure so that the next run resumes it.
func importHF(ctx context.Context, out, errOut io.Writer, o importOptions) error {
	f, err := newFetcher()
	if err != nil {
		return err
	}
	fmt.Fprintf(errOut, "downloading %s@%s from %s\n", o.repo, o.revision, f.Hub.ResolveURL(o.repo, o.revision, ""))
	ui := newProgressUI(errOut, "push")
	res, err := f.Import(ctx, fetch.ImportOptions{
		Repo: o.repo, Revision: o.revision, Ref: o.ref, DType: o.dtype, Force: o.force, KeepDownload: o.keepDownload,
		DownloadProgress: downloadProgress(errOut),
		OnConverted:      func(m *convert.Meta) { writeParity(errOut, o.ref.String(), m) },
		PushProgress:     ui.update,
		PushLogger:       ui.logger(false),
	})
	ui.finish(err == nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "imported %s@%s (commit %.12s) as %s (%s, %s)\n", o.repo, o.revision, res.Commit, o.ref, res.Meta.DType, res.Push.Digest.Short())
	return nil
}

// downloadProgress logs each file once when it completes. Snapshot calls it from several
// goroutines at once.
func downloadProgress(w io.Writer) func(string, int64, int64) {
	var mu sync.Mutex
	return func(file string, done, total int64) {
		if total > 0 && done == total {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(w, "  %s %s\n", file, formatSize(total))
		}
	}
}

// checkpointValidator is push's deep check: the weights agree with config.json tensor for
// tensor, and, unless forced, a lossy conversion that failed its parity gate is refused.
func checkpointValidator(force bool) func(context.Context, string) error {
	return fetch.ParityValidator(force)
}
