package serve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/zoo"
)

// residency keeps models in memory: each loads on first use (pulling it if the cache lacks
// it), concurrent requests for a loading model wait for the one load, an idle model is
// unloaded after its keep-alive, and a load that would pass --max-loaded or
// --memory-budget first evicts the least recently used idle models.
type residency struct {
	s *Server

	mu     sync.Mutex
	models map[string]*resident
	bytes  int64 // memory reserved by the models that count (loading or loaded)
	closed bool
	loads  sync.WaitGroup
	done   chan struct{} // closed by close: loads in progress end
}

// resident is one model, loading or loaded. Fields after ready are set by the load before
// ready is closed and read-only afterwards, except those guarded by residency.mu.
type resident struct {
	name  string
	ready chan struct{}
	err   error // the load's failure, set before ready closes

	dir     string
	model   *infer.Model
	tok     *tokenizer.Tokenizer // nil: the directory has no spiece.model
	batcher *infer.Batcher
	weights int64
	kv      int64

	// Guarded by residency.mu.
	reserved  bool // counts against the limits
	loaded    bool // the load succeeded
	refs      int
	loadedAt  time.Time
	lastUsed  time.Time
	keepAlive time.Duration
	unload    bool // unload when the last request ends
	timer     *time.Timer
	gone      bool // removed from the map
}

func newResidency(s *Server) *residency {
	return &residency{s: s, models: map[string]*resident{}, done: make(chan struct{})}
}

// key returns the residency key of a model name: a name the server was started with
// (Config.Models), or a registry reference in canonical form.
func (rs *residency) key(name string) (key string, ref zoo.Ref, isDir bool, err error) {
	if name == "" {
		return "", zoo.Ref{}, false, badRequest("model: missing")
	}
	if _, ok := rs.s.cfg.Models[name]; ok {
		return name, zoo.Ref{}, true, nil
	}
	ref, err = zoo.ParseRef(name)
	if err != nil {
		return "", zoo.Ref{}, false, err
	}
	return ref.String(), ref, false, nil
}

// acquire returns the loaded model name names, loading it first if needed, and a release
// function to call when the request is done with it. keepAlive, if not nil, becomes the
// model's keep-alive.
func (rs *residency) acquire(ctx context.Context, name string, keepAlive *time.Duration) (*resident, func(), error) {
	key, ref, isDir, err := rs.key(name)
	if err != nil {
		return nil, nil, err
	}
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return nil, nil, ErrShuttingDown
	}
	r, ok := rs.models[key]
	if !ok {
		r = &resident{name: key, ready: make(chan struct{}), keepAlive: rs.s.cfg.KeepAlive}
		rs.models[key] = r
		rs.loads.Add(1)
		go rs.load(r, ref, isDir)
	}
	r.refs++
	if keepAlive != nil {
		r.keepAlive = *keepAlive
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	rs.mu.Unlock()
	release := sync.OnceFunc(func() { rs.release(r) })
	select {
	case <-r.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if r.err != nil {
		release()
		return nil, nil, r.err
	}
	return r, release, nil
}

// release ends a request's use of r; the last one starts its keep-alive.
func (rs *residency) release(r *resident) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r.refs--
	r.lastUsed = time.Now()
	rs.idleLocked(r)
}

// idleLocked starts r's keep-alive, or unloads it, when no request uses it.
func (rs *residency) idleLocked(r *resident) {
	if r.refs > 0 || r.gone || !r.loaded {
		return
	}
	switch {
	case r.unload || r.keepAlive == 0:
		rs.evictLocked(r, "unload")
	case r.keepAlive > 0:
		r.timer = time.AfterFunc(r.keepAlive, func() { rs.expire(r) })
	}
}

// expire unloads r if it is still idle past its keep-alive.
func (rs *residency) expire(r *resident) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r.gone || r.refs > 0 || r.keepAlive < 0 || time.Since(r.lastUsed) < r.keepAlive {
		return
	}
	rs.evictLocked(r, "keep_alive")
}

// evictLocked removes r from the map and closes it in the background. rs.mu is held; r is
// idle and loaded.
func (rs *residency) evictLocked(r *resident, reason string) {
	rs.removeLocked(r)
	rs.s.metrics.evictions.WithLabelValues(r.name, reason).Inc()
	rs.s.log.Info("model unloaded", "model", r.name, "reason", reason, "memory", humanize.IBytes(uint64(r.weights+r.kv)))
	rs.closeModel(r)
}

