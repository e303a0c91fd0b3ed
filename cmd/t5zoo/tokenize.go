package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

func newTokenizeCmd() *cobra.Command {
	var decode, skipSpecial bool
	cmd := &cobra.Command{
		Use:   "tokenize MODEL",
		Short: "Tokenize text with a model's T5 tokenizer, or decode ids",
		Long: `Tokenize reads one JSON string per line from standard input and writes one JSON
object per line, {"ids": [...], "pieces": [...]}: the ids Hugging Face's T5Tokenizer
gives the text (</s> appended) and the token of each id ("</s>" for the end).

With --decode it reads one JSON array of ids per line and writes the decoded text as
a JSON string; --skip-special drops </s>, <pad>, <unk> and the <extra_id_N> sentinels.

MODEL is a directory with spiece.model (and, optionally, HF's tokenizer_config.json and
special_tokens_map.json), a spiece.model file, or a registry name, resolved as run does
(pulled, or imported from the Hub for a published shape, on first use).
Blank lines are skipped; a line that does not parse is an error naming it.`,
		Example: `  echo '"translate English to German: The house is wonderful."' | t5zoo tokenize ./t5-small
  echo '[13959, 1566, 12, 2968, 10, 1]' | t5zoo tokenize --decode --skip-special ./t5-small/spiece.model`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if skipSpecial && !decode {
				return errors.New("--skip-special goes with --decode")
			}
			tok, err := openTokenizer(cmd, args[0])
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			err = tokenizeLines(cmd.Context(), tok, cmd.InOrStdin(), out, decode, skipSpecial)
			if ferr := out.Flush(); err == nil && ferr != nil {
				err = fmt.Errorf("write: %w", ferr)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&decode, "decode", false, "read JSON id arrays and write the decoded text")
	cmd.Flags().BoolVar(&skipSpecial, "skip-special", false, "with --decode, leave special tokens out of the text")
	return cmd
}

// openTokenizer opens MODEL's tokenizer: a spiece.model file, a directory holding one, or a
// registry name's model.
func openTokenizer(cmd *cobra.Command, arg string) (*tokenizer.Tokenizer, error) {
	if !fetch.LooksLikePath(arg) {
		dir, err := resolveModel(cmd, arg, fetch.CheckOptions{Tokenizer: true})
		if err != nil {
			return nil, err
		}
		return tokenizer.Open(dir)
	}
	fi, err := os.Stat(arg)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: %w", arg, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(arg, "spiece.model")); err != nil {
			return nil, fmt.Errorf("%w: %s has no spiece.model (the SentencePiece tokenizer)", fetch.ErrNotModel, arg)
		}
	}
	return tokenizer.Open(arg)
}

// tokenizeLines runs the tokenize verb over in, one line at a time.
func tokenizeLines(ctx context.Context, tok *tokenizer.Tokenizer, in io.Reader, out io.Writer, decode, skipSpecial bool) error {
	r := bufio.NewReader(in)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if lerr := tokenizeLine(tok, enc, line, decode, skipSpecial); lerr != nil {
				return fmt.Errorf("stdin line %d: %w", n, lerr)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

type tokenizeResult struct {
	IDs    []int    `json:"ids"`
	Pieces []string `json:"pieces"`
}

func tokenizeLine(tok *tokenizer.Tokenizer, enc *json.Encoder, line []byte, decode, skipSpecial bool) error {
	if decode {
		var ids []int
		if err := json.Unmarshal(line, &ids); err != nil {
			return fmt.Errorf("want a JSON array of ids: %w", err)
		}
		text, err := tok.Decode(ids, skipSpecial)
		if err != nil {
			return err
		}
		return enc.Encode(text)
	}
	var text string
	if err := json.Unmarshal(line, &text); err != nil {
		return fmt.Errorf("want a JSON string: %w", err)
	}
	ids, pieces, err := tok.EncodePieces(text)
	if err != nil {
		return err
	}
	return enc.Encode(tokenizeResult{IDs: ids, Pieces: pieces})
}
