package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/t5zoo/t5zoo/evaluate/metric"
)

// EvalRequest is the body of POST /api/eval: a sweep of every model over every task in
// every mode, run as a job of the server.
type EvalRequest struct {
	// Models are names as /api/generate takes them: NAME[:TAG] of the registry (pulled on
	// first use) or a name the server was started with (--model NAME=DIR).
	Models []string `json:"models"`
	// Tasks are built-in task names ("glue/sst2", "super_glue/cb", "squad") or benchmark
	// names ("glue", "super_glue": their tasks). Task spec files are not accepted: the server
	// would read files of its own machine; run them with t5zoo eval.
	Tasks []string `json:"tasks"`
	// Modes are "predict" (generate, postprocess and compare, as T5 reports) and "rank"
	// (score each choice, take the argmax); absent means ["predict"].
	Modes []string `json:"modes,omitempty"`
	// Limit evaluates a deterministic subset of about this many examples of each task,
	// keeping groups whole; 0 means the whole validation split.
	Limit int `json:"limit,omitempty"`
	// Batch is the examples sent to the model at once; 0 means the evaluator's default.
	Batch int `json:"batch,omitempty"`
}

// The states of an eval job (EvalJob.Status).
const (
	// EvalQueued: waiting for the job ahead of it (the server runs one at a time).
	EvalQueued = "queued"
	// EvalRunning: its cells are being evaluated.
	EvalRunning = "running"
	// EvalDone: every cell finished with metrics.
	EvalDone = "done"
	// EvalFailed: the job ended with failed cells (Error says how many; each cell's error is
	// in its state and its results) or could not run at all.
	EvalFailed = "failed"
	// EvalCancelled: cancelled by POST /api/eval/{id}/cancel; the cells finished before
	// stay in its results.
	EvalCancelled = "cancelled"
)

// The states of an eval job's cell (EvalCell.State).
const (
	CellPending = "pending" // not reached yet
	CellLoading = "loading" // its model is being pulled or loaded
	CellRunning = "running" // examples are being evaluated
	CellDone    = "done"    // finished, with metrics
	CellSkipped = "skipped" // an earlier run (before a restart) finished it: its results are kept
	CellFailed  = "failed"  // its model or task failed; Error says why
)

// EvalJob is an eval job: what was asked, its state, and its cells' progress.
type EvalJob struct {
	// ID names the job; IDs sort by creation time.
	ID     string `json:"id"`
	Status string `json:"status"`
	// Request is what was submitted, normalised (duplicates dropped, default modes filled).
	Request EvalRequest `json:"request"`
	// Tasks are the tasks of Request.Tasks, benchmarks expanded.
	Tasks []string `json:"tasks"`
	// Notes say what the request asked that the job does not do (rank mode of a task that
	// cannot be ranked).
	Notes    []string   `json:"notes,omitempty"`
	Created  time.Time  `json:"created"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Error says why the job failed.
	Error string `json:"error,omitempty"`
	// Counts are the cells in each state.
	Counts EvalCounts `json:"counts"`
	// Cells are the job's (model, task, mode) cells in the order they run; the listing
	// (GET /api/eval) leaves them out.
	Cells []EvalCell `json:"cells,omitempty"`
}

// EvalCounts counts the cells of a job by state.
type EvalCounts struct {
	Total   int `json:"total"`
	Pending int `json:"pending"`
	Running int `json:"running"` // loading or running
	Done    int `json:"done"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
}

// EvalCell is one (model, task, mode) cell of a job.
type EvalCell struct {
	Index int    `json:"index"`
	Model string `json:"model"`
	Task  string `json:"task"`
	Mode  string `json:"mode"`
	State string `json:"state"`
	// Done and Total count the cell's examples (Total is 0 until its task has loaded).
	Done  int `json:"done"`
	Total int `json:"total"`
	// ElapsedSeconds is the time the cell has taken so far.
	ElapsedSeconds float64 `json:"elapsed_seconds,omitempty"`
	// Error says why the cell failed.
	Error string `json:"error,omitempty"`
	// Metrics are T5's metrics of a finished cell (×100 as T5 reports them).
	Metrics Metrics `json:"metrics,omitempty"`
}

// Metrics maps metric keys to values. JSON has no NaN: an undefined value (a correlation of
// a constant prediction) is null on the wire and NaN here.
type Metrics = metric.Values

// EvalJobsResponse answers GET /api/eval: every job, newest first, without cells.
type EvalJobsResponse struct {
	Jobs []EvalJob `json:"jobs"`
}

