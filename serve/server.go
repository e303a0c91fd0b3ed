package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// Limits bound what one request may ask. The zero value of each field means the default
// documented on it.
type Limits struct {
	// MaxBodyBytes bounds a request body (413 beyond); 0 means 1 MiB.
	MaxBodyBytes int64
	// MaxInputTokens bounds each input (and each scored target) in tokens; 0 means 512.
	MaxInputTokens int
	// MaxNewTokens bounds max_new_tokens (max_tokens); 0 means 512.
	MaxNewTokens int
	// MaxInputs bounds the inputs (texts, id sequences, score pairs, prompts) of one
	// request; 0 means 64.
	MaxInputs int
	// RequestTimeout bounds the time an inference request may take, from its first byte:
	// reading its body, queueing, decoding and streaming (504, or an error event, beyond).
	// 0 means 5 minutes, negative no limit.
	RequestTimeout time.Duration
	// ReadTimeout bounds the time to read a request's headers and body (408 beyond); 0 means
	// 30 seconds. A body is read whole before the request takes a place in the queue, so
	// slow senders hold no inference slot.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of a response: a client that reads nothing of its
	// answer (or stream) for this long loses the connection, and the request its place in
	// the batch. 0 means 30 seconds.
	WriteTimeout time.Duration
	// MaxQueue bounds the inference requests admitted at once, waiting or running, server
	// wide; beyond it requests get 503 with Retry-After. 0 means 256.
	MaxQueue int
	// MaxBatchRows bounds the sequences (inputs × beams or samples) one decoder step of a
	// model advances; more wait to join. It also sizes the KV-cache reserve of a model in
	// the memory budget. 0 means 32.
	MaxBatchRows int
	// MaxEvalCells bounds the cells (models × tasks × modes) of one eval job; 0 means 256.
	MaxEvalCells int
	// MaxEvalJobs bounds the eval jobs queued or running at once (503 beyond); 0 means 64.
	MaxEvalJobs int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxInputTokens <= 0 {
		l.MaxInputTokens = 512
	}
	if l.MaxNewTokens <= 0 {
		l.MaxNewTokens = 512
	}
	if l.MaxInputs <= 0 {
		l.MaxInputs = 64
	}
	if l.RequestTimeout == 0 {
		l.RequestTimeout = 5 * time.Minute
	}
	if l.ReadTimeout <= 0 {
		l.ReadTimeout = 30 * time.Second
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 30 * time.Second
	}
	if l.MaxQueue <= 0 {
		l.MaxQueue = 256
	}
	if l.MaxBatchRows <= 0 {
		l.MaxBatchRows = 32
	}
	if l.MaxEvalCells <= 0 {
		l.MaxEvalCells = 256
	}
	if l.MaxEvalJobs <= 0 {
		l.MaxEvalJobs = 64
	}
	return l
}

// DefaultKeepAlive is how long an idle model stays loaded when Config.KeepAlive is zero.
const DefaultKeepAlive = 5 * time.Minute

