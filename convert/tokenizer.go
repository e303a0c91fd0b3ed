package convert

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/t5zoo/t5zoo/convert/spm"
)

// TokenizerFile is the SentencePiece model of a model directory.
const TokenizerFile = "spiece.model"

// CheckTokenizer checks dir's spiece.model: when present it must be a regular file that
// parses as a SentencePiece unigram model (the only kind T5, infer's tokenizer and llama.cpp's
// T5 vocabulary use). A directory without one passes: such a model takes token ids. The error
// wraps ErrCheckpoint and names spiece.model, so a server can answer 422 with it.
func CheckTokenizer(dir string) error {
	_, err := openTokenizer(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// openTokenizer parses dir's spiece.model; a missing file is an error wrapping both
// ErrCheckpoint and fs.ErrNotExist.
func openTokenizer(dir string) (*spm.Model, error) {
	p := filepath.Join(dir, TokenizerFile)
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCheckpoint, TokenizerFile, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrCheckpoint, TokenizerFile)
	}
	m, err := spm.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCheckpoint, TokenizerFile, err)
	}
	if m.ModelType != spm.Unigram {
		return nil, fmt.Errorf("%w: %s: SentencePiece model type %d, want unigram (%d) as T5 uses", ErrCheckpoint, TokenizerFile, m.ModelType, spm.Unigram)
	}
	return m, nil
}
