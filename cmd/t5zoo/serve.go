package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/zoo"
)

// serveFlags are the serve verb's options.
type serveFlags struct {
	addr            string
	models          []string
	keepAlive       time.Duration
	maxLoaded       int
	memoryBudget    string
	apiKeysFile     string
	threads         int
	dtype           string
	limits          serve.Limits
	maxBody         string
	presignExpiry   time.Duration
	shutdownTimeout time.Duration
	logJSON         bool
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API: generate, score, encode, OpenAI completions, the registry",
		Long: `Serve answers HTTP on --addr (127.0.0.1:8080; use 0.0.0.0:8080 to listen on every
interface): the native API under /api (catalog, models, pull, generate, score, encode, ps,
unload), an OpenAI-compatible /v1 (completions, models), the registry read-only at the root
(so that T5ZOO_REGISTRY=http://host:port pulls through the server without bucket
credentials), /healthz, /readyz and Prometheus /metrics. The routes are documented in
docs/api.md and at /api/openapi.json.

Models are named as in pull (NAME[:TAG]); a model not in the cache is pulled from the
registry (T5ZOO_REGISTRY) on first use. --model NAME=DIR serves a model directory under a
name as well. Loaded models stay resident for --keep-alive after their last request;
--max-loaded and --memory-budget bound them (each counted as its float32 weights plus the KV
caches of a full decoding batch), evicting the least recently used idle model. Concurrent
generation requests to a model share its decoder steps (continuous batching).

API keys (T5ZOO_API_KEYS, and --api-keys-file or T5ZOO_API_KEYS_FILE): KEY or KEY:admin,
comma- or newline-separated; read keys may run inference and read, admin keys may also
pull, delete and unload. Without keys the API is open. Keys are never logged.

SIGINT or SIGTERM shuts down gracefully: requests in flight (streams included) finish
within --shutdown-timeout.`,
		Example: `  t5zoo serve
  t5zoo serve --addr 0.0.0.0:8080 --max-loaded 2 --memory-budget 8GiB --keep-alive 10m
  T5ZOO_API_KEYS=$(cat keys.txt) T5ZOO_REGISTRY=s3://models/zoo t5zoo serve
  t5zoo serve --model tiny=./t5-efficient-tiny
  curl -s localhost:8080/api/generate -d '{"model":"tiny","input":"translate English to German: Thank you."}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringArrayVar(&f.models, "model", nil, "serve a model directory as NAME=DIR (repeatable)")
	fl.DurationVar(&f.keepAlive, "keep-alive", serve.DefaultKeepAlive, "how long an idle model stays loaded (negative: until evicted)")
	fl.IntVar(&f.maxLoaded, "max-loaded", 3, "most models loaded at once (0: no limit)")
	fl.StringVar(&f.memoryBudget, "memory-budget", "0", "memory the loaded models may use, e.g. 8GiB (0: no limit)")
	fl.StringVar(&f.apiKeysFile, "api-keys-file", "", "file of API keys, one KEY[:SCOPE] per line (default $T5ZOO_API_KEYS_FILE)")
	fl.IntVar(&f.threads, "threads", 0, "worker threads of each loaded model (0: GOMAXPROCS)")
	fl.StringVar(&f.dtype, "dtype", "", loadDTypeUsage)
	fl.StringVar(&f.maxBody, "max-body", "1MiB", "largest request body")
	fl.IntVar(&f.limits.MaxInputTokens, "max-input-tokens", 512, "longest input (and score target), in tokens")
	fl.IntVar(&f.limits.MaxNewTokens, "max-new-tokens", 512, "largest max_new_tokens (max_tokens)")
	fl.IntVar(&f.limits.MaxInputs, "max-inputs", 64, "most inputs (texts, pairs, prompts) in one request")
	fl.DurationVar(&f.limits.RequestTimeout, "timeout", 5*time.Minute, "longest an inference request may take (negative: no limit)")
	fl.IntVar(&f.limits.MaxQueue, "max-queue", 256, "inference requests admitted at once; more get 503 with Retry-After")
	fl.IntVar(&f.limits.MaxBatchRows, "batch-rows", 32, "most sequences one decoder step of a model advances (sizes the KV reserve too)")
	fl.DurationVar(&f.presignExpiry, "presign-expiry", zoo.DefaultPresignExpiry, "lifetime of the presigned blob URLs of an S3 registry (negative: stream blobs through the server)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long requests in flight may take to finish at shutdown")
	fl.BoolVar(&f.logJSON, "log-json", false, "log JSON lines instead of text")
	return cmd
}

// secretEnv lists the variables whose values are never logged.
func secretEnv(name string) bool {
	switch name {
	case "T5ZOO_API_KEYS", "T5ZOO_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MINIO_ROOT_PASSWORD":
		return true
	}
	return false
}

func runServe(cmd *cobra.Command, f serveFlags) error {
	var h slog.Handler
	if f.logJSON {
		h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
	} else {
		h = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
	}
	log := slog.New(h)

	cfg := serve.Config{
		KeepAlive: f.keepAlive, MaxLoaded: f.maxLoaded, Threads: f.threads, Limits: f.limits,
		PresignExpiry: f.presignExpiry, ShutdownTimeout: f.shutdownTimeout, Logger: log,
	}
	if cfg.KeepAlive == 0 {
		// --keep-alive 0 unloads a model as soon as it is idle; in Config, 0 is the default.
		cfg.KeepAlive = time.Nanosecond
	}
	dt, err := parseLoadDType(f.dtype)
	if err != nil {
		return err
	}
	cfg.DType = dt
	budget, err := humanize.ParseBytes(f.memoryBudget)
	if err != nil {
		return fmt.Errorf("--memory-budget %q: %w", f.memoryBudget, err)
	}
	cfg.MemoryBudget = int64(budget)
	body, err := humanize.ParseBytes(f.maxBody)
	if err != nil || body == 0 {
		return fmt.Errorf("--max-body %q: want a size such as 1MiB", f.maxBody)
	}
	cfg.Limits.MaxBodyBytes = int64(body)
	for _, m := range f.models {
		name, dir, ok := strings.Cut(m, "=")
		if !ok || name == "" || dir == "" {
			return fmt.Errorf("--model %q: want NAME=DIR", m)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("--model %s: %s is not a directory", name, dir)
		}
		// Checked now, cheaply (headers, not tensors), so that a bad directory stops the start
		// rather than failing its first request.
		if err := fetch.CheckDir(dir, fetch.CheckOptions{Deep: true}); err != nil {
			return fmt.Errorf("--model %s=%s: %w", name, dir, err)
		}
		if cfg.Models == nil {
			cfg.Models = map[string]string{}
		}
		cfg.Models[name] = dir
	}
	if cfg.Keys, err = apiKeys(f.apiKeysFile); err != nil {
		return err
	}
	if cfg.Cache, err = openCache(); err != nil {
		return err
	}
	if cfg.Store, err = openRegistry(cfg.Cache); err != nil {
		return err
	}
	if cfg.Catalog, err = loadCatalog(); err != nil {
		return err
	}

	s, err := serve.New(cfg)
	if err != nil {
		return err
	}
	env := []any{}
	for _, v := range envVars() {
		val := getenv(v.Name)
		if secretEnv(v.Name) && val != "" {
			val = "(set)"
		}
		env = append(env, v.Name, val)
	}
	log.Info("starting", "cache", cfg.Cache.Root(), "registry", registryName(cfg.Store), "api_keys", len(cfg.Keys),
		"max_loaded", cfg.MaxLoaded, "memory_budget", humanize.IBytes(budget), "keep_alive", f.keepAlive)
	log.Info("environment", env...)
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("serve: %w", err)
	}
	return s.Serve(cmd.Context(), ln)
}

// apiKeys reads T5ZOO_API_KEYS and the keys file (the flag, else T5ZOO_API_KEYS_FILE).
func apiKeys(file string) ([]serve.APIKey, error) {
	keys, err := serve.ParseAPIKeys(getenv("T5ZOO_API_KEYS"))
	if err != nil {
		return nil, fmt.Errorf("T5ZOO_API_KEYS: %w", err)
	}
	if file == "" {
		file = getenv("T5ZOO_API_KEYS_FILE")
	}
	if file == "" {
		return keys, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("API keys file: %w", err)
	}
	more, err := serve.ParseAPIKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("API keys file %s: %w", file, err)
	}
	if len(more) == 0 {
		return nil, errors.New("API keys file " + file + ": no keys")
	}
	return append(keys, more...), nil
}