// Config configures a Server. Cache is required; the zero value of every other field
// means the default documented on it.
type Config struct {
	// Cache is the local cache models are loaded from (and pulled into).
	Cache *zoo.Cache
	// Store is the registry models are pulled from and that the registry endpoint serves
	// read-only; nil means Cache.Registry().
	Store zoo.Store
	// Catalog is what /api/catalog lists; nil means an empty catalog (cmd/t5zoo passes the
	// embedded one).
	Catalog *catalog.Catalog
	// Hub, if not nil, is the Hugging Face Hub a published catalog shape is imported from
	// (fetch.Fetcher: downloaded, converted with the parity gate, pushed to Store) on its
	// first use when the registry lacks it, as t5zoo run does; nil never imports.
	Hub *hub.Client
	// Models names extra models served from local directories (NAME → directory), beside
	// those of the cache; a NAME here shadows the registry reference of the same spelling.
	Models map[string]string
	// Keys are the API keys; none means no authentication.
	Keys []APIKey
	// Limits bound requests.
	Limits Limits
	// KeepAlive is how long an idle model stays loaded; 0 means DefaultKeepAlive, negative
	// until evicted. Requests may change it per model (keep_alive).
	KeepAlive time.Duration
	// MaxLoaded bounds the models loaded at once; 0 means no bound.
	MaxLoaded int
	// MemoryBudget bounds the memory of the loaded models and of the requests they serve:
	// each model's weights in the load type with its position-bias tables, the working
	// memory of its decoding batch and the scratch it keeps (reserved at load), and, while
	// requests run, their decoding caches and encode and score scratch, each priced by the
	// engine before it is allocated. A request waits for memory until its deadline (idle
	// models are evicted for it); one that cannot fit beside its model gets 507. 0 means no
	// bound (the memory is still counted, in /api/ps).
	MemoryBudget int64
	// AllowOrigins are the browser origins (scheme://host[:port], "*" for any) whose
	// requests are answered, with CORS headers; a request with any other Origin header than
	// the server's own is refused (403). None means same-origin only.
	AllowOrigins []string
	// AllowHosts are the Host header values (a name, ".suffix" for a domain and its
	// subdomains, "*" for any) answered beside localhost, the machine's name and IP
	// addresses; others are refused (403), so that a web page cannot reach a local server
	// through a DNS name it rebinds to 127.0.0.1. The check applies while the server listens
	// on a loopback address (Handler alone assumes so); on another address every Host is
	// answered unless AllowHosts names some.
	AllowHosts []string
	// Threads is each model's worker threads; 0 means GOMAXPROCS.
	Threads int
	// DType is the weight type models are loaded in (infer.LoadOptions.DType): catalog.F32,
	// BF16 or Int8; "" keeps each checkpoint's own.
	DType catalog.DType
	// PresignExpiry is how long the presigned blob URLs of an S3 registry stay valid; 0
	// means zoo.DefaultPresignExpiry, negative streams blobs through the server.
	PresignExpiry time.Duration
	// EvalData is the folder of the evaluation tasks' official files (glue/SST-2/dev.tsv,
	// ...; t5zoo eval --data), which eval jobs (POST /api/eval) read; "" refuses eval jobs
	// (501). Jobs and their results live under the cache's root, in evals/.
	EvalData string
	// ShutdownTimeout bounds how long Serve waits for requests in flight after its context
	// ends; 0 means 30 seconds.
	ShutdownTimeout time.Duration
	// Logger receives the request log and the server's events; nil discards them.
	Logger *slog.Logger
}

// Server is t5zoo's HTTP API. Handler serves it; Serve runs it on a listener until its
// context ends.
type Server struct {
	cfg      Config
	log      *slog.Logger
	cache    *zoo.Cache
	store    zoo.Store
	catalog  *catalog.Catalog
	keys     *keyring
	fetcher  *fetch.Fetcher
	metrics  *metrics
	mem      *memory
	models   *residency
	evals    *evalJobs
	browser  browserPolicy
	scrubber *strings.Replacer // the server's paths out of answers (scrubErr)
	registry http.Handler
	handler  http.Handler

	inflight  atomic.Int64
	draining  atomic.Bool
	closeOnce sync.Once
}