// EvalResultsResponse answers GET /api/eval/{id}/results: the results JSON of each
// finished or failed cell, and the benchmark averages of each model and mode.
type EvalResultsResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Results are the cells' results JSON (schema t5zoo.eval.cell/1, as t5zoo eval writes
	// them; evaluate.ParseResult reads one), in the job's cell order.
	Results []json.RawMessage `json:"results"`
	// Averages are the GLUE and SuperGLUE averages (T5's rules, over the tasks present) of
	// each model and mode with finished cells of the benchmark.
	Averages []EvalAverage `json:"averages"`
}

// EvalAverage is a benchmark average of one model in one mode.
type EvalAverage struct {
	Model     string `json:"model"`
	Mode      string `json:"mode"`
	Benchmark string `json:"benchmark"` // "glue" or "super_glue"
	// Value is the mean of the group means (null when a metric is undefined).
	Value *float64 `json:"value"`
	// Groups are the metric groups present (T5's names, "CoLA", "SST-2", ...); Missing those
	// of the benchmark that are not, so that a partial average is never mistaken for T5's.
	Groups  []string `json:"groups"`
	Missing []string `json:"missing"`
}

// EvalEvent is one line (or server-sent event) of GET /api/eval/{id}/events: first a "job"
// event with the whole job, then a "cell" event whenever a cell's state or progress changes
// (coalesced: a slow reader gets the latest state of each cell) and a "job" event when the
// job's status changes, and last an "end" event with the whole job once it has ended.
type EvalEvent struct {
	Type string    `json:"type"` // "job", "cell" or "end"
	Job  *EvalJob  `json:"job,omitempty"`
	Cell *EvalCell `json:"cell,omitempty"`
}

// EvalDeleteResponse answers DELETE /api/eval/{id}.
type EvalDeleteResponse struct {
	Deleted string `json:"deleted"` // the job's ID
}

// EvalEnded reports whether a job status is final (done, failed or cancelled).
func EvalEnded(status string) bool {
	return status == EvalDone || status == EvalFailed || status == EvalCancelled
}

// Eval calls POST /api/eval: the job is queued and the answer (202) says its ID.
func (c *Client) Eval(ctx context.Context, req *EvalRequest) (*EvalJob, error) {
	var r EvalJob
	return &r, c.call(ctx, http.MethodPost, "/api/eval", nil, req, &r)
}

// EvalJobs calls GET /api/eval.
func (c *Client) EvalJobs(ctx context.Context) (*EvalJobsResponse, error) {
	var r EvalJobsResponse
	return &r, c.call(ctx, http.MethodGet, "/api/eval", nil, nil, &r)
}

// EvalJob calls GET /api/eval/{id}.
func (c *Client) EvalJob(ctx context.Context, id string) (*EvalJob, error) {
	var r EvalJob
	return &r, c.call(ctx, http.MethodGet, "/api/eval/"+url.PathEscape(id), nil, nil, &r)
}

// EvalResults calls GET /api/eval/{id}/results.
func (c *Client) EvalResults(ctx context.Context, id string) (*EvalResultsResponse, error) {
	var r EvalResultsResponse
	return &r, c.call(ctx, http.MethodGet, "/api/eval/"+url.PathEscape(id)+"/results", nil, nil, &r)
}

// CancelEval calls POST /api/eval/{id}/cancel and returns the job as the cancel left it
// (a running job is "running" until its current batch stops, then "cancelled").
func (c *Client) CancelEval(ctx context.Context, id string) (*EvalJob, error) {
	var r EvalJob
	return &r, c.call(ctx, http.MethodPost, "/api/eval/"+url.PathEscape(id)+"/cancel", nil, struct{}{}, &r)
}

// DeleteEval calls DELETE /api/eval/{id}.
func (c *Client) DeleteEval(ctx context.Context, id string) (*EvalDeleteResponse, error) {
	var r EvalDeleteResponse
	return &r, c.call(ctx, http.MethodDelete, "/api/eval/"+url.PathEscape(id), nil, nil, &r)
}

// EvalEvents calls GET /api/eval/{id}/events (NDJSON) and passes each event to fn until
// the "end" event; an error fn returns ends the call.
func (c *Client) EvalEvents(ctx context.Context, id string, fn func(EvalEvent) error) error {
	resp, err := c.doAccept(ctx, http.MethodGet, "/api/eval/"+url.PathEscape(id)+"/events", nil, nil, NDJSONType)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, NDJSONType) {
		return fmt.Errorf("api: eval events: answer of type %q, want %s", ct, NDJSONType)
	}
	return readLines(resp.Body, resp.StatusCode, func(line []byte) (bool, error) {
		var e EvalEvent
		if err := json.Unmarshal(line, &e); err != nil {
			return false, fmt.Errorf("api: eval events: %w", err)
		}
		return e.Type == "end", fn(e)
	})
}
