package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/zoo"
)

// openZoo opens the local cache and the registry T5ZOO_REGISTRY names.
func openZoo() (*zoo.Cache, zoo.Store, error) {
	cache, err := openCache()
	if err != nil {
		return nil, nil, err
	}
	store, err := openRegistry(cache)
	if err != nil {
		return nil, nil, err
	}
	return cache, store, nil
}

// hubClient is the Hugging Face Hub of HF_ENDPOINT, with the token of HF_TOKEN.
func hubClient() *hub.Client {
	return &hub.Client{Endpoint: getenv("HF_ENDPOINT"), Token: getenv("HF_TOKEN")}
}

// newFetcher gets models by name from the cache, the registry and the Hub of the
// environment.
func newFetcher() (*fetch.Fetcher, error) {
	cache, store, err := openZoo()
	if err != nil {
		return nil, err
	}
	c, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	return &fetch.Fetcher{Cache: cache, Store: store, Catalog: c, Hub: hubClient()}, nil
}

// modelDir resolves a MODEL argument to a model directory with config.json and weights (see
// resolveModel).
func modelDir(cmd *cobra.Command, arg string) (string, error) {
	return resolveModel(cmd, arg, fetch.CheckOptions{})
}

// resolveModel resolves a MODEL argument: what looks like a path (fetch.LooksLikePath) is
// checked to be a model directory with what need asks and used as it is; anything else is
// a registry name: the local cache's copy, pulled from the registry on first use, or, for a
// published catalog shape the registry lacks, imported from the Hub first.
func resolveModel(cmd *cobra.Command, arg string, need fetch.CheckOptions) (string, error) {
	if fetch.LooksLikePath(arg) {
		if err := fetch.CheckDir(arg, need); err != nil {
			return "", err
		}
		return arg, nil
	}
	ref, err := zoo.ParseRef(arg)
	if err != nil {
		return "", fmt.Errorf("%q is neither a model directory nor a registry name: %w", arg, err)
	}
	f, err := newFetcher()
	if err != nil {
		return "", err
	}
	lm, err := fetchModel(cmd.Context(), f, cmd.ErrOrStderr(), cmd.ErrOrStderr(), ref, true)
	if err != nil {
		if strings.Contains(arg, "/") {
			return "", fmt.Errorf("%w\n(and %s does not exist as a directory)", err, arg)
		}
		return "", err
	}
	return lm.Dir, nil
}

// fetchModel is Fetcher.Model with the CLI's progress: bars or lines for the pull, and for
// an import the download, the parity verdict and the push, on errOut; the line saying what
// was imported goes to out.
func fetchModel(ctx context.Context, f *fetch.Fetcher, out, errOut io.Writer, ref zoo.Ref, importToo bool) (*zoo.LocalModel, error) {
	pull := newProgressUI(errOut, "pull")
	var push *progressUI
	opts := fetch.Options{
		Pull:   zoo.PullOptions{Progress: pull.update, Logger: pull.logger(false)},
		Import: importToo,
		OnImport: func(repo string) {
			fmt.Fprintf(errOut, "%s is not in the registry; importing %s from the Hugging Face Hub (%s)\n", ref, repo, f.Hub.ResolveURL(repo, "main", ""))
			push = newProgressUI(errOut, "push")
		},
		DownloadProgress: downloadProgress(errOut),
		OnConverted:      func(m *convert.Meta) { writeParity(errOut, ref.String(), m) },
		PushProgress:     func(p zoo.Progress) { push.update(p) },
		OnImported: func(r *fetch.ImportResult) {
			push.finish(true)
			push = nil
			fmt.Fprintf(out, "imported %s@%s (commit %.12s) as %s (%s, %s)\n", r.Repo, r.Revision, r.Commit, r.Ref, r.Meta.DType, r.Push.Digest.Short())
		},
	}
	lm, err := f.Model(ctx, ref, opts)
	if push != nil {
		push.finish(false)
	}
	pull.finish(err == nil)
	return lm, err
}

// withImportHint adds, to a registry miss for a published shape, how to import it from the
// Hub.
func withImportHint(arg string, err error) error {
	if repo, ok := publishedRepo(arg); ok && errors.Is(err, zoo.ErrNotFound) && !strings.Contains(err.Error(), "t5zoo import hf") {
		return fmt.Errorf("%w\n%s is a published checkpoint: import it from the Hugging Face Hub with `t5zoo import hf %s` or `t5zoo pull --import %s`", err, arg, repo, arg)
	}
	return err
}

// publishedRepo returns the Hub repository of a published catalog shape named by arg (any
// spelling, optionally with a tag).
func publishedRepo(arg string) (string, bool) {
	ref, err := zoo.ParseRef(arg)
	if err != nil {
		return "", false
	}
	c, err := loadCatalog()
	if err != nil {
		return "", false
	}
	e, ok := c.Published(ref.Name)
	if !ok {
		return "", false
	}
	return e.HFRepo, true
}

// importPublished imports a published shape from the Hub into the registry under ref (and
// pulls it), as run does by name; pull --import calls it after a registry miss.
func importPublished(ctx context.Context, out, errOut io.Writer, ref zoo.Ref) error {
	if _, ok := publishedRepo(ref.Name); !ok {
		return fmt.Errorf("%s is not a published catalog shape; only those can be imported by name", ref)
	}
	f, err := newFetcher()
	if err != nil {
		return err
	}
	_, err = fetchModel(ctx, f, out, errOut, ref, true)
	return err
}

// loadDTypeUsage is the help of --dtype on the verbs that load a model.
const loadDTypeUsage = "weight type in memory: f32, bf16 (activations stay float32) or int8 (per-row weights, activations quantized per row); default: the checkpoint's own (f16 as f32)"

// parseLoadDType checks a --dtype for infer.LoadOptions.DType: "" keeps the checkpoint's
// type; f16 is a storage type only, the engine has no float16 kernels.
func parseLoadDType(s string) (catalog.DType, error) {
	if s == "" {
		return "", nil
	}
	dt, err := catalog.ParseDType(s)
	if err != nil {
		return "", fmt.Errorf("--dtype: %w", err)
	}
	if dt == catalog.F16 {
		return "", fmt.Errorf("--dtype f16: the engine computes in f32, bf16 or int8 (an f16 checkpoint loads as f32)")
	}
	return dt, nil
}
