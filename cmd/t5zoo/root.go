package main

import (
	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each verb lives in its own file as newXxxCmd.
func newRootCmd() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "t5zoo",
		Short: "The checkpoint zoo and serving server for the T5 shapes of Scale Efficiently",
		Long: `t5zoo finds, pulls, runs and serves the 100+ T5 shapes released with
"Scale Efficiently" (Tay et al., ICLR 2022) and any other T5 checkpoint.

Start with:
  t5zoo catalog ls                      the published shapes
  t5zoo run t5-efficient-tiny "TEXT"    run one by name (fetched on first use)`,
		SilenceUsage: true,
		// Root runs only for --version (and shows the help otherwise): cobra's own --version
		// would print one line, without the build's revision and the kernel path.
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return writeVersion(cmd.OutOrStdout(), readVersion(cmd.Context()))
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print the version (as t5zoo version does)")
	root.AddCommand(
		newPushCmd(), newPullCmd(), newLsCmd(), newShowCmd(), newRmCmd(), newVerifyCmd(),
		newCatalogCmd(),
		newTokenizeCmd(),
		newRunCmd(), newScoreCmd(), newBenchCmd(), newEvalCmd(),
		newConvertCmd(), newExportCmd(), newImportCmd(),
		newServeCmd(),
		newVersionCmd(),
	)
	return root
}
