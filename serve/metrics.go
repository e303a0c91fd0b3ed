package serve

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/t5zoo/t5zoo/infer"
)

// metrics are the server's Prometheus metrics, on a registry of its own (no global state):
// GET /metrics serves them.
type metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec   // route, method, code, model
	latency    *prometheus.HistogramVec // route, model
	tokensIn   *prometheus.CounterVec   // model
	tokensOut  *prometheus.CounterVec   // model
	inflight   prometheus.Gauge
	queued     *prometheus.GaugeVec     // model
	batchRows  *prometheus.HistogramVec // model
	encodeSize *prometheus.HistogramVec // model
	loads      *prometheus.CounterVec   // model, result
	evictions  *prometheus.CounterVec   // model, reason
	loaded     prometheus.Gauge
	pullBytes  prometheus.Counter

	// known holds the model names a label may carry: those the server was started with and
	// those that loaded at least once (the registry's, so a bounded set); any other name a
	// client sends is labelled "other", so that no request adds a series that stays.
	known sync.Map // string → true
}

// otherModel is the model label of a name that is not known.
const otherModel = "other"

// label returns the model label of name.
func (m *metrics) label(name string) string {
	if name == "" {
		return ""
	}
	if _, ok := m.known.Load(name); ok {
		return name
	}
	return otherModel
}

// newMetrics registers the server's metrics; the memory gauges read mem when scraped.
func newMetrics(mem *memory) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "t5zoo_http_requests_total", Help: "HTTP requests by route, method, status code and model.",
		}, []string{"route", "method", "code", "model"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "t5zoo_http_request_duration_seconds", Help: "Time to answer HTTP requests (to the end of the stream), by route and model.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14), // 1ms … ~150s
		}, []string{"route", "model"}),
		tokensIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "t5zoo_input_tokens_total", Help: "Input tokens processed (encoder inputs, and scored targets), by model.",
		}, []string{"model"}),
		tokensOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "t5zoo_output_tokens_total", Help: "Tokens generated, by model.",
		}, []string{"model"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "t5zoo_inference_requests_in_flight", Help: "Inference requests admitted (waiting or running); the queue limit bounds it.",
		}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "t5zoo_queue_depth", Help: "Inputs waiting to join a model's decoding batch, after its last step.",
		}, []string{"model"}),
		batchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "t5zoo_batch_rows", Help: "Sequences advanced by one decoder step (continuous batching), by model.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 … 512
		}, []string{"model"}),
		encodeSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "t5zoo_encode_batch_inputs", Help: "Inputs encoded together when joining a decoding batch, by model.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}, []string{"model"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "t5zoo_model_loads_total", Help: "Model loads by model and result (ok, error).",
		}, []string{"model", "result"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "t5zoo_model_evictions_total", Help: "Models unloaded, by model and reason (keep_alive, lru, unload, delete, shutdown).",
		}, []string{"model", "reason"}),
		loaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "t5zoo_models_loaded", Help: "Models resident in memory (or loading).",
		}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "t5zoo_pull_bytes_total", Help: "Bytes of model files pulls fetched from the registry (POST /api/pull and loads), each chunk once.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.tokensIn, m.tokensOut, m.inflight, m.queued, m.batchRows,
		m.encodeSize, m.loads, m.evictions, m.loaded, m.pullBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "t5zoo_model_memory_bytes", Help: "Memory the resident models reserve in the budget (weights, tables, batch working memory).",
		}, func() float64 { fixed, _ := mem.usage(); return float64(fixed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "t5zoo_request_memory_bytes", Help: "Memory the running requests hold in the budget (decoding caches, encode and score scratch).",
		}, func() float64 { _, requests := mem.usage(); return float64(requests) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// modelKey is the gin context key under which handlers record the model a request used,
// for the metrics and the request log.
const modelKey = "t5zoo.model"

// observe is the middleware that counts and times every request and logs it.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Set(scrubKey, s.scrubErr)
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	model := s.metrics.label(c.GetString(modelKey))
	status := c.Writer.Status()
	d := time.Since(start)
	s.metrics.requests.WithLabelValues(route, methodLabel(c.Request.Method), strconv.Itoa(status), model).Inc()
	s.metrics.latency.WithLabelValues(route, model).Observe(d.Seconds())
	attrs := []any{
		"method", c.Request.Method, "route", route, "path", c.Request.URL.Path, "status", status,
		"duration", d.Round(time.Microsecond), "bytes", c.Writer.Size(), "remote", c.ClientIP(),
	}
	if model != "" {
		attrs = append(attrs, "model", model)
	}
	if len(c.Errors) > 0 {
		attrs = append(attrs, "err", c.Errors.Last().Err.Error())
	}
	if status >= 500 && status != 503 {
		s.log.Error("request", attrs...)
	} else {
		s.log.Info("request", attrs...)
	}
}

// methodLabel bounds the method label to HTTP's own methods: a client may send any token.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// observeBatch returns the Batcher hook that records a model's decoder steps.
func (m *metrics) observeBatch(model string) func(infer.BatchStats) {
	rows, enc, queued := m.batchRows.WithLabelValues(model), m.encodeSize.WithLabelValues(model), m.queued.WithLabelValues(model)
	return func(st infer.BatchStats) {
		if st.Rows > 0 {
			rows.Observe(float64(st.Rows))
		}
		if st.Encoded > 0 {
			enc.Observe(float64(st.Encoded))
		}
		queued.Set(float64(st.Queued))
	}
}
