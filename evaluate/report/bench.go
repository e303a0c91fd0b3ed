package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/t5zoo/t5zoo/evaluate"
)

// BenchRow is the part of a `t5zoo bench --json` result (cmd/t5zoo benchResult) the plots
// use: the measured decode latency of a shape at a batch size and dtype.
type BenchRow struct {
	Shape            string  `json:"shape"`
	DType            string  `json:"dtype"`
	Batch            int     `json:"batch"`
	InputLen         int     `json:"input_len"`
	NewTokens        int     `json:"new_tokens"`
	DecodeMSPerToken float64 `json:"decode_ms_per_token"`
}

// ParseBench reads bench results: JSON lines as `t5zoo bench --json` prints them, or any
// sequence of JSON objects and arrays of objects (a file saved with jq -s). A row without a
// shape or with a decode time that is not a positive number is an error naming its line.
func ParseBench(data []byte) ([]BenchRow, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var rows []BenchRow
	for {
		start := dec.InputOffset()
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		line := lineAt(data, start)
		if err != nil {
			return nil, fmt.Errorf("bench results: line %d: %w", line, err)
		}
		var batch []BenchRow
		if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) > 0 && t[0] == '[' {
			err = json.Unmarshal(raw, &batch)
		} else {
			var r BenchRow
			err = json.Unmarshal(raw, &r)
			batch = []BenchRow{r}
		}
		if err != nil {
			return nil, fmt.Errorf("bench results: line %d: %w", line, err)
		}
		for _, r := range batch {
			switch {
			case r.Shape == "":
				return nil, fmt.Errorf("bench results: line %d: a row has no shape", line)
			case r.Batch < 1:
				return nil, fmt.Errorf("bench results: line %d: %s: batch %d", line, r.Shape, r.Batch)
			case !(r.DecodeMSPerToken > 0) || math.IsInf(r.DecodeMSPerToken, 0):
				return nil, fmt.Errorf("bench results: line %d: %s: decode_ms_per_token %v is not a positive time", line, r.Shape, r.DecodeMSPerToken)
			}
		}
		rows = append(rows, batch...)
	}
}

// lineAt is the 1-based line of data at byte offset off, past leading white space (where
// the decoder's next value starts).
func lineAt(data []byte, off int64) int {
	i := int(off)
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return 1 + bytes.Count(data[:i], []byte("\n"))
}

// LoadBench reads the bench results files at the store's top level (bench*.jsonl,
// bench*.json). A file that does not parse is a warning, like a bad results file.
func LoadBench(ctx context.Context, store evaluate.Store) ([]BenchRow, []Warning, error) {
	keys, err := store.List(ctx, "bench")
	if err != nil {
		return nil, nil, fmt.Errorf("report: list bench results in %s: %w", store, err)
	}
	var rows []BenchRow
	var warns []Warning
	for _, k := range keys {
		if !isBenchKey(k) {
			continue
		}
		data, err := store.Get(ctx, k)
		if err == nil {
			var rs []BenchRow
			if rs, err = ParseBench(data); err == nil {
				rows = append(rows, rs...)
				continue
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, fmt.Errorf("report: read %s: %w", k, cerr)
		}
		warns = append(warns, Warning{Key: k, Err: err})
	}
	return rows, warns, nil
}

// benchKey is what a model is matched to bench rows by.
type benchKey struct{ shape, dtype string }

// decodeLatency maps (shape, dtype) to the median decode ms/token of its batch-1 rows
// (several runs of one shape: the median resists one noisy run).
func decodeLatency(rows []BenchRow) map[benchKey]float64 {
	by := map[benchKey][]float64{}
	for _, r := range rows {
		if r.Batch != 1 {
			continue
		}
		k := benchKey{r.Shape, r.DType}
		by[k] = append(by[k], r.DecodeMSPerToken)
	}
	out := make(map[benchKey]float64, len(by))
	for k, vs := range by {
		slices.Sort(vs)
		n := len(vs)
		if n%2 == 1 {
			out[k] = vs[n/2]
		} else {
			out[k] = (vs[n/2-1] + vs[n/2]) / 2
		}
	}
	return out
}

// latencyOf finds a row's decode latency: the bench rows of its shape (or its name) at
// its dtype (f32 when the cell recorded none).
func latencyOf(lat map[benchKey]float64, r Row) (float64, bool) {
	dt := r.DType
	if dt == "" {
		dt = "f32"
	}
	v, ok := lat[benchKey{r.Label(), dt}]
	return v, ok
}