// New returns a Server for cfg. Close releases its models.
func New(cfg Config) (*Server, error) {
	if cfg.Cache == nil {
		return nil, errors.New("serve: Config.Cache is required")
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Store == nil {
		cfg.Store = cfg.Cache.Registry()
	}
	if cfg.Catalog == nil {
		c, err := catalog.New(nil)
		if err != nil {
			return nil, fmt.Errorf("serve: empty catalog: %w", err)
		}
		cfg.Catalog = c
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, cache: cfg.Cache, store: cfg.Store, catalog: cfg.Catalog,
		keys: newKeyring(cfg.Keys), mem: newMemory(cfg.MemoryBudget),
	}
	s.metrics = newMetrics(s.mem)
	s.scrubber = newScrubber(cfg.Cache.Root(), cfg.Models, cfg.EvalData)
	s.fetcher = &fetch.Fetcher{Cache: cfg.Cache, Store: cfg.Store, Catalog: cfg.Catalog, Hub: cfg.Hub, Logger: cfg.Logger}
	var err error
	if s.browser, err = newBrowserPolicy(cfg.AllowOrigins, cfg.AllowHosts); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	for name := range cfg.Models {
		s.metrics.known.Store(name, true)
	}
	s.models = newResidency(s)
	s.evals = newEvalJobs(s)
	s.registry = zoo.NewRegistryHandler(cfg.Store, zoo.RegistryOptions{PresignExpiry: cfg.PresignExpiry, Logger: cfg.Logger})
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's routes (see routes). It is safe for concurrent use.
func (s *Server) Handler() http.Handler { return s.handler }

// routes builds the gin engine.
//
// gin's mode is process-wide state, and in its default debug mode gin prints every route
// and a warning to stdout when routes are registered, which a library must not do to its
// caller's stdout. So routes switches gin to release mode when it finds the default debug
// mode; a process that wants another mode (tests use gin.TestMode) sets it before New.
// (gin.SetMode is not safe to call concurrently; New calls it at most once per process.)
func (s *Server) routes() http.Handler {
	if gin.Mode() == gin.DebugMode {
		gin.SetMode(gin.ReleaseMode)
	}
	r := gin.New()
	// The request log's client address is the connection's: forwarding headers are not
	// trusted (a proxy in front logs its own).
	if err := r.SetTrustedProxies(nil); err != nil {
		panic("serve: SetTrustedProxies(nil): " + err.Error()) // cannot fail for nil
	}
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true // c.Done and c.Err follow the request's context
	r.NoRoute(func(c *gin.Context) {
		writeError(c, fmt.Errorf("%w: %s %s (the routes are listed at /api/openapi.json)", errNoRoute, c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, fmt.Errorf("%w: %s does not take %s", errNoMethod, c.Request.URL.Path, c.Request.Method))
	})
	r.Use(s.observe, s.recover, s.guardBrowser, s.bound)

	// Operations: unauthenticated probes, read-scoped metrics.
	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.require(ScopeRead), gin.WrapH(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))

	// The native API.
	read, admin := s.require(ScopeRead), s.require(ScopeAdmin)
	a := r.Group("/api")
	a.GET("/openapi.json", s.openAPI)
	a.GET("/catalog", read, s.listCatalog)
	a.GET("/catalog/*name", read, s.showShape)
	a.GET("/models", read, s.listModels)
	a.DELETE("/models/*name", admin, s.deleteModel)
	a.POST("/pull", admin, s.pull)
	a.POST("/generate", read, s.inference, s.generate)
	a.POST("/score", read, s.inference, s.score)
	a.POST("/encode", read, s.inference, s.encode)
	a.GET("/ps", read, s.ps)
	a.POST("/unload", admin, s.unload)
	// Evaluation jobs (evaljobs.go): read to follow them, admin to start, cancel and delete.
	a.POST("/eval", admin, s.submitEval)
	a.GET("/eval", read, s.listEval)
	a.GET("/eval/:id", read, s.showEval)
	a.GET("/eval/:id/results", read, s.evalResults)
	a.GET("/eval/:id/events", read, s.evalEvents)
	a.POST("/eval/:id/cancel", admin, s.cancelEval)
	a.DELETE("/eval/:id", admin, s.deleteEval)

	// OpenAI-compatible API.
	v1 := r.Group("/v1")
	v1.GET("/models", read, s.openAIModels)
	v1.GET("/models/*id", read, s.openAIModelByID)
	v1.POST("/completions", read, s.inference, s.completions)

	// The registry, read-only, at the root: T5ZOO_REGISTRY=http://host:port pulls through
	// the server (zoo.HTTPStore).
	reg := gin.WrapH(s.registry)
	r.GET("/blobs/sha256/:hex", read, reg)
	r.HEAD("/blobs/sha256/:hex", read, reg)
	r.GET("/manifests/*path", read, reg)
	r.HEAD("/manifests/*path", read, reg)
	return r
}

var (
	errNoRoute  = errors.New("no such route")
	errNoMethod = errMethodNotAllowed
)

// recover turns a panicking handler into a 500 and a logged stack-free error.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "route", c.FullPath(), "panic", fmt.Sprint(v))
			if !c.Writer.Written() {
				writeError(c, fmt.Errorf("internal error: %v", v))
			}
		}
	}()
	c.Next()
}

// inferenceRoutes are the routes whose requests are bounded by Limits.RequestTimeout and
// admitted under Limits.MaxQueue.
var inferenceRoutes = map[string]bool{
	"/api/generate": true, "/api/score": true, "/api/encode": true, "/v1/completions": true,
}

