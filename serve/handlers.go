package serve

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// decodeJSON reads one JSON object from the request body into v. Strict requests refuse
// unknown fields (a misspelt option is an error, not a silent default); the OpenAI routes
// are lenient, as OpenAI's clients send fields this server does not know.
func decodeJSON(c *gin.Context, v any, strict bool) error {
	if c.Request.Body == nil {
		return badRequest("no request body")
	}
	dec := json.NewDecoder(c.Request.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return fmt.Errorf("request body over %d bytes: %w", maxBytes.Limit, err)
		}
		if errors.Is(err, io.EOF) {
			return badRequest("empty request body")
		}
		return badRequest("request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return fmt.Errorf("request body over %d bytes: %w", maxBytes.Limit, err)
		}
		return badRequest("request body: data after the JSON object")
	}
	return nil
}

// queryInt reads an integer query parameter in [0, hi], def when absent.
func queryInt(c *gin.Context, name string, def, hi int) (int, error) {
	s, ok := c.GetQuery(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > hi {
		return 0, badRequest("%s=%q: want an integer from 0 to %d", name, s, hi)
	}
	return n, nil
}

// Default lengths at which the catalog prices FLOPs (as t5zoo catalog): T5's usual 512-token
// input and 128-token target.
const (
	defaultInputLen  = 512
	defaultTargetLen = 128
)

// listCatalog answers GET /api/catalog?where=...&sort=...&input_len=&target_len=.
func (s *Server) listCatalog(c *gin.Context) {
	in, err := queryInt(c, "input_len", defaultInputLen, catalog.MaxSeqLen)
	if err != nil {
		writeError(c, err)
		return
	}
	tgt, err := queryInt(c, "target_len", defaultTargetLen, catalog.MaxSeqLen)
	if err != nil {
		writeError(c, err)
		return
	}
	f, err := catalog.ParseFilter(c.QueryArray("where")...)
	if err != nil {
		writeError(c, badRequest("where: %v", err))
		return
	}
	rows := s.catalog.Rows(f, in, tgt)
	if err := catalog.SortRows(rows, c.DefaultQuery("sort", "name")); err != nil {
		writeError(c, badRequest("sort: %v", err))
		return
	}
	if rows == nil {
		rows = []catalog.Row{}
	}
	c.PureJSON(http.StatusOK, api.CatalogResponse{Shapes: rows})
}

// showShape answers GET /api/catalog/{name}: a published shape or any name of the grammar.
func (s *Server) showShape(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("name"), "/")
	in, err := queryInt(c, "input_len", defaultInputLen, catalog.MaxSeqLen)
	if err != nil {
		writeError(c, err)
		return
	}
	tgt, err := queryInt(c, "target_len", defaultTargetLen, catalog.MaxSeqLen)
	if err != nil {
		writeError(c, err)
		return
	}
	e, err := s.catalog.Lookup(name)
	if err != nil {
		writeError(c, err)
		return
	}
	sh := e.Shape()
	r := api.ShapeResponse{Entry: e, FLOPs: sh.FLOPs(in, tgt), Bytes: map[catalog.DType]int64{}, KVCache: sh.KVCacheBytes(), Tensors: len(sh.Tensors())}
	for _, dt := range catalog.DTypes() {
		r.Bytes[dt] = sh.WeightBytes(dt)
	}
	r.RequestKVBytes = r.KVCache.RequestKVBytes(in, tgt)
	c.PureJSON(http.StatusOK, r)
}

