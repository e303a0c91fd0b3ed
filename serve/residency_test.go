package serve_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// use runs a small request on model with an optional keep-alive.
func use(t *testing.T, ts *testServer, model string, keepAlive *time.Duration) error {
	t.Helper()
	req := &api.EncodeRequest{Model: model, Input: "a"}
	if keepAlive != nil {
		req.KeepAlive = &api.Duration{Duration: *keepAlive}
	}
	_, err := ts.Client.Encode(t.Context(), req)
	return err
}

func loaded(t *testing.T, ts *testServer) []string {
	t.Helper()
	ps, err := ts.Client.Ps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ps.Models {
		names = append(names, m.Name)
	}
	return names
}

// memoryOf returns what one model counts against the budget, as /api/ps reports it.
func memoryOf(t *testing.T, model string) int64 {
	t.Helper()
	ts := newTestServer(t, nil)
	if err := use(t, ts, model, nil); err != nil {
		t.Fatal(err)
	}
	ps, _ := ts.Client.Ps(t.Context())
	return ps.Models[0].MemoryBytes
}

// TestEviction checks LRU eviction under --max-loaded and --memory-budget, the 507 of a
// model that cannot fit, and the 503 when every loaded model is busy.
func TestEviction(t *testing.T) {
	relu, gated, long := memoryOf(t, reluRef), memoryOf(t, gatedRef), memoryOf(t, longModel)
	t.Run("max-loaded", func(t *testing.T) {
		ts := newTestServer(t, func(c *serve.Config) { c.MaxLoaded = 2 })
		for _, m := range []string{reluRef, gatedRef, reluRef, longModel} { // gated is the LRU
			if err := use(t, ts, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got := loaded(t, ts); !slices.Equal(got, []string{longModel, reluRef}) {
			t.Errorf("loaded %v, want the two most recently used", got)
		}
		if n := metricValue(t, ts, "t5zoo_model_evictions_total", "model="+gatedRef, "reason=lru"); n != 1 {
			t.Errorf("lru evictions of %s: %v", gatedRef, n)
		}
	})
	t.Run("memory-budget", func(t *testing.T) {
		ts := newTestServer(t, func(c *serve.Config) { c.MemoryBudget = relu + long + gated/2 })
		for _, m := range []string{reluRef, longModel, gatedRef} { // gated needs relu's room
			if err := use(t, ts, m, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got := loaded(t, ts); !slices.Equal(got, []string{longModel, gatedRef}) {
			t.Errorf("loaded %v", got)
		}
		ps, _ := ts.Client.Ps(t.Context())
		if ps.MemoryBytes != long+gated || ps.MemoryBudget != relu+long+gated/2 {
			t.Errorf("ps memory %d of %d", ps.MemoryBytes, ps.MemoryBudget)
		}
	})
	t.Run("too large", func(t *testing.T) {
		ts := newTestServer(t, func(c *serve.Config) { c.MemoryBudget = relu - 1 })
		status, _, body := do(t, http.MethodPost, ts.URL+"/api/encode", `{"model":"`+reluRef+`","input":"a"}`)
		if status != http.StatusInsufficientStorage || errorCode(body) != "model_too_large" || !strings.Contains(string(body), "needs") {
			t.Errorf("%d %s", status, body)
		}
		if got := loaded(t, ts); len(got) != 0 {
			t.Errorf("loaded %v", got)
		}
		// The failure is not cached: with room, the model loads.
		if err := use(t, ts, gatedRef, nil); err != nil && gated < relu {
			t.Error(err)
		}
	})
	t.Run("all busy", func(t *testing.T) {
		ts := newTestServer(t, func(c *serve.Config) { c.MaxLoaded = 1 })
		release, err := ts.HoldModel(t.Context(), longModel)
		if err != nil {
			t.Fatal(err)
		}
		status, hdr, body := do(t, http.MethodPost, ts.URL+"/api/encode", `{"model":"`+reluRef+`","input":"a"}`)
		if status != http.StatusServiceUnavailable || errorCode(body) != "busy" || hdr.Get("Retry-After") == "" {
			t.Errorf("%d %s", status, body)
		}
		// A directory model cannot be deleted; unloading a busy one waits for it to be idle.
		if status, _, body := do(t, http.MethodDelete, ts.URL+"/api/models/"+longModel, ""); status != http.StatusBadRequest {
			t.Errorf("delete of a directory model: %d %s", status, body)
		}
		if u, err := ts.Client.Unload(t.Context(), longModel); err != nil || u.Status != "unloading" {
			t.Errorf("unload of a busy model: %+v %v", u, err)
		}
		if got := loaded(t, ts); len(got) != 1 {
			t.Errorf("loaded while busy: %v", got)
		}
		release()
		if got := loaded(t, ts); len(got) != 0 {
			t.Errorf("loaded after the last request of a model to unload: %v", got)
		}
		if err := use(t, ts, reluRef, nil); err != nil {
			t.Error(err)
		}
	})
	t.Run("delete busy", func(t *testing.T) {
		ts := newTestServer(t, nil)
		const ref = "test/long:v1"
		if _, err := zoo.Push(t.Context(), ts.Cache.Registry(), longModelDir(t), zoo.MustParseRef(ref), zoo.PushOptions{}); err != nil {
			t.Fatal(err)
		}
		release, err := ts.HoldModel(t.Context(), ref)
		if err != nil {
			t.Fatal(err)
		}
		if status, _, b := do(t, http.MethodDelete, ts.URL+"/api/models/"+ref, ""); status != http.StatusConflict || errorCode(b) != "model_in_use" {
			t.Errorf("delete of a busy model: %d %s", status, b)
		}
		release()
		if status, _, b := do(t, http.MethodDelete, ts.URL+"/api/models/"+ref, ""); status != 200 {
			t.Errorf("delete of an idle loaded model: %d %s", status, b)
		}
		if got := loaded(t, ts); len(got) != 0 {
			t.Errorf("loaded after delete: %v", got)
		}
		if _, err := ts.Cache.Model(zoo.MustParseRef(ref)); err == nil {
			t.Error("the model is still in the cache")
		}
	})
}

// TestKeepAlive checks the server's keep-alive and a request's keep_alive.
func TestKeepAlive(t *testing.T) {
	ts := newTestServer(t, func(c *serve.Config) { c.KeepAlive = 150 * time.Millisecond })
	if err := use(t, ts, reluRef, nil); err != nil {
		t.Fatal(err)
	}
	ps, _ := ts.Client.Ps(t.Context())
	if len(ps.Models) != 1 || ps.Models[0].ExpiresAt == nil || ps.Models[0].KeepAlive.Duration != 150*time.Millisecond {
		t.Fatalf("ps %+v", ps)
	}
	waitFor(t, "the keep-alive to unload the model", func() bool { return len(loaded(t, ts)) == 0 })
	if n := metricValue(t, ts, "t5zoo_model_evictions_total", "reason=keep_alive"); n != 1 {
		t.Errorf("keep_alive evictions %v", n)
	}
	zero, forever := time.Duration(0), time.Duration(-1)
	if err := use(t, ts, reluRef, &zero); err != nil {
		t.Fatal(err)
	}
	if got := loaded(t, ts); len(got) != 0 {
		t.Errorf("keep_alive 0 left %v loaded", got)
	}
	if err := use(t, ts, reluRef, &forever); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := loaded(t, ts); len(got) != 1 {
		t.Errorf("keep_alive -1: loaded %v", got)
	}
}

// TestOneLoad sends concurrent requests for a model that is not loaded (nor pulled): they
// all wait for one pull and one load.
func TestOneLoad(t *testing.T) {
	ts := newTestServer(t, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := use(t, ts, gatedRef, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := metricValue(t, ts, "t5zoo_model_loads_total", "model="+gatedRef); n != 1 {
		t.Errorf("%v loads for 8 concurrent first requests", n)
	}
	if !strings.Contains(ts.Log.String(), "pulling model for its first use") {
		t.Error("the model was not pulled on first use")
	}
	if n := strings.Count(ts.Log.String(), `msg="model loaded"`); n != 1 {
		t.Errorf("%d loads logged", n)
	}
}
