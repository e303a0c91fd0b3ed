package cpu_test

import (
	"os"
	"testing"

	"github.com/t5zoo/t5zoo/backend"
	"github.com/t5zoo/t5zoo/backend/backendtest"
	"github.com/t5zoo/t5zoo/backend/cpu"
	"github.com/t5zoo/t5zoo/backend/cpu/kernels"
)

// TestConformance runs the backend conformance suite on every kernel path this CPU runs, or
// on the one T5ZOO_KERNEL names (scripts/test runs it once per path), holding the CPU to its
// promise: bit-identical batched and unbatched results on any number of workers.
func TestConformance(t *testing.T) {
	paths := kernels.Paths()
	if p := os.Getenv("T5ZOO_KERNEL"); p != "" {
		path, err := kernels.ParsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		paths = []kernels.Path{path}
	}
	for _, p := range paths {
		t.Run(p.String(), func(t *testing.T) {
			ks, err := kernels.New(p)
			if err != nil {
				t.Skipf("%s: %v", p, err)
			}
			backendtest.Run(t, backendtest.Config{
				New: func(_ testing.TB, threads int) backend.Backend {
					return cpu.New(cpu.Options{Threads: threads, Kernels: ks})
				},
				Promise: backendtest.BitIdenticalBatching,
			})
		})
	}
}
