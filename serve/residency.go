package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
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
	weights int64 // the weights and tables (infer.LoadBytes)
	kv      int64 // the batch's working memory and the retained scratch
	fixed   int64 // what is reserved in the budget: weights, then weights + kv

	inUse atomic.Int64 // the memory its requests hold now
	// The load's progress, while it pulls (bytes of the model's files).
	pulled, pullTotal atomic.Int64
	started           time.Time
	cancel            context.CancelFunc // ends the load (unload of a loading model)

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
	rs := &residency{s: s, models: map[string]*resident{}, done: make(chan struct{})}
	go rs.janitor()
	return rs
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
	rs.s.metrics.evictions.WithLabelValues(rs.s.metrics.label(r.name), reason).Inc()
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
		rs.s.mem.releaseFixed(r.fixed)
		r.reserved = false
	}
	rs.s.metrics.loaded.Set(float64(len(rs.models)))
	rs.s.metrics.queued.DeleteLabelValues(rs.s.metrics.label(r.name))
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
	// ends, the server closes, or an unload cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs.mu.Lock()
	r.cancel, r.started = cancel, time.Now()
	rs.mu.Unlock()
	go func() {
		select {
		case <-rs.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := rs.doLoadSafely(ctx, r, ref, isDir)
	if err != nil && ctx.Err() != nil && !errors.Is(err, ErrShuttingDown) {
		select {
		case <-rs.done:
			err = fmt.Errorf("%w: %w", ErrShuttingDown, err)
		default:
			err = fmt.Errorf("%w: %s was unloaded while it loaded", errLoadCancelled, r.name)
		}
	}
	rs.mu.Lock()
	if err != nil {
		r.err = fmt.Errorf("load %s: %w", r.name, rs.s.scrubErr(err))
		rs.removeLocked(r)
		rs.mu.Unlock()
		rs.s.metrics.loads.WithLabelValues(rs.s.metrics.label(r.name), "error").Inc()
		rs.s.log.Warn("model load failed", "model", r.name, "err", err)
		rs.closeModel(r)
		close(r.ready)
		return
	}
	r.loaded, r.loadedAt, r.lastUsed = true, time.Now(), time.Now()
	rs.idleLocked(r) // every waiting request may have given up
	rs.mu.Unlock()
	rs.s.metrics.loads.WithLabelValues(rs.s.metrics.label(r.name), "ok").Inc()
	rs.s.log.Info("model loaded", "model", r.name, "dir", r.dir, "weights", humanize.IBytes(uint64(r.weights)),
		"working_memory", humanize.IBytes(uint64(r.kv)), "took", time.Since(r.started).Round(time.Millisecond))
	close(r.ready)
}

// doLoadSafely is doLoad, with a panic (a checkpoint no check foresaw) turned into the
// load's error: one bad model costs its requests an error, never the process.
func (rs *residency) doLoadSafely(ctx context.Context, r *resident, ref zoo.Ref, isDir bool) (err error) {
	defer func() {
		if v := recover(); v != nil {
			rs.s.log.Error("model load panicked", "model", r.name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: the checkpoint broke the loader (%v)", infer.ErrCheckpoint, v)
		}
	}()
	return rs.doLoad(ctx, r, ref, isDir)
}

func (rs *residency) doLoad(ctx context.Context, r *resident, ref zoo.Ref, isDir bool) error {
	cfg := rs.s.cfg
	if isDir {
		r.dir = cfg.Models[r.name]
	} else {
		lm, err := rs.s.localModel(ctx, ref, r)
		if err != nil {
			return err
		}
		r.dir = lm.Dir
	}
	// A name the cache holds is one of a bounded set: its metrics carry it (metrics.label).
	rs.s.metrics.known.Store(r.name, true)
	data, err := os.ReadFile(filepath.Join(r.dir, "config.json"))
	if err != nil {
		return fmt.Errorf("%w: config.json: %w", infer.ErrCheckpoint, err)
	}
	shape, err := catalog.ParseHFConfig(data)
	if err != nil {
		return fmt.Errorf("%w: config.json: %w", infer.ErrCheckpoint, err)
	}
	// Price the load before making it: the weights in the load type (a checkpoint's own
	// type is priced as float32 until the load says which it is) and the position-bias
	// tables, within the memory budget.
	lopts := infer.LoadOptions{Threads: cfg.Threads, DType: cfg.DType, MaxTokens: max(cfg.Limits.MaxInputTokens, cfg.Limits.MaxNewTokens+1)}
	weights, err := infer.LoadBytes(shape, lopts)
	if err != nil {
		return fmt.Errorf("%w: %w", infer.ErrCheckpoint, err)
	}
	if err := rs.reserve(r, weights); err != nil {
		return err
	}
	m, err := infer.Load(ctx, r.dir, lopts)
	if err != nil {
		return err
	}
	r.model = m
	if _, err := os.Stat(filepath.Join(r.dir, "spiece.model")); err == nil {
		if r.tok, err = tokenizer.Open(r.dir); err != nil {
			return fmt.Errorf("%w: spiece.model: %w", infer.ErrCheckpoint, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: spiece.model: %w", infer.ErrCheckpoint, err)
	}
	bopts := infer.BatcherOptions{
		MaxRows:  cfg.Limits.MaxBatchRows,
		MaxQueue: cfg.Limits.MaxQueue,
		Memory:   modelMemory{m: rs.s.mem, inUse: &r.inUse},
		Observe:  rs.s.metrics.observeBatch(rs.s.metrics.label(r.name)),
	}
	// Now that the model is known: its weights in the type it loaded, and the working memory
	// of its batch and of the scratch it keeps.
	actual, err := infer.LoadBytes(shape, infer.LoadOptions{DType: m.DType(), MaxTokens: lopts.MaxTokens})
	if err != nil {
		return err
	}
	if err := rs.resize(r, actual, m.BatcherBytes(bopts)+m.RetainedBytes()); err != nil {
		return err
	}
	r.batcher = infer.NewBatcher(m, bopts)
	return nil
}

// reserve counts r against --max-loaded and need bytes of the memory budget, evicting idle
// models, least recently used first, until it fits.
func (rs *residency) reserve(r *resident, need int64) error {
	cfg := rs.s.cfg
	if b := cfg.MemoryBudget; b > 0 && need > b {
		return fmt.Errorf("%w: %s needs %s for its weights, the budget is %s", ErrTooLarge, r.name,
			humanize.IBytes(uint64(need)), humanize.IBytes(uint64(b)))
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return ErrShuttingDown
	}
	countOK := func() bool {
		n := 0
		for _, m := range rs.models {
			if m.reserved {
				n++
			}
		}
		return cfg.MaxLoaded <= 0 || n < cfg.MaxLoaded
	}
	for !countOK() || !rs.s.mem.reserveFixed(need) {
		if !rs.evictOneLocked(r) {
			fixed, requests := rs.s.mem.usage()
			return fmt.Errorf("%w: %s needs %s but the loaded models (%s, and %s held by requests, of %s; %d of at most %d) are all in use; retry later",
				ErrBusy, r.name, humanize.IBytes(uint64(need)), humanize.IBytes(uint64(fixed)), humanize.IBytes(uint64(requests)),
				budgetString(cfg.MemoryBudget), len(rs.models)-1, cfg.MaxLoaded)
		}
	}
	r.reserved, r.fixed, r.weights = true, need, need
	rs.s.metrics.loaded.Set(float64(len(rs.models)))
	return nil
}

// resize changes r's reservation to weights + kv once the load knows them, evicting idle
// models when it grows.
func (rs *residency) resize(r *resident, weights, kv int64) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !r.reserved {
		return ErrShuttingDown
	}
	need := weights + kv
	if b := rs.s.cfg.MemoryBudget; b > 0 && need > b {
		return fmt.Errorf("%w: %s needs %s (weights %s + working memory %s for batches of %d rows), the budget is %s",
			ErrTooLarge, r.name, humanize.IBytes(uint64(need)), humanize.IBytes(uint64(weights)), humanize.IBytes(uint64(kv)),
			rs.s.cfg.Limits.MaxBatchRows, humanize.IBytes(uint64(b)))
	}
	if grow := need - r.fixed; grow > 0 {
		for !rs.s.mem.reserveFixed(grow) {
			if !rs.evictOneLocked(r) {
				return fmt.Errorf("%w: %s needs %s more working memory and the loaded models are all in use; retry later",
					ErrBusy, r.name, humanize.IBytes(uint64(grow)))
			}
		}
	} else if grow < 0 {
		rs.s.mem.releaseFixed(-grow)
	}
	r.weights, r.kv, r.fixed = weights, kv, need
	return nil
}

// evictOneLocked unloads the least recently used idle model other than keep, reporting
// whether there was one.
func (rs *residency) evictOneLocked(keep *resident) bool {
	var lru *resident
	for _, m := range rs.models {
		if m != keep && m.reserved && m.refs == 0 && m.loaded && (lru == nil || m.lastUsed.Before(lru.lastUsed)) {
			lru = m
		}
	}
	if lru == nil {
		return false
	}
	rs.evictLocked(lru, "lru")
	return true
}

// evictIdle unloads idle models, least recently used first, until need bytes are free (or
// none is idle): requests short of memory ask for it.
func (rs *residency) evictIdle(need int64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for f := rs.s.mem.free(); f >= 0 && f < need; f = rs.s.mem.free() {
		if !rs.evictOneLocked(nil) {
			return
		}
	}
}

// janitor evicts an idle model whenever a Batcher is refused memory (it cannot wait for an
// eviction itself), until the residency closes.
func (rs *residency) janitor() {
	for {
		select {
		case <-rs.done:
			return
		case <-rs.s.mem.short:
			rs.mu.Lock()
			rs.evictOneLocked(nil)
			rs.mu.Unlock()
		}
	}
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
	if !r.loaded {
		// A load in progress (a stalled pull, a slow disk) is cancelled: its waiting requests
		// fail, and the next request starts a new load.
		if r.cancel != nil {
			r.cancel()
		}
		return false, nil
	}
	if r.refs > 0 {
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

// snapshot describes the models loaded and loading, by name.
func (rs *residency) snapshot() []residentInfo {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var models []residentInfo
	for _, r := range rs.models {
		info := residentInfo{name: r.name, loaded: r.loaded, weights: r.weights, kv: r.kv, requests: r.inUse.Load(),
			loadedAt: r.loadedAt, lastUsed: r.lastUsed, keepAlive: r.keepAlive, refs: r.refs,
			started: r.started, pulled: r.pulled.Load(), pullTotal: r.pullTotal.Load()}
		if r.batcher != nil {
			info.queued, info.decoding = r.batcher.Stats()
		}
		models = append(models, info)
	}
	slices.SortFunc(models, func(a, b residentInfo) int { return cmp.Compare(a.name, b.name) })
	return models
}

type residentInfo struct {
	name                  string
	loaded                bool
	weights, kv, requests int64
	loadedAt, lastUsed    time.Time
	keepAlive             time.Duration
	refs                  int
	queued, decoding      int
	started               time.Time
	pulled, pullTotal     int64
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
