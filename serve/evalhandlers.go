package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
	"github.com/t5zoo/t5zoo/serve/api"
)

// evalPlan is a validated eval request.
type evalPlan struct {
	req            api.EvalRequest // normalised: duplicates dropped, default modes
	tasks          []*task.Task
	notes          []string
	maxInputTokens int
}

// planEval validates an eval request: names of models the server can serve, built-in task
// and benchmark names (never files: a spec path would make the server read its own files),
// and known modes, within Limits.MaxEvalCells cells. A task whose files the data folder
// lacks fails its cells, naming the files it looked for (task.MissingDataError).
func (s *Server) planEval(req api.EvalRequest) (*evalPlan, error) {
	if s.cfg.EvalData == "" {
		return nil, fmt.Errorf("%w: the server has no eval data folder (start it with --eval-data DIR or T5ZOO_DATA)", errEvalUnavailable)
	}
	p := &evalPlan{}
	maxCells := s.cfg.Limits.MaxEvalCells
	switch {
	case len(req.Models) == 0:
		return nil, badRequest("models: none; name at least one")
	case len(req.Tasks) == 0:
		return nil, badRequest("tasks: none; name at least one (a task such as glue/sst2, or a benchmark: glue, super_glue)")
	case len(req.Models) > maxCells || len(req.Tasks) > maxCells:
		// Each names at least a cell: bounded before any name is looked at.
		return nil, overLimit("%d models and %d tasks, over the limit of %d cells", len(req.Models), len(req.Tasks), maxCells)
	}
	models := map[string]bool{}
	for i, m := range req.Models {
		if _, _, _, err := s.models.key(m); err != nil {
			return nil, fmt.Errorf("models[%d] %q: %w", i, m, err)
		}
		if !models[m] {
			models[m] = true
			p.req.Models = append(p.req.Models, m)
		}
	}
	seen, asked := map[string]bool{}, map[string]bool{}
	for i, name := range req.Tasks {
		if len(name) > maxTaskName {
			return nil, badRequest("tasks[%d]: %d bytes is no task name", i, len(name))
		}
		if looksLikeSpec(name) {
			return nil, badRequest("tasks[%d] %q: the server takes built-in task and benchmark names, not task spec files (it would read files of its own machine); run spec tasks with t5zoo eval --task FILE", i, name)
		}
		// task.Expand, not task.Resolve, which would read spec files.
		ts, err := task.Expand(name)
		if err != nil {
			return nil, badRequest("tasks[%d]: %v", i, err)
		}
		if !asked[name] {
			asked[name] = true
			p.req.Tasks = append(p.req.Tasks, name)
		}
		for _, t := range ts {
			if !seen[t.Name()] {
				seen[t.Name()] = true
				p.tasks = append(p.tasks, t)
				// A benchmark may name tasks whose files the folder lacks: their cells will
				// fail, and the job's answer says so at once.
				if _, err := t.Paths(s.cfg.EvalData); err != nil {
					p.notes = append(p.notes, fmt.Sprintf("%s: the eval data folder lacks %s; its cells will fail", t.Name(), strings.Join(t.Files(), ", ")))
				}
			}
		}
	}
	modes := req.Modes
	if len(modes) == 0 {
		modes = []string{string(evaluate.Predict)}
	}
	var ms []evaluate.Mode
	for i, m := range modes {
		mode, err := evaluate.ParseMode(m)
		if err != nil {
			return nil, badRequest("modes[%d]: %v", i, err)
		}
		if !slices.Contains(ms, mode) {
			ms = append(ms, mode)
			p.req.Modes = append(p.req.Modes, m)
		}
	}
	if req.Limit < 0 {
		return nil, badRequest("limit %d: want 0 (every example) or more", req.Limit)
	}
	if lim := s.cfg.Limits.MaxInputs; req.Batch < 0 || req.Batch > lim {
		return nil, overLimit("batch %d outside 0..%d (0: the evaluator's default, %d)", req.Batch, lim, min(evaluate.DefaultBatch, lim))
	}
	p.req.Limit, p.req.Batch = req.Limit, req.Batch
	if p.req.Batch == 0 && evaluate.DefaultBatch > s.cfg.Limits.MaxInputs {
		p.req.Batch = s.cfg.Limits.MaxInputs
	}
	sw := &evaluate.Sweep{Models: p.req.Models, Tasks: p.tasks, Modes: ms}
	for _, name := range sw.NotRun() {
		p.notes = append(p.notes, fmt.Sprintf("%s: the task does not run in this mode (rank needs label choices): cells left out", name))
	}
	switch n, lim := len(sw.Cells()), maxCells; {
	case n == 0:
		return nil, badRequest("no cells to run: %s", strings.Join(p.notes, "; "))
	case n > lim:
		return nil, overLimit("%d cells (%d models × %d tasks × %d modes, less those that cannot be ranked), the limit is %d; split the sweep into jobs",
			n, len(p.req.Models), len(p.tasks), len(ms), lim)
	}
	// The models load for inputs of at most max(MaxInputTokens, MaxNewTokens+1) tokens.
	lim := s.cfg.Limits
	p.maxInputTokens = min(evalInputTokens, max(lim.MaxInputTokens, lim.MaxNewTokens+1))
	return p, nil
}

