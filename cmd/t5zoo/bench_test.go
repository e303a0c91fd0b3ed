package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBench runs the bench verb (t5-efficient-tiny-nl2: 11,898,112 parameters by the catalog's
// formula) on a small shape with short workloads and checks that every
// figure is present and plausible, in JSON and as a table.
func TestBench(t *testing.T) {
	args := []string{"bench", "--shape", "t5-efficient-tiny-nl2", "--batch", "1,2", "--input-len", "9",
		"--new-tokens", "3", "--repeat", "1", "--read-mib", "16", "--threads", "2"}
	out, _, err := runCLI(t, "", append(args, "--json", "--dtype", "int8")...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want one per batch size:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var r benchResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Shape != "t5-efficient-tiny-nl2" || r.Batch != i+1 || r.DType != "int8" || r.Threads != 2 || r.Params != 11898112 {
			t.Errorf("line %d: %+v", i, r)
		}
		for name, v := range map[string]float64{
			"encoder_ms": r.EncoderMS, "encoder_tokens_per_s": r.EncoderTokensPS, "encoder_gflops": r.EncoderGFLOPS,
			"decode_ms_per_token": r.DecodeMSPerToken, "decode_step_ms": r.DecodeStepMS, "decode_gbps": r.DecodeGBps,
			"peak_gflops": r.Machine.PeakGFLOPS, "read_gbps": r.Machine.ReadGBps,
			"weight_bytes": float64(r.WeightBytes), "kv_cache_bytes": float64(r.KVCacheBytes),
		} {
			if !(v > 0) {
				t.Errorf("line %d: %s = %v", i, name, v)
			}
		}
		// int8 weights: about a byte per parameter (plus scales and the float32 norms).
		if r.WeightBytes < r.Params || r.WeightBytes > 2*r.Params {
			t.Errorf("line %d: %d weight bytes for %d int8 parameters", i, r.WeightBytes, r.Params)
		}
	}
	out, _, err = runCLI(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "FMA peak") || !strings.Contains(out, "t5-efficient-tiny-nl2") || strings.Count(out, "\n") != 5 {
		t.Errorf("table:\n%s", out)
	}
}

func TestBenchErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, `required flag(s) "shape"`},
		{[]string{"bench", "--shape", "t5-efficient-bogus"}, "t5-efficient-bogus"},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--dtype", "f16"}, "not supported by the kernels"},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--dtype", "f64"}, "unknown dtype"},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--batch", "0"}, "must be positive"},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--kernels", "sse"}, "unknown kernel path"},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--new-tokens", "99999999"}, "go up to 16384"},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--backend", "bogus"}, `unknown backend "bogus"`},
		{[]string{"bench", "--shape", "t5-efficient-tiny", "--backend", "plain", "--kernels", "avx2"}, "no kernel paths"},
	} {
		_, _, err := runCLI(t, "", tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
}
