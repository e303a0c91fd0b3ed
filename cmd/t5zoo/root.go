package main

import (
	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each verb lives in its own file as newXxxCmd.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "t5zoo",
		Short: "The checkpoint zoo and serving server for the T5 shapes of Scale Efficiently",
		Long: `t5zoo finds, pulls, runs and serves the 100+ T5 shapes released with
"Scale Efficiently" (Tay et al., ICLR 2022) and any other T5 checkpoint.`,
		SilenceUsage: true,
	}
	root.AddCommand(
		newPushCmd(), newPullCmd(), newLsCmd(), newShowCmd(), newRmCmd(), newVerifyCmd(),
		newCatalogCmd(),
		newTokenizeCmd(),
		newRunCmd(), newScoreCmd(), newBenchCmd(),
		newConvertCmd(), newExportCmd(), newImportCmd(),
		newServeCmd(),
	)
	return root
}
