package fetch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/zoo"
)

// LooksLikePath reports whether arg, written where a model is expected, is a filesystem path
// rather than a registry name: it exists; it starts with "/", "." or "~"; it contains a
// path separator other than "/" (Windows' "\"); or it contains "/" and either is no valid
// name or its first element is an existing directory (testdata/tiny, not acme/tiny). A name
// never starts with "." or "/", so "./acme/tiny" always means the directory.
func LooksLikePath(arg string) bool {
	if arg == "" {
		return false
	}
	if _, err := os.Lstat(arg); err == nil {
		return true
	}
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") || strings.HasPrefix(arg, "~") {
		return true
	}
	if os.PathSeparator != '/' && strings.ContainsRune(arg, os.PathSeparator) {
		return true
	}
	first, _, ok := strings.Cut(arg, "/")
	if !ok {
		return false
	}
	if _, err := zoo.ParseRef(arg); err != nil {
		return true
	}
	fi, err := os.Stat(first)
	return err == nil && fi.IsDir()
}

// CheckOptions say what CheckDir requires of a model directory.
type CheckOptions struct {
	// Tokenizer requires spiece.model (run, score and serve tokenize; convert and export do
	// not need it).
	Tokenizer bool
	// Deep also opens the weights against config.json (convert.Open: headers and pickle
	// metadata, not the tensors' bytes) and parses spiece.model when present, as serve does
	// for its --model directories at start.
	Deep bool
}

// CheckDir reports whether dir is a model directory: an existing directory with
// config.json, weights (model.safetensors, pytorch_model.bin, or a shard index of either)
// and, with opts.Tokenizer, spiece.model. The error names every missing file and wraps
// ErrNotModel (and fs.ErrNotExist when dir itself is missing).
func CheckDir(dir string, opts CheckOptions) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is a file; a model is a directory holding config.json, model.safetensors (or pytorch_model.bin) and spiece.model", ErrNotModel, dir)
	}
	var missing []string
	if !exists(dir, "config.json") {
		missing = append(missing, "config.json")
	}
	weights := []string{convert.SafetensorsFile, convert.SafetensorsIndex, convert.PytorchFile, convert.PytorchIndex}
	if !anyExists(dir, weights) {
		missing = append(missing, "the weights ("+convert.SafetensorsFile+" or "+convert.PytorchFile+", or a shard index of either)")
	}
	if opts.Tokenizer && !exists(dir, "spiece.model") {
		missing = append(missing, "spiece.model (the SentencePiece tokenizer)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s has no %s", ErrNotModel, dir, strings.Join(missing, ", no "))
	}
	if !opts.Deep {
		return nil
	}
	ck, err := convert.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotModel, err)
	}
	ck.Close()
	if exists(dir, "spiece.model") {
		if _, err := tokenizer.Open(dir); err != nil {
			return fmt.Errorf("%w: %w", ErrNotModel, err)
		}
	}
	return nil
}

func exists(dir, name string) bool {
	fi, err := os.Stat(filepath.Join(dir, name))
	return err == nil && fi.Mode().IsRegular()
}

func anyExists(dir string, names []string) bool {
	for _, n := range names {
		if exists(dir, n) {
			return true
		}
	}
	return false
}
