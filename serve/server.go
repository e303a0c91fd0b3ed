package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/t5zoo/t5zoo/catalog"
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
	// RequestTimeout bounds the time an inference request may take, queueing and
	// streaming included (504, or an error event, beyond); 0 means 5 minutes, negative no
	// limit.
	RequestTimeout time.Duration
	// MaxQueue bounds the inference requests admitted at once, waiting or running, server
	// wide; beyond it requests get 503 with Retry-After. 0 means 256.
	MaxQueue int
	// MaxBatchRows bounds the sequences (inputs × beams or samples) one decoder step of a
	// model advances; more wait to join. It also sizes the KV-cache reserve of a model in
	// the memory budget. 0 means 32.
	MaxBatchRows int
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
	if l.MaxQueue <= 0 {
		l.MaxQueue = 256
	}
	if l.MaxBatchRows <= 0 {
		l.MaxBatchRows = 32
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
	// MemoryBudget bounds the memory of the loaded models, each counted as its float32
	// weights plus the KV caches of a full decoding batch at the request limits
	// (catalog's cost model); 0 means no bound.
	MemoryBudget int64
	// Threads is each model's worker threads; 0 means GOMAXPROCS.
	Threads int
	// DType is the weight type models are loaded in (infer.LoadOptions.DType): catalog.F32,
	// BF16 or Int8; "" keeps each checkpoint's own.
	DType catalog.DType
	// PresignExpiry is how long the presigned blob URLs of an S3 registry stay valid; 0
	// means zoo.DefaultPresignExpiry, negative streams blobs through the server.
	PresignExpiry time.Duration
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
	metrics  *metrics
	models   *residency
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
		keys: newKeyring(cfg.Keys), metrics: newMetrics(),
	}
	s.models = newResidency(s)
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
		writeError(c, fmt.Errorf("%w: no route %s %s", errNoRoute, c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, fmt.Errorf("%w: %s does not take %s", errNoMethod, c.Request.URL.Path, c.Request.Method))
	})
	r.Use(s.observe, s.recover, s.limitBody)

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

	// OpenAI-compatible API.
	v1 := r.Group("/v1")
	v1.GET("/models", read, s.openAIModels)
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
	errNoRoute  = fmt.Errorf("%w: not found", zoo.ErrNotFound)
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

// limitBody caps every request body at Limits.MaxBodyBytes; reading past it fails with
// *http.MaxBytesError, which writeError answers with 413.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.Limits.MaxBodyBytes)
	}
	c.Next()
}

// inference admits an inference request under Limits.MaxQueue and bounds it with
// Limits.RequestTimeout.
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
	if t := s.cfg.Limits.RequestTimeout; t > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), t)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
	}
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
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
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

// Close ends model loads in progress and unloads every model. Requests still running fail.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		s.models.close()
	})
}

// pullProgress returns a zoo progress callback that counts pulled bytes.
func (s *Server) pullProgress() func(zoo.Progress) {
	var mu sync.Mutex
	last := map[string]int64{}
	return func(p zoo.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if d := p.Completed - last[p.File]; d > 0 {
			s.metrics.pullBytes.Add(float64(d))
		}
		last[p.File] = p.Completed
	}
}

// storeName describes a store for logs.
func storeName(st zoo.Store) string {
	if v, ok := st.(fmt.Stringer); ok {
		return v.String()
	}
	return fmt.Sprintf("%T", st)
}