// bound puts every request under its deadlines: the body is read whole (at most
// Limits.MaxBodyBytes, within Limits.ReadTimeout and the request's deadline) before any
// handler sees it, so that a slow sender holds no place in the queue; an inference request's
// context ends at Limits.RequestTimeout from its first byte; and every write of the answer
// must finish within Limits.WriteTimeout (and the deadline), so that a client that stops
// reading loses its connection and its place in the batch.
func (s *Server) bound(c *gin.Context) {
	start := time.Now()
	lim := s.cfg.Limits
	rc := http.NewResponseController(c.Writer)
	var deadline time.Time
	if inferenceRoutes[c.FullPath()] && lim.RequestTimeout > 0 {
		deadline = start.Add(lim.RequestTimeout)
		ctx, cancel := context.WithDeadline(c.Request.Context(), deadline)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		readBy := start.Add(lim.ReadTimeout)
		if !deadline.IsZero() && deadline.Before(readBy) {
			readBy = deadline
		}
		rc.SetReadDeadline(readBy) //nolint:errcheck // HTTP/2 and test recorders may not support it
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, lim.MaxBodyBytes))
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("%w: the body did not arrive within %v", errBodyTimeout, readBy.Sub(start).Round(time.Millisecond))
			} else if mb := (*http.MaxBytesError)(nil); !errors.As(err, &mb) {
				err = badRequest("reading the body: %v", err)
			}
			writeError(c, err)
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
	}
	// Past the body, the connection's read deadline (Limits.ReadTimeout from the headers
	// on) must not end the request: the server's background read would cancel its context.
	// It becomes the request's deadline with a grace, so that the deadline itself is what
	// ends an inference (504), and none for the other routes.
	after := time.Time{}
	if !deadline.IsZero() {
		after = deadline.Add(deadlineGrace)
	}
	rc.SetReadDeadline(after) //nolint:errcheck // as above
	c.Writer = &deadlineWriter{ResponseWriter: c.Writer, rc: rc, stall: lim.WriteTimeout, limit: deadline}
	c.Next()
}

// deadlineWriter arms the connection's write deadline before every write and flush: now +
// stall, but no later than limit (the request's deadline) when there is one, with
// deadlineGrace to write the answer that says the deadline passed.
type deadlineWriter struct {
	gin.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	limit time.Time
}

func (w *deadlineWriter) arm() {
	d := time.Now().Add(w.stall)
	if l := w.limit.Add(deadlineGrace); !w.limit.IsZero() && l.Before(d) {
		d = l
	}
	w.rc.SetWriteDeadline(d) //nolint:errcheck // not every writer supports deadlines (tests' recorders)
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) WriteString(s string) (int, error) {
	w.arm()
	return w.ResponseWriter.WriteString(s)
}

func (w *deadlineWriter) Flush() {
	w.arm()
	w.ResponseWriter.Flush()
}

// deadlineGrace is how long past a request's deadline its answer (the timeout error) may
// take to write.
const deadlineGrace = 2 * time.Second

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// inference admits an inference request under Limits.MaxQueue (its deadline is set by
// bound).
func (s *Server) inference(c *gin.Context) {
	if s.draining.Load() {
		writeError(c, ErrShuttingDown)
		return
	}
	if n := s.inflight.Add(1); n > int64(s.cfg.Limits.MaxQueue) {
		s.inflight.Add(-1)
		writeError(c, fmt.Errorf("%w: %d inference requests in flight, the limit is %d", ErrBusy, n-1, s.cfg.Limits.MaxQueue))
		return
	}
	s.metrics.inflight.Inc()
	defer func() {
		s.inflight.Add(-1)
		s.metrics.inflight.Dec()
	}()
	c.Next()
}

// healthz answers while the process runs.
func (s *Server) healthz(c *gin.Context) {
	c.PureJSON(http.StatusOK, api.HealthResponse{Status: "ok"})
}

// readyz answers 200 while the server takes requests and 503 once it drains.
func (s *Server) readyz(c *gin.Context) {
	if s.draining.Load() {
		writeError(c, ErrShuttingDown)
		return
	}
	c.PureJSON(http.StatusOK, api.HealthResponse{Status: "ok"})
}