// maxTaskName bounds a task name of a request (the built-ins' are under 40 bytes), so that
// looking up a name, and suggesting the closest, stays cheap.
const maxTaskName = 128

// looksLikeSpec reports whether a task name is a file path (what task.Resolve would read
// as a spec): a spec's extension, or a path's shape.
func looksLikeSpec(name string) bool {
	lower := strings.ToLower(name)
	for _, ext := range []string{".json", ".yaml", ".yml"} {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	return strings.HasPrefix(name, "/") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") ||
		strings.Contains(name, `\`) || strings.Contains(name, "..") || filepath.IsAbs(name)
}

// submitEval answers POST /api/eval: 202 and the queued job.
func (s *Server) submitEval(c *gin.Context) {
	if s.draining.Load() {
		writeError(c, ErrShuttingDown)
		return
	}
	var req api.EvalRequest
	if err := decodeJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	p, err := s.planEval(req)
	if err != nil {
		writeError(c, err)
		return
	}
	job, err := s.evals.add(p)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("Location", "/api/eval/"+job.ID)
	c.PureJSON(http.StatusAccepted, job)
}

// listEval answers GET /api/eval.
func (s *Server) listEval(c *gin.Context) {
	c.PureJSON(http.StatusOK, api.EvalJobsResponse{Jobs: s.evals.list()})
}

// evalJobParam returns the job the route's {id} names.
func (s *Server) evalJobParam(c *gin.Context) (*evalJob, error) {
	id := c.Param("id")
	if !jobIDPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: %q is not a job ID", errEvalJobNotFound, id)
	}
	return s.evals.get(id)
}

// showEval answers GET /api/eval/{id}.
func (s *Server) showEval(c *gin.Context) {
	j, err := s.evalJobParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, s.evals.view(j))
}

// evalResults answers GET /api/eval/{id}/results: the results JSON of the cells written
// so far, in cell order, and the benchmark averages of each model and mode.
func (s *Server) evalResults(c *gin.Context) {
	j, err := s.evalJobParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	view := s.evals.view(j)
	out := api.EvalResultsResponse{ID: view.ID, Status: view.Status, Results: []json.RawMessage{}, Averages: []api.EvalAverage{}}
	type group struct{ model, mode string }
	metrics := map[group]map[string]map[string]float64{}
	var order []group
	for _, cell := range view.Cells {
		key := evaluate.Cell{Model: cell.Model, Task: cell.Task, Mode: evaluate.Mode(cell.Mode)}.ResultKey()
		data, err := j.store.Get(c.Request.Context(), key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			writeError(c, fmt.Errorf("eval job %s: read %s: %w", j.id, key, err))
			return
		}
		r, err := evaluate.ParseResult(data)
		if err != nil {
			s.log.Warn("eval job: unreadable results left out", "job", j.id, "key", key, "err", err)
			continue
		}
		out.Results = append(out.Results, json.RawMessage(s.evals.scrub(string(data))))
		if r.Status != evaluate.StatusOK {
			continue
		}
		g := group{cell.Model, cell.Mode}
		if metrics[g] == nil {
			metrics[g] = map[string]map[string]float64{}
			order = append(order, g)
		}
		metrics[g][r.Task] = r.Metrics
	}
	for _, g := range order {
		for _, a := range task.Averages(metrics[g]) {
			avg := api.EvalAverage{Model: g.model, Mode: g.mode, Benchmark: a.Benchmark, Groups: a.Groups, Missing: a.Missing}
			if v := a.Value; !math.IsNaN(v) && !math.IsInf(v, 0) {
				avg.Value = &v
			}
			if avg.Groups == nil {
				avg.Groups = []string{}
			}
			if avg.Missing == nil {
				avg.Missing = []string{}
			}
			out.Averages = append(out.Averages, avg)
		}
	}
	c.PureJSON(http.StatusOK, out)
}

// cancelEval answers POST /api/eval/{id}/cancel.
func (s *Server) cancelEval(c *gin.Context) {
	j, err := s.evalJobParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	view, err := s.evals.cancelJob(j.id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, view)
}

// deleteEval answers DELETE /api/eval/{id}.
func (s *Server) deleteEval(c *gin.Context) {
	j, err := s.evalJobParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	if err := s.evals.deleteJob(j.id); err != nil {
		writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, api.EvalDeleteResponse{Deleted: j.id})
}

// wantsSSE reports whether the request's Accept header prefers server-sent events to
// NDJSON (the default of the eval event stream).
func wantsSSE(c *gin.Context) bool {
	return c.NegotiateFormat(api.NDJSONType, "application/ndjson", "text/event-stream") == "text/event-stream"
}

// evalEvents answers GET /api/eval/{id}/events: the job, then its changes, until it ends
// (api.EvalEvent). A reader that falls behind gets each cell's latest state, not every
// step. The stream ends with an error when the server shuts down.
func (s *Server) evalEvents(c *gin.Context) {
	j, err := s.evalJobParam(c)
	if err != nil {
		writeError(c, err)
		return
	}
	var out eventStream = newNDJSON(c)
	if wantsSSE(c) {
		out = newSSE(c, "error")
	}
	ej := s.evals
	ej.fill(j)
	ej.mu.Lock()
	job := ej.viewLocked(j, true)
	seen, statusV, changed := slices.Clone(j.versions), j.statusV, j.changed
	ej.mu.Unlock()
	if err := out.event("job", api.EvalEvent{Type: "job", Job: &job}); err != nil {
		return
	}
	ctx := c.Request.Context()
	for !api.EvalEnded(job.Status) {
		if err := out.flush(); err != nil {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-ej.closing:
			out.fail(fmt.Errorf("%w: the job resumes when the server starts again", ErrShuttingDown))
			return
		}
		ej.mu.Lock()
		var cells []api.EvalCell
		for i, v := range j.versions {
			if v != seen[i] {
				cells = append(cells, j.cells[i])
			}
		}
		seen, changed = slices.Clone(j.versions), j.changed
		statusChanged := j.statusV != statusV
		statusV = j.statusV
		job = ej.viewLocked(j, api.EvalEnded(j.rec.Status))
		ej.mu.Unlock()
		for i := range cells {
			if err := out.event("cell", api.EvalEvent{Type: "cell", Cell: &cells[i]}); err != nil {
				return
			}
		}
		if statusChanged && !api.EvalEnded(job.Status) {
			if err := out.event("job", api.EvalEvent{Type: "job", Job: &job}); err != nil {
				return
			}
		}
	}
	if err := out.event("end", api.EvalEvent{Type: "end", Job: &job}); err == nil {
		out.flush()
	}
}
