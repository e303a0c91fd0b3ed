package zoo

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Resolve turns what a user typed where a model is expected into a model directory: arg
// itself when it names an existing directory ("./base" forces that reading), otherwise the
// cache's copy of the model arg names as NAME[:TAG], pulled from store first if it is not
// whole locally. With a nil store, only the cache is consulted and a model not pulled yet is
// an error wrapping ErrNotFound.
func (c *Cache) Resolve(ctx context.Context, store Store, arg string, opts PullOptions) (string, error) {
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		return arg, nil
	}
	ref, err := ParseRef(arg)
	if err != nil {
		return "", fmt.Errorf("%q is neither a directory nor a model name: %w", arg, err)
	}
	if lm, err := c.Model(ref); err == nil {
		return lm.Dir, nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	if store == nil {
		return "", fmt.Errorf("%s is not in the local cache (t5zoo pull %s): %w", ref, ref, ErrNotFound)
	}
	lm, err := c.Pull(ctx, store, ref, opts)
	if err != nil {
		return "", err
	}
	return lm.Dir, nil
}
