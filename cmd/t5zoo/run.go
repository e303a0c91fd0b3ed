package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/fetch"
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
		Long: `Run loads MODEL, encodes each TEXT with the model's tokenizer and generates a
continuation of each, all TEXTs in one batch: greedy by default, beam search with
--beams K, or sampling with --sample (--temperature 0 samples the most likely token, that
is greedy decoding). Decoding follows Hugging Face transformers v4.30.2's generate; it
stops at </s> or after --max-new-tokens tokens.

MODEL is a model directory (config.json, model.safetensors or pytorch_model.bin or their
shards, spiece.model) — anything that exists, starts with "." or "/", or whose first
path element is a local directory is read as one — or else a registry name (NAME[:TAG]):
the local cache's copy, pulled from the registry (T5ZOO_REGISTRY) on first use. A
published Scale Efficiently shape that the registry lacks is imported from the Hugging
Face Hub first (HF_ENDPOINT), as t5zoo import hf does, and pushed to the registry.

Without --json each hypothesis is printed as its text (special tokens left out); beam
search prints "score<TAB>text" lines, best first. With --json each input gives one JSON
object per line: {"ids": [...], "text": "...", "logprobs": [...]}, where ids start with
the decoder start token and logprobs holds the log-probability of each generated token;
beam search gives {"beams": [{"ids", "text", "score"}, ...]} and sampling with
--num-return above 1 gives {"samples": [{"ids", "text", "logprobs"}, ...]}.`,
		Example: `  t5zoo run t5-efficient-tiny "summarize: The house is wonderful and the garden is large."
  t5zoo run ./t5-small "translate English to German: The house is wonderful."
  t5zoo run ./t5-small --beams 4 --num-return 2 --json "summarize: ..."
  t5zoo run ./t5-small --sample --top-k 50 --top-p 0.9 --seed 7 "question: ..."`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := f.options(cmd)
			if err != nil {
				return err
			}
			dir, err := resolveModel(cmd, args[0], fetch.CheckOptions{Tokenizer: true})
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
	fl.IntVar(&f.maxNew, "max-new-tokens", infer.DefaultMaxNewTokens, "most tokens to generate after the start token (at least 1)")
	fl.IntVar(&f.beams, "beams", 1, "beam search with this many beams (1: greedy)")
	fl.Float64Var(&f.lengthPenalty, "length-penalty", 1.0, "with --beams, the exponent of the length dividing a hypothesis' log-probability")
	fl.BoolVar(&f.earlyStopping, "early-stopping", false, "with --beams, stop as soon as --beams hypotheses are finished")
	fl.IntVar(&f.numReturn, "num-return", 1, "hypotheses to print per input, at least 1 (with --beams or --sample)")
	fl.BoolVar(&f.sample, "sample", false, "sample from the model's distribution instead of taking the most likely token")
	fl.Float64Var(&f.temperature, "temperature", 1.0, "with --sample, divide the logits by this (0: greedy decoding, the most likely token)")
	fl.IntVar(&f.topK, "top-k", 50, "with --sample, keep the k most likely tokens (0: all; 50 is HF's default)")
	fl.Float64Var(&f.topP, "top-p", 1.0, "with --sample, keep the most likely tokens whose probability reaches p, in (0, 1] (1: all)")
	fl.Uint64Var(&f.seed, "seed", 0, "with --sample, the random seed (the same seed gives the same samples)")
	fl.IntVar(&f.threads, "threads", 0, "worker threads of the engine (0: GOMAXPROCS)")
	fl.StringVar(&f.dtype, "dtype", "", loadDTypeUsage)
	fl.BoolVar(&f.jsonOut, "json", false, "write one JSON object per input")
	return cmd
}

// options turns the flags into GenerateOptions, rejecting flags that do not go together and
// values that mean nothing. A value given as 0 means what it says, never the default that a
// zero means in GenerateOptions: --temperature 0 is greedy decoding (the limit of sampling
// as the temperature falls), and --max-new-tokens 0, --num-return 0 and --top-p 0 are errors.
func (f *runFlags) options(cmd *cobra.Command) (infer.GenerateOptions, error) {
	changed := cmd.Flags().Changed
	bad := func(format string, args ...any) (infer.GenerateOptions, error) {
		return infer.GenerateOptions{}, fmt.Errorf(format, args...)
	}
	switch {
	case f.maxNew < 1:
		return bad("--max-new-tokens %d: want at least 1", f.maxNew)
	case f.beams < 1:
		return bad("--beams %d: want at least 1", f.beams)
	case f.numReturn < 1:
		return bad("--num-return %d: want at least 1", f.numReturn)
	case f.threads < 0:
		return bad("--threads %d: want 0 (GOMAXPROCS) or more", f.threads)
	case math.IsNaN(f.lengthPenalty) || math.IsInf(f.lengthPenalty, 0):
		return bad("--length-penalty %v: want a finite number", f.lengthPenalty)
	case math.IsNaN(f.temperature) || math.IsInf(f.temperature, 0) || f.temperature < 0:
		return bad("--temperature %v: want 0 (greedy) or a positive number", f.temperature)
	case f.topK < 0:
		return bad("--top-k %d: want 0 (every token) or more", f.topK)
	case !(f.topP > 0 && f.topP <= 1):
		return bad("--top-p %v: want a probability in (0, 1] (1 keeps every token)", f.topP)
	}
	if f.beams == 1 {
		for _, name := range []string{"length-penalty", "early-stopping"} {
			if changed(name) {
				return bad("--%s goes with --beams", name)
			}
		}
		if changed("num-return") && !f.sample {
			return bad("--num-return goes with --beams or --sample")
		}
	}
	if !f.sample {
		for _, name := range []string{"temperature", "top-k", "top-p", "seed"} {
			if changed(name) {
				return bad("--%s goes with --sample", name)
			}
		}
	}
	if f.sample && f.beams > 1 {
		return bad("--sample and --beams do not go together")
	}
	sample := f.sample
	if sample && f.temperature == 0 {
		if f.numReturn > 1 {
			return bad("--temperature 0 is greedy decoding, which gives one sequence, not --num-return %d", f.numReturn)
		}
		sample = false // the most likely token at every step, whatever top-k, top-p and seed say
	}
	lp := f.lengthPenalty
	o := infer.GenerateOptions{
		MaxNewTokens: f.maxNew, NumBeams: f.beams, LengthPenalty: &lp, EarlyStopping: f.earlyStopping,
		NumReturnSequences: f.numReturn, Sample: sample,
	}
	if sample {
		o.Temperature, o.TopK, o.TopP, o.Seed = f.temperature, f.topK, f.topP, f.seed
	}
	return o, nil
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
