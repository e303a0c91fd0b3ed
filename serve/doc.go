// Package serve is t5zoo's HTTP server (gin): the native API under /api (catalog, models,
// pull, generate, score, encode, ps, unload, and evaluation jobs), an OpenAI-compatible /v1
// (completions, models), the registry read-only at the root (the protocol of
// zoo.HTTPStore), and operations (/healthz, /readyz, Prometheus /metrics).
//
// Models are loaded on first use, pulled from the registry if the cache lacks them, and
// kept resident for a keep-alive; loads that would pass the model count or the memory
// budget evict the least recently used idle models (residency.go). Every loaded model has
// an infer.Batcher: concurrent generation requests share its decoder steps, joining and
// leaving the batch between steps (continuous batching), each with its own cross-attention
// keys and values. Requests are bounded (Limits), authenticated by API keys with a read and
// an admin scope, counted in the metrics and logged with log/slog.
//
// Evaluation jobs (evaljobs.go) run evaluate.Sweep on the server's goroutine, one job at a
// time, through the same residency, batchers and memory budget as the requests; they live
// under $T5ZOO_HOME/evals and resume when the server starts again.
//
// docs/api.md documents every route with examples; openapi.json (served at
// /api/openapi.json) describes them, and a test checks that it lists every route.
package serve
