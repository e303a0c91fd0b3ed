package report

import (
	"slices"
	"strings"
	"testing"
)

// benchLine is a line as `t5zoo bench --json` prints it (fields trimmed to those the
// report reads, plus some it ignores).
const benchLines = `{"shape":"t5-efficient-tiny","params":15570688,"dtype":"f32","kernels":"avx2","threads":2,"batch":1,"input_len":64,"new_tokens":32,"decode_ms_per_token":2.5,"machine":{"cpus":2}}
{"shape":"t5-efficient-tiny","params":15570688,"dtype":"f32","kernels":"avx2","threads":2,"batch":8,"input_len":64,"new_tokens":32,"decode_ms_per_token":0.9}
`

func TestParseBench(t *testing.T) {
	for _, c := range []struct {
		name, data string
		want       []BenchRow
		err        string
	}{
		{"json lines", benchLines, []BenchRow{
			{Shape: "t5-efficient-tiny", DType: "f32", Batch: 1, InputLen: 64, NewTokens: 32, DecodeMSPerToken: 2.5},
			{Shape: "t5-efficient-tiny", DType: "f32", Batch: 8, InputLen: 64, NewTokens: 32, DecodeMSPerToken: 0.9},
		}, ""},
		{"array (jq -s)", `[{"shape":"a","dtype":"bf16","batch":1,"decode_ms_per_token":3}]`,
			[]BenchRow{{Shape: "a", DType: "bf16", Batch: 1, DecodeMSPerToken: 3}}, ""},
		{"empty", "", nil, ""},
		{"blank lines", "\n\n", nil, ""},
		{"no shape", `{"batch":1,"decode_ms_per_token":3}`, nil, "line 1: a row has no shape"},
		{"zero time", "\n" + `{"shape":"a","batch":1,"decode_ms_per_token":0}`, nil, "line 2: a: decode_ms_per_token 0"},
		{"no batch", `{"shape":"a","decode_ms_per_token":1}`, nil, "line 1: a: batch 0"},
		{"truncated", benchLines + `{"shape":"a",`, nil, "line 3"},
		{"not an object", `"text"`, nil, "line 1"},
		{"wrong type", `{"shape":"a","batch":"1"}`, nil, "line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseBench([]byte(c.data))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func FuzzParseBench(f *testing.F) {
	f.Add([]byte(benchLines))
	f.Add([]byte(`[{"shape":"a","dtype":"bf16","batch":1,"decode_ms_per_token":3}]`))
	f.Add([]byte(`{"shape":"a",`))
	f.Add([]byte("[]\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ParseBench(data)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Shape == "" || r.Batch < 1 || !(r.DecodeMSPerToken > 0) {
				t.Fatalf("accepted a bad row %+v", r)
			}
		}
		lat := decodeLatency(rows)
		for k, v := range lat {
			if !(v > 0) {
				t.Fatalf("latency %v for %v", v, k)
			}
		}
	})
}

func TestDecodeLatency(t *testing.T) {
	rows := []BenchRow{
		{Shape: "a", DType: "f32", Batch: 1, DecodeMSPerToken: 3},
		{Shape: "a", DType: "f32", Batch: 1, DecodeMSPerToken: 1},
		{Shape: "a", DType: "f32", Batch: 1, DecodeMSPerToken: 100}, // one noisy run
		{Shape: "a", DType: "f32", Batch: 8, DecodeMSPerToken: 0.1}, // not batch 1
		{Shape: "a", DType: "int8", Batch: 1, DecodeMSPerToken: 1},
		{Shape: "a", DType: "int8", Batch: 1, DecodeMSPerToken: 2},
	}
	lat := decodeLatency(rows)
	want := map[benchKey]float64{{"a", "f32"}: 3, {"a", "int8"}: 1.5}
	if len(lat) != len(want) {
		t.Errorf("latencies %v, want %v", lat, want)
	}
	for k, v := range want {
		if lat[k] != v {
			t.Errorf("%v: %v, want the median %v", k, lat[k], v)
		}
	}
	// A row matches by shape and dtype; no dtype recorded means f32.
	for _, c := range []struct {
		row  Row
		want float64
		ok   bool
	}{
		{Row{Model: "m", Shape: "a", DType: "int8"}, 1.5, true},
		{Row{Model: "m", Shape: "a"}, 3, true},
		{Row{Model: "a", DType: "f32"}, 3, true}, // no shape: the model's name
		{Row{Model: "m", Shape: "a", DType: "bf16"}, 0, false},
		{Row{Model: "m", Shape: "b", DType: "f32"}, 0, false},
	} {
		got, ok := latencyOf(lat, c.row)
		if got != c.want || ok != c.ok {
			t.Errorf("%+v: %v %v, want %v %v", c.row, got, ok, c.want, c.ok)
		}
	}
}

func TestLoadBench(t *testing.T) {
	s := newStore(t, nil)
	ctx := t.Context()
	for k, v := range map[string]string{
		"bench.jsonl":          benchLines,
		"bench-int8.json":      `[{"shape":"t5-efficient-tiny","dtype":"int8","batch":1,"decode_ms_per_token":1.5}]`,
		"bench-broken.jsonl":   "{",
		"benchmarks.txt":       "not a bench file",
		"m/bench/predict.json": "{}", // not at the top level
	} {
		if err := s.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	rows, warns, err := LoadBench(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Errorf("%d rows, want 3: %+v", len(rows), rows)
	}
	if len(warns) != 1 || warns[0].Key != "bench-broken.jsonl" {
		t.Errorf("warnings %v, want bench-broken.jsonl", warns)
	}
}
