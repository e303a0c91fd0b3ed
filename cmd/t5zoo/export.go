package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
)

func newExportCmd() *cobra.Command {
	var (
		format, dtype, name string
		force               bool
	)
	cmd := &cobra.Command{
		Use:   "export MODEL OUT",
		Short: "Export a model as a Hugging Face directory (safetensors) or a GGUF file for llama.cpp",
		Long: `Export writes MODEL (a model directory, or a zoo name) for other tools.

--format safetensors (the default) writes the directory OUT in Hugging Face's layout —
config.json, model.safetensors with HF's own tensor selection and the tokenizer files — that
T5ForConditionalGeneration.from_pretrained loads unchanged; an int8 model is dequantized to
float32 on the way. --format gguf writes the file OUT with the tensor names and metadata keys
of llama.cpp's T5 support and the SentencePiece vocabulary (docs/gguf.md); --dtype picks its
matrix type: f32, f16, bf16, or int8 for llama.cpp's Q8_0; a config llama.cpp cannot run as
Hugging Face does (relative_attention_max_distance other than 128, an activation its T5 graph
lacks) is refused.

OUT may be missing or an empty directory (an empty file for gguf). Anything else is refused
unless --force, which replaces OUT whole: the export is written beside OUT and swapped in, so
no file of the old OUT is left next to the new ones and a failed export leaves OUT as it was.`,
		Example: `  t5zoo export ./tiny-int8 ./tiny-hf
  t5zoo export ./t5-efficient-tiny tiny.gguf --format gguf --dtype f16
  t5zoo export ./tiny-int8 ./tiny-hf --force`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := modelDir(cmd, args[0])
			if err != nil {
				return err
			}
			switch strings.ToLower(format) {
			case "safetensors", "hf":
				if dtype != "" {
					return fmt.Errorf("--dtype applies to gguf; safetensors keeps the model's dtype (convert first to change it)")
				}
				if err := convert.ExportHF(cmd.Context(), dir, args[1], convert.HFOptions{Force: force}); err != nil {
					return forceHint(err)
				}
			case "gguf":
				dt := catalog.F32
				if dtype != "" {
					if dt, err = catalog.ParseDType(dtype); err != nil {
						return err
					}
				}
				if err := convert.ExportGGUF(cmd.Context(), dir, args[1], convert.GGUFOptions{DType: dt, Name: name, Force: force}); err != nil {
					return forceHint(err)
				}
			default:
				return fmt.Errorf("--format %q: want safetensors or gguf", format)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", args[1])
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "safetensors", "safetensors (HF directory) or gguf (llama.cpp file)")
	cmd.Flags().StringVar(&dtype, "dtype", "", "gguf matrix type: f32 (default), f16, bf16, int8 (Q8_0)")
	cmd.Flags().StringVar(&name, "name", "", "gguf general.name")
	cmd.Flags().BoolVar(&force, "force", false, "replace a non-empty OUT whole")
	return cmd
}

// forceHint names the flag that overrides a refusal to replace OUT.
func forceHint(err error) error {
	if errors.Is(err, convert.ErrTargetExists) {
		return fmt.Errorf("%w (pass --force to replace it)", err)
	}
	return err
}
