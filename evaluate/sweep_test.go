package evaluate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/evaluate/task"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/internal/miniotest"
)

var goldenModels = []string{"../testdata/golden/tiny-relu/checkpoint", "../testdata/golden/tiny-gated/checkpoint"}

// writeTaskData writes a small data folder in the official layouts: SST-2 and RTE dev TSVs
// and CB's val.jsonl, a few real-looking rows each.
func writeTaskData(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"glue/SST-2/dev.tsv": "sentence\tlabel\n" +
			"it 's a charming and often affecting journey . \t1\n" +
			"unflinchingly bleak and desperate \t0\n" +
			"allows us to hope that nolan is poised to embark a major career . \t1\n" +
			"the acting , costumes , music , cinematography and sound are all astounding . \t1\n" +
			"it 's slow -- very , very slow . \t0\n" +
			"although laced with humor and a few fanciful touches , the film is a refreshingly serious look at young women . \t1\n" +
			"a sometimes tedious film . \t0\n",
		"glue/RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n" +
			"0\tDana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44.\tChristopher Reeve had an accident.\tnot_entailment\n" +
			"1\tYet, we now are discovering that antibiotics are losing their effectiveness against illness.\tBacteria is winning the war against antibiotics.\tentailment\n" +
			"2\tCairo is now home to some 15 million people.\t15 million tonnes of rubbish are produced daily in Cairo.\tnot_entailment\n" +
			"3\tThe Amish community in Pennsylvania, which numbers about 55,000, lives an agrarian lifestyle.\tThe Amish community in Pennsylvania lives an agrarian lifestyle.\tentailment\n",
		"superglue/CB/val.jsonl": `{"premise": "Valence the void-brain, Valence the virtuous valet. Did he think he was helping?", "hypothesis": "Valence was helping", "label": "contradiction", "idx": 0}
{"premise": "Who knows? The point is, do we go with it or not? Do we assume there is a shipment?", "hypothesis": "there is a shipment", "label": "neutral", "idx": 1}
{"premise": "But do you know the person who wrote it? I think it was the man who used to live next door.", "hypothesis": "it was the man who used to live next door", "label": "entailment", "idx": 2}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustTasks(t testing.TB, names ...string) []*task.Task {
	t.Helper()
	ts, err := task.Resolve(names)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// testSource is a DirSource over directories named directly, counting opens and failing
// the models named in fail.
type testSource struct {
	DirSource
	mu    sync.Mutex
	opens map[string]int
	fail  map[string]error
}

func newTestSource() *testSource {
	s := &testSource{opens: map[string]int{}, fail: map[string]error{}}
	s.DirSource.Locate = func(ctx context.Context, name string) (Located, error) {
		s.mu.Lock()
		err := s.fail[name]
		s.mu.Unlock()
		if err != nil {
			return Located{}, err
		}
		return Located{Dir: name}, nil
	}
	return s
}

func (s *testSource) Open(ctx context.Context, info ModelInfo) (Engine, func(), error) {
	s.mu.Lock()
	s.opens[info.Name]++
	s.mu.Unlock()
	return s.DirSource.Open(ctx, info)
}

// comparable strips a cell's timing and provenance of the run, leaving what must be equal
// between two runs of the same sweep.
func comparable(r *CellResult) CellResult {
	c := *r
	c.WallSeconds, c.ExamplesPerSecond = 0, 0
	c.Started, c.Finished = time.Time{}, time.Time{}
	return c
}

// storeContents reads every cell of a store: results (made comparable) and examples files.
func storeContents(t *testing.T, s Store) (map[string]CellResult, map[string]string) {
	t.Helper()
	ctx := context.Background()
	keys, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	results, examples := map[string]CellResult{}, map[string]string{}
	for _, k := range keys {
		data, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(k, ".examples.jsonl") {
			examples[k] = string(data)
			continue
		}
		r, err := ParseResult(data)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		results[k] = comparable(r)
	}
	return results, examples
}

func sameContents(t *testing.T, what string, a, b Store) {
	t.Helper()
	ra, ea := storeContents(t, a)
	rb, eb := storeContents(t, b)
	if len(ra) == 0 {
		t.Fatalf("%s: no results", what)
	}
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(ra)), slices.Sorted(maps.Keys(rb))) {
		t.Fatalf("%s: cells differ:\n%v\n%v", what, slices.Sorted(maps.Keys(ra)), slices.Sorted(maps.Keys(rb)))
	}
	for k, v := range ra {
		if !reflect.DeepEqual(metricsText(v), metricsText(rb[k])) || v.Examples != rb[k].Examples || v.Invalid != rb[k].Invalid ||
			v.Model != rb[k].Model || v.TaskVersion != rb[k].TaskVersion || v.Status != rb[k].Status {
			t.Errorf("%s: %s differs:\n%+v\n%+v", what, k, v, rb[k])
		}
	}
	if !reflect.DeepEqual(ea, eb) {
		t.Errorf("%s: per-example files differ", what)
	}
}

// metricsText compares metrics with NaN equal to NaN.
func metricsText(r CellResult) string { return fmt.Sprint(r.Metrics) }

func newDirStore(t *testing.T) *DirStore {
	t.Helper()
	s, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testSweep(data string, store Store, src ModelSource) *Sweep {
	return &Sweep{
		Models: goldenModels,
		Tasks:  nil,
		Modes:  []Mode{Predict, Rank},
		Data:   data, Store: store, Source: src,
		Batch: 3, MaxInputTokens: 512, Version: "test",
	}
}

// TestSweepResumesAndShards runs 2 models × 3 tasks × 2 modes whole, then as three shards,
// then interrupted after each cell in turn and resumed: every way writes the same cells.
func TestSweepResumesAndShards(t *testing.T) {
	data := writeTaskData(t)
	tasks := mustTasks(t, "glue/sst2", "glue/rte", "super_glue/cb")

	whole := newDirStore(t)
	sw := testSweep(data, whole, newTestSource())
	sw.Tasks = tasks
	sum, err := sw.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 12 || sum.Failed != 0 || sum.Skipped != 0 {
		t.Fatalf("whole run: %+v", sum)
	}

	// A rerun loads nothing and skips every cell.
	src := newTestSource()
	sw = testSweep(data, whole, src)
	sw.Tasks = tasks
	if sum, err = sw.Run(t.Context()); err != nil || sum.Skipped != 12 || sum.Done != 0 {
		t.Fatalf("rerun: %+v, %v", sum, err)
	}
	if len(src.opens) != 0 {
		t.Errorf("rerun opened models: %v", src.opens)
	}

	sharded := newDirStore(t)
	var cells []Cell
	for i := range 3 {
		sw := testSweep(data, sharded, newTestSource())
		sw.Tasks, sw.Shard, sw.Shards = tasks, i, 3
		cells = append(cells, sw.Cells()...)
		if _, err := sw.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	sw = testSweep(data, whole, nil)
	sw.Tasks = tasks
	if !slices.Equal(cells, sw.Cells()) {
		t.Errorf("shards' cells %v\nwant %v", cells, sw.Cells())
	}
	sameContents(t, "3 shards", whole, sharded)

	// Interrupt after k finished cells (the context ends while cell k+1 runs), then resume.
	for _, k := range []int{1, 5} {
		resumed := newDirStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		sw := testSweep(data, resumed, newTestSource())
		sw.Tasks = tasks
		done := 0
		sw.Progress = func(p Progress) {
			if p.State == "done" {
				done++
			}
			if p.State == "running" && done == k {
				cancel()
			}
		}
		if _, err := sw.Run(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		sw = testSweep(data, resumed, newTestSource())
		sw.Tasks = tasks
		sum, err := sw.Run(t.Context())
		if err != nil || sum.Skipped != k || sum.Done != 12-k {
			t.Fatalf("resume after %d: %+v, %v", k, sum, err)
		}
		sameContents(t, fmt.Sprintf("resumed after %d", k), whole, resumed)
	}
}

// TestSweepOnMinIO writes the same sweep to an s3:// prefix and to a folder.
func TestSweepOnMinIO(t *testing.T) {
	if testing.Short() {
		t.Skip("MinIO skipped in -short mode")
	}
	srv := miniotest.Start(t)
	data := writeTaskData(t)
	tasks := mustTasks(t, "glue/sst2", "super_glue/cb")
	dir := newDirStore(t)
	s3 := newS3Objects(t, srv, "evals/run1")
	for _, st := range []Store{dir, s3} {
		sw := testSweep(data, st, newTestSource())
		sw.Tasks = tasks
		if sum, err := sw.Run(t.Context()); err != nil || sum.Done != 8 {
			t.Fatalf("%s: %+v, %v", st, sum, err)
		}
	}
	sameContents(t, "MinIO", dir, s3)
	sw := testSweep(data, s3, newTestSource())
	sw.Tasks = tasks
	if sum, err := sw.Run(t.Context()); err != nil || sum.Skipped != 8 {
		t.Fatalf("rerun on MinIO: %+v, %v", sum, err)
	}
}

// TestSweepFailures: a model that cannot be resolved and a task whose file is missing mark
// their cells failed, the rest of the sweep runs, and a rerun retries only the failed cells.
func TestSweepFailures(t *testing.T) {
	data := writeTaskData(t)
	if err := os.Remove(filepath.Join(data, "superglue", "CB", "val.jsonl")); err != nil {
		t.Fatal(err)
	}
	store := newDirStore(t)
	src := newTestSource()
	src.fail[goldenModels[1]] = errors.New("registry unreachable")
	sw := testSweep(data, store, src)
	sw.Tasks = mustTasks(t, "glue/sst2", "super_glue/cb")
	sw.Modes = []Mode{Rank}
	sum, err := sw.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 1 || sum.Failed != 3 {
		t.Fatalf("summary %+v", sum)
	}
	for _, r := range sum.Results {
		switch {
		case r.Model.Name == goldenModels[1]:
			if r.Status != StatusFailed || !strings.Contains(r.Error, "registry unreachable") {
				t.Errorf("unresolvable model's cell: %+v", r)
			}
		case r.Task == "super_glue/cb":
			if r.Status != StatusFailed || !strings.Contains(r.Error, filepath.Join("superglue", "CB", "val.jsonl")) {
				t.Errorf("missing-data cell: status %s, error %q", r.Status, r.Error)
			}
		default:
			if r.Status != StatusOK {
				t.Errorf("good cell: %+v", r)
			}
		}
	}
	delete(src.fail, goldenModels[1])
	if sum, err = sw.Run(t.Context()); err != nil || sum.Skipped != 1 || sum.Done != 1 || sum.Failed != 2 {
		t.Fatalf("rerun: %+v, %v", sum, err)
	}
}

func loadGolden(t *testing.T, dir string) (*infer.Model, *tokenizer.Tokenizer) {
	t.Helper()
	m, err := infer.Load(t.Context(), dir, infer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tok, err := tokenizer.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok
}

func readExamples(t *testing.T, s Store, c Cell) []ExampleRecord {
	t.Helper()
	data, err := s.Get(context.Background(), c.ExamplesKey())
	if err != nil {
		t.Fatal(err)
	}
	var out []ExampleRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r ExampleRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestModesEqualEngine checks the two modes against the engine called directly: rank mode's
// scores are Score's for each (input, choice) pair and its prediction their argmax; predict
// mode's prediction is greedy Generate decoded.
func TestModesEqualEngine(t *testing.T) {
	data := writeTaskData(t)
	for _, dir := range goldenModels {
		t.Run(filepath.Base(filepath.Dir(dir)), func(t *testing.T) {
			m, tok := loadGolden(t, dir)
			store := newDirStore(t)
			sw := testSweep(data, store, newTestSource())
			sw.Models = []string{dir}
			sw.Tasks = mustTasks(t, "glue/sst2", "super_glue/cb")
			if sum, err := sw.Run(t.Context()); err != nil || sum.Done != 4 {
				t.Fatalf("%+v, %v", sum, err)
			}
			for _, tk := range sw.Tasks {
				exs, err := tk.Load(t.Context(), data)
				if err != nil {
					t.Fatal(err)
				}
				rank := readExamples(t, store, Cell{Model: dir, Task: tk.Name(), Mode: Rank})
				pred := readExamples(t, store, Cell{Model: dir, Task: tk.Name(), Mode: Predict})
				if len(rank) != len(exs) || len(pred) != len(exs) {
					t.Fatalf("%s: %d rank and %d predict records for %d examples", tk.Name(), len(rank), len(pred), len(exs))
				}
				for i, ex := range exs {
					in, err := tok.Encode(ex.Input)
					if err != nil {
						t.Fatal(err)
					}
					best := 0
					for j, c := range ex.Choices {
						tg, err := tok.Encode(c)
						if err != nil {
							t.Fatal(err)
						}
						res, err := m.Score(t.Context(), []infer.ScorePair{{Input: in, Target: tg}})
						if err != nil {
							t.Fatal(err)
						}
						if got := rank[i].Scores[j]; got != res[0].SumLogprob {
							t.Errorf("%s example %d choice %q: rank score %v, Score %v", tk.Name(), i, c, got, res[0].SumLogprob)
						}
						if res[0].SumLogprob > rank[i].Scores[best] {
							best = j
						}
					}
					if rank[i].Prediction != ex.Choices[best] {
						t.Errorf("%s example %d: rank chose %q, argmax is %q", tk.Name(), i, rank[i].Prediction, ex.Choices[best])
					}
					gens, err := m.Generate(t.Context(), [][]int{in}, infer.GenerateOptions{MaxNewTokens: tk.DecodeLength()})
					if err != nil {
						t.Fatal(err)
					}
					text, err := tok.Decode(gens[0].Hypotheses[0].IDs, true)
					if err != nil {
						t.Fatal(err)
					}
					if pred[i].Prediction != text {
						t.Errorf("%s example %d: predict %q, Generate %q", tk.Name(), i, pred[i].Prediction, text)
					}
				}
			}
		})
	}
}

func TestMetricsJSONNaN(t *testing.T) {
	m := Metrics{"pearson_corrcoef": math.NaN(), "spearman_corrcoef": 12.5}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"pearson_corrcoef":null,"spearman_corrcoef":12.5}` {
		t.Errorf("got %s", data)
	}
	var back Metrics
	if err := json.Unmarshal(data, &back); err != nil || !math.IsNaN(back["pearson_corrcoef"]) || back["spearman_corrcoef"] != 12.5 {
		t.Errorf("round trip: %v, %v", back, err)
	}
}

