package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/infer"
)

// errParity reports a conversion that fell below the quality gate.
var errParity = errors.New("the converted model fails the parity gate")

func newConvertCmd() *cobra.Command {
	var (
		dtype, quantize, name string
		force, jsonOut        bool
	)
	cmd := &cobra.Command{
		Use:   "convert SRC_DIR DST_DIR",
		Short: "Convert a checkpoint (HF safetensors or pytorch_model.bin) to a t5zoo model directory",
		Long: `Convert reads the checkpoint in SRC_DIR — model.safetensors or pytorch_model.bin, single
or sharded, tied aliases resolved to shared.weight — checks every tensor against its
config.json, and writes DST_DIR: config.json, model.safetensors in the requested dtype,
the tokenizer files, and t5zoo.json (provenance with the sources' sha256, dtype,
quantization, and the parity check).

The parity check runs both models on a fixed probe and records the largest logit
difference, the mean |Δ log p| of the target tokens and the greedy agreement. An f32
conversion must be exact. A bf16, f16 or int8 model below the gate is written but marked
as failing, which push refuses unless forced; convert then exits non-zero unless --force.`,
		Example: `  t5zoo convert ./hf/t5-efficient-tiny ./tiny-f32
  t5zoo convert ./hf/t5-efficient-tiny ./tiny-bf16 --dtype bf16
  t5zoo convert ./hf/t5-efficient-tiny ./tiny-int8 --quantize int8`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dt, err := catalog.ParseDType(dtype)
			if err != nil {
				return err
			}
			switch quantize {
			case "":
			case "int8":
				dt = catalog.Int8
			default:
				return fmt.Errorf("--quantize %q: only int8 is supported", quantize)
			}
			if dt == catalog.Int8 && dtype != "f32" {
				return errors.New("--quantize int8 keeps the non-matrix weights in f32; leave --dtype at f32")
			}
			meta, err := convertAndCheck(cmd.Context(), args[0], args[1], convert.Options{DType: dt, Name: name, Origin: args[0]})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				if err := writeJSON(out, meta); err != nil {
					return err
				}
			} else {
				writeParity(out, args[1], meta)
			}
			if !meta.Parity.Passed && !force {
				return fmt.Errorf("%w (%s); the model was written to %s but will not be pushed unless forced; rerun with --force to accept it", errParity, meta.Parity.Threshold, args[1])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dtype, "dtype", "f32", "storage dtype: f32, bf16 or f16")
	cmd.Flags().StringVar(&quantize, "quantize", "", "int8: per-output-row symmetric weight-only quantization")
	cmd.Flags().StringVar(&name, "name", "", "model name to record in t5zoo.json")
	cmd.Flags().BoolVar(&force, "force", false, "accept a model below the parity gate")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "write t5zoo.json's contents as JSON")
	return cmd
}

// convertAndCheck converts src into dst, runs the parity probe against the source and
// records the result in dst's t5zoo.json.
func convertAndCheck(ctx context.Context, src, dst string, opts convert.Options) (*convert.Meta, error) {
	meta, err := convert.Convert(ctx, src, dst, opts)
	if err != nil {
		return nil, err
	}
	ref, err := infer.Load(ctx, src, infer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("parity: %w", err)
	}
	defer ref.Close()
	cand, err := infer.Load(ctx, dst, infer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("parity: %w", err)
	}
	defer cand.Close()
	p, err := evaluate.Parity(ctx, ref, cand, meta.DType, evaluate.DefaultProbe(ref.Shape().VocabSize), evaluate.DefaultThresholds())
	if err != nil {
		return nil, err
	}
	meta.Parity = p
	if err := convert.WriteMeta(dst, meta); err != nil {
		return nil, err
	}
	return meta, nil
}

func writeParity(w io.Writer, dst string, m *convert.Meta) {
	status := "PASS"
	if !m.Parity.Passed {
		status = "FAIL"
	}
	fmt.Fprintf(w, "wrote %s (%s", dst, m.DType)
	if m.Quantization != nil {
		fmt.Fprintf(w, ", %d matrices %s", m.Quantization.Tensors, m.Quantization.Scheme)
	}
	fmt.Fprintf(w, ")\nparity %s: max |Δlogit| %.3g, mean |Δlogprob| %.3g, greedy agreement %.1f%%\n  probe: %s\n  gate:  %s\n",
		status, m.Parity.MaxLogitDiff, m.Parity.MeanAbsLogprobDiff, 100*m.Parity.GreedyAgreement, m.Parity.Probe, m.Parity.Threshold)
}
