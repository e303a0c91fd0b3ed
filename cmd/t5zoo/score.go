package main

import (
	"bufio"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

func newScoreCmd() *cobra.Command {
	var (
		inputs, targets []string
		threads         int
		dtype           string
		jsonOut         bool
	)
	cmd := &cobra.Command{
		Use:   "score MODEL --input TEXT --target TEXT",
		Short: "Compute log p(target | input) under a T5 model",
		Long: `Score loads MODEL (a model directory, or a registry name pulled on first use — a
published shape the registry lacks is imported from the Hub first; see run) and computes the log-probability of
each --target given the --input of the same position (both flags may repeat, in
pairs; all pairs run as one batch). Texts are tokenized with the model's tokenizer,
</s> appended; the target is teacher-forced after the decoder start token, as Hugging
Face computes the loss for labels.

Without --json it prints each pair's summed log-probability on a line; with --json one
object per pair: {"sum_logprob": x, "token_logprobs": [...]}, a log-probability for each
target token including the final </s>.`,
		Example: `  t5zoo score ./t5-small --input "translate English to German: The house is wonderful." --target "Das Haus ist wunderbar."
  t5zoo score ./t5-small --json --input "cola sentence: The book was by John read." --target unacceptable --input "cola sentence: The book was by John read." --target acceptable`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(inputs) == 0 || len(inputs) != len(targets) {
				return fmt.Errorf("want --input and --target in pairs, got %d inputs and %d targets", len(inputs), len(targets))
			}
			if threads < 0 {
				return fmt.Errorf("--threads %d: want 0 (GOMAXPROCS) or more", threads)
			}
			dir, err := resolveModel(cmd, args[0], fetch.CheckOptions{Tokenizer: true})
			if err != nil {
				return err
			}
			tok, err := tokenizer.Open(dir)
			if err != nil {
				return err
			}
			pairs := make([]infer.ScorePair, len(inputs))
			for i := range inputs {
				if pairs[i].Input, err = tok.Encode(inputs[i]); err != nil {
					return fmt.Errorf("tokenize input %d: %w", i+1, err)
				}
				if pairs[i].Target, err = tok.Encode(targets[i]); err != nil {
					return fmt.Errorf("tokenize target %d: %w", i+1, err)
				}
			}
			dt, err := parseLoadDType(dtype)
			if err != nil {
				return err
			}
			m, err := infer.Load(cmd.Context(), dir, infer.LoadOptions{Threads: threads, DType: dt})
			if err != nil {
				return err
			}
			defer m.Close()
			res, err := m.Score(cmd.Context(), pairs)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			enc := json.NewEncoder(out)
			for _, r := range res {
				if jsonOut {
					err = enc.Encode(struct {
						SumLogprob    float64   `json:"sum_logprob"`
						TokenLogprobs []float64 `json:"token_logprobs"`
					}{r.SumLogprob, r.TokenLogprobs})
				} else {
					_, err = fmt.Fprintln(out, r.SumLogprob)
				}
				if err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			if err := out.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&inputs, "input", nil, "encoder input text (repeatable, paired with --target)")
	fl.StringArrayVar(&targets, "target", nil, "target text to score (repeatable, paired with --input)")
	fl.IntVar(&threads, "threads", 0, "worker threads of the engine (0: GOMAXPROCS)")
	fl.StringVar(&dtype, "dtype", "", loadDTypeUsage)
	fl.BoolVar(&jsonOut, "json", false, "write one JSON object per pair")
	return cmd
}