// TestSweepLimit: --limit evaluates a subset, records it, and is part of a cell's identity.
func TestSweepLimit(t *testing.T) {
	data := writeTaskData(t)
	store := newDirStore(t)
	run := func(limit int) Summary {
		sw := testSweep(data, store, newTestSource())
		sw.Models, sw.Tasks, sw.Modes, sw.Limit = goldenModels[:1], mustTasks(t, "glue/sst2"), []Mode{Rank}, limit
		sum, err := sw.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	sum := run(3)
	if sum.Done != 1 || sum.Results[0].Limit != 3 || sum.Results[0].Examples >= 7 || sum.Results[0].Examples == 0 {
		t.Fatalf("limit 3: %+v", sum.Results[0])
	}
	if sum := run(3); sum.Skipped != 1 {
		t.Errorf("same limit again: %+v", sum)
	}
	if sum := run(0); sum.Done != 1 || sum.Results[0].Examples != 7 {
		t.Errorf("no limit after a limited run: %+v", sum.Results[0])
	}
}

// TestSweepDataChange: results on other data are not reused.
func TestSweepDataChange(t *testing.T) {
	data := writeTaskData(t)
	store := newDirStore(t)
	run := func() Summary {
		sw := testSweep(data, store, newTestSource())
		sw.Models, sw.Tasks, sw.Modes = goldenModels[:1], mustTasks(t, "glue/sst2"), []Mode{Rank}
		sum, err := sw.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	first := run()
	if first.Done != 1 || !strings.HasPrefix(first.Results[0].DataDigest, "sha256:") {
		t.Fatalf("%+v", first.Results[0])
	}
	p := filepath.Join(data, "glue", "SST-2", "dev.tsv")
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("one more sentence . \t1\n")
	f.Close()
	if sum := run(); sum.Done != 1 || sum.Results[0].Examples != 8 || sum.Results[0].DataDigest == first.Results[0].DataDigest {
		t.Errorf("after the data changed: %+v", sum)
	}
}

// TestSweepDType: the weight type is part of a cell's identity.
func TestSweepDType(t *testing.T) {
	data := writeTaskData(t)
	store := newDirStore(t)
	run := func(dt catalog.DType) Summary {
		src := newTestSource()
		src.Load.DType = dt
		sw := testSweep(data, store, src)
		sw.Models, sw.Tasks, sw.Modes = goldenModels[:1], mustTasks(t, "glue/sst2"), []Mode{Rank}
		sum, err := sw.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	if sum := run(""); sum.Done != 1 || sum.Results[0].Model.DType != "f32" {
		t.Fatalf("default: %+v", sum.Results[0].Model)
	}
	if sum := run(catalog.F32); sum.Skipped != 1 {
		t.Errorf("f32 asked after the default f32: %+v", sum)
	}
	if sum := run(catalog.BF16); sum.Done != 1 || sum.Results[0].Model.DType != "bf16" {
		t.Errorf("bf16 after f32: %+v", sum)
	}
}
