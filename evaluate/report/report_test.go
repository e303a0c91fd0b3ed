package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
)

func TestLoadWarnsAndKeepsGoing(t *testing.T) {
	cells := synthetic()
	s := newStore(t, cells)
	ctx := t.Context()
	if err := s.Put(ctx, "broken/glue_sst2/predict.json", []byte("{")); err != nil {
		t.Fatal(err)
	}
	old := *cells[0]
	old.Schema = "t5zoo.eval.cell/0"
	putJSON(t, s, "old/glue_sst2/predict.json", &old)
	nomode := *cells[0]
	nomode.Model.Name, nomode.Mode = "nomode", ""
	putJSON(t, s, "nomode/glue_sst2/predict.json", &nomode)
	// A copy of tiny × sst2 finished later under another key: it wins, the original is
	// reported.
	dup := *cells[0]
	dup.Finished = dup.Finished.Add(time.Hour)
	dup.Metrics = evaluate.Metrics{"accuracy": 81.0}
	putJSON(t, s, "zz-copy/glue_sst2/predict.json", &dup)
	// Bench files at the top level are not results.
	if err := s.Put(ctx, "bench.json", []byte(`{"shape":"t5-efficient-tiny","dtype":"f32","batch":1,"decode_ms_per_token":2}`)); err != nil {
		t.Fatal(err)
	}
	// Another digest for mini: its row mixes weights.
	redo := *cells[5]
	redo.Model.Digest = "sha256:" + strings.Repeat("b", 64)
	putJSON(t, s, evaluate.Cell{Model: redo.Model.Name, Task: redo.Task, Mode: redo.Mode}.ResultKey(), &redo)

	r, err := Load(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(r.Cells), len(cells); got != want {
		t.Errorf("%d cells, want %d", got, want)
	}
	var keys []string
	for _, w := range r.Warnings {
		keys = append(keys, w.Key)
	}
	want := []string{"broken/glue_sst2/predict.json", "nomode/glue_sst2/predict.json", "old/glue_sst2/predict.json",
		"t5-efficient-tiny/glue_sst2/predict.json", "t5-efficient-mini"}
	if !slices.Equal(keys, want) {
		t.Errorf("warnings for %q, want %q", keys, want)
	}
	for _, frag := range []string{"results JSON", "mode", "schema", "finished later", "different weights"} {
		if !slices.ContainsFunc(r.Warnings, func(w Warning) bool { return strings.Contains(w.String(), frag) }) {
			t.Errorf("no warning says %q: %v", frag, r.Warnings)
		}
	}
	i := slices.IndexFunc(r.Cells, func(c *evaluate.CellResult) bool {
		return c.Model.Name == tiny.name && c.Task == "glue/sst2" && c.Mode == evaluate.Predict
	})
	if got := r.Cells[i].Metrics["accuracy"]; got != 81.0 {
		t.Errorf("kept tiny × sst2 accuracy %v, want the later copy's 81", got)
	}
	if got := r.Modes(); !slices.Equal(got, []evaluate.Mode{evaluate.Predict, evaluate.Rank}) {
		t.Errorf("modes %v", got)
	}
}

// failStore fails List or Get.
type failStore struct {
	evaluate.Store
	list, get error
}

func (f failStore) List(ctx context.Context, prefix string) ([]string, error) {
	if f.list != nil {
		return nil, f.list
	}
	return f.Store.List(ctx, prefix)
}

func (f failStore) Get(ctx context.Context, key string) ([]byte, error) {
	if f.get != nil {
		return nil, f.get
	}
	return f.Store.Get(ctx, key)
}

func TestLoadErrors(t *testing.T) {
	boom := errors.New("boom")
	s := newStore(t, synthetic()[:2])
	if _, err := Load(t.Context(), failStore{Store: s, list: boom}); !errors.Is(err, boom) {
		t.Errorf("List failing: %v, want it wrapped", err)
	}
	// A file that cannot be read is a warning, unless the context is done.
	r, err := Load(t.Context(), failStore{Store: s, get: boom})
	if err != nil || len(r.Warnings) != 2 || len(r.Cells) != 0 {
		t.Errorf("Get failing: %v, %d warnings, %d cells; want 2 warnings", err, len(r.Warnings), len(r.Cells))
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Load(ctx, failStore{Store: s, get: context.Canceled}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestTables(t *testing.T) {
	_, tables := loadTables(t, synthetic(), "")
	if len(tables) != 2 || tables[0].Mode != evaluate.Predict || tables[1].Mode != evaluate.Rank {
		t.Fatalf("tables %v", tables)
	}
	tb := tables[0]
	var models []string
	for _, r := range tb.Rows {
		models = append(models, r.Model)
	}
	if want := []string{tiny.name, mini.name, small.name}; !slices.Equal(models, want) {
		t.Errorf("rows %v, want by params %v", models, want)
	}
	var tasks []string
	for _, c := range tb.Tasks {
		tasks = append(tasks, c.Task)
	}
	if want := []string{"glue/cola", "glue/sst2", "glue/mrpc", "super_glue/cb", "squad"}; !slices.Equal(tasks, want) {
		t.Errorf("columns %v, want %v", tasks, want)
	}
	for _, c := range []struct {
		task             string
		metrics, display []string
	}{
		{"glue/mrpc", []string{"f1", "accuracy"}, []string{"f1", "accuracy"}},
		{"super_glue/cb", []string{"mean_3class_f1", "accuracy"}, []string{"mean_3class_f1", "accuracy"}},
		{"squad", []string{"em", "f1"}, []string{"em", "f1"}},
		{"glue/cola", []string{"matthews_corrcoef"}, []string{"matthews_corrcoef"}},
	} {
		col := tb.Tasks[slices.IndexFunc(tb.Tasks, func(x Column) bool { return x.Task == c.task })]
		if !slices.Equal(col.Metrics, c.metrics) || !slices.Equal(col.Display, c.display) {
			t.Errorf("%s: metrics %v display %v, want %v %v", c.task, col.Metrics, col.Display, c.metrics, c.display)
		}
	}
	if !slices.Equal(tb.Benchmarks, []string{GLUE, SuperGLUE}) {
		t.Errorf("benchmarks %v", tb.Benchmarks)
	}
	// tiny has no CoLA: a partial GLUE average over SST-2 and MRPC ((80.5 + (81.25+70)/2) / 2).
	a := rowOf(t, tb, tiny.name).Averages[GLUE]
	if want := (80.5 + (81.25+70)/2) / 2; float64(a.Value) != want || !a.Partial() || !slices.Equal(a.Missing, []string{"CoLA", "STSB", "QQP", "MNLI", "QNLI", "GLUE RTE"}) {
		t.Errorf("tiny GLUE %+v, want %v partial missing CoLA, STSB, QQP, MNLI, QNLI, GLUE RTE", a, want)
	}
	// small's MRPC failed: it is shown failed and left out of the average.
	small := rowOf(t, tb, small.name)
	if c := small.Cells["glue/mrpc"]; c.Status != evaluate.StatusFailed || !strings.Contains(c.Error, "out of memory") {
		t.Errorf("small MRPC %+v, want failed", c)
	}
	if a := small.Averages[GLUE]; float64(a.Value) != 59 || !slices.Equal(a.Groups, []string{"CoLA", "SST-2"}) {
		t.Errorf("small GLUE %+v, want 59 over CoLA, SST-2", a)
	}
	if rowOf(t, tb, tiny.name).Cells["squad"].Limit != 50 {
		t.Errorf("tiny squad limit lost")
	}
	// The rank table has only its own cells.
	if r := tables[1]; len(r.Rows) != 2 || len(r.Tasks) != 1 || r.Tasks[0].Task != "glue/sst2" {
		t.Errorf("rank table %+v", r)
	}
}

// TestTablesAverages checks the hook: the averages come from TableOptions.Averages, and
// a benchmark none of whose groups is present gets no column.
func TestTablesAverages(t *testing.T) {
	r, _ := loadTables(t, synthetic(), "")
	var seen []map[string]map[string]float64
	tables, err := r.Tables(TableOptions{Mode: evaluate.Predict, Averages: func(m map[string]map[string]float64) []task.Average {
		seen = append(seen, m)
		return []task.Average{
			{Benchmark: "mine", Value: float64(len(m)), Groups: []string{"all"}},
			{Benchmark: SuperGLUE, Value: 1, Missing: []string{"BoolQ"}}, // no group present
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	tb := tables[0]
	if !slices.Equal(tb.Benchmarks, []string{"mine"}) {
		t.Errorf("benchmarks %v, want [mine]", tb.Benchmarks)
	}
	// small's failed MRPC is not passed to the averages.
	if a := rowOf(t, tb, small.name).Averages["mine"]; a.Value != 4 {
		t.Errorf("small's average saw %v tasks, want 4 (5 cells, one failed)", a.Value)
	}
	if len(seen) != 3 {
		t.Errorf("averages computed %d times, want once per model", len(seen))
	}
}

func TestTablesMode(t *testing.T) {
	r, tables := loadTables(t, synthetic(), evaluate.Rank)
	if len(tables) != 1 || tables[0].Mode != evaluate.Rank {
		t.Fatalf("--mode rank gave %v", tables)
	}
	only, _ := loadTables(t, synthetic()[:3], "")
	if _, err := only.Tables(TableOptions{Mode: evaluate.Rank}); err == nil || !strings.Contains(err.Error(), "modes present: predict") {
		t.Errorf("no rank cells: %v", err)
	}
	_ = r
}

func TestRowsUnknownParamsLast(t *testing.T) {
	unknown := model{name: "./local/dir"}
	_, tables := loadTables(t, []*evaluate.CellResult{
		cell(unknown, "glue/sst2", evaluate.Predict, "accuracy", 1.0),
		cell(small, "glue/sst2", evaluate.Predict, "accuracy", 2.0),
		cell(tiny, "glue/sst2", evaluate.Predict, "accuracy", 3.0),
	}, "")
	var got []string
	for _, r := range tables[0].Rows {
		got = append(got, r.Model)
	}
	if want := []string{tiny.name, small.name, unknown.name}; !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
}

func TestWriteText(t *testing.T) {
	_, tables := loadTables(t, synthetic(), "")
	var b bytes.Buffer
	if err := WriteText(&b, tables); err != nil {
		t.Fatal(err)
	}
	want := `mode: predict
MODEL               PARAMS  GLUE   glue/cola  glue/sst2  glue/mrpc  SuperGLUE  super_glue/cb  squad
                            avg    mcc        acc        f1/acc     avg        f1/acc         em/f1
t5-efficient-tiny   15.6M   78.1*  -          80.5       81.2/70.0  58.0*      50.0/66.0      40.0/55.5†
t5-efficient-mini   31.2M   58.3*  10.0       85.0       84.0/76.0  NaN*       NaN/70.0       -
t5-efficient-small  60.5M   59.0*  30.0       88.0       failed     75.0*      70.0/80.0      60.0/72.2
* GLUE average over the groups present; missing CoLA, STSB, QQP, MNLI, QNLI, GLUE RTE: t5-efficient-tiny
* GLUE average over the groups present; missing STSB, QQP, MNLI, QNLI, GLUE RTE: t5-efficient-mini
* GLUE average over the groups present; missing MRPC, STSB, QQP, MNLI, QNLI, GLUE RTE: t5-efficient-small
* SuperGLUE average over the groups present; missing BoolQ, CoPA, MultiRC, ReCoRD, SuperGLUE RTE, WiC, WSC: t5-efficient-tiny, t5-efficient-mini, t5-efficient-small
† run on a --limit subset, not the whole split
failed cells (a rerun retries them):
  t5-efficient-small × glue/mrpc: load model: out of memory (budget 2 GiB)

mode: rank
MODEL              PARAMS  GLUE   glue/sst2
                           avg    acc
t5-efficient-tiny  15.6M   82.0*  82.0
t5-efficient-mini  31.2M   86.0*  86.0
* GLUE average over the groups present; missing CoLA, MRPC, STSB, QQP, MNLI, QNLI, GLUE RTE: t5-efficient-tiny, t5-efficient-mini
`
	if got := b.String(); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteTextShapeColumn(t *testing.T) {
	_, tables := loadTables(t, []*evaluate.CellResult{
		cell(ft, "glue/sst2", evaluate.Predict, "accuracy", 91.0),
		cell(tiny, "glue/sst2", evaluate.Predict, "accuracy", 80.0),
	}, "")
	var b bytes.Buffer
	if err := WriteText(&b, tables); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(lines[1], "MODEL ") || !strings.Contains(lines[1], " SHAPE ") {
		t.Errorf("no shape column for a fine-tune:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "./runs/ft-sst2     t5-efficient-tiny") {
		t.Errorf("fine-tune row lacks its shape:\n%s", b.String())
	}
}

func TestWriteMarkdown(t *testing.T) {
	_, tables := loadTables(t, synthetic(), "")
	var b bytes.Buffer
	if err := WriteMarkdown(&b, tables); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		}
	}
	// predict: header, alignment, 3 models; rank: header, alignment, 2 models.
	if len(rows) != 9 {
		t.Fatalf("%d table lines, want 9:\n%s", len(rows), out)
	}
	if rows[0] != "| model | params | GLUE avg | glue/cola mcc | glue/sst2 acc | glue/mrpc f1/acc | SuperGLUE avg | super_glue/cb f1/acc | squad em/f1 |" {
		t.Errorf("header %q", rows[0])
	}
	if rows[1] != "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" {
		t.Errorf("alignment %q", rows[1])
	}
	cols := strings.Count(rows[0], "|")
	for _, r := range rows[:5] {
		if strings.Count(strings.ReplaceAll(r, `\|`, ""), "|") != cols {
			t.Errorf("row %q has another column count than the header", r)
		}
	}
	if rows[2] != `| t5-efficient-tiny | 15.6M | 78.1\* | - | 80.5 | 81.2/70.0 | 58.0\* | 50.0/66.0 | 40.0/55.5† |` {
		t.Errorf("tiny row %q", rows[2])
	}
	for _, want := range []string{"### predict\n", "### rank\n", "\n\n- \\* GLUE average over the groups present; missing CoLA, STSB, QQP, MNLI, QNLI, GLUE RTE: t5-efficient-tiny\n",
		"\n- failed cells (a rerun retries them):\n  - t5-efficient-small × glue/mrpc: load model: out of memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	_, tables := loadTables(t, synthetic(), "")
	var b bytes.Buffer
	if err := WriteCSV(&b, tables); err != nil {
		t.Fatal(err)
	}
	rd := csv.NewReader(&b)
	rd.FieldsPerRecord = -1
	recs, err := rd.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// predict header + 3 rows, rank header + 2 rows (its columns differ).
	if len(recs) != 7 {
		t.Fatalf("%d records, want 7: %q", len(recs), recs)
	}
	head := recs[0]
	wantHead := []string{"mode", "model", "shape", "digest", "dtype", "params", "flops_per_token",
		"glue:average", "glue:missing", "glue/cola:matthews_corrcoef", "glue/sst2:accuracy", "glue/mrpc:f1", "glue/mrpc:accuracy",
		"super_glue:average", "super_glue:missing", "super_glue/cb:mean_3class_f1", "super_glue/cb:accuracy", "squad:em", "squad:f1"}
	if !slices.Equal(head, wantHead) {
		t.Errorf("header %q\nwant   %q", head, wantHead)
	}
	get := func(rec []string, col string) string { return rec[slices.Index(head, col)] }
	tinyRec, miniRec, smallRec := recs[1], recs[2], recs[3]
	for _, c := range []struct {
		rec       []string
		col, want string
	}{
		{tinyRec, "model", tiny.name},
		{tinyRec, "params", "15570688"},
		{tinyRec, "glue/mrpc:f1", "81.25"}, // full precision (the text table says 81.2)
		{tinyRec, "glue:average", "78.0625"},
		{tinyRec, "glue:missing", "CoLA;STSB;QQP;MNLI;QNLI;GLUE RTE"},
		{tinyRec, "glue/cola:matthews_corrcoef", ""},
		{miniRec, "glue:average", "58.333333333333336"},
		{miniRec, "super_glue/cb:mean_3class_f1", "NaN"},
		{smallRec, "glue/mrpc:f1", "failed"},
		{smallRec, "glue/mrpc:accuracy", "failed"},
		{smallRec, "squad:f1", "72.25"},
	} {
		if got := get(c.rec, c.col); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.rec[1], c.col, got, c.want)
		}
	}
	if !slices.Equal(recs[4], []string{"mode", "model", "shape", "digest", "dtype", "params", "flops_per_token", "glue:average", "glue:missing", "glue/sst2:accuracy"}) {
		t.Errorf("rank header %q", recs[4])
	}
	if recs[5][0] != "rank" || recs[5][len(recs[5])-1] != "82" {
		t.Errorf("rank row %q", recs[5])
	}
}

func TestWriteJSON(t *testing.T) {
	r, tables := loadTables(t, synthetic(), "")
	r.Warnings = append(r.Warnings, Warning{Key: "x/y/predict.json", Err: errors.New("bad")})
	var b bytes.Buffer
	if err := WriteJSON(&b, r.Store, tables, r.Warnings); err != nil {
		t.Fatal(err)
	}
	var got JSONReport
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if got.Schema != TableSchema || got.Store != r.Store || len(got.Tables) != 2 {
		t.Fatalf("report %+v", got)
	}
	if len(got.Warnings) != 1 || got.Warnings[0] != (JSONWarning{"x/y/predict.json", "bad"}) {
		t.Errorf("warnings %+v", got.Warnings)
	}
	p := got.Tables[0]
	mini := rowOf(t, p, mini.name)
	if v := mini.Cells["super_glue/cb"].Metrics["mean_3class_f1"]; !math.IsNaN(v) {
		t.Errorf("NaN metric read back as %v", v)
	}
	if v := float64(mini.Averages[SuperGLUE].Value); !math.IsNaN(v) {
		t.Errorf("NaN average read back as %v", v)
	}
	if !strings.Contains(b.String(), `"value": null`) {
		t.Errorf("NaN average not written as null")
	}
	sm := rowOf(t, p, small.name)
	if sm.Params != small.params || sm.FLOPsPerToken != small.flops || sm.Shape != small.shape || sm.Cells["glue/mrpc"].Status != evaluate.StatusFailed {
		t.Errorf("small row %+v", sm)
	}
	if _, ok := sm.Cells["glue/wnli"]; ok {
		t.Errorf("a cell that does not exist is present")
	}
	// Round trip: what was written is what the tables hold.
	var again bytes.Buffer
	if err := WriteJSON(&again, got.Store, got.Tables, r.Warnings); err != nil {
		t.Fatal(err)
	}
	if again.String() != b.String() {
		t.Errorf("JSON does not round-trip")
	}
}

func TestReportedMetrics(t *testing.T) {
	for _, c := range []struct {
		task         string
		keys         []string
		all, display []string
	}{
		{"glue/stsb", []string{"spearman_corrcoef", "pearson_corrcoef"}, []string{"pearson_corrcoef", "spearman_corrcoef"}, []string{"pearson_corrcoef", "spearman_corrcoef"}},
		{"super_glue/record", []string{"em", "f1"}, []string{"f1", "em"}, []string{"f1", "em"}},
		{"super_glue/multirc", []string{"exact_match", "f1"}, []string{"f1", "exact_match"}, []string{"f1", "exact_match"}},
		// Extra keys (rank mode's auc) go after T5's, and are not displayed.
		{"glue/mrpc", []string{"auc-roc", "accuracy", "f1"}, []string{"f1", "accuracy", "auc-roc"}, []string{"f1", "accuracy"}},
		// A spec task shows all its metrics, by key.
		{"my-task", []string{"rougeLsum", "bleu"}, []string{"bleu", "rougeLsum"}, []string{"bleu", "rougeLsum"}},
		{"glue/sst2", []string{"accuracy"}, []string{"accuracy"}, []string{"accuracy"}},
	} {
		all, display := reportedMetrics(c.task, c.keys)
		if !slices.Equal(all, c.all) || !slices.Equal(display, c.display) {
			t.Errorf("%s %v: %v %v, want %v %v", c.task, c.keys, all, display, c.all, c.display)
		}
	}
}

func TestCompareTasks(t *testing.T) {
	got := []string{"squad", "super_glue/wsc", "glue/rte", "my-spec", "super_glue/boolq", "glue/wnli", "glue/cola",
		"super_glue/rte", "glue/mnli_mismatched", "glue/mnli_matched", "glue/zzz", "super_glue/axb"}
	slices.SortFunc(got, compareTasks)
	want := []string{"glue/cola", "glue/mnli_matched", "glue/mnli_mismatched", "glue/rte", "glue/wnli", "glue/zzz",
		"super_glue/boolq", "super_glue/rte", "super_glue/wsc", "super_glue/axb", "my-spec", "squad"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v\nwant  %v", got, want)
	}
}
