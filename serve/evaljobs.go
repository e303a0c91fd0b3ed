package serve

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
	"github.com/t5zoo/t5zoo/serve/api"
)

// jobSchema names the format of an eval job's job.json.
const jobSchema = "t5zoo.eval.job/1"

// evalInputTokens is the length T5 trims evaluation inputs to (its 512-token input
// feature length); a server whose limits load models for shorter inputs trims to those.
const evalInputTokens = 512

// evalJobs holds the server's evaluation jobs and runs them, one at a time in the order
// they were submitted, on a goroutine of the server. Each job lives in a folder:
//
//	$T5ZOO_HOME/evals/
//	└── <id>/
//	    ├── job.json     the request, status, timestamps and error (written atomically)
//	    └── results/     an evaluate.DirStore: <model>/<task>/<mode>.json and .examples.jsonl
//
// A server that starts lists the jobs there; those that were queued or running are queued
// again, and their sweep skips the cells whose results are already written. close stops
// the running job without changing its status on disk, so the next start resumes it.
type evalJobs struct {
	s       *Server
	dir     string // $T5ZOO_HOME/evals
	data    string // Config.EvalData
	version string // recorded in each cell's results

	mu     sync.Mutex
	jobs   map[string]*evalJob
	queue  []*evalJob // queued, oldest first
	closed bool

	wake    chan struct{}      // capacity 1: a job was queued
	stop    context.CancelFunc // ends the runner's context
	done    chan struct{}      // closed when the runner has returned
	closing chan struct{}      // closed by close: event streams end

	cells *prometheus.CounterVec // result: done, skipped, failed
}

// evalJob is one job. id, dir, store and tasks are set before the job is shared and are
// read-only after; the fields from rec on are guarded by evalJobs.mu.
type evalJob struct {
	id    string
	dir   *evaluate.DirStore // the job's folder (job.json)
	store *evaluate.DirStore // its results
	tasks []*task.Task       // nil when the stored task names no longer resolve (rec.Error)
	// persist serialises the writes of job.json, each of the record as it is then, and
	// guards deleted (a job deleted is never written again).
	persist sync.Mutex
	deleted bool

	// Guarded by evalJobs.mu.
	rec       jobRecord
	cells     []api.EvalCell
	versions  []uint64 // per cell, bumped at each change (0: never reported this run)
	statusV   uint64   // bumped at each change of rec
	filled    bool     // cells hold the store's state (jobs read from disk start without)
	cancel    context.CancelFunc
	cancelled bool          // a client cancelled it
	changed   chan struct{} // closed and replaced at every change
}

// jobRecord is job.json.
type jobRecord struct {
	Schema  string          `json:"schema"`
	ID      string          `json:"id"`
	Status  string          `json:"status"`
	Request api.EvalRequest `json:"request"`
	// Tasks are the task names the request's tasks resolved to, benchmarks expanded.
	Tasks []string `json:"tasks"`
	// MaxInputTokens is the length inputs are trimmed to: part of each cell's identity, so
	// fixed when the job is made.
	MaxInputTokens int            `json:"max_input_tokens"`
	Notes          []string       `json:"notes,omitempty"`
	Created        time.Time      `json:"created"`
	Started        *time.Time     `json:"started,omitempty"`
	Finished       *time.Time     `json:"finished,omitempty"`
	Error          string         `json:"error,omitempty"`
	Counts         api.EvalCounts `json:"counts"`
}

// Errors of eval jobs (statusOf maps them).
var (
	// errEvalJobNotFound: no job has the ID.
	errEvalJobNotFound = errors.New("serve: no such eval job")
	// errEvalJobActive: deleting a job that is queued or running.
	errEvalJobActive = errors.New("serve: eval job is queued or running")
	// errEvalUnavailable: the server has no eval data folder.
	errEvalUnavailable = errors.New("serve: evaluation is not configured")
)