// listModels answers GET /api/models: the whole models of the local cache, then the
// models the server was started with.
func (s *Server) listModels(c *gin.Context) {
	local, err := s.cache.List(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	out := api.ModelsResponse{Models: []api.ModelInfo{}}
	for _, lm := range local {
		name := lm.Ref.String()
		created := lm.Manifest.Created.UTC()
		out.Models = append(out.Models, api.ModelInfo{
			Name: name, Source: "cache", Digest: lm.Digest.String(), Size: lm.Manifest.Size(), Files: len(lm.Manifest.Files),
			Created: &created, Loaded: s.models.isLoaded(name),
		})
	}
	for _, name := range sortedKeys(s.cfg.Models) {
		out.Models = append(out.Models, api.ModelInfo{Name: name, Source: "directory", Loaded: s.models.isLoaded(name)})
	}
	c.PureJSON(http.StatusOK, out)
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// deleteModel answers DELETE /api/models/{name}: unloads the model (409 while it serves
// requests) and removes it from the local cache.
func (s *Server) deleteModel(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("name"), "/")
	if _, ok := s.cfg.Models[name]; ok {
		writeError(c, badRequest("%s is served from a directory (--model), not from the cache", name))
		return
	}
	ref, err := zoo.ParseRef(name)
	if err != nil {
		writeError(c, err)
		return
	}
	if err := s.models.evictForDelete(ref.String()); err != nil {
		writeError(c, err)
		return
	}
	if err := s.cache.Remove(c.Request.Context(), ref); err != nil {
		writeError(c, err)
		return
	}
	s.log.Info("model deleted", "model", ref.String())
	c.PureJSON(http.StatusOK, api.DeleteResponse{Deleted: ref.String()})
}

// pull answers POST /api/pull: an NDJSON stream of progress lines ending with a "success"
// line, or, when the pull fails after the first line, an error line. A failure before any
// progress is an ordinary error answer.
func (s *Server) pull(c *gin.Context) {
	var req api.PullRequest
	if err := decodeJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	ref, err := zoo.ParseRef(req.Model)
	if err != nil {
		writeError(c, err)
		return
	}
	stream := req.Stream == nil || *req.Stream
	ctx := c.Request.Context()
	var (
		mu      sync.Mutex
		started bool
		bw      = bufio.NewWriter(c.Writer)
		enc     = json.NewEncoder(bw)
		last    time.Time
		counted = s.pullProgress()
	)
	start := func() {
		if !started {
			started = true
			c.Header("Content-Type", "application/x-ndjson")
			c.Header("X-Content-Type-Options", "nosniff")
			c.Status(http.StatusOK)
		}
	}
	progress := func(p zoo.Progress) {
		counted(p)
		if !stream {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		start()
		enc.Encode(api.ProgressResponse{Status: "pulling", File: p.File, Digest: p.Digest.String(), Total: p.Total, Completed: p.Completed})
		// Flush at most every 100ms, and at the end of each file.
		if now := time.Now(); now.Sub(last) >= 100*time.Millisecond || p.Completed == p.Total {
			last = now
			bw.Flush()
			c.Writer.Flush()
		}
	}
	lm, err := s.cache.Pull(ctx, s.store, ref, zoo.PullOptions{Progress: progress, Logger: s.log})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		if !started {
			writeError(c, err)
			return
		}
		c.Error(err) //nolint:errcheck // for the request log
		bw.Write(streamError(s.scrubErr(err)))
		bw.WriteByte('\n')
		bw.Flush()
		return
	}
	s.log.Info("model pulled", "model", ref.String(), "digest", lm.Digest.Short())
	done := api.ProgressResponse{Status: "success", Model: ref.String(), Digest: lm.Digest.String()}
	if !started && !stream {
		c.PureJSON(http.StatusOK, done)
		return
	}
	start()
	enc.Encode(done)
	bw.Flush()
}

// ps answers GET /api/ps: the models loaded and loading, with the memory each holds in the
// budget now.
func (s *Server) ps(c *gin.Context) {
	models := s.models.snapshot()
	out := api.PsResponse{Models: []api.LoadedModel{}, MemoryBudget: s.cfg.MemoryBudget, MaxLoaded: s.cfg.MaxLoaded}
	fixed, requests := s.mem.usage()
	out.MemoryBytes = fixed + requests
	now := time.Now()
	for _, m := range models {
		lm := api.LoadedModel{
			Name: m.name, State: "ready", MemoryBytes: m.weights + m.kv + m.requests, WeightBytes: m.weights, KVBytes: m.kv,
			RequestBytes: m.requests, LoadedAt: m.loadedAt.UTC(), LastUsed: m.lastUsed.UTC(),
			KeepAlive: api.Duration{Duration: m.keepAlive}, Requests: m.refs, Queued: m.queued, Decoding: m.decoding,
		}
		if !m.loaded {
			lm.State = "loading"
			lm.Load = &api.LoadProgress{Completed: m.pulled, Total: m.pullTotal, Since: m.started.UTC()}
		} else if m.refs == 0 {
			lm.IdleSeconds = now.Sub(m.lastUsed).Seconds()
			if m.keepAlive > 0 {
				exp := m.lastUsed.Add(m.keepAlive).UTC()
				lm.ExpiresAt = &exp
			}
		}
		out.Models = append(out.Models, lm)
	}
	c.PureJSON(http.StatusOK, out)
}

// unload answers POST /api/unload.
func (s *Server) unload(c *gin.Context) {
	var req api.UnloadRequest
	if err := decodeJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	now, err := s.models.unloadModel(req.Model)
	if err != nil {
		writeError(c, err)
		return
	}
	key, _, _, _ := s.models.key(req.Model)
	status := "unloaded"
	if !now {
		status = "unloading"
	}
	c.PureJSON(http.StatusOK, api.UnloadResponse{Model: key, Status: status})
}
