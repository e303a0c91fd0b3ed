package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/fetch"
)

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
conversion must be exact. The model is converted into a temporary directory beside
DST_DIR and checked there; only then is it moved into place. A bf16, f16 or int8 model
below the gate is not written (convert exits non-zero) unless --force, which writes it
marked as failing in t5zoo.json (push refuses it unless forced too).

DST_DIR must be missing or empty; --force also replaces a non-empty DST_DIR whole (on
Linux in one atomic step), so no file of the old model stays beside the new one.`,
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
			meta, err := fetch.ConvertChecked(cmd.Context(), args[0], args[1],
				convert.Options{DType: dt, Name: name, Origin: args[0]},
				fetch.GateOptions{Force: force, Overwrite: force})
			out := cmd.OutOrStdout()
			if errors.Is(err, fetch.ErrParity) {
				writeParity(cmd.ErrOrStderr(), args[1], meta)
				return fmt.Errorf("%w; nothing was written to %s (rerun with --force to accept it)", err, args[1])
			}
			if errors.Is(err, fetch.ErrTargetExists) {
				return fmt.Errorf("%w (rerun with --force to replace it whole)", err)
			}
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(out, meta)
			}
			writeParity(out, args[1], meta)
			return nil
		},
	}
	cmd.Flags().StringVar(&dtype, "dtype", "f32", "storage dtype: f32, bf16 or f16")
	cmd.Flags().StringVar(&quantize, "quantize", "", "int8: per-output-row symmetric weight-only quantization")
	cmd.Flags().StringVar(&name, "name", "", "model name to record in t5zoo.json")
	cmd.Flags().BoolVar(&force, "force", false, "write a model below the parity gate, and replace a non-empty DST_DIR")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "write t5zoo.json's contents as JSON")
	return cmd
}

// writeParity prints a conversion's dtype and parity verdict.
func writeParity(w io.Writer, dst string, m *convert.Meta) {
	status := "PASS"
	if !m.Parity.Passed {
		status = "FAIL"
	}
	fmt.Fprintf(w, "converted %s (%s", dst, m.DType)
	if m.Quantization != nil {
		fmt.Fprintf(w, ", %d matrices %s", m.Quantization.Tensors, m.Quantization.Scheme)
	}
	fmt.Fprintf(w, ")\nparity %s: max |Δlogit| %.3g, mean |Δlogprob| %.3g, greedy agreement %.1f%%\n  probe: %s\n  gate:  %s\n",
		status, m.Parity.MaxLogitDiff, m.Parity.MeanAbsLogprobDiff, 100*m.Parity.GreedyAgreement, m.Parity.Probe, m.Parity.Threshold)
}
