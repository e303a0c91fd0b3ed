package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer"
)

// benchFlags are the bench verb's options.
type benchFlags struct {
	shapes    []string
	batches   []int
	inputLen  int
	newTokens int
	dtype     string
	threads   int
	kernels   string
	backend   string
	repeat    int
	seed      uint64
	readMiB   int
	jsonOut   bool
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench --shape NAME[,NAME...]",
		Short: "Measure the speed and memory of T5 shapes on this machine, with random weights",
		Long: `Bench builds each shape (a catalog name, or any name the shape grammar parses) with
random weights in memory, no checkpoint needed, and measures on --threads workers:

  encoder     the encoder stack on --batch inputs of --input-len tokens: tokens/s and the
              GFLOP/s achieved (catalog FLOPs) against the machine's measured float32 FMA
              peak (int8 products can pass it: VPDPBUSD does four multiply-adds per lane)
  decode      greedy decoding of --new-tokens tokens from those inputs, every sequence of
              the batch in one decoder pass per step: ms per token (encoder and
              cross-attention keys included, total / new tokens), ms per decoder step, and the
              GB/s of weights a step reads against the machine's measured read bandwidth
  memory      parameters, weight bytes as packed, resident memory of the loaded model and
              peak resident memory of the run (Linux /proc); ×(w+kv) is the anonymous
              resident memory the model holds while it runs (after each timed run, less
              the same without the model) over the weights plus the KV cache of the batch

The FMA peak and the read bandwidth are measured by the same command before the shapes
(about a second; --read-mib of memory, freed before the shapes). Every timing is the
median of --repeat runs after one warm-up. --batch takes a list (e.g. 1,8): the encoder
and the decode are measured at each.`,
		Example: `  t5zoo bench --shape t5-efficient-tiny-kv32 --batch 1,8 --input-len 64 --new-tokens 32
  t5zoo bench --shape t5-efficient-small,t5-efficient-base --dtype bf16 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.shapes, "shape", nil, "shape names, comma-separated (catalog names or the t5-efficient-* grammar)")
	fl.IntSliceVar(&f.batches, "batch", []int{1}, "batch sizes (sequences decoded together), comma-separated")
	fl.IntVar(&f.inputLen, "input-len", 64, "input length in tokens")
	fl.IntVar(&f.newTokens, "new-tokens", 32, "tokens to generate")
	fl.StringVar(&f.dtype, "dtype", "f32", "weight type: f32, bf16 or int8")
	fl.IntVar(&f.threads, "threads", 0, "worker threads (also GOMAXPROCS); 0 means the CPUs available")
	fl.StringVar(&f.backend, "backend", "cpu", "backend: cpu, or plain (the pure-Go reference backend: slow, for checking numerics)")
	fl.StringVar(&f.kernels, "kernels", "", "the CPU backend's kernel path: generic, avx2 or avx512 (default: the fastest this CPU runs)")
	fl.IntVar(&f.repeat, "repeat", 5, "timed runs per measurement (the median is reported)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the random weights and inputs")
	fl.IntVar(&f.readMiB, "read-mib", 512, "buffer size for the read-bandwidth measurement, MiB")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON object per shape and batch instead of a table")
	_ = cmd.MarkFlagRequired("shape")
	return cmd
}

// The largest lengths and batch bench measures.
const (
	maxBenchTokens = 1 << 14
	maxBenchBatch  = 1 << 12
)

// benchResult is one shape at one batch size.
type benchResult struct {
	Shape     string `json:"shape"`
	Params    int64  `json:"params"`
	DType     string `json:"dtype"`
	Kernels   string `json:"kernels"`
	Threads   int    `json:"threads"`
	Batch     int    `json:"batch"`
	InputLen  int    `json:"input_len"`
	NewTokens int    `json:"new_tokens"`

	WeightBytes   int64 `json:"weight_bytes"`    // packed weight matrices and vectors
	KVCacheBytes  int64 `json:"kv_cache_bytes"`  // the batch's cross and self K/V at the end of the decode
	ModelRSSBytes int64 `json:"model_rss_bytes"` // resident memory added by building the model
	PeakRSSBytes  int64 `json:"peak_rss_bytes"`  // peak resident memory of the process for this shape
	BaseRSSBytes  int64 `json:"base_rss_bytes"`  // resident memory before the model
	// RunAnonBytes is the most anonymous resident memory (RssAnon: heap, weights, stacks; not
	// the binary's file-backed code pages) seen after a timed run; BaseAnonBytes the lower
	// of its value before the model was built and after it was closed.
	RunAnonBytes  int64   `json:"run_anon_bytes"`
	BaseAnonBytes int64   `json:"base_anon_bytes"`
	ResidentRatio float64 `json:"resident_ratio"` // (run anon - base anon) / (weights + KV cache)
	LoadSeconds   float64 `json:"load_seconds"`

	EncoderMS        float64 `json:"encoder_ms"`
	EncoderTokensPS  float64 `json:"encoder_tokens_per_s"`
	EncoderGFLOPS    float64 `json:"encoder_gflops"`
	EncoderPeakShare float64 `json:"encoder_peak_fraction"`

	DecodeMSPerToken float64 `json:"decode_ms_per_token"`
	DecodeStepMS     float64 `json:"decode_step_ms"`
	DecodeStepBytes  int64   `json:"decode_step_weight_bytes"`
	DecodeGBps       float64 `json:"decode_gbps"`
	DecodeBWShare    float64 `json:"decode_bandwidth_fraction"`
	GenerateGFLOPS   float64 `json:"generate_gflops"` // catalog FLOPs of encoder and decoder / generation time

	Machine infer.Machine `json:"machine"`
}

func runBench(ctx context.Context, w io.Writer, f benchFlags) error {
	dt, err := catalog.ParseDType(f.dtype)
	if err != nil {
		return err
	}
	if f.inputLen < 1 || f.newTokens < 1 || f.repeat < 1 || slices.ContainsFunc(f.batches, func(b int) bool { return b < 1 }) {
		return fmt.Errorf("bench: --batch, --input-len, --new-tokens and --repeat must be positive")
	}
	// A typo of a few digits must not start a decode that fills memory for hours: the KV
	// cache of a long decode is priced nowhere in bench.
	if f.inputLen > maxBenchTokens || f.newTokens > maxBenchTokens || slices.ContainsFunc(f.batches, func(b int) bool { return b > maxBenchBatch }) {
		return fmt.Errorf("bench: --input-len and --new-tokens go up to %d, --batch up to %d", maxBenchTokens, maxBenchBatch)
	}
	c, err := loadCatalog()
	if err != nil {
		return err
	}
	entries := make([]catalog.Entry, len(f.shapes))
	for i, name := range f.shapes {
		if entries[i], err = c.Lookup(strings.TrimSpace(name)); err != nil {
			return err
		}
	}
	if f.threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(f.threads))
	}
	mach, err := infer.MeasureMachine(ctx, infer.MeasureOptions{Threads: f.threads, Kernels: f.kernels, ReadBytes: f.readMiB << 20})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var results []benchResult
	for _, e := range entries {
		rs, err := benchShape(ctx, e, dt, f, mach)
		if err != nil {
			return fmt.Errorf("bench %s: %w", e.Name, err)
		}
		results = append(results, rs...)
		if f.jsonOut {
			for _, r := range rs {
				b, err := json.Marshal(r)
				if err != nil {
					return fmt.Errorf("bench: %w", err)
				}
				if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
		}
	}
	if f.jsonOut {
		return nil
	}
	return writeBenchTable(w, results)
}

func benchShape(ctx context.Context, e catalog.Entry, dt catalog.DType, f benchFlags, mach infer.Machine) ([]benchResult, error) {
	s := e.Shape()
	resetPeakRSS()
	base := residentBytes()
	baseAnon := procStatus("RssAnon:")
	t0 := time.Now()
	m, err := infer.New(ctx, s, convert.RandomWeights(s, f.seed), infer.LoadOptions{
		Threads: f.threads, DType: dt, Backend: f.backend, Kernels: f.kernels, MaxTokens: max(infer.DefaultMaxTokens, f.inputLen, f.newTokens+1),
	})
	if err != nil {
		return nil, err
	}
	defer m.Close() // closed below too (Close is idempotent)
	load := time.Since(t0).Seconds()
	modelRSS := residentBytes() - base

	r := rand.New(rand.NewPCG(f.seed, 99))
	inputs := func(b int) [][]int {
		out := make([][]int, b)
		for i := range out {
			out[i] = make([]int, f.inputLen)
			for j := range out[i] {
				out[i][j] = 3 + r.IntN(s.VocabSize-3)
			}
			out[i][f.inputLen-1] = s.EOSTokenID
		}
		return out
	}
	var results []benchResult
	for _, b := range f.batches {
		in := inputs(b)
		res := benchResult{
			Shape: e.Name, Params: s.Params(), DType: string(dt), Kernels: m.Kernels(), Threads: m.Threads(),
			Batch: b, InputLen: f.inputLen, NewTokens: f.newTokens, Machine: mach,
			WeightBytes: m.WeightBytes(), KVCacheBytes: int64(b) * s.KVCacheBytes().RequestKVBytes(f.inputLen, f.newTokens),
			ModelRSSBytes: modelRSS, BaseRSSBytes: base, LoadSeconds: load, DecodeStepBytes: m.DecodeStepBytes(),
		}
		// The model's memory while it runs: anonymous resident memory after each run (the
		// runs' garbage stays resident until the collector's heap goal is reached).
		var runAnon int64
		sample := func() { runAnon = max(runAnon, procStatus("RssAnon:")) }
		enc, err := timeRuns(ctx, f.repeat, func() error {
			_, err := m.Encode(ctx, in)
			sample()
			return err
		})
		if err != nil {
			return nil, err
		}
		res.EncoderMS = 1e3 * enc
		res.EncoderTokensPS = float64(b*f.inputLen) / enc
		res.EncoderGFLOPS = float64(b) * float64(s.FLOPs(f.inputLen, 0).Encoder) / enc / 1e9
		res.EncoderPeakShare = res.EncoderGFLOPS / mach.PeakGFLOPS

		var steps []float64
		var logits []float32 // one buffer for every run, as a server's decode loop keeps it
		total, err := timeRuns(ctx, f.repeat, func() error {
			st, err := greedySteps(ctx, m, in, f.newTokens, &logits)
			steps = append(steps, st)
			sample()
			return err
		})
		if err != nil {
			return nil, err
		}
		step := median(steps[1:]) // the first run is the warm-up
		res.DecodeMSPerToken = 1e3 * total / float64(f.newTokens)
		res.DecodeStepMS = 1e3 * step
		res.DecodeGBps = float64(res.DecodeStepBytes) / step / 1e9
		res.DecodeBWShare = res.DecodeGBps / mach.ReadGBps
		res.GenerateGFLOPS = float64(b) * float64(s.FLOPs(f.inputLen, f.newTokens).Total) / total / 1e9
		res.PeakRSSBytes = peakRSS()
		res.RunAnonBytes = runAnon
		results = append(results, res)
	}
	// What stays resident after the model is gone is not the model's: the base is the lower
	// of the readings before and after (they differ by what the runtime keeps, ~1-2 MB).
	if err := m.Close(); err != nil {
		return nil, fmt.Errorf("bench %s: close the model: %w", e.Name, err)
	}
	if after := residentAnon(); after > 0 && after < baseAnon {
		baseAnon = after
	}
	for i := range results {
		r := &results[i]
		r.BaseAnonBytes = baseAnon
		if w := r.WeightBytes + r.KVCacheBytes; w > 0 && r.RunAnonBytes > 0 {
			r.ResidentRatio = float64(r.RunAnonBytes-baseAnon) / float64(w)
		}
	}
	return results, nil
}

// greedySteps encodes inputs and decodes n tokens for all of them, one decoder pass per
// step, picking the argmax (no early stop at </s>); it returns the mean seconds per step.
// The logits go into *logits, grown as needed.
func greedySteps(ctx context.Context, m *infer.Model, inputs [][]int, n int, logits *[]float32) (float64, error) {
	encs, err := m.RunEncoder(ctx, inputs)
	if err != nil {
		return 0, err
	}
	seqs := make([]*infer.Sequence, len(encs))
	toks := make([]int, len(encs))
	for i, e := range encs {
		seqs[i] = e.NewSequence()
		toks[i] = m.Shape().DecoderStartTokenID
	}
	V := m.Shape().VocabSize
	t0 := time.Now()
	for range n {
		if *logits, err = m.Step(ctx, seqs, toks, *logits); err != nil {
			return 0, err
		}
		for i := range toks {
			toks[i] = m.Argmax((*logits)[i*V : (i+1)*V])
		}
	}
	return time.Since(t0).Seconds() / float64(n), nil
}

// timeRuns runs fn once to warm up, then repeat times, and returns the median seconds.
func timeRuns(ctx context.Context, repeat int, fn func() error) (float64, error) {
	var runs []float64
	for i := range repeat + 1 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		if i > 0 {
			runs = append(runs, time.Since(t0).Seconds())
		}
	}
	return median(runs), nil
}

func median(v []float64) float64 {
	c := slices.Clone(v)
	slices.Sort(c)
	return c[len(c)/2]
}

// residentBytes returns the process's resident memory after returning freed heap memory to
// the OS, from /proc/self/status (0 where that file does not exist).
func residentBytes() int64 {
	debug.FreeOSMemory()
	return procStatus("VmRSS:")
}

// residentAnon is residentBytes' RssAnon: the process's anonymous resident memory.
func residentAnon() int64 {
	debug.FreeOSMemory()
	return procStatus("RssAnon:")
}

// peakRSS is the process's peak resident memory since the last resetPeakRSS.
func peakRSS() int64 { return procStatus("VmHWM:") }

// resetPeakRSS starts a new peak (Linux: writing 5 to /proc/self/clear_refs).
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func procStatus(key string) int64 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func writeBenchTable(w io.Writer, rs []benchResult) error {
	if len(rs) == 0 {
		return nil
	}
	m := rs[0].Machine
	if _, err := fmt.Fprintf(w, "machine: %s, %d threads: FMA peak %.0f GFLOP/s, read bandwidth %.1f GB/s (measured)\n\n",
		m.Kernels, m.Threads, m.PeakGFLOPS, m.ReadGBps); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shape\tparams\tdtype\tbatch\tweights\tpeak RSS\t×(w+kv)\tenc tok/s\tenc GFLOP/s\t% peak\tms/token\tstep ms\tGB/s\t% bw\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.2f\t%.0f\t%.0f\t%.0f%%\t%.3f\t%.3f\t%.1f\t%.0f%%\t\n",
			r.Shape, humanCount(r.Params), r.DType, r.Batch, humanize.IBytes(uint64(r.WeightBytes)), humanize.IBytes(uint64(r.PeakRSSBytes)), r.ResidentRatio,
			r.EncoderTokensPS, r.EncoderGFLOPS, 100*r.EncoderPeakShare, r.DecodeMSPerToken, r.DecodeStepMS, r.DecodeGBps, 100*r.DecodeBWShare)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