// removeLocked takes r out of the map and its memory out of the budget.
func (rs *residency) removeLocked(r *resident) {
	if r.gone {
		return
	}
	r.gone = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if rs.models[r.name] == r {
		delete(rs.models, r.name)
	}
	if r.reserved {
		rs.bytes -= r.weights + r.kv
		r.reserved = false
	}
	rs.s.metrics.loaded.Set(float64(len(rs.models)))
	rs.s.metrics.memory.Set(float64(rs.bytes))
	rs.s.metrics.queued.DeleteLabelValues(r.name)
}

// closeModel stops r's batcher and unmaps its weights.
func (rs *residency) closeModel(r *resident) {
	if r.batcher != nil {
		r.batcher.Close()
	}
	if r.model != nil {
		r.model.Close()
	}
}

// load brings r into memory, then closes r.ready.
func (rs *residency) load(r *resident, ref zoo.Ref, isDir bool) {
	defer rs.loads.Done()
	// The load is not the requester's: other requests wait for it too, so it runs until it
	// ends or the server closes.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-rs.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	err := rs.doLoad(ctx, r, ref, isDir)
	rs.mu.Lock()
	if err != nil {
		r.err = fmt.Errorf("load %s: %w", r.name, err)
		rs.removeLocked(r)
		rs.mu.Unlock()
		rs.s.metrics.loads.WithLabelValues(r.name, "error").Inc()
		rs.s.log.Warn("model load failed", "model", r.name, "err", err)
		rs.closeModel(r)
		close(r.ready)
		return
	}
	r.loaded, r.loadedAt, r.lastUsed = true, time.Now(), time.Now()
	rs.idleLocked(r) // every waiting request may have given up
	rs.mu.Unlock()
	rs.s.metrics.loads.WithLabelValues(r.name, "ok").Inc()
	rs.s.log.Info("model loaded", "model", r.name, "dir", r.dir, "weights", humanize.IBytes(uint64(r.weights)),
		"kv_reserve", humanize.IBytes(uint64(r.kv)), "took", time.Since(start).Round(time.Millisecond))
	close(r.ready)
}

