package serve_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// benchPrompts are the requests of the serving benchmark: English inputs of 9 to 26 tokens
// (T5 vocabulary), each asking for benchMaxNew tokens. With random weights the tied model
// never emits </s>, so every request decodes exactly benchMaxNew tokens.
var benchPrompts = []string{
	"translate English to German: The house is wonderful.",
	"summarize: Permission is hereby granted, free of charge, to any person obtaining a copy of this software.",
	"cola sentence: The book was by John read.",
	"sst2 sentence: a gorgeous, witty, seductive movie.",
	"question: what is the capital of France? context: Paris is the capital and largest city of France.",
	"translate English to French: I would like a cup of coffee, please.",
	"stsb sentence1: A man is playing a flute. sentence2: A man is playing a bamboo flute.",
	"summarize: The quick brown fox jumps over the lazy dog near the river bank at dawn.",
}

const benchMaxNew = 32

// benchModelDir writes the t5-efficient-tiny shape with random weights (seed 42) and the
// real T5 tokenizer, once per process.
var benchModelDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "t5zoo-bench-tiny")
	if err != nil {
		return "", err
	}
	cat, err := catalog.Parse(t5zooCatalog())
	if err != nil {
		return "", err
	}
	e, err := cat.Lookup("t5-efficient-tiny")
	if err != nil {
		return "", err
	}
	if err := convert.WriteRandom(context.Background(), dir, e.Shape(), 42); err != nil {
		return "", err
	}
	b, err := os.ReadFile("../infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer/spiece.model")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "spiece.model"), b, 0o644)
})

// benchServer starts a server on loopback with the default limits serving the benchmark
// model as "tiny", and returns the model's directory and a client.
func benchServer(b *testing.B) (string, *api.Client) {
	dir, err := benchModelDir()
	if err != nil {
		b.Fatal(err)
	}
	cache, err := zoo.OpenCache(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s, err := serve.New(serve.Config{
		Cache: cache, Models: map[string]string{"tiny": dir}, KeepAlive: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	hs := httptest.NewServer(s.Handler())
	b.Cleanup(hs.Close)
	c, err := api.NewClient(hs.URL, api.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return dir, c
}

// benchSetup starts a server on loopback serving the benchmark model as "tiny" (loaded),
// and the same model in-process behind its own Batcher. via and engine each run one
// request (the next prompt in turn) through the server or the engine.
func benchSetup(b *testing.B) (via, engine func(context.Context) error) {
	dir, c := benchServer(b)
	var next atomic.Int64
	via = func(ctx context.Context) error {
		i := next.Add(1)
		req := &api.GenerateRequest{Model: "tiny", Input: benchPrompts[i%int64(len(benchPrompts))], GenerateOptions: api.GenerateOptions{MaxNewTokens: benchMaxNew}}
		return c.Generate(ctx, req, func(r api.GenerateResponse) error {
			if n := len(r.Results[0].Hypotheses[0].IDs); n != benchMaxNew {
				return fmt.Errorf("%d tokens generated", n)
			}
			return nil
		})
	}
	if err := via(b.Context()); err != nil { // load the model
		b.Fatal(err)
	}

	m, err := infer.Load(b.Context(), dir, infer.LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	tok, err := tokenizer.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	batcher := infer.NewBatcher(m, infer.BatcherOptions{MaxRows: 32}) // the server's default Limits.MaxBatchRows
	b.Cleanup(batcher.Close)
	engine = func(ctx context.Context) error {
		i := next.Add(1)
		ids, err := tok.Encode(benchPrompts[i%int64(len(benchPrompts))])
		if err != nil {
			return err
		}
		gens, err := batcher.Generate(ctx, [][]int{ids}, infer.GenerateOptions{MaxNewTokens: benchMaxNew}, nil)
		if err != nil {
			return err
		}
		_, err = tok.Decode(gens[0].Hypotheses[0].IDs, true)
		return err
	}
	return via, engine
}

// BenchmarkServeGenerate measures greedy generation throughput on the t5-efficient-tiny
// shape (benchMaxNew tokens per request; ns/op is wall time per request):
//
//   - http/c=16: 16 concurrent clients over HTTP (loopback), batched by the server;
//   - http/c=1: the same requests one at a time;
//   - engine/c=16: 16 goroutines calling the engine in-process (tokenize, Batcher.Generate,
//     decode): the server's work without HTTP, JSON and routing.
//
// Concurrency is 16 whatever GOMAXPROCS (RunParallel with SetParallelism). On a noisy
// machine prefer BenchmarkServeCompare, which interleaves the three.
func BenchmarkServeGenerate(b *testing.B) {
	via, engine := benchSetup(b)
	parallel := func(fn func(context.Context) error) func(*testing.B) {
		return func(b *testing.B) {
			b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := fn(b.Context()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			report(b, start)
		}
	}
	b.Run("http/c=16", parallel(via))
	b.Run("http/c=1", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			if err := via(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("engine/c=16", parallel(engine))
}

// BenchmarkServeCompare runs the three cases of BenchmarkServeGenerate interleaved, round
// after round (128 requests with 16 clients over HTTP, 16 one at a time, 128 with 16
// goroutines in the engine), so that the machine's load drifts over all three alike, and
// reports the medians over the rounds of each throughput and of the per-round ratios:
// batching_x (16 clients / one at a time, over HTTP) and http_overhead_% (1 - HTTP / engine
// throughput, both with 16 clients). Run it once: -benchtime 1x; -rounds sets the rounds.
func BenchmarkServeCompare(b *testing.B) {
	via, engine := benchSetup(b)
	clients := func(n, requests int, fn func(context.Context) error) float64 {
		var left atomic.Int64
		left.Store(int64(requests))
		var wg sync.WaitGroup
		start := time.Now()
		for range n {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					if err := fn(b.Context()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return float64(requests) / time.Since(start).Seconds()
	}
	for b.Loop() {
		var h16, h1, e16, batching, overhead []float64
		for range *benchRounds {
			a := clients(16, 128, via)
			c := clients(1, 16, via)
			e := clients(16, 128, engine)
			h16, h1, e16 = append(h16, a), append(h1, c), append(e16, e)
			batching = append(batching, a/c)
			overhead = append(overhead, 100*(1-a/e))
		}
		b.ReportMetric(median(h16), "http16_req/s")
		b.ReportMetric(median(h1), "http1_req/s")
		b.ReportMetric(median(e16), "engine16_req/s")
		b.ReportMetric(median(batching), "batching_x")
		b.ReportMetric(median(overhead), "http_overhead_%")
	}
}

var benchRounds = flag.Int("rounds", 15, "rounds of BenchmarkServeCompare")

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report adds requests and generated tokens per second.
func report(b *testing.B, start time.Time) {
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/sec, "req/s")
	b.ReportMetric(float64(b.N*benchMaxNew)/sec, "tok/s")
}

func t5zooCatalog() []byte { return t5zoo.CatalogJSON() }
