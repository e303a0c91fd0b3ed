package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/infer"
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
	allowOrigins    []string
	allowHosts      []string
	noImport        bool
	evalData        string
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
registry (T5ZOO_REGISTRY) on first use, and a published catalog shape the registry lacks is
imported from the Hugging Face Hub first (--no-import turns that off). --model NAME=DIR
serves a model directory under a name as well; it is checked at start. Loaded models stay
resident for --keep-alive after their last request; --max-loaded and --memory-budget bound
them, evicting the least recently used idle model. The budget counts each model's weights
in the load type, its position-bias tables and the working memory of its decoding batch,
and every running request's decoding caches and encode or score scratch, priced before
they are allocated: a request waits for memory (until --timeout) or gets 507. Concurrent
generation requests to a model share its decoder steps (continuous batching); a request
with nothing decoding always joins the next step, so small requests are not held behind
large ones.

Every request's body must arrive within --read-timeout and is read before the request is
queued; every write of an answer must finish within --write-timeout; --timeout bounds an
inference request from its first byte. Browsers: requests whose Origin is not the server's
own (nor an --allow-origin) are refused, state-changing requests must be application/json,
and on a loopback address the Host header must name this server (or an --allow-host), as a
guard against DNS rebinding.

API keys (T5ZOO_API_KEYS, and --api-keys-file or T5ZOO_API_KEYS_FILE): KEY or KEY:admin,
comma- or newline-separated; read keys may run inference and read, admin keys may also
pull, delete and unload. Without keys the API is open. Keys are never logged.

