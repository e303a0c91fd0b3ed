package report

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/t5zoo/t5zoo/evaluate"
)

// FuzzReport feeds one arbitrary results file, beside good ones, through everything the
// report does with it: Load must warn or accept, and tables, writers and charts must not
// fail on what it accepted.
func FuzzReport(f *testing.F) {
	for _, c := range synthetic() {
		data, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"schema":"t5zoo.eval.cell/1","status":"ok","model":{"name":"m","params":-5,"flops_per_token":-1},"task":"glue/sst2","mode":"rank","metrics":{"accuracy":null}}`))
	f.Add([]byte(`{"schema":"t5zoo.eval.cell/1","status":"failed","model":{"name":"m"},"task":"x|y*z","mode":"predict"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := memStore{}
		ctx := t.Context()
		for _, c := range synthetic()[:4] {
			b, _ := json.Marshal(c)
			_ = s.Put(ctx, evaluate.Cell{Model: c.Model.Name, Task: c.Task, Mode: c.Mode}.ResultKey(), b)
		}
		_ = s.Put(ctx, "fuzz/cell/predict.json", data)
		r, err := Load(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Cells)+len(r.Warnings) < 4 {
			t.Fatalf("%d cells and %d warnings from 5 files", len(r.Cells), len(r.Warnings))
		}
		tables, err := r.Tables(TableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []func(io.Writer, []*Table) error{WriteText, WriteMarkdown, WriteCSV} {
			if err := w(io.Discard, tables); err != nil {
				t.Fatal(err)
			}
		}
		if err := WriteJSON(io.Discard, r.Store, tables, r.Warnings); err != nil {
			t.Fatal(err)
		}
		charts, _, err := Charts(tables, ChartOptions{Bench: testBench})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range charts {
			if _, err := c.Plot(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
