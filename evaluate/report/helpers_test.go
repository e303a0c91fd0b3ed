package report

import (
	"context"
	"encoding/json"
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/evaluate"
)

type model struct {
	name, shape string
	params      int64
	flops       float64
}

var (
	tiny  = model{"t5-efficient-tiny", "t5-efficient-tiny", 15_570_688, 3.1e7}
	mini  = model{"t5-efficient-mini", "t5-efficient-mini", 31_232_512, 6.2e7}
	small = model{"t5-efficient-small", "t5-efficient-small", 60_506_624, 1.2e8}
	ft    = model{"./runs/ft-sst2", "t5-efficient-tiny", 15_570_688, 3.1e7}
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// cell builds an OK result; kv are metric key, value pairs.
func cell(m model, task string, mode evaluate.Mode, kv ...any) *evaluate.CellResult {
	r := &evaluate.CellResult{
		Schema: evaluate.ResultSchema, Status: evaluate.StatusOK,
		Model: evaluate.ModelInfo{Name: m.name, Digest: "sha256:" + strings.Repeat("a", 64), DigestOf: "manifest", Shape: m.shape, Params: m.params, FLOPsPerToken: m.flops, DType: "f32"},
		Task:  task, TaskVersion: "v002.1", Benchmark: benchmarkOf(task), Mode: mode,
		Examples: 100, Metrics: evaluate.Metrics{}, Started: t0, Finished: t0.Add(time.Minute), Version: "test",
	}
	for i := 0; i < len(kv); i += 2 {
		r.Metrics[kv[i].(string)] = kv[i+1].(float64)
	}
	return r
}

func failed(m model, task string, mode evaluate.Mode, msg string) *evaluate.CellResult {
	r := cell(m, task, mode)
	r.Status, r.Error, r.Metrics = evaluate.StatusFailed, msg, nil
	return r
}

// synthetic is the store the table tests read: three models, five tasks, a failed cell
// (small × MRPC), a partial GLUE average (tiny has no CoLA), a --limit cell, a NaN
// metric, and a rank-mode cell.
func synthetic() []*evaluate.CellResult {
	p := evaluate.Predict
	cells := []*evaluate.CellResult{
		cell(tiny, "glue/sst2", p, "accuracy", 80.5),
		cell(tiny, "glue/mrpc", p, "f1", 81.25, "accuracy", 70.0),
		cell(tiny, "super_glue/cb", p, "mean_3class_f1", 50.0, "accuracy", 66.0),
		cell(tiny, "squad", p, "em", 40.0, "f1", 55.5),
		cell(mini, "glue/cola", p, "matthews_corrcoef", 10.0),
		cell(mini, "glue/sst2", p, "accuracy", 85.0),
		cell(mini, "glue/mrpc", p, "f1", 84.0, "accuracy", 76.0),
		cell(mini, "super_glue/cb", p, "mean_3class_f1", math.NaN(), "accuracy", 70.0),
		cell(small, "glue/cola", p, "matthews_corrcoef", 30.0),
		cell(small, "glue/sst2", p, "accuracy", 88.0),
		failed(small, "glue/mrpc", p, "load model: out of memory\n(budget 2 GiB)"),
		cell(small, "super_glue/cb", p, "mean_3class_f1", 70.0, "accuracy", 80.0),
		cell(small, "squad", p, "em", 60.0, "f1", 72.25),
		cell(tiny, "glue/sst2", evaluate.Rank, "accuracy", 82.0),
		cell(mini, "glue/sst2", evaluate.Rank, "accuracy", 86.0),
	}
	cells[3].Limit = 50
	return cells
}

func newStore(t *testing.T, cells []*evaluate.CellResult) *evaluate.DirStore {
	t.Helper()
	s, err := evaluate.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		putJSON(t, s, evaluate.Cell{Model: c.Model.Name, Task: c.Task, Mode: c.Mode}.ResultKey(), c)
	}
	return s
}

func putJSON(t *testing.T, s evaluate.Store, key string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
}

func loadTables(t *testing.T, cells []*evaluate.CellResult, mode evaluate.Mode) (*Report, []*Table) {
	t.Helper()
	r, err := Load(t.Context(), newStore(t, cells))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := r.Tables(TableOptions{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return r, tables
}

func rowOf(t *testing.T, tb *Table, model string) *Row {
	t.Helper()
	i := slices.IndexFunc(tb.Rows, func(r Row) bool { return r.Model == model })
	if i < 0 {
		t.Fatalf("no row %s", model)
	}
	return &tb.Rows[i]
}

// memStore is an evaluate.Store in memory, for the fuzz target.
type memStore map[string][]byte

func (m memStore) Get(_ context.Context, key string) ([]byte, error) {
	d, ok := m[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return d, nil
}

func (m memStore) Put(_ context.Context, key string, data []byte) error {
	m[key] = data
	return nil
}

func (m memStore) List(_ context.Context, prefix string) ([]string, error) {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m memStore) String() string { return "memory" }