SIGINT or SIGTERM shuts down gracefully: requests in flight (streams included) finish
within --shutdown-timeout.`,
		Example: `  t5zoo serve
  t5zoo serve --addr 0.0.0.0:8080 --max-loaded 2 --memory-budget 8GiB --keep-alive 10m
  T5ZOO_API_KEYS=$(cat keys.txt) T5ZOO_REGISTRY=s3://models/zoo t5zoo serve
  t5zoo serve --model tiny=./t5-efficient-tiny
  t5zoo serve --allow-origin https://notebook.example --allow-host t5zoo.internal
  curl -s localhost:8080/api/generate -H 'Content-Type: application/json' -d '{"model":"tiny","input":"translate English to German: Thank you."}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringArrayVar(&f.models, "model", nil, "serve a model directory as NAME=DIR (repeatable)")
	fl.DurationVar(&f.keepAlive, "keep-alive", serve.DefaultKeepAlive, "how long an idle model stays loaded (negative: until evicted)")
	fl.IntVar(&f.maxLoaded, "max-loaded", 3, "most models loaded at once (0: no limit)")
	fl.StringVar(&f.memoryBudget, "memory-budget", "auto", "memory the loaded models and their requests may use, e.g. 8GiB; auto: 90% of what the system can give at start (free memory, ulimit -v); 0: no limit")
	fl.StringVar(&f.apiKeysFile, "api-keys-file", "", "file of API keys, one KEY[:SCOPE] per line (default $T5ZOO_API_KEYS_FILE)")
	fl.IntVar(&f.threads, "threads", 0, "worker threads of each loaded model (0: GOMAXPROCS)")
	fl.StringVar(&f.dtype, "dtype", "", loadDTypeUsage)
	fl.StringVar(&f.maxBody, "max-body", "1MiB", "largest request body")
	fl.IntVar(&f.limits.MaxInputTokens, "max-input-tokens", 512, "longest input (and score target), in tokens")
	fl.IntVar(&f.limits.MaxNewTokens, "max-new-tokens", 512, "largest max_new_tokens (max_tokens)")
	fl.IntVar(&f.limits.MaxInputs, "max-inputs", 64, "most inputs (texts, pairs, prompts) in one request")
	fl.DurationVar(&f.limits.RequestTimeout, "timeout", 5*time.Minute, "longest an inference request may take from its first byte, body included (negative: no limit)")
	fl.DurationVar(&f.limits.ReadTimeout, "read-timeout", 30*time.Second, "longest the headers and body of a request may take to arrive (408 beyond)")
	fl.DurationVar(&f.limits.WriteTimeout, "write-timeout", 30*time.Second, "longest one write of an answer may wait for a client that does not read (the connection is closed beyond)")
	fl.StringArrayVar(&f.allowOrigins, "allow-origin", nil, "browser origin allowed to call the API, scheme://host[:port] or * (repeatable; default $T5ZOO_ORIGINS, comma-separated; none: same-origin only)")
	fl.StringArrayVar(&f.allowHosts, "allow-host", nil, "Host header answered beside localhost, IP addresses and this machine's name: a name, .domain or * (repeatable; default $T5ZOO_HOSTS)")
	fl.IntVar(&f.limits.MaxEvalCells, "max-eval-cells", 256, "most cells (models × tasks × modes) of one eval job")
	fl.IntVar(&f.limits.MaxEvalJobs, "max-eval-jobs", 64, "most eval jobs queued or running at once; more get 503")
	fl.StringVar(&f.evalData, "eval-data", "", "folder of the evaluation tasks' official files, which eval jobs (POST /api/eval) read (default $T5ZOO_DATA; none: eval jobs are refused)")
	fl.BoolVar(&f.noImport, "no-import", false, "never import a published shape from the Hugging Face Hub on its first use (HF_ENDPOINT, HF_TOKEN)")
	fl.IntVar(&f.limits.MaxQueue, "max-queue", 256, "inference requests admitted at once; more get 503 with Retry-After")
	fl.IntVar(&f.limits.MaxBatchRows, "batch-rows", 32, "sequences one decoder step of a model advances beyond each request's first input (sizes its working memory too)")
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
	budget, err := memoryBudget(f.memoryBudget)
	if err != nil {
		return err
	}
	cfg.MemoryBudget = budget
	if budget > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// The collector works harder as the heap nears the budget instead of letting garbage
		// grow to twice the live memory (the budget itself bounds what is live).
		debug.SetMemoryLimit(budget)
	}
	cfg.AllowOrigins = listOr(f.allowOrigins, getenv("T5ZOO_ORIGINS"))
	cfg.AllowHosts = listOr(f.allowHosts, getenv("T5ZOO_HOSTS"))
	if !f.noImport {
		cfg.Hub = hubClient()
	}
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
	if cfg.EvalData = f.evalData; cfg.EvalData == "" {
		cfg.EvalData = getenv("T5ZOO_DATA")
	}
	if cfg.EvalData != "" {
		if fi, err := os.Stat(cfg.EvalData); err != nil || !fi.IsDir() {
			return fmt.Errorf("--eval-data (T5ZOO_DATA) %s is not a directory", cfg.EvalData)
		}
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
		"max_loaded", cfg.MaxLoaded, "memory_budget", budgetName(budget), "keep_alive", f.keepAlive,
		"allow_origins", cfg.AllowOrigins, "allow_hosts", cfg.AllowHosts, "hub_import", cfg.Hub != nil)
	log.Info("environment", env...)
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("serve: %w", err)
	}
	return s.Serve(cmd.Context(), ln)
}

// memoryBudget parses --memory-budget: a size, 0 for none, or auto: 90% of what the system
// can give now (its free memory, and the room under ulimit -v and -d).
func memoryBudget(s string) (int64, error) {
	if strings.EqualFold(s, "auto") {
		avail, ok := infer.SystemMemory()
		if !ok {
			return 0, nil
		}
		return avail / 10 * 9, nil
	}
	b, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("--memory-budget %q: want a size such as 8GiB, 0 or auto", s)
	}
	return int64(b), nil
}

func budgetName(b int64) string {
	if b <= 0 {
		return "none"
	}
	return humanize.IBytes(uint64(b))
}

// listOr returns flag values, else the comma-separated list of an environment variable.
func listOr(flag []string, env string) []string {
	if len(flag) > 0 {
		return flag
	}
	var out []string
	for _, v := range strings.Split(env, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
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