// Serve answers requests on ln until ctx ends, then shuts down gracefully: /readyz turns
// 503, the listener closes, requests in flight (streams included) finish within
// Config.ShutdownTimeout, and the models are unloaded. It returns nil after a shutdown
// that ctx started.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.browser.listening(ln.Addr())
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.Limits.ReadTimeout, // each request's bound replaces it once its headers are read
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.evals.close() // the running eval job stops (it resumes at the next start), its streams end
	s.log.Info("shutting down: finishing requests in flight", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err != nil {
		s.log.Warn("shutdown timed out: closing the connections left", "err", err)
		hs.Close()
	}
	s.Close()
	s.log.Info("shut down")
	if err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

// Close stops the running eval job (its status stays on disk, so the next server on the
// same home resumes it), ends model loads in progress and unloads every model. Requests
// still running fail.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		s.evals.close()
		s.models.close()
	})
}

// pullProgress returns a zoo progress callback that counts the bytes a pull moved, each
// once: the growth of Progress.Fetched (a chunk counts when it is verified, a retried chunk
// once, linked and resumed bytes not at all).
func (s *Server) pullProgress() func(zoo.Progress) {
	var mu sync.Mutex
	counted := map[string]int64{}
	return func(p zoo.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if d := p.Fetched - counted[p.File]; d > 0 {
			s.metrics.pullBytes.Add(float64(d))
			counted[p.File] = p.Fetched
		}
	}
}

// localModel returns the cache's copy of ref, pulling it first if the cache lacks it, or,
// for a published shape the registry lacks, importing it from Config.Hub; r's load progress
// follows the pull (/api/ps).
func (s *Server) localModel(ctx context.Context, ref zoo.Ref, r *resident) (*zoo.LocalModel, error) {
	if lm, err := s.cache.Model(ref); !errors.Is(err, zoo.ErrNotFound) {
		return lm, err
	}
	s.log.Info("pulling model for its first use", "model", r.name, "registry", storeName(s.store))
	count := s.pullProgress()
	var mu sync.Mutex
	files := map[string]zoo.Progress{}
	progress := func(p zoo.Progress) {
		count(p)
		mu.Lock()
		defer mu.Unlock()
		files[p.File] = p
		var done, total int64
		for _, f := range files {
			done, total = done+f.Completed, total+f.Total
		}
		r.pulled.Store(done)
		r.pullTotal.Store(total)
	}
	return s.fetcher.Model(ctx, ref, fetch.Options{
		Pull:   zoo.PullOptions{Logger: s.log, Progress: progress},
		Import: s.cfg.Hub != nil,
		OnImport: func(repo string) {
			s.log.Info("importing model from the Hub for its first use", "model", r.name, "repo", repo)
		},
		PushLogger: s.log,
	})
}

// scrubErr rewrites the server's own paths out of an error's message (the cache and
// registry directories, the --model directories): answers name models, not the server's
// file system. The error still wraps what it wrapped.
func (s *Server) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := s.scrubber.Replace(msg)
	if out == msg {
		return err
	}
	return &scrubbed{msg: out, err: err}
}

// newScrubber replaces the server's paths — the cache's root, the --model directories and
// the eval data folder, as given and absolute — in error messages, the longest first so that
// a directory inside another is replaced as itself (strings.Replacer tries its pairs in
// argument order).
func newScrubber(root string, models map[string]string, evalData string) *strings.Replacer {
	type pair struct{ from, to string }
	var ps []pair
	add := func(path, to string) {
		for _, p := range []string{path, absPath(path)} {
			if p != "" && p != "." && p != "/" {
				ps = append(ps, pair{p, to})
			}
		}
	}
	for name, dir := range models {
		add(dir, "<model "+name+">")
	}
	if root != "" {
		add(root, "$T5ZOO_HOME")
	}
	if evalData != "" {
		add(evalData, "$T5ZOO_DATA")
	}
	slices.SortFunc(ps, func(a, b pair) int { return len(b.from) - len(a.from) })
	var args []string
	for _, p := range ps {
		args = append(args, p.from, p.to)
	}
	return strings.NewReplacer(args...)
}

// absPath is path made absolute, or "" when it cannot be.
func absPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	return abs
}

// scrubbed is an error whose message had the server's paths taken out.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// storeName describes a store for logs.
func storeName(st zoo.Store) string {
	if v, ok := st.(fmt.Stringer); ok {
		return v.String()
	}
	return fmt.Sprintf("%T", st)
}
