// Command load drives a t5zoo serve with concurrent generation requests and reports
// throughput and latency percentiles. It is bounded in requests (-n) and time (-duration)
// and talks to loopback addresses only, so it cannot be pointed at someone else's server.
//
//	go run ./scripts/load -write-model /tmp/tiny        # random t5-efficient-tiny + T5 vocabulary
//	go run ./cmd/t5zoo serve --model tiny=/tmp/tiny &
//	go run ./scripts/load -model tiny -c 16 -n 512
//	go run ./scripts/load -model tiny -c 1 -n 64
//
// Each client sends its requests one after another (closed loop); prompts are taken in
// turn from -prompts (one per line) or a built-in English set. With -stream the requests
// stream server-sent events and the time to the first token is reported too.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/t5zoo/t5zoo"
	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/serve/api"
)

// defaultPrompts are English inputs of 9 to 26 tokens in the T5 vocabulary.
var defaultPrompts = []string{
	"translate English to German: The house is wonderful.",
	"summarize: Permission is hereby granted, free of charge, to any person obtaining a copy of this software.",
	"cola sentence: The book was by John read.",
	"sst2 sentence: a gorgeous, witty, seductive movie.",
	"question: what is the capital of France? context: Paris is the capital and largest city of France.",
	"translate English to French: I would like a cup of coffee, please.",
	"stsb sentence1: A man is playing a flute. sentence2: A man is playing a bamboo flute.",
	"summarize: The quick brown fox jumps over the lazy dog near the river bank at dawn.",
}

type options struct {
	addr, model, key, prompts string
	clients, requests, maxNew int
	duration                  time.Duration
	stream, jsonOut           bool
}

// result is one request's outcome.
type result struct {
	latency, firstToken time.Duration
	tokens              int
	err                 error
}

