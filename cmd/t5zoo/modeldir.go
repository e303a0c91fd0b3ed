package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
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

// modelDir resolves a MODEL argument to a local model directory: a directory as it is, else
// a zoo name — the local cache's copy, pulled from the registry on first use.
func modelDir(cmd *cobra.Command, arg string) (string, error) {
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		return arg, nil // without touching the cache
	}
	cache, store, err := openZoo()
	if err != nil {
		return "", err
	}
	ui := newProgressUI(cmd.ErrOrStderr(), "pull")
	dir, err := cache.Resolve(cmd.Context(), store, arg, zoo.PullOptions{Progress: ui.update, Logger: ui.logger(false)})
	ui.finish(err == nil)
	if err != nil {
		return "", withImportHint(arg, err)
	}
	return dir, nil
}

// withImportHint adds, to a registry miss for a published shape, how to import it from the
// Hub.
func withImportHint(arg string, err error) error {
	if repo, ok := publishedRepo(arg); ok && errors.Is(err, zoo.ErrNotFound) {
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

// importPublished imports a published shape from the Hub into the registry under ref.
func importPublished(ctx context.Context, out, errOut io.Writer, ref zoo.Ref) error {
	repo, ok := publishedRepo(ref.Name)
	if !ok {
		return fmt.Errorf("%s is not a published catalog shape; only those can be imported by name", ref)
	}
	fmt.Fprintf(errOut, "%s is not in the registry; importing %s from the Hub\n", ref, repo)
	return importHF(ctx, out, errOut, importOptions{repo: repo, revision: "main", ref: ref, dtype: catalog.F32})
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
