package serve_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// sst2Dev is the head of GLUE's SST-2 dev.tsv (the first eight rows of
// glue_data/SST-2/dev.tsv, sha256 54a9c12c…, as ../shared/data/glue/SST-2 ships it): the
// sentences end with the space the official file has before the tab.
const sst2Dev = "sentence\tlabel\n" +
	"it 's a charming and often affecting journey . \t1\n" +
	"unflinchingly bleak and desperate \t0\n" +
	"allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker . \t1\n" +
	"the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales . \t1\n" +
	"it 's slow -- very , very slow . \t0\n" +
	"although laced with humor and a few fanciful touches , the film is a refreshingly serious look at young women . \t1\n" +
	"a sometimes tedious film . \t0\n" +
	"or doing last year 's taxes with your ex-wife . \t0\n"

// evalData writes a data folder holding SST-2's dev head in GLUE's layout.
func evalData(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "glue", "SST-2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "glue", "SST-2", "dev.tsv"), []byte(sst2Dev), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newEvalServer is newTestServer with eval data, on cache (a fresh one when nil).
func newEvalServer(t *testing.T, cache *zoo.Cache, data string, edit func(*serve.Config)) *testServer {
	t.Helper()
	ts := newTestServer(t, func(c *serve.Config) {
		if cache != nil {
			c.Cache = cache
		}
		c.EvalData = data
		if edit != nil {
			edit(c)
		}
	})
	if cache != nil {
		ts.Cache = cache
	}
	return ts
}

// sharedCache opens a cache in dir whose registry holds the golden models, for servers
// that follow one another on one home.
func sharedCache(t *testing.T, dir string) *zoo.Cache {
	t.Helper()
	cache, err := zoo.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	for ref, src := range map[string]string{reluRef: goldenRelu, gatedRef: goldenGated} {
		if _, err := zoo.Push(t.Context(), cache.Registry(), src, zoo.MustParseRef(ref), zoo.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return cache
}

// submit posts an eval request and returns the queued job.
func submit(t *testing.T, ts *testServer, req api.EvalRequest) api.EvalJob {
	t.Helper()
	job, err := ts.Client.Eval(t.Context(), &req)
	if err != nil {
		t.Fatalf("POST /api/eval %+v: %v", req, err)
	}
	if job.ID == "" || job.Status != api.EvalQueued && job.Status != api.EvalRunning {
		t.Fatalf("submitted job: %+v", job)
	}
	return *job
}

// waitEval polls a job until it has ended.
func waitEval(t *testing.T, ts *testServer, id string) api.EvalJob {
	t.Helper()
	var job *api.EvalJob
	waitFor(t, "eval job "+id+" to end", func() bool {
		var err error
		if job, err = ts.Client.EvalJob(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		return api.EvalEnded(job.Status)
	})
	return *job
}

// waitStatus polls a job until it has the status.
func waitStatus(t *testing.T, ts *testServer, id, status string) api.EvalJob {
	t.Helper()
	var job *api.EvalJob
	waitFor(t, "eval job "+id+" to be "+status, func() bool {
		var err error
		if job, err = ts.Client.EvalJob(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		return job.Status == status
	})
	return *job
}

// directSweep runs the sweep the server runs, in this process, on a model directory.
func directSweep(t *testing.T, model, dir, data string, modes ...evaluate.Mode) (evaluate.Summary, *evaluate.DirStore) {
	t.Helper()
	sst2, err := task.Lookup("glue/sst2")
	if err != nil {
		t.Fatal(err)
	}
	store, err := evaluate.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sw := &evaluate.Sweep{
		Models: []string{model}, Tasks: []*task.Task{sst2}, Modes: modes, Data: data, Store: store,
		Source: &evaluate.DirSource{
			Locate: func(context.Context, string) (evaluate.Located, error) { return evaluate.Located{Dir: dir}, nil },
			Engine: evaluate.EngineOptions{MaxInputTokens: 512},
		},
		MaxInputTokens: 512,
	}
	sum, err := sw.Run(t.Context())
	if err != nil || sum.Failed > 0 {
		t.Fatalf("direct sweep: %+v, %v", sum, err)
	}
	return sum, store
}

// jobStore is the results store of a job on disk.
func jobStore(t *testing.T, ts *testServer, id string) *evaluate.DirStore {
	t.Helper()
	st, err := evaluate.NewDirStore(filepath.Join(ts.Cache.Root(), "evals", id, "results"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestEvalJob runs a job of two models (a registry model and a directory) on SST-2 in both
// modes: its results are those of the same sweep run directly on the engine, example by
// example; its events stream from the first state to the last; the listing, the metrics
// and the residency show it.
func TestEvalJob(t *testing.T) {
	data := evalData(t)
	gated := make(chan *gatedStore, 1)
	ts := newEvalServer(t, nil, data, func(c *serve.Config) {
		g := newGatedStore(c.Cache.Registry())
		c.Store = g
		gated <- g
	})
	g := <-gated
	job := submit(t, ts, api.EvalRequest{Models: []string{reluRef, longModel, reluRef}, Tasks: []string{"glue/sst2", "sst2"}, Modes: []string{"predict", "rank"}, Batch: 3})
	if !reflect.DeepEqual(job.Request.Models, []string{reluRef, longModel}) || !reflect.DeepEqual(job.Tasks, []string{"glue/sst2"}) || job.Counts.Total != 4 || len(job.Cells) != 4 {
		t.Fatalf("job as submitted: %+v", job)
	}

	// Follow it from before its first cell: the registry model's pull waits at the gate.
	var (
		events     []api.EvalEvent
		evErr      error
		wg         sync.WaitGroup
		subscribed = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		evErr = ts.Client.EvalEvents(t.Context(), job.ID, func(e api.EvalEvent) error {
			if len(events) == 0 {
				close(subscribed)
			}
			events = append(events, e)
			return nil
		})
	}()
	<-g.waiting
	<-subscribed
	close(g.gate)
	done := waitEval(t, ts, job.ID)
	wg.Wait()
	if evErr != nil {
		t.Fatalf("events: %v", evErr)
	}
	if done.Status != api.EvalDone || done.Error != "" || done.Counts.Done != 4 || done.Finished == nil || done.Started == nil {
		t.Fatalf("job: %+v", done)
	}

	// Events: the job first, then cells, the end last, with the final state.
	if len(events) < 3 || events[0].Type != "job" || events[0].Job == nil || events[len(events)-1].Type != "end" {
		t.Fatalf("events %+v", events)
	}
	end := events[len(events)-1].Job
	if end.Status != api.EvalDone || !reflect.DeepEqual(end.Cells, done.Cells) {
		t.Errorf("end event %+v, want the job %+v", end, done)
	}
	states := map[string]bool{}
	for _, e := range events[1 : len(events)-1] {
		if e.Type == "cell" {
			states[e.Cell.State] = true
		}
	}
	if !states[api.CellDone] || !states[api.CellLoading] {
		t.Errorf("cell events saw states %v, want loading and done among them", states)
	}

	// The results equal a direct sweep's, metric by metric and example by example.
	res, err := ts.Client.EvalResults(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != job.ID || res.Status != api.EvalDone || len(res.Results) != 4 {
		t.Fatalf("results: %+v", res)
	}
	got := map[evaluate.Cell]*evaluate.CellResult{}
	for _, raw := range res.Results {
		r, err := evaluate.ParseResult(raw)
		if err != nil {
			t.Fatal(err)
		}
		got[evaluate.Cell{Model: r.Model.Name, Task: r.Task, Mode: r.Mode}] = r
	}
	server := jobStore(t, ts, job.ID)
	for model, dir := range map[string]string{reluRef: goldenRelu, longModel: longModelDir(t)} {
		want, direct := directSweep(t, model, dir, data, evaluate.Predict, evaluate.Rank)
		for _, w := range want.Results {
			c := evaluate.Cell{Model: model, Task: w.Task, Mode: w.Mode}
			r := got[c]
			if r == nil {
				t.Errorf("%s: no result", c)
				continue
			}
			if r.Status != evaluate.StatusOK || r.Examples != 8 || r.Invalid != w.Invalid || !reflect.DeepEqual(r.Metrics, w.Metrics) || r.Model.Digest == "" {
				t.Errorf("%s: server %+v, direct %+v", c, r, w)
			}
			se, err1 := server.Get(t.Context(), c.ExamplesKey())
			de, err2 := direct.Get(t.Context(), c.ExamplesKey())
			if err1 != nil || err2 != nil || string(se) != string(de) {
				t.Errorf("%s: examples differ (%v, %v):\n%s\n%s", c, err1, err2, se, de)
			}
		}
	}
	if r := got[evaluate.Cell{Model: reluRef, Task: "glue/sst2", Mode: evaluate.Rank}]; r == nil || r.Model.DigestOf != "manifest" || !strings.HasPrefix(r.Model.Digest, "sha256:") || r.MaxInputTokens != 512 {
		t.Errorf("registry model's identity: %+v", r)
	}
	if r := got[evaluate.Cell{Model: longModel, Task: "glue/sst2", Mode: evaluate.Predict}]; r == nil || r.Model.DigestOf != "directory" {
		t.Errorf("directory model's identity: %+v", r)
	}
	for _, c := range done.Cells {
		if c.State != api.CellDone || c.Done != 8 || c.Total != 8 || c.Metrics["accuracy"] != got[evaluate.Cell{Model: c.Model, Task: c.Task, Mode: evaluate.Mode(c.Mode)}].Metrics["accuracy"] {
			t.Errorf("cell %+v", c)
		}
	}

	// After the end: the stream is the job and its end at once, as SSE when asked.
	status, hdr, body := do(t, http.MethodGet, ts.URL+"/api/eval/"+job.ID+"/events", "", "Accept", "text/event-stream")
	evs := readSSE(t, body)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") || len(evs) != 2 || evs[0].name != "job" || evs[1].name != "end" {
		t.Errorf("SSE after the end: %d %s %q", status, hdr.Get("Content-Type"), body)
	}

	// The listing, the metrics, the residency.
	list, err := ts.Client.EvalJobs(t.Context())
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].ID != job.ID || list.Jobs[0].Cells != nil || list.Jobs[0].Counts.Done != 4 {
		t.Errorf("list: %+v, %v", list, err)
	}
	if n := metricValue(t, ts, "t5zoo_eval_jobs", "state=done"); n != 1 {
		t.Errorf("t5zoo_eval_jobs{state=done} = %v", n)
	}
	if n := metricValue(t, ts, "t5zoo_eval_cells_total", "result=done"); n != 4 {
		t.Errorf("t5zoo_eval_cells_total{result=done} = %v", n)
	}
	ps, err := ts.Client.Ps(t.Context())
	if err != nil || len(ps.Models) != 2 {
		t.Errorf("ps after the job: %+v, %v (the job's models stay loaded for their keep-alive)", ps, err)
	}
}

// TestEvalCancelAndDelete cancels a queued job (at once) and a running one (at its next
// engine call), refuses to delete a job that runs, and deletes ended ones with their files.
func TestEvalCancelAndDelete(t *testing.T) {
	ts := newEvalServer(t, nil, evalData(t), func(c *serve.Config) { c.Store = newGatedStore(c.Cache.Registry()) })
	running := submit(t, ts, api.EvalRequest{Models: []string{reluRef}, Tasks: []string{"glue/sst2"}})
	queued := submit(t, ts, api.EvalRequest{Models: []string{longModel}, Tasks: []string{"glue/sst2"}})
	waitStatus(t, ts, running.ID, api.EvalRunning)
	if j, err := ts.Client.EvalJob(t.Context(), queued.ID); err != nil || j.Status != api.EvalQueued {
		t.Fatalf("second job: %+v, %v", j, err)
	}

	j, err := ts.Client.CancelEval(t.Context(), queued.ID)
	if err != nil || j.Status != api.EvalCancelled || j.Finished == nil || j.Counts.Pending != 1 {
		t.Fatalf("cancel queued: %+v, %v", j, err)
	}
	var se *api.StatusError
	if _, err := ts.Client.DeleteEval(t.Context(), running.ID); !errors.As(err, &se) || se.StatusCode != http.StatusConflict || se.Code != "job_active" {
		t.Fatalf("delete running: %v", err)
	}
	if _, err := ts.Client.CancelEval(t.Context(), running.ID); err != nil {
		t.Fatal(err)
	}
	j2 := waitEval(t, ts, running.ID)
	if j2.Status != api.EvalCancelled || j2.Counts.Pending != 1 {
		t.Fatalf("cancelled running job: %+v", j2)
	}
	// Cancelling an ended job leaves it as it is.
	if j, err := ts.Client.CancelEval(t.Context(), running.ID); err != nil || j.Status != api.EvalCancelled {
		t.Fatalf("cancel again: %+v, %v", j, err)
	}
	if n := metricValue(t, ts, "t5zoo_eval_jobs", "state=cancelled"); n != 2 {
		t.Errorf("t5zoo_eval_jobs{state=cancelled} = %v", n)
	}
	for _, id := range []string{running.ID, queued.ID} {
		if d, err := ts.Client.DeleteEval(t.Context(), id); err != nil || d.Deleted != id {
			t.Fatalf("delete %s: %+v, %v", id, d, err)
		}
		if _, err := ts.Client.EvalJob(t.Context(), id); !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
			t.Errorf("GET deleted %s: %v", id, err)
		}
		if _, err := os.Stat(filepath.Join(ts.Cache.Root(), "evals", id)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("deleted job's folder: %v", err)
		}
	}
	if list, err := ts.Client.EvalJobs(t.Context()); err != nil || len(list.Jobs) != 0 {
		t.Errorf("list after deletes: %+v, %v", list, err)
	}
}

// TestEvalRestart closes a server with a finished job, a running one and a queued one: the
// next server on the same home lists all three, newest first, shows the finished one's
// cells from its results, and runs the two others to the end.
func TestEvalRestart(t *testing.T) {
	home := t.TempDir()
	cache := sharedCache(t, home)
	data := evalData(t)
	first := newEvalServer(t, cache, data, func(c *serve.Config) { c.Store = newGatedStore(cache.Registry()) })
	finished := submit(t, first, api.EvalRequest{Models: []string{longModel}, Tasks: []string{"glue/sst2"}, Modes: []string{"rank"}})
	want := waitEval(t, first, finished.ID)
	if want.Status != api.EvalDone {
		t.Fatalf("first job: %+v", want)
	}
	running := submit(t, first, api.EvalRequest{Models: []string{reluRef}, Tasks: []string{"glue/sst2"}, Modes: []string{"rank"}})
	waitStatus(t, first, running.ID, api.EvalRunning)
	queued := submit(t, first, api.EvalRequest{Models: []string{longModel}, Tasks: []string{"glue/sst2"}, Limit: 4})
	first.Close()
	var rec struct{ Status string }
	for id, status := range map[string]string{running.ID: api.EvalRunning, queued.ID: api.EvalQueued, finished.ID: api.EvalDone} {
		b, err := os.ReadFile(filepath.Join(home, "evals", id, "job.json"))
		if err != nil || json.Unmarshal(b, &rec) != nil || rec.Status != status {
			t.Errorf("job.json of %s after the close: %s, %v; want status %s", id, b, err, status)
		}
	}

	// Folders that are not jobs of this server are left alone.
	for name, content := range map[string]string{"20260101T000000.000Z-000000000000": `{"schema":"t5zoo.eval.job/1"`, "notes": `{}`} {
		if err := os.MkdirAll(filepath.Join(home, "evals", name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "evals", name, "job.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	second := newEvalServer(t, cache, data, nil)
	if !strings.Contains(second.Log.String(), "eval job unreadable") {
		t.Errorf("the unreadable job.json is not logged:\n%s", second.Log)
	}
	list, err := second.Client.EvalJobs(t.Context())
	if err != nil || len(list.Jobs) != 3 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if ids := []string{list.Jobs[0].ID, list.Jobs[1].ID, list.Jobs[2].ID}; !reflect.DeepEqual(ids, []string{queued.ID, running.ID, finished.ID}) {
		t.Errorf("listing order %v, want newest first", ids)
	}
	if f := list.Jobs[2]; f.Status != api.EvalDone || f.Counts.Done != 1 {
		t.Errorf("finished job listed as %+v", f)
	}
	got, err := second.Client.EvalJob(t.Context(), finished.ID)
	if err != nil || got.Status != api.EvalDone || !reflect.DeepEqual(got.Cells[0].Metrics, want.Cells[0].Metrics) || got.Cells[0].State != api.CellDone {
		t.Errorf("finished job after the restart: %+v, %v; before: %+v", got, err, want)
	}
	for _, id := range []string{running.ID, queued.ID} {
		if j := waitEval(t, second, id); j.Status != api.EvalDone || j.Counts.Done+j.Counts.Skipped != 1 {
			t.Errorf("resumed job %s: %+v", id, j)
		}
	}
	res, err := second.Client.EvalResults(t.Context(), queued.ID)
	if err != nil || len(res.Results) != 1 {
		t.Fatalf("results: %+v, %v", res, err)
	}
	if r, err := evaluate.ParseResult(res.Results[0]); err != nil || r.Limit != 4 || r.Examples != 4 {
		t.Errorf("limited job's results: %+v, %v", r, err)
	}

	// A job whose cells are all written resumes by skipping them: mark the finished job
	// running again, as a server killed after its last cell would have left it.
	second.Close()
	p := filepath.Join(home, "evals", finished.ID, "job.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["status"] = api.EvalRunning
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	third := newEvalServer(t, cache, data, nil)
	if j := waitEval(t, third, finished.ID); j.Status != api.EvalDone || j.Counts.Skipped != 1 || j.Counts.Done != 0 {
		t.Errorf("a resumed job with every cell written: %+v", j.Counts)
	}
}

// TestEvalBadRequests: requests that cannot make a job are answered at once, with what is
// wrong.
func TestEvalBadRequests(t *testing.T) {
	ts := newEvalServer(t, nil, evalData(t), func(c *serve.Config) { c.Limits.MaxEvalCells = 3 })
	for _, tc := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"unknown task", `{"models":["` + reluRef + `"],"tasks":["glue/sst"]}`, 400, "invalid_request", "glue/sst2"},
		{"spec file", `{"models":["` + reluRef + `"],"tasks":["my-task.yaml"]}`, 400, "invalid_request", "not task spec files"},
		{"spec path", `{"models":["` + reluRef + `"],"tasks":["../../etc/passwd"]}`, 400, "invalid_request", "not task spec files"},
		{"absolute path", `{"models":["` + reluRef + `"],"tasks":["/etc/task.json"]}`, 400, "invalid_request", "not task spec files"},
		{"too many cells", `{"models":["` + reluRef + `","` + gatedRef + `"],"tasks":["glue/sst2"],"modes":["predict","rank"]}`, 400, "limit_exceeded", "4 cells"},
		{"bad mode", `{"models":["` + reluRef + `"],"tasks":["glue/sst2"],"modes":["beam"]}`, 400, "invalid_request", `mode "beam"`},
		{"nothing to rank", `{"models":["` + reluRef + `"],"tasks":["squad"],"modes":["rank"]}`, 400, "invalid_request", "does not run in this mode"},
		{"no models", `{"models":[],"tasks":["glue/sst2"]}`, 400, "invalid_request", "models: none"},
		{"no tasks", `{"models":["` + reluRef + `"]}`, 400, "invalid_request", "tasks: none"},
		{"bad model name", `{"models":["Bad Name"],"tasks":["glue/sst2"]}`, 400, "invalid_request", "Bad Name"},
		{"negative limit", `{"models":["` + reluRef + `"],"tasks":["glue/sst2"],"limit":-1}`, 400, "invalid_request", "limit -1"},
		{"huge batch", `{"models":["` + reluRef + `"],"tasks":["glue/sst2"],"batch":100000}`, 400, "limit_exceeded", "batch 100000"},
		{"unknown field", `{"models":["` + reluRef + `"],"tasks":["glue/sst2"],"shard":1}`, 400, "invalid_request", "shard"},
		{"not an object", `["glue/sst2"]`, 400, "invalid_request", "request body"},
		{"long task name", `{"models":["` + reluRef + `"],"tasks":["` + strings.Repeat("glue/sst2", 100) + `"]}`, 400, "invalid_request", "900 bytes is no task name"},
		{"many models", `{"models":["` + strings.Repeat(`m", "`, 9) + `m"],"tasks":["glue/sst2"]}`, 400, "limit_exceeded", "10 models"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := do(t, http.MethodPost, ts.URL+"/api/eval", tc.body)
			var e api.ErrorBody
			if status != tc.status || json.Unmarshal(body, &e) != nil || e.Code != tc.code || !strings.Contains(e.Error, tc.msg) {
				t.Errorf("%d %s, want %d %s containing %q", status, body, tc.status, tc.code, tc.msg)
			}
		})
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/eval/20260101T000000.000Z-000000000000"},
		{"GET", "/api/eval/..%2F..%2Fregistry"},
		{"GET", "/api/eval/nothing/results"},
		{"GET", "/api/eval/nothing/events"},
		{"POST", "/api/eval/nothing/cancel"},
		{"DELETE", "/api/eval/nothing"},
	} {
		body := ""
		if tc.method == "POST" {
			body = "{}"
		}
		if status, _, b := do(t, tc.method, ts.URL+tc.path, body); status != http.StatusNotFound || errorCode(b) != "not_found" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, status, b)
		}
	}
	if list, err := ts.Client.EvalJobs(t.Context()); err != nil || len(list.Jobs) != 0 {
		t.Errorf("bad requests made jobs: %+v, %v", list, err)
	}

	// A server without an eval data folder refuses jobs as a server that cannot run them.
	bare := newTestServer(t, nil)
	status, _, body := do(t, http.MethodPost, bare.URL+"/api/eval", `{"models":["`+reluRef+`"],"tasks":["glue/sst2"]}`)
	if status != http.StatusNotImplemented || errorCode(body) != "eval_unavailable" {
		t.Errorf("no data folder: %d %s", status, body)
	}
	// So does one with too many jobs queued.
	busy := newEvalServer(t, nil, evalData(t), func(c *serve.Config) {
		c.Limits.MaxEvalJobs = 1
		c.Store = newGatedStore(c.Cache.Registry())
	})
	submit(t, busy, api.EvalRequest{Models: []string{reluRef}, Tasks: []string{"glue/sst2"}})
	status, hdr, body := do(t, http.MethodPost, busy.URL+"/api/eval", `{"models":["`+longModel+`"],"tasks":["glue/sst2"]}`)
	if status != http.StatusServiceUnavailable || errorCode(body) != "busy" || hdr.Get("Retry-After") == "" {
		t.Errorf("job queue full: %d %s", status, body)
	}
}

// TestEvalHostile runs a job whose models fail (a broken checkpoint, a name no registry
// has) and whose task data is missing beside a model that works: the failing cells carry
// their errors (without the server's paths), the others finish, the job ends failed, and
// the server's other requests are served meanwhile.
func TestEvalHostile(t *testing.T) {
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "config.json"), []byte(`{"d_model": -1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	data := evalData(t)
	ts := newEvalServer(t, nil, data, func(c *serve.Config) { c.Models["broken"] = broken })
	job := submit(t, ts, api.EvalRequest{Models: []string{"broken", "acme/nothing", reluRef}, Tasks: []string{"glue/sst2", "glue/cola"}, Modes: []string{"rank"}})
	// Interactive requests go on while the job runs.
	for range 3 {
		if _, err := ts.Client.Score(t.Context(), &api.ScoreRequest{Model: reluRef, Pairs: []api.ScorePair{{Input: "a", Target: "b"}}}); err != nil {
			t.Fatalf("score beside the job: %v", err)
		}
	}
	done := waitEval(t, ts, job.ID)
	if done.Status != api.EvalFailed || done.Error != "5 of 6 cells failed" || done.Counts.Failed != 5 || done.Counts.Done != 1 {
		t.Fatalf("job: %+v", done)
	}
	for _, c := range done.Cells {
		want := map[string]string{"broken": "config.json", "acme/nothing": "not found"}[c.Model]
		switch {
		case c.Model == reluRef && c.Task == "glue/sst2":
			if c.State != api.CellDone || c.Metrics == nil {
				t.Errorf("working cell: %+v", c)
			}
			continue
		case c.Model == reluRef:
			want = "$T5ZOO_DATA/glue/CoLA/dev.tsv"
		}
		if c.State != api.CellFailed || !strings.Contains(c.Error, want) {
			t.Errorf("cell %s × %s: %+v, want failed with %q", c.Model, c.Task, c, want)
		}
		for _, path := range []string{broken, data, ts.Cache.Root()} {
			if strings.Contains(c.Error, path) {
				t.Errorf("cell error names the server's path %s: %s", path, c.Error)
			}
		}
	}
	res, err := ts.Client.EvalResults(t.Context(), job.ID)
	if err != nil || len(res.Results) != 6 {
		t.Fatalf("results: %+v, %v", res, err)
	}
	for _, raw := range res.Results {
		for _, path := range []string{broken, data, ts.Cache.Root()} {
			if strings.Contains(string(raw), path) {
				t.Errorf("results name the server's path %s: %s", path, raw)
			}
		}
	}
	if err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: reluRef, Input: "a", GenerateOptions: api.GenerateOptions{MaxNewTokens: 2}}, func(api.GenerateResponse) error { return nil }); err != nil {
		t.Errorf("generate after the job: %v", err)
	}
}

// TestEvalAverages: the results carry the GLUE average of the tasks present, saying which
// of the benchmark's groups are missing.
func TestEvalAverages(t *testing.T) {
	ts := newEvalServer(t, nil, evalData(t), nil)
	job := submit(t, ts, api.EvalRequest{Models: []string{longModel}, Tasks: []string{"glue/sst2"}, Modes: []string{"rank"}})
	if done := waitEval(t, ts, job.ID); done.Status != api.EvalDone {
		t.Fatalf("job: %+v", done)
	}
	res, err := ts.Client.EvalResults(t.Context(), job.ID)
	if err != nil || len(res.Averages) != 1 {
		t.Fatalf("results: %+v, %v", res, err)
	}
	a := res.Averages[0]
	r, err := evaluate.ParseResult(res.Results[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Model != longModel || a.Mode != "rank" || a.Benchmark != "glue" || a.Value == nil || *a.Value != r.Metrics["accuracy"] ||
		!reflect.DeepEqual(a.Groups, []string{"SST-2"}) || !slices.Contains(a.Missing, "CoLA") {
		t.Errorf("average %+v (value %v), want SST-2's accuracy %v alone", a, a.Value, r.Metrics["accuracy"])
	}
}

// TestEvalShutdownEndsStreams: an event stream open when the server shuts down ends with a
// shutting_down error instead of holding the shutdown.
func TestEvalShutdownEndsStreams(t *testing.T) {
	ts := newEvalServer(t, nil, evalData(t), func(c *serve.Config) { c.Store = newGatedStore(c.Cache.Registry()) })
	job := submit(t, ts, api.EvalRequest{Models: []string{reluRef}, Tasks: []string{"glue/sst2"}})
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		errc <- ts.Client.EvalEvents(context.Background(), job.ID, func(api.EvalEvent) error {
			select {
			case <-started:
			default:
				close(started)
			}
			return nil
		})
	}()
	<-started
	ts.Close()
	select {
	case err := <-errc:
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != "shutting_down" {
			t.Errorf("stream ended with %v, want shutting_down", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived the server's close")
	}
}

// FuzzEvalRequest posts arbitrary bodies to POST /api/eval: every answer is a 202 with a
// job, or an error in the error format below 500 (the 503 of a full job queue aside); the
// server never panics and never takes a file path for a task.
func FuzzEvalRequest(f *testing.F) {
	for _, s := range []string{
		`{"models":["m"],"tasks":["glue/sst2"],"modes":["rank"],"limit":2}`,
		`{"models":["m","m"],"tasks":["sst2","glue_sst2_v002"],"modes":["predict","rank","rank"],"limit":1,"batch":2}`,
		`{"models":["m"],"tasks":["glue"],"modes":["rank"],"limit":1}`,
		`{"models":["m"],"tasks":["superglue"],"limit":1}`,
		`{"models":["m"],"tasks":["spec.yaml"]}`,
		`{"models":["m"],"tasks":["../../../etc/passwd"]}`,
		`{"models":["acme/none"],"tasks":["squad"],"modes":["rank"]}`,
		`{"models":[""],"tasks":[""],"modes":[""]}`,
		`{"models":"m","tasks":"glue/sst2"}`,
		`{"models":["m"],"tasks":["glue/sst2"],"limit":1e99}`,
		`{}`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	cache, err := zoo.OpenCache(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	data := f.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "glue", "SST-2"), 0o755); err == nil {
		err = os.WriteFile(filepath.Join(data, "glue", "SST-2", "dev.tsv"), []byte(sst2Dev), 0o644)
	}
	if err != nil {
		f.Fatal(err)
	}
	s, err := serve.New(serve.Config{
		Cache: cache, Models: map[string]string{"m": goldenRelu}, EvalData: data,
		Limits: serve.Limits{MaxEvalCells: 8, MaxEvalJobs: 4, MaxBodyBytes: 4096},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/api/eval", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusAccepted:
			var job api.EvalJob
			if err := json.Unmarshal(w.Body.Bytes(), &job); err != nil || job.ID == "" || len(job.Cells) == 0 || len(job.Cells) > 8 {
				t.Fatalf("POST %s: 202 %s", body, w.Body)
			}
			for _, name := range job.Tasks {
				if _, err := task.Lookup(name); err != nil {
					t.Fatalf("POST %s: a job of task %q, which is no built-in", body, name)
				}
			}
		case w.Code >= 500 && w.Code != http.StatusServiceUnavailable:
			t.Fatalf("POST %s: %d %s", body, w.Code, w.Body)
		case errorCode(w.Body.Bytes()) == "":
			t.Fatalf("POST %s: %d without the error format: %s", body, w.Code, w.Body)
		}
	})
}

// TestEvalMemoryBudget runs a rank-mode job under a memory budget that leaves room beside
// the model for one example's scoring, not for a batch's: the batches are split until they
// fit and the results are those of an unbounded server. Under a budget that leaves room for
// no example, the cells fail with the memory error and the server goes on.
func TestEvalMemoryBudget(t *testing.T) {
	data := evalData(t)
	ctx := t.Context()
	req := api.EvalRequest{Models: []string{longModel}, Tasks: []string{"glue/sst2"}, Modes: []string{"rank"}, Batch: 8}

	// An unbounded server: the model's reservation, and the results to match.
	free := newEvalServer(t, nil, data, nil)
	want := waitEval(t, free, submit(t, free, req).ID)
	ps, err := free.Client.Ps(ctx)
	if err != nil || len(ps.Models) != 1 || want.Status != api.EvalDone {
		t.Fatalf("unbounded: %+v, %+v, %v", want, ps, err)
	}
	fixed := ps.Models[0].WeightBytes + ps.Models[0].KVBytes

	// The price of scoring each example alone, and all eight together.
	m, err := infer.Load(ctx, longModelDir(t), infer.LoadOptions{MaxTokens: 513})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tok, err := tokenizer.Open(longModelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	sst2, err := task.Lookup("glue/sst2")
	if err != nil {
		t.Fatal(err)
	}
	exs, err := sst2.Load(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(s string) []int {
		ids, err := tok.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	sets := make([]infer.ChoiceSet, len(exs))
	lo, hi := int64(1<<62), int64(0)
	for i, ex := range exs {
		sets[i].Input = encode(ex.Input)
		for _, c := range ex.Choices {
			sets[i].Targets = append(sets[i].Targets, encode(c))
		}
		one := m.ScoreChoicesBytes(sets[i : i+1])
		lo, hi = min(lo, one), max(hi, one)
	}
	if all := m.ScoreChoicesBytes(sets); all <= hi {
		t.Fatalf("a batch of 8 costs %d bytes, one example up to %d: nothing to split", all, hi)
	}

	split := newEvalServer(t, nil, data, func(c *serve.Config) { c.MemoryBudget = fixed + hi })
	got := waitEval(t, split, submit(t, split, req).ID)
	if got.Status != api.EvalDone || !reflect.DeepEqual(got.Cells[0].Metrics, want.Cells[0].Metrics) {
		t.Errorf("under a budget of one example's scoring: %+v, want the metrics %v", got, want.Cells[0].Metrics)
	}
	se, err1 := jobStore(t, split, got.ID).Get(ctx, "long/glue_sst2/rank.examples.jsonl")
	we, err2 := jobStore(t, free, want.ID).Get(ctx, "long/glue_sst2/rank.examples.jsonl")
	if err1 != nil || err2 != nil || string(se) != string(we) {
		t.Errorf("examples under the budget differ (%v, %v)", err1, err2)
	}

	tight := newEvalServer(t, nil, data, func(c *serve.Config) { c.MemoryBudget = fixed + lo - 1 })
	failed := waitEval(t, tight, submit(t, tight, req).ID)
	if failed.Status != api.EvalFailed || failed.Cells[0].State != api.CellFailed || !strings.Contains(failed.Cells[0].Error, "memory") {
		t.Errorf("under a budget of less than one example's scoring: %+v", failed)
	}
	if _, err := tight.Client.Encode(ctx, &api.EncodeRequest{Model: longModel, Input: "a"}); err != nil {
		t.Errorf("encode after the failed job: %v", err)
	}
}
