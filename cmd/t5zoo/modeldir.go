package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// modelDir resolves a MODEL argument to a local model directory.
func modelDir(cmd *cobra.Command, arg string) (string, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", arg, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("model %s: not a directory", arg)
	}
	return arg, nil
}