func (rs *residency) doLoad(ctx context.Context, r *resident, ref zoo.Ref, isDir bool) error {
	cfg := rs.s.cfg
	if isDir {
		r.dir = cfg.Models[r.name]
	} else {
		lm, err := rs.s.cache.Model(ref)
		if errors.Is(err, zoo.ErrNotFound) {
			rs.s.log.Info("pulling model for its first use", "model", r.name, "registry", storeName(rs.s.store))
			lm, err = rs.s.cache.Pull(ctx, rs.s.store, ref, zoo.PullOptions{Logger: rs.s.log, Progress: rs.s.pullProgress()})
		}
		if err != nil {
			return err
		}
		r.dir = lm.Dir
	}
	data, err := os.ReadFile(filepath.Join(r.dir, "config.json"))
	if err != nil {
		return fmt.Errorf("%w: %w", infer.ErrCheckpoint, err)
	}
	shape, err := catalog.ParseHFConfig(data)
	if err != nil {
		return fmt.Errorf("%w: config.json: %w", infer.ErrCheckpoint, err)
	}
	// Weights in the load dtype (float32 unless one is configured: a checkpoint's own bf16
	// is then counted high); the KV reserve is a full decoding batch of requests at the input
	// and output limits.
	wdt := cfg.DType
	if wdt == "" {
		wdt = catalog.F32
	}
	r.weights = shape.WeightBytes(wdt)
	r.kv = int64(cfg.Limits.MaxBatchRows) * shape.KVCacheBytes().RequestKVBytes(cfg.Limits.MaxInputTokens, cfg.Limits.MaxNewTokens)
	if err := rs.reserve(r); err != nil {
		return err
	}
	m, err := infer.Load(ctx, r.dir, infer.LoadOptions{Threads: cfg.Threads, DType: cfg.DType, MaxTokens: max(cfg.Limits.MaxInputTokens, cfg.Limits.MaxNewTokens+1)})
	if err != nil {
		return err
	}
	r.model = m
	if _, err := os.Stat(filepath.Join(r.dir, "spiece.model")); err == nil {
		if r.tok, err = tokenizer.Open(r.dir); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	r.batcher = infer.NewBatcher(m, infer.BatcherOptions{
		MaxRows:  cfg.Limits.MaxBatchRows,
		MaxQueue: cfg.Limits.MaxQueue,
		Observe:  rs.s.metrics.observeBatch(r.name),
	})
	return nil
}

// reserve counts r against --max-loaded and --memory-budget, evicting idle models, least
// recently used first, until it fits.
func (rs *residency) reserve(r *resident) error {
	cfg := rs.s.cfg
	need := r.weights + r.kv
	if cfg.MemoryBudget > 0 && need > cfg.MemoryBudget {
		return fmt.Errorf("%w: %s needs %s (weights %s + KV caches %s for %d sequences of %d+%d tokens), the budget is %s",
			ErrTooLarge, r.name, humanize.IBytes(uint64(need)), humanize.IBytes(uint64(r.weights)), humanize.IBytes(uint64(r.kv)),
			cfg.Limits.MaxBatchRows, cfg.Limits.MaxInputTokens, cfg.Limits.MaxNewTokens, humanize.IBytes(uint64(cfg.MemoryBudget)))
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return ErrShuttingDown
	}
	fits := func() bool {
		n := 0
		for _, m := range rs.models {
			if m.reserved {
				n++
			}
		}
		return (cfg.MaxLoaded <= 0 || n < cfg.MaxLoaded) && (cfg.MemoryBudget <= 0 || rs.bytes+need <= cfg.MemoryBudget)
	}
	var idle []*resident
	for _, m := range rs.models {
		if m.reserved && m.refs == 0 && m.loaded {
			idle = append(idle, m)
		}
	}
	slices.SortFunc(idle, func(a, b *resident) int { return a.lastUsed.Compare(b.lastUsed) })
	for !fits() {
		if len(idle) == 0 {
			return fmt.Errorf("%w: %s needs %s but the loaded models (%s of %s, %d of at most %d) are all in use; retry later",
				ErrBusy, r.name, humanize.IBytes(uint64(need)), humanize.IBytes(uint64(rs.bytes)), budgetString(cfg.MemoryBudget),
				len(rs.models)-1, cfg.MaxLoaded)
		}
		rs.evictLocked(idle[0], "lru")
		idle = idle[1:]
	}
	r.reserved = true
	rs.bytes += need
	rs.s.metrics.loaded.Set(float64(len(rs.models)))
	rs.s.metrics.memory.Set(float64(rs.bytes))
	return nil
}

func budgetString(b int64) string {
	if b <= 0 {
		return "no limit"
	}
	return humanize.IBytes(uint64(b))
}

// unloadModel unloads name now if idle, or marks it to be unloaded when its last request
// ends. It reports whether it was unloaded at once.
func (rs *residency) unloadModel(name string) (bool, error) {
	key, _, _, err := rs.key(name)
	if err != nil {
		return false, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.models[key]
	if !ok {
		return false, fmt.Errorf("%s is not loaded: %w", key, zoo.ErrNotFound)
	}
	if r.refs > 0 || !r.loaded {
		r.unload = true
		return false, nil
	}
	rs.evictLocked(r, "unload")
	return true, nil
}

// evictForDelete unloads ref's model before its files are removed; a model in use is
// ErrInUse.
func (rs *residency) evictForDelete(key string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.models[key]
	if !ok {
		return nil
	}
	if r.refs > 0 || !r.loaded {
		return fmt.Errorf("%w: %s is serving %d requests; unload it first", ErrInUse, key, r.refs)
	}
	rs.evictLocked(r, "delete")
	return nil
}

// isLoaded reports whether key is resident.
func (rs *residency) isLoaded(key string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	_, ok := rs.models[key]
	return ok
}

// snapshot describes the loaded models, by name.
func (rs *residency) snapshot() (models []residentInfo, bytes int64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.models {
		if !r.loaded {
			continue
		}
		info := residentInfo{name: r.name, weights: r.weights, kv: r.kv, loadedAt: r.loadedAt, lastUsed: r.lastUsed,
			keepAlive: r.keepAlive, refs: r.refs}
		if r.batcher != nil {
			info.queued, info.decoding = r.batcher.Stats()
		}
		models = append(models, info)
	}
	slices.SortFunc(models, func(a, b residentInfo) int { return cmpString(a.name, b.name) })
	return models, rs.bytes
}

type residentInfo struct {
	name               string
	weights, kv        int64
	loadedAt, lastUsed time.Time
	keepAlive          time.Duration
	refs               int
	queued, decoding   int
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// close refuses new loads, ends those in progress, and unloads every model. Requests must
// have ended (the HTTP server has shut down).
func (rs *residency) close() {
	rs.mu.Lock()
	if rs.closed {
		rs.mu.Unlock()
		return
	}
	rs.closed = true
	close(rs.done)
	var all []*resident
	for _, r := range rs.models {
		all = append(all, r)
	}
	rs.mu.Unlock()
	rs.loads.Wait()
	rs.mu.Lock()
	for _, r := range all {
		if !r.gone && r.loaded {
			rs.evictLocked(r, "shutdown")
		}
	}
	rs.mu.Unlock()
}