// jobIDPattern matches the IDs newJobID makes: the creation time (UTC, to the
// millisecond) and 48 random bits. Request paths are matched against it before they name a
// folder.
var jobIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{3}Z-[0-9a-f]{12}$`)

// newJobID returns an ID that sorts by creation time; the random suffix keeps IDs made in
// the same millisecond (or by replicas sharing a home) apart.
func newJobID(now time.Time) string {
	var b [6]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand.Read does not fail (Go 1.24)
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// newEvalJobs reads the jobs of $T5ZOO_HOME/evals, queues again those that were queued or
// running, and starts the runner. A job folder that cannot be read is logged and left.
func newEvalJobs(s *Server) *evalJobs {
	ctx, stop := context.WithCancel(context.Background())
	ej := &evalJobs{
		s: s, dir: filepath.Join(s.cfg.Cache.Root(), "evals"), data: s.cfg.EvalData, version: evaluate.BuildVersion(),
		jobs: map[string]*evalJob{}, wake: make(chan struct{}, 1), stop: stop,
		done: make(chan struct{}), closing: make(chan struct{}),
	}
	ej.registerMetrics(s.metrics.reg)
	if ej.data != "" {
		s.log.Info("eval jobs enabled", "data", ej.data, "jobs", ej.dir)
	}
	ej.load()
	go ej.run(ctx)
	return ej
}

// registerMetrics adds the jobs gauge (by state, read when scraped) and the cells counter.
func (ej *evalJobs) registerMetrics(reg *prometheus.Registry) {
	for _, st := range []string{api.EvalQueued, api.EvalRunning, api.EvalDone, api.EvalFailed, api.EvalCancelled} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "t5zoo_eval_jobs", Help: "Evaluation jobs by state (queued, running, done, failed, cancelled).",
			ConstLabels: prometheus.Labels{"state": st},
		}, func() float64 { return float64(ej.count(st)) }))
	}
	ej.cells = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "t5zoo_eval_cells_total", Help: "Evaluation cells finished, by result (done, skipped: finished by an earlier run, failed).",
	}, []string{"result"})
	reg.MustRegister(ej.cells)
}

// count returns the jobs in state st.
func (ej *evalJobs) count(st string) int {
	ej.mu.Lock()
	defer ej.mu.Unlock()
	n := 0
	for _, j := range ej.jobs {
		if j.rec.Status == st {
			n++
		}
	}
	return n
}

// load reads the jobs on disk.
func (ej *evalJobs) load() {
	entries, err := os.ReadDir(ej.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			ej.s.log.Warn("eval jobs: cannot list them", "dir", ej.dir, "err", err)
		}
		return
	}
	var resume []*evalJob
	for _, e := range entries {
		if !e.IsDir() || !jobIDPattern.MatchString(e.Name()) {
			continue
		}
		j, err := ej.open(e.Name())
		if err != nil {
			ej.s.log.Warn("eval job unreadable: left as it is", "job", e.Name(), "err", err)
			continue
		}
		ej.jobs[j.id] = j
		switch j.rec.Status {
		case api.EvalQueued, api.EvalRunning:
			if j.tasks == nil {
				j.rec.Status = api.EvalFailed
				now := time.Now().UTC()
				j.rec.Finished = &now
				ej.save(j)
				continue
			}
			resume = append(resume, j)
		}
	}
	slices.SortFunc(resume, func(a, b *evalJob) int { return cmp.Compare(a.id, b.id) })
	for _, j := range resume {
		j.rec.Status = api.EvalQueued
		ej.queue = append(ej.queue, j)
	}
	if len(ej.jobs) > 0 {
		ej.s.log.Info("eval jobs found", "jobs", len(ej.jobs), "resumed", len(resume))
	}
	if len(resume) > 0 && ej.data == "" {
		ej.s.log.Warn("eval jobs wait: the server has no eval data folder (--eval-data, T5ZOO_DATA)", "queued", len(resume))
	}
}

// open reads the job in folder id.
func (ej *evalJobs) open(id string) (*evalJob, error) {
	dir, err := evaluate.NewDirStore(filepath.Join(ej.dir, id))
	if err != nil {
		return nil, err
	}
	data, err := dir.Get(context.Background(), "job.json")
	if err != nil {
		return nil, err
	}
	var rec jobRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("job.json: %w", err)
	}
	if rec.Schema != jobSchema || rec.ID != id {
		return nil, fmt.Errorf("job.json: schema %q, id %q: not a job of this server", rec.Schema, rec.ID)
	}
	store, err := evaluate.NewDirStore(filepath.Join(ej.dir, id, "results"))
	if err != nil {
		return nil, err
	}
	j := &evalJob{id: id, dir: dir, store: store, rec: rec, changed: make(chan struct{})}
	for _, name := range rec.Tasks {
		t, err := task.Lookup(name)
		if err != nil {
			j.tasks = nil
			if rec.Error == "" {
				j.rec.Error = fmt.Sprintf("task %s: %v", name, err)
			}
			break
		}
		j.tasks = append(j.tasks, t)
	}
	j.initCells()
	return j, nil
}

// sweep is the job's sweep, without its Progress.
func (ej *evalJobs) sweep(j *evalJob) *evaluate.Sweep {
	modes := make([]evaluate.Mode, len(j.rec.Request.Modes))
	for i, m := range j.rec.Request.Modes {
		modes[i] = evaluate.Mode(m)
	}
	return &evaluate.Sweep{
		Models: j.rec.Request.Models, Tasks: j.tasks, Modes: modes, Data: ej.data, Store: j.store,
		Source: &evalSource{s: ej.s, maxInputTokens: j.rec.MaxInputTokens},
		Limit:  j.rec.Request.Limit, Batch: j.rec.Request.Batch, MaxInputTokens: j.rec.MaxInputTokens,
		Version: ej.version, Logger: ej.s.log.With("eval", j.id),
	}
}

// initCells lays out the job's cells, all pending.
func (j *evalJob) initCells() {
	if j.tasks == nil {
		return
	}
	sw := &evaluate.Sweep{Models: j.rec.Request.Models, Tasks: j.tasks}
	for _, m := range j.rec.Request.Modes {
		sw.Modes = append(sw.Modes, evaluate.Mode(m))
	}
	for i, c := range sw.Cells() {
		j.cells = append(j.cells, api.EvalCell{Index: i, Model: c.Model, Task: c.Task, Mode: string(c.Mode), State: api.CellPending})
	}
	j.versions = make([]uint64, len(j.cells))
}

// fill reads the state of the cells no progress has reported yet from the job's store:
// for a job read from disk, what earlier runs wrote.
func (ej *evalJobs) fill(j *evalJob) {
	ej.mu.Lock()
	if j.filled {
		ej.mu.Unlock()
		return
	}
	cells := slices.Clone(j.cells)
	ej.mu.Unlock()
	found := make([]*evaluate.CellResult, len(cells))
	for i, c := range cells {
		key := evaluate.Cell{Model: c.Model, Task: c.Task, Mode: evaluate.Mode(c.Mode)}.ResultKey()
		if data, err := j.store.Get(context.Background(), key); err == nil {
			if r, err := evaluate.ParseResult(data); err == nil {
				found[i] = r
			}
		}
	}
	ej.mu.Lock()
	defer ej.mu.Unlock()
	if j.filled {
		return
	}
	j.filled = true
	for i, r := range found {
		if r != nil && j.versions[i] == 0 {
			ej.applyResultLocked(&j.cells[i], r)
		}
	}
}

// applyResultLocked sets a cell's state from its results.
func (ej *evalJobs) applyResultLocked(c *api.EvalCell, r *evaluate.CellResult) {
	c.Done, c.Total, c.ElapsedSeconds = r.Examples, r.Examples, r.WallSeconds
	if r.Status == evaluate.StatusOK {
		c.State, c.Error, c.Metrics = api.CellDone, "", api.Metrics(r.Metrics)
	} else {
		c.State, c.Error, c.Metrics = api.CellFailed, ej.scrub(r.Error), nil
	}
}

// scrub takes the server's paths out of a message (Server.scrubErr).
func (ej *evalJobs) scrub(msg string) string { return ej.s.scrubber.Replace(msg) }

// changedLocked wakes the event streams of j.
func (j *evalJob) changedLocked() {
	close(j.changed)
	j.changed = make(chan struct{})
}

// save writes j's job.json as the record is now; a failure is logged (the job goes on,
// and the next change writes it again).
func (ej *evalJobs) save(j *evalJob) error {
	j.persist.Lock()
	defer j.persist.Unlock()
	if j.deleted {
		return nil
	}
	data, err := ej.record(j)
	if err == nil {
		err = j.dir.Put(context.Background(), "job.json", data)
	}
	if err != nil {
		ej.s.log.Error("eval job: cannot write job.json", "job", j.id, "err", err)
		return fmt.Errorf("eval job %s: write job.json: %w", j.id, err)
	}
	return nil
}

// record is j's job.json as the record is now.
func (ej *evalJobs) record(j *evalJob) ([]byte, error) {
	ej.mu.Lock()
	rec := j.rec
	if j.filled {
		rec.Counts = countCells(j.cells)
	}
	ej.mu.Unlock()
	data, err := json.MarshalIndent(rec, "", "  ")
	return append(data, '\n'), err
}

// countCells counts cells by state.
func countCells(cells []api.EvalCell) api.EvalCounts {
	n := api.EvalCounts{Total: len(cells)}
	for _, c := range cells {
		switch c.State {
		case api.CellPending:
			n.Pending++
		case api.CellLoading, api.CellRunning:
			n.Running++
		case api.CellDone:
			n.Done++
		case api.CellSkipped:
			n.Skipped++
		case api.CellFailed:
			n.Failed++
		}
	}
	return n
}

// add makes a validated job, writes it and queues it.
func (ej *evalJobs) add(p *evalPlan) (api.EvalJob, error) {
	now := time.Now().UTC()
	id := newJobID(now)
	dir, err := evaluate.NewDirStore(filepath.Join(ej.dir, id))
	if err != nil {
		return api.EvalJob{}, fmt.Errorf("eval job: %w", err)
	}
	store, err := evaluate.NewDirStore(filepath.Join(ej.dir, id, "results"))
	if err != nil {
		return api.EvalJob{}, fmt.Errorf("eval job: %w", err)
	}
	j := &evalJob{id: id, dir: dir, store: store, tasks: p.tasks, filled: true, changed: make(chan struct{}),
		rec: jobRecord{Schema: jobSchema, ID: id, Status: api.EvalQueued, Request: p.req, Tasks: taskNames(p.tasks),
			MaxInputTokens: p.maxInputTokens, Notes: p.notes, Created: now}}
	j.initCells()
	ej.mu.Lock()
	if ej.closed {
		ej.mu.Unlock()
		os.RemoveAll(dir.Root())
		return api.EvalJob{}, ErrShuttingDown
	}
	if n, lim := ej.activeLocked(), ej.s.cfg.Limits.MaxEvalJobs; n >= lim {
		ej.mu.Unlock()
		os.RemoveAll(dir.Root())
		return api.EvalJob{}, fmt.Errorf("%w: %d eval jobs are queued or running, the limit is %d", ErrBusy, n, lim)
	}
	ej.jobs[id] = j
	ej.mu.Unlock()
	if err := ej.save(j); err != nil {
		ej.mu.Lock()
		delete(ej.jobs, id)
		ej.mu.Unlock()
		os.RemoveAll(dir.Root())
		return api.EvalJob{}, err
	}
	ej.mu.Lock()
	ej.queue = append(ej.queue, j)
	view := ej.viewLocked(j, true)
	ej.mu.Unlock()
	ej.kick()
	ej.s.log.Info("eval job queued", "job", id, "models", len(p.req.Models), "tasks", len(p.tasks), "cells", len(j.cells))
	return view, nil
}

func taskNames(ts []*task.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name()
	}
	return out
}

// activeLocked counts the jobs queued or running.
func (ej *evalJobs) activeLocked() int {
	n := 0
	for _, j := range ej.jobs {
		if !api.EvalEnded(j.rec.Status) {
			n++
		}
	}
	return n
}

// kick wakes the runner.
func (ej *evalJobs) kick() {
	select {
	case ej.wake <- struct{}{}:
	default:
	}
}

// run is the runner: it takes the queued jobs one at a time until ctx ends (close).
func (ej *evalJobs) run(ctx context.Context) {
	defer close(ej.done)
	for {
		if j := ej.next(); j != nil {
			ej.runJob(ctx, j)
			continue
		}
		select {
		case <-ej.wake:
		case <-ctx.Done():
			return
		}
	}
}

// next takes the oldest queued job, or nil (none, the server closes, or no data folder).
func (ej *evalJobs) next() *evalJob {
	ej.mu.Lock()
	defer ej.mu.Unlock()
	if ej.closed || len(ej.queue) == 0 || ej.data == "" {
		return nil
	}
	j := ej.queue[0]
	ej.queue = ej.queue[1:]
	return j
}

// runJob runs j's sweep and records how it ended. When the server closes (ctx ends)
// meanwhile, the job's status on disk stays "running", so the next start resumes it.
func (ej *evalJobs) runJob(ctx context.Context, j *evalJob) {
	ej.fill(j)
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ej.mu.Lock()
	if j.cancelled { // cancelled between next and here
		ej.mu.Unlock()
		return
	}
	now := time.Now().UTC()
	j.cancel = cancel
	j.rec.Status = api.EvalRunning
	if j.rec.Started == nil {
		j.rec.Started = &now
	}
	j.rec.Finished, j.rec.Error = nil, ""
	j.statusV++
	j.changedLocked()
	ej.mu.Unlock()
	ej.save(j) //nolint:errcheck // logged; the job runs anyway
	ej.s.log.Info("eval job started", "job", j.id, "cells", len(j.cells))

	sw := ej.sweep(j)
	sw.Progress = func(p evaluate.Progress) { ej.progress(j, p) }
	sum, err := ej.runSweep(jctx, j, sw)

	ej.mu.Lock()
	j.cancel = nil
	status, msg := api.EvalDone, ""
	switch {
	case j.cancelled:
		status = api.EvalCancelled
	case ctx.Err() != nil:
		ej.mu.Unlock()
		ej.s.log.Info("eval job stopped by the server's shutdown: it resumes at the next start", "job", j.id)
		return
	case err != nil:
		status, msg = api.EvalFailed, ej.scrub(err.Error())
	case sum.Failed > 0:
		status, msg = api.EvalFailed, fmt.Sprintf("%d of %d cells failed", sum.Failed, len(j.cells))
	}
	for i := range j.cells {
		if c := &j.cells[i]; c.State == api.CellLoading || c.State == api.CellRunning {
			c.State, c.Done, c.ElapsedSeconds = api.CellPending, 0, 0 // stopped before it finished: nothing kept
			j.versions[i]++
		}
	}
	end := time.Now().UTC()
	j.rec.Status, j.rec.Error, j.rec.Finished = status, msg, &end
	j.statusV++
	j.changedLocked()
	ej.mu.Unlock()
	ej.save(j) //nolint:errcheck // logged
	ej.s.log.Info("eval job ended", "job", j.id, "status", status, "done", sum.Done, "skipped", sum.Skipped,
		"failed", sum.Failed, "took", end.Sub(*j.rec.Started).Round(time.Millisecond), "err", msg)
}

// runSweep runs sw, a panic (a task or checkpoint no check foresaw) turned into the job's
// error: one bad job costs its own results, never the server.
func (ej *evalJobs) runSweep(ctx context.Context, j *evalJob, sw *evaluate.Sweep) (sum evaluate.Summary, err error) {
	defer func() {
		if v := recover(); v != nil {
			ej.s.log.Error("eval job panicked", "job", j.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = fmt.Errorf("internal error: the evaluation panicked (%v)", v)
		}
	}()
	return sw.Run(ctx)
}

// progress records a sweep's report on one of j's cells.
func (ej *evalJobs) progress(j *evalJob, p evaluate.Progress) {
	ej.mu.Lock()
	defer ej.mu.Unlock()
	i := p.CellIndex
	if i < 0 || i >= len(j.cells) || j.cells[i].Model != p.Cell.Model || j.cells[i].Task != p.Cell.Task || j.cells[i].Mode != string(p.Cell.Mode) {
		i = slices.IndexFunc(j.cells, func(c api.EvalCell) bool {
			return c.Model == p.Cell.Model && c.Task == p.Cell.Task && c.Mode == string(p.Cell.Mode)
		})
		if i < 0 {
			return
		}
	}
	c := &j.cells[i]
	c.State = p.State
	c.Done, c.Total, c.ElapsedSeconds = p.Done, p.Total, p.Elapsed.Seconds()
	if p.Result != nil {
		ej.applyResultLocked(c, p.Result)
	}
	switch p.State {
	case api.CellSkipped:
		c.State = api.CellSkipped // applyResultLocked said done
		ej.cells.WithLabelValues("skipped").Inc()
	case api.CellDone:
		ej.cells.WithLabelValues("done").Inc()
	case api.CellFailed:
		c.State = api.CellFailed
		if p.Err != nil {
			c.Error = ej.scrub(p.Err.Error())
		}
		ej.cells.WithLabelValues("failed").Inc()
	}
	j.versions[i]++
	j.changedLocked()
}

// get returns the job with ID id.
func (ej *evalJobs) get(id string) (*evalJob, error) {
	ej.mu.Lock()
	defer ej.mu.Unlock()
	if j, ok := ej.jobs[id]; ok {
		return j, nil
	}
	return nil, fmt.Errorf("%w: %s", errEvalJobNotFound, id)
}

// viewLocked is j on the wire, with its cells or without.
func (ej *evalJobs) viewLocked(j *evalJob, cells bool) api.EvalJob {
	r := j.rec
	v := api.EvalJob{ID: j.id, Status: r.Status, Request: r.Request, Tasks: r.Tasks, Notes: r.Notes,
		Created: r.Created, Started: r.Started, Finished: r.Finished, Error: r.Error, Counts: r.Counts}
	if j.filled {
		v.Counts = countCells(j.cells)
	}
	if cells {
		v.Cells = slices.Clone(j.cells)
		if v.Cells == nil {
			v.Cells = []api.EvalCell{}
		}
	}
	return v
}

// view is j with its cells, read from its store first if need be.
func (ej *evalJobs) view(j *evalJob) api.EvalJob {
	ej.fill(j)
	ej.mu.Lock()
	defer ej.mu.Unlock()
	return ej.viewLocked(j, true)
}

// list returns every job without cells, newest first.
func (ej *evalJobs) list() []api.EvalJob {
	ej.mu.Lock()
	defer ej.mu.Unlock()
	out := make([]api.EvalJob, 0, len(ej.jobs))
	for _, j := range ej.jobs {
		out = append(out, ej.viewLocked(j, false))
	}
	slices.SortFunc(out, func(a, b api.EvalJob) int {
		return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(b.ID, a.ID))
	})
	return out
}

// cancelJob cancels a queued job at once, and a running one at its next engine call (it
// stays "running" until its sweep has stopped); an ended job is left as it is.
func (ej *evalJobs) cancelJob(id string) (api.EvalJob, error) {
	j, err := ej.get(id)
	if err != nil {
		return api.EvalJob{}, err
	}
	ej.fill(j)
	ej.mu.Lock()
	queued := j.rec.Status == api.EvalQueued
	switch {
	case queued:
		ej.queue = slices.DeleteFunc(ej.queue, func(q *evalJob) bool { return q == j })
		now := time.Now().UTC()
		j.cancelled = true
		j.rec.Status, j.rec.Finished = api.EvalCancelled, &now
		j.statusV++
		j.changedLocked()
	case j.rec.Status == api.EvalRunning && !j.cancelled:
		j.cancelled = true
		if j.cancel != nil {
			j.cancel()
		}
		ej.s.log.Info("eval job cancelled while running", "job", id)
	}
	view := ej.viewLocked(j, true)
	ej.mu.Unlock()
	if queued {
		ej.save(j) //nolint:errcheck // logged
		ej.s.log.Info("eval job cancelled while queued", "job", id)
	}
	return view, nil
}

// deleteJob removes an ended job and its folder.
func (ej *evalJobs) deleteJob(id string) error {
	ej.mu.Lock()
	j, ok := ej.jobs[id]
	if !ok {
		ej.mu.Unlock()
		return fmt.Errorf("%w: %s", errEvalJobNotFound, id)
	}
	if !api.EvalEnded(j.rec.Status) {
		ej.mu.Unlock()
		return fmt.Errorf("%w: %s is %s; cancel it first", errEvalJobActive, id, j.rec.Status)
	}
	delete(ej.jobs, id)
	ej.mu.Unlock()
	j.persist.Lock() // no job.json write is in flight, and none follows
	defer j.persist.Unlock()
	j.deleted = true
	if err := os.RemoveAll(j.dir.Root()); err != nil {
		return fmt.Errorf("delete eval job %s: %w", id, err)
	}
	ej.s.log.Info("eval job deleted", "job", id)
	return nil
}

// close stops the runner (the running job keeps its status on disk) and ends the event
// streams; it waits for the runner to return.
func (ej *evalJobs) close() {
	ej.mu.Lock()
	if ej.closed {
		ej.mu.Unlock()
		<-ej.done
		return
	}
	ej.closed = true
	close(ej.closing)
	ej.mu.Unlock()
	ej.stop()
	<-ej.done
}