// report is the summary the program prints.
type report struct {
	Clients     int     `json:"clients"`
	Requests    int     `json:"requests"`
	Failed      int     `json:"failed"`
	Seconds     float64 `json:"seconds"`
	ReqPerSec   float64 `json:"req_per_s"`
	TokPerSec   float64 `json:"tok_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	FirstP50ms  float64 `json:"first_token_p50_ms,omitempty"`
	FirstP99ms  float64 `json:"first_token_p99_ms,omitempty"`
	FirstError  string  `json:"first_error,omitempty"`
	MaxNewToken int     `json:"max_new_tokens"`
}

func main() {
	var o options
	writeModel := flag.String("write-model", "", "write the t5-efficient-tiny shape with random weights (seed 42) and the T5 vocabulary to this directory, then exit")
	spiece := flag.String("spiece", "infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer/spiece.model", "with -write-model: the SentencePiece model to copy")
	flag.StringVar(&o.addr, "addr", "http://127.0.0.1:8080", "the server (a loopback address)")
	flag.StringVar(&o.model, "model", "", "the model to generate with")
	flag.StringVar(&o.key, "api-key", "", "API key, if the server has keys")
	flag.StringVar(&o.prompts, "prompts", "", "file of prompts, one per line (default: a built-in set)")
	flag.IntVar(&o.clients, "c", 16, "concurrent clients")
	flag.IntVar(&o.requests, "n", 256, "requests in all (an upper bound)")
	flag.DurationVar(&o.duration, "duration", time.Minute, "time limit (an upper bound)")
	flag.IntVar(&o.maxNew, "max-new-tokens", 32, "max_new_tokens of each request")
	flag.BoolVar(&o.stream, "stream", false, "stream tokens (server-sent events) and report the time to the first token")
	flag.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *writeModel != "" {
		err = writeTiny(ctx, *writeModel, *spiece)
	} else {
		err = run(ctx, o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// writeTiny writes the benchmark model: t5-efficient-tiny's shape, random weights.
func writeTiny(ctx context.Context, dir, spiece string) error {
	cat, err := catalog.Parse(t5zoo.CatalogJSON())
	if err != nil {
		return err
	}
	e, err := cat.Lookup("t5-efficient-tiny")
	if err != nil {
		return err
	}
	if err := convert.WriteRandom(ctx, dir, e.Shape(), 42); err != nil {
		return err
	}
	b, err := os.ReadFile(spiece)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "spiece.model"), b, 0o644)
}

// checkLoopback refuses servers that are not on this machine's loopback interface.
func checkLoopback(ctx context.Context, addr string) error {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return fmt.Errorf("-addr %q: want http://host:port", addr)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("-addr %q: %s is not a loopback address; the load script only drives local servers", addr, ip.IP)
		}
	}
	return nil
}

func run(ctx context.Context, o options, w io.Writer) error {
	switch {
	case o.model == "":
		return errors.New("-model is required")
	case o.clients < 1 || o.requests < 1 || o.duration <= 0 || o.maxNew < 1:
		return errors.New("-c, -n, -duration and -max-new-tokens must be positive")
	}
	if err := checkLoopback(ctx, o.addr); err != nil {
		return err
	}
	prompts := defaultPrompts
	if o.prompts != "" {
		b, err := os.ReadFile(o.prompts)
		if err != nil {
			return err
		}
		prompts = nil
		for line := range strings.SplitSeq(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				prompts = append(prompts, line)
			}
		}
		if len(prompts) == 0 {
			return fmt.Errorf("%s: no prompts", o.prompts)
		}
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}}
	c, err := api.NewClient(o.addr, api.ClientOptions{APIKey: o.key, HTTPClient: hc})
	if err != nil {
		return err
	}
	// One request first: loads the model (not timed) and checks the setup.
	if r := one(ctx, c, o, prompts[0]); r.err != nil {
		return fmt.Errorf("first request: %w", r.err)
	}

	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		mu      sync.Mutex
		results []result
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range o.clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(o.requests) || ctx.Err() != nil {
					return
				}
				r := one(ctx, c, o, prompts[i%int64(len(prompts))])
				if ctx.Err() != nil && r.err != nil {
					return // cut by the time limit: not a failure of the server
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	rep := summarize(results, time.Since(start), o)
	if o.jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "%d clients, %d requests (%d failed) in %.2fs, max_new_tokens %d\n", rep.Clients, rep.Requests, rep.Failed, rep.Seconds, o.maxNew)
	fmt.Fprintf(w, "throughput  %.2f req/s, %.0f generated tokens/s\n", rep.ReqPerSec, rep.TokPerSec)
	fmt.Fprintf(w, "latency     p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n", rep.P50ms, rep.P90ms, rep.P99ms, rep.MaxMs)
	if o.stream {
		fmt.Fprintf(w, "first token p50 %.1f ms, p99 %.1f ms\n", rep.FirstP50ms, rep.FirstP99ms)
	}
	if rep.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", rep.FirstError)
	}
	return nil
}

// one sends one request and times it.
func one(ctx context.Context, c *api.Client, o options, prompt string) result {
	start := time.Now()
	var r result
	req := &api.GenerateRequest{Model: o.model, Input: prompt, Stream: o.stream, GenerateOptions: api.GenerateOptions{MaxNewTokens: o.maxNew}}
	r.err = c.Generate(ctx, req, func(g api.GenerateResponse) error {
		if g.Token != nil && r.firstToken == 0 {
			r.firstToken = time.Since(start)
		}
		if g.Done && g.Usage != nil {
			r.tokens = g.Usage.OutputTokens
		}
		return nil
	})
	r.latency = time.Since(start)
	return r
}

func summarize(results []result, wall time.Duration, o options) report {
	rep := report{Clients: o.clients, Requests: len(results), Seconds: wall.Seconds(), MaxNewToken: o.maxNew}
	var lat, first []float64
	tokens := 0
	for _, r := range results {
		if r.err != nil {
			if rep.Failed == 0 {
				rep.FirstError = r.err.Error()
			}
			rep.Failed++
			continue
		}
		tokens += r.tokens
		lat = append(lat, float64(r.latency.Microseconds())/1e3)
		if r.firstToken > 0 {
			first = append(first, float64(r.firstToken.Microseconds())/1e3)
		}
	}
	ok := len(lat)
	rep.ReqPerSec = float64(ok) / wall.Seconds()
	rep.TokPerSec = float64(tokens) / wall.Seconds()
	rep.P50ms, rep.P90ms, rep.P99ms = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	if ok > 0 {
		rep.MaxMs = slices.Max(lat)
	}
	rep.FirstP50ms, rep.FirstP99ms = percentile(first, 50), percentile(first, 99)
	return rep
}

// percentile is the nearest-rank percentile p of v (0 for no values).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}
