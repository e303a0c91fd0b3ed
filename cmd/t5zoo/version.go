package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/infer"
)

// versionInfo is what t5zoo version reports.
type versionInfo struct {
	// Version is the module version ("(devel)" for a build from a working tree).
	Version string `json:"version"`
	// Revision, Time and Modified are the VCS stamp of the build, when it has one.
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	// Kernels is the kernel path the engine picks on this CPU ("generic", "avx2", "avx512").
	Kernels string `json:"kernels"`
}

// readVersion reads the build information and the kernel path of this CPU.
func readVersion(ctx context.Context) versionInfo {
	v := versionInfo{Version: "(unknown)", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	v.Kernels = kernelPath(ctx)
	return v
}

// kernelPath is the kernel path the engine picks: a model of the smallest valid shape, with
// no weights worth the name, reports it (microseconds; infer exports no other way).
func kernelPath(ctx context.Context) string {
	s := catalog.DefaultShape()
	s.DModel, s.DFF, s.DKV, s.NumHeads, s.NumLayers, s.NumDecoderLayers, s.VocabSize = 8, 8, 4, 2, 1, 1, 8
	s.RelativeAttentionNumBuckets, s.RelativeAttentionMaxDistance = 2, 2
	m, err := infer.New(ctx, s, func(string, int, []float32) error { return nil }, infer.LoadOptions{Threads: 1})
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer m.Close()
	return m.Kernels()
}

// writeVersion prints v as aligned lines.
func writeVersion(w io.Writer, v versionInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "t5zoo\t%s\n", v.Version)
	if v.Revision != "" {
		rev := v.Revision
		if v.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(tw, "revision\t%s\n", rev)
	}
	if v.Time != "" {
		fmt.Fprintf(tw, "committed\t%s\n", v.Time)
	}
	fmt.Fprintf(tw, "go\t%s\n", v.Go)
	fmt.Fprintf(tw, "platform\t%s/%s\n", v.OS, v.Arch)
	fmt.Fprintf(tw, "kernels\t%s\n", v.Kernels)
	return tw.Flush()
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision, Go version, platform and kernel path",
		Long: `Version prints t5zoo's module version and the VCS revision it was built from (when the
build recorded one), the Go version, the OS and architecture, and the kernel path the
engine picks on this CPU (generic, avx2 or avx512). t5zoo --version prints the same.`,
		Example: `  t5zoo version
  t5zoo version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := readVersion(cmd.Context())
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			return writeVersion(cmd.OutOrStdout(), v)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object")
	return cmd
}
