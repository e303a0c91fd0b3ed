package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

// runFlags are the run verb's options.
type runFlags struct {
	maxNew            int
	beams, numReturn  int
	lengthPenalty     float64
	earlyStopping     bool
	sample            bool
	temperature, topP float64
	topK              int
	seed              uint64
	threads           int
	dtype             string
	jsonOut           bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run MODEL TEXT...",
		Short: "Generate text with a T5 model on the CPU",
		Long: `Run loads MODEL — a model directory (config.json, model.safetensors or its shards,
spiece.model) or a zoo name, pulled into the local cache on first use — encodes each TEXT with the model's tokenizer and generates a
continuation of each, all TEXTs in one batch: greedy by default, beam search with
--beams K, or sampling with --sample. Decoding follows Hugging Face transformers
v4.30.2's generate; it stops at </s> or after --max-new-tokens tokens.

Without --json each hypothesis is printed as its text (special tokens left out); beam
search prints "score<TAB>text" lines, best first. With --json each input gives one JSON
object per line: {"ids": [...], "text": "...", "logprobs": [...]}, where ids start with
the decoder start token and logprobs holds the log-probability of each generated token;
beam search gives {"beams": [{"ids", "text", "score"}, ...]} and sampling with
--num-return above 1 gives {"samples": [{"ids", "text", "logprobs"}, ...]}.`,
		Example: `  t5zoo run ./t5-small "translate English to German: The house is wonderful."
  t5zoo run ./t5-small --beams 4 --num-return 2 --json "summarize: ..."
  t5zoo run ./t5-small --sample --top-k 50 --top-p 0.9 --seed 7 "question: ..."`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			dir, err := modelDir(cmd, args[0])
			if err != nil {
				return err
			}
			tok, err := tokenizer.Open(dir)
			if err != nil {
				return err
			}
			inputs := make([][]int, len(args)-1)
			for i, text := range args[1:] {
				if inputs[i], err = tok.Encode(text); err != nil {
					return fmt.Errorf("tokenize text %d: %w", i+1, err)
				}
			}
			dt, err := parseLoadDType(f.dtype)
			if err != nil {
				return err
			}
			m, err := infer.Load(cmd.Context(), dir, infer.LoadOptions{Threads: f.threads, DType: dt})
			if err != nil {
				return err
			}
			defer m.Close()
			gens, err := m.Generate(cmd.Context(), inputs, opts)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			if err := writeGenerations(out, tok, gens, f); err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.maxNew, "max-new-tokens", infer.DefaultMaxNewTokens, "most tokens to generate after the start token")
	fl.IntVar(&f.beams, "beams", 1, "beam search with this many beams (1: greedy)")
	fl.Float64Var(&f.lengthPenalty, "length-penalty", 1.0, "with --beams, the exponent of the length dividing a hypothesis' log-probability")
	fl.BoolVar(&f.earlyStopping, "early-stopping", false, "with --beams, stop as soon as --beams hypotheses are finished")
	fl.IntVar(&f.numReturn, "num-return", 1, "hypotheses to print per input (with --beams or --sample)")
	fl.BoolVar(&f.sample, "sample", false, "sample from the model's distribution instead of taking the most likely token")
	fl.Float64Var(&f.temperature, "temperature", 1.0, "with --sample, divide the logits by this")
	fl.IntVar(&f.topK, "top-k", 50, "with --sample, keep the k most likely tokens (0: all; 50 is HF's default)")
	fl.Float64Var(&f.topP, "top-p", 1.0, "with --sample, keep the most likely tokens whose probability reaches p")
	fl.Uint64Var(&f.seed, "seed", 0, "with --sample, the random seed (the same seed gives the same samples)")
	fl.IntVar(&f.threads, "threads", 0, "worker threads of the engine (0: GOMAXPROCS)")
	fl.StringVar(&f.dtype, "dtype", "", loadDTypeUsage)
	fl.BoolVar(&f.jsonOut, "json", false, "write one JSON object per input")
	return cmd
}

// options turns the flags into GenerateOptions, rejecting flags that do not go together.
func (f *runFlags) options(cmd *cobra.Command) (infer.GenerateOptions, error) {
	changed := cmd.Flags().Changed
	if f.beams < 1 {
		return infer.GenerateOptions{}, fmt.Errorf("--beams %d: want at least 1", f.beams)
	}
	if f.beams == 1 {
		for _, name := range []string{"length-penalty", "early-stopping"} {
			if changed(name) {
				return infer.GenerateOptions{}, fmt.Errorf("--%s goes with --beams", name)
			}
		}
		if changed("num-return") && !f.sample {
			return infer.GenerateOptions{}, errors.New("--num-return goes with --beams or --sample")
		}
	}
	if !f.sample {
		for _, name := range []string{"temperature", "top-k", "top-p", "seed"} {
			if changed(name) {
				return infer.GenerateOptions{}, fmt.Errorf("--%s goes with --sample", name)
			}
		}
	}
	if f.sample && f.beams > 1 {
		return infer.GenerateOptions{}, errors.New("--sample and --beams do not go together")
	}
	lp := f.lengthPenalty
	return infer.GenerateOptions{
		MaxNewTokens: f.maxNew, NumBeams: f.beams, LengthPenalty: &lp, EarlyStopping: f.earlyStopping,
		NumReturnSequences: f.numReturn, Sample: f.sample, Temperature: f.temperature, TopK: f.topK,
		TopP: f.topP, Seed: f.seed,
	}, nil
}

type jsonHyp struct {
	IDs      []int     `json:"ids"`
	Text     string    `json:"text"`
	Logprobs []float64 `json:"logprobs,omitempty"`
	Score    *float64  `json:"score,omitempty"`
}

// writeGenerations prints the hypotheses as text lines or JSON objects.
func writeGenerations(w io.Writer, tok *tokenizer.Tokenizer, gens []infer.Generation, f runFlags) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, g := range gens {
		hyps := make([]jsonHyp, len(g.Hypotheses))
		for j, h := range g.Hypotheses {
			text, err := tok.Decode(h.IDs, true)
			if err != nil {
				return fmt.Errorf("decode: %w", err)
			}
			hyps[j] = jsonHyp{IDs: h.IDs, Text: text, Logprobs: nonNil(h.TokenLogprobs)}
			if f.beams > 1 {
				score := h.Score
				hyps[j].Score, hyps[j].Logprobs = &score, nil
			}
		}
		if !f.jsonOut {
			for j, h := range hyps {
				var err error
				if f.beams > 1 {
					_, err = fmt.Fprintf(w, "%.6f\t%s\n", g.Hypotheses[j].Score, h.Text)
				} else {
					_, err = fmt.Fprintln(w, h.Text)
				}
				if err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			continue
		}
		var obj any
		switch {
		case f.beams > 1:
			obj = map[string]any{"beams": hyps}
		case len(hyps) > 1:
			obj = map[string]any{"samples": hyps}
		default:
			obj = hyps[0]
		}
		if err := enc.Encode(obj); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// nonNil keeps an empty list a JSON [] rather than omitting it.
func nonNil(v []float64) []float64 {
	if v == nil {
		return []float64{}
	}
	return v
}
