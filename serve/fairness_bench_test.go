package serve_test

import (
	"context"
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve/api"
)

var fairRounds = flag.Int("fair-rounds", 3, "BenchmarkSmallBesideLarge: rounds of (alone, beside a large request)")

// BenchmarkSmallBesideLarge measures the latency of small requests (one prompt, 2 new
// tokens, greedy) sent one after another, alone and while one large legal request runs (64
// inputs × 64 beams, 16 new tokens each), on t5-efficient-tiny with random weights through
// the server over HTTP, with the default limits. It reports the p50 and p99 of each and how
// long the large request took. Run it with -benchtime 1x (the rounds are its own).
func BenchmarkSmallBesideLarge(b *testing.B) {
	_, c := benchServer(b)
	ctx := context.Background()
	small := func(i int) (time.Duration, error) {
		start := time.Now()
		err := c.Generate(ctx, &api.GenerateRequest{Model: "tiny", Input: benchPrompts[i%len(benchPrompts)],
			GenerateOptions: api.GenerateOptions{MaxNewTokens: 2}}, func(api.GenerateResponse) error { return nil })
		return time.Since(start), err
	}
	if _, err := small(0); err != nil { // loads the model
		b.Fatal(err)
	}
	large := &api.GenerateRequest{Model: "tiny", Inputs: make([]string, 64),
		GenerateOptions: api.GenerateOptions{MaxNewTokens: 16, NumBeams: 64}}
	for i := range large.Inputs {
		large.Inputs[i] = benchPrompts[i%len(benchPrompts)]
	}
	pct := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	var alone, beside []time.Duration
	var largeTook []time.Duration
	b.ResetTimer()
	for range *fairRounds {
		for i := range 40 {
			d, err := small(i)
			if err != nil {
				b.Fatal(err)
			}
			alone = append(alone, d)
		}
		done := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			if err := c.Generate(ctx, large, func(api.GenerateResponse) error { return nil }); err != nil {
				b.Error(err)
			}
			done <- time.Since(start)
		}()
		time.Sleep(50 * time.Millisecond) // the large request is in the batch
	smalls:
		for i := 0; i < 400; i++ {
			select {
			case d := <-done:
				largeTook = append(largeTook, d)
				done = nil
				break smalls
			default:
			}
			d, err := small(i)
			if err != nil {
				b.Fatal(err)
			}
			beside = append(beside, d)
		}
		if done != nil {
			largeTook = append(largeTook, <-done)
		}
	}
	b.StopTimer()
	b.ReportMetric(pct(alone, 0.5), "alone-p50-ms")
	b.ReportMetric(pct(alone, 0.99), "alone-p99-ms")
	if len(beside) > 0 {
		b.ReportMetric(pct(beside, 0.5), "beside-p50-ms")
		b.ReportMetric(pct(beside, 0.99), "beside-p99-ms")
		b.ReportMetric(float64(len(beside)), "beside-requests")
	}
	b.ReportMetric(pct(largeTook, 0.5), "large-p50-ms")
}
