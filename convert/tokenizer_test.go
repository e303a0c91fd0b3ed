package convert

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
)

// A spiece.model that is not a SentencePiece unigram model is refused before anything is
// written, with an error wrapping ErrCheckpoint that names the file (finding 5 of issue 12).
func TestGarbageTokenizerRefused(t *testing.T) {
	garbage := map[string][]byte{
		"text":          []byte("this is not a sentencepiece model\n"),
		"empty":         nil,
		"truncated":     nil, // filled below: half of the real model
		"random binary": {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3},
		"pytorch zip":   []byte("PK\x03\x04garbage"),
	}
	real, err := os.ReadFile(filepath.Join(golden, "tiny-relu", "checkpoint", TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	garbage["truncated"] = real[:len(real)/2]
	for name, b := range garbage {
		t.Run(name, func(t *testing.T) {
			src := sourceDir(t, "tiny-relu", "model.safetensors")
			if err := os.WriteFile(filepath.Join(src, TokenizerFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			err := CheckTokenizer(src)
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), TokenizerFile) {
				t.Fatalf("CheckTokenizer: err = %v, want ErrCheckpoint naming %s", err, TokenizerFile)
			}
			dst := filepath.Join(t.TempDir(), "out")
			_, err = Convert(t.Context(), src, dst, Options{DType: catalog.F32})
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), TokenizerFile) {
				t.Fatalf("Convert: err = %v, want ErrCheckpoint naming %s", err, TokenizerFile)
			}
			if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Convert left %s behind (%v)", dst, err)
			}
			for _, export := range []func() error{
				func() error { return ExportHF(t.Context(), src, filepath.Join(t.TempDir(), "hf"), HFOptions{}) },
				func() error {
					return ExportGGUF(t.Context(), src, filepath.Join(t.TempDir(), "m.gguf"), GGUFOptions{})
				},
			} {
				if err := export(); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), TokenizerFile) {
					t.Errorf("export: err = %v, want ErrCheckpoint naming %s", err, TokenizerFile)
				}
			}
		})
	}
}

func TestCheckTokenizer(t *testing.T) {
	if err := CheckTokenizer(filepath.Join(golden, "tiny-gated", "checkpoint")); err != nil {
		t.Fatal(err)
	}
	// No spiece.model: a model that takes token ids, not an error.
	if err := CheckTokenizer(t.TempDir()); err != nil {
		t.Fatalf("no tokenizer: %v", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, TokenizerFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckTokenizer(dir); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("spiece.model a directory: err = %v", err)
	}
}
