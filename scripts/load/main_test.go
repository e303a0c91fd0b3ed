package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/zoo"
)

// TestRun drives a real server (the golden model, on loopback) with the script, bounded
// by -n, streaming and not.
func TestRun(t *testing.T) {
	cache, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve.New(serve.Config{
		Cache:  cache,
		Models: map[string]string{"golden": "../../testdata/golden/tiny-relu/checkpoint"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	for _, stream := range []bool{false, true} {
		var out bytes.Buffer
		o := options{addr: hs.URL, model: "golden", clients: 3, requests: 10, duration: time.Minute, maxNew: 8, stream: stream, jsonOut: true}
		if err := run(t.Context(), o, &out); err != nil {
			t.Fatal(err)
		}
		var rep report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Requests != 10 || rep.Failed != 0 || rep.ReqPerSec <= 0 || rep.P50ms <= 0 || rep.P99ms < rep.P50ms || rep.TokPerSec <= 0 {
			t.Errorf("stream=%v: report %+v", stream, rep)
		}
		if stream && (rep.FirstP50ms <= 0 || rep.FirstP50ms > rep.P99ms) {
			t.Errorf("first-token latency %+v", rep)
		}
	}
	// The time bound stops the run early.
	var out bytes.Buffer
	o := options{addr: hs.URL, model: "golden", clients: 2, requests: 1 << 30, duration: 300 * time.Millisecond, maxNew: 8}
	start := time.Now()
	if err := run(t.Context(), o, &out); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second || !strings.Contains(out.String(), "throughput") {
		t.Errorf("time-bounded run took %v: %s", d, out.String())
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"http://127.0.0.1:8080": true,
		"http://[::1]:8080":     true,
		"http://localhost:1":    true,
		"http://10.0.0.1:8080":  false,
		"http://8.8.8.8":        false,
		"ftp://127.0.0.1":       false,
		"127.0.0.1:8080":        false,
	} {
		if err := checkLoopback(t.Context(), addr); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{50: 5, 90: 9, 99: 10, 100: 10, 1: 1} {
		if got := percentile(v, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}
