package fetch_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/convert/hub/hubtest"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/zoo"
)

// golden is the tiny-relu checkpoint of the HF reference outputs (testdata/golden/README.md).
const golden = "../testdata/golden/tiny-relu/checkpoint"

// goldenRepo is the golden checkpoint as a Hub repository without model.safetensors, like
// most google/t5-efficient-* repositories.
func goldenRepo(t *testing.T, id string) hubtest.Repo {
	t.Helper()
	r, err := hubtest.LoadDir(id, golden)
	if err != nil {
		t.Fatal(err)
	}
	delete(r.Files, "model.safetensors")
	return r
}

// goldenCatalog publishes the golden checkpoint's shape under name, so that an import by
// name runs on a 1.5 MB model (the real published shapes are 12M parameters and up).
func goldenCatalog(t *testing.T, name string) *catalog.Catalog {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(golden, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := catalog.ParseHFConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.New([]catalog.Entry{{
		Name: name, HFRepo: catalog.HFOrg + "/" + name, Published: true, Existence: "confirmed",
		ConfigSource: catalog.ConfigExact, Params: s.Params(), Config: s.HFConfig(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newFetcher is a Fetcher over a fresh cache and its local registry, with endpoint as the
// Hub (retrying quickly).
func newFetcher(t *testing.T, endpoint string, c *catalog.Catalog) *fetch.Fetcher {
	t.Helper()
	cache, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fetch.Fetcher{
		Cache: cache, Store: cache.Registry(), Catalog: c,
		Hub: &hub.Client{Endpoint: endpoint, MaxAttempts: 2, Backoff: time.Millisecond},
	}
}

// weightRequests counts the requests for the weights the Hub received (each redirected to
// its CDN, which the count leaves out).
func weightRequests(s *hubtest.Server) int {
	n := 0
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, "/pytorch_model.bin") {
			n++
		}
	}
	return n
}

func TestModelImportsByName(t *testing.T) {
	hubSrv := hubtest.New(goldenRepo(t, "google/t5-efficient-tiny"))
	defer hubSrv.Close()
	f := newFetcher(t, hubSrv.URL, goldenCatalog(t, "t5-efficient-tiny"))
	ref := zoo.MustParseRef("t5-efficient-tiny")

	// Without Import a registry miss is ErrNotFound, with how to import it.
	_, err := f.Model(t.Context(), ref, fetch.Options{})
	if !errors.Is(err, zoo.ErrNotFound) || !strings.Contains(err.Error(), "t5zoo import hf google/t5-efficient-tiny") {
		t.Fatalf("without Import: %v", err)
	}
	if n := weightRequests(hubSrv); n != 0 {
		t.Fatalf("the Hub was asked for the weights %d times without Import", n)
	}

	var started []string
	var imported *fetch.ImportResult
	lm, err := f.Model(t.Context(), ref, fetch.Options{
		Import:     true,
		OnImport:   func(repo string) { started = append(started, repo) },
		OnImported: func(r *fetch.ImportResult) { imported = r },
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := weightRequests(hubSrv); n != 1 {
		t.Errorf("%d requests for the weights, want 1", n)
	}
	if len(started) != 1 || started[0] != "google/t5-efficient-tiny" || imported == nil || !imported.Meta.Parity.Passed {
		t.Fatalf("hooks: started %v, imported %+v", started, imported)
	}
	if lm.Ref != ref || lm.Dir != f.Cache.ModelDir(ref) {
		t.Fatalf("model %+v", lm)
	}
	if err := fetch.CheckDir(lm.Dir, fetch.CheckOptions{Tokenizer: true, Deep: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.GetManifest(t.Context(), ref); err != nil {
		t.Fatalf("not pushed to the registry: %v", err)
	}
	// The download is gone after success; the next call is the cache's copy, no transfer.
	dl, err := f.DownloadDir("google/t5-efficient-tiny", "main")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dl); !os.IsNotExist(err) {
		t.Errorf("download kept: %v", err)
	}
	before := len(hubSrv.Requests())
	if _, err := f.Model(t.Context(), ref, fetch.Options{Import: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(hubSrv.Requests()); n != before {
		t.Errorf("a cached model asked the Hub %d more times", n-before)
	}
}

func TestModelNotImported(t *testing.T) {
	hubSrv := hubtest.New(goldenRepo(t, "google/t5-efficient-tiny"), goldenRepo(t, "acme/tiny"))
	defer hubSrv.Close()
	f := newFetcher(t, hubSrv.URL, goldenCatalog(t, "t5-efficient-tiny"))
	for _, tt := range []struct {
		ref, want string
	}{
		// Not a published shape: nothing to import, and no import is offered.
		{"acme/tiny", ""},
		{"t5-efficient-base-nl37", ""},
		// A published shape under another tag names a variant only an explicit import makes.
		{"t5-efficient-tiny:bf16", "--as t5-efficient-tiny:bf16"},
	} {
		_, err := f.Model(t.Context(), zoo.MustParseRef(tt.ref), fetch.Options{Import: true})
		if !errors.Is(err, zoo.ErrNotFound) || tt.want == "" && strings.Contains(err.Error(), "import hf") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrNotFound mentioning %q", tt.ref, err, tt.want)
		}
	}
	if n := weightRequests(hubSrv); n != 0 {
		t.Errorf("%d weight transfers", n)
	}
	// Without a Hub client or a catalog nothing is imported either.
	for _, g := range []*fetch.Fetcher{
		{Cache: f.Cache, Store: f.Store, Catalog: f.Catalog},
		{Cache: f.Cache, Store: f.Store, Hub: f.Hub},
	} {
		if _, err := g.Model(t.Context(), zoo.MustParseRef("t5-efficient-tiny"), fetch.Options{Import: true}); !errors.Is(err, zoo.ErrNotFound) {
			t.Errorf("%+v: %v", g, err)
		}
	}
}

// TestModelOffline: an unreachable Hub fails at once with ErrOffline and the commands that
// get the model another way.
func TestModelOffline(t *testing.T) {
	f := newFetcher(t, "http://127.0.0.1:1", goldenCatalog(t, "t5-efficient-tiny"))
	f.Hub.MaxAttempts, f.Hub.Backoff = 5, time.Second // the probe must not wait for these
	start := time.Now()
	_, err := f.Model(t.Context(), zoo.MustParseRef("t5-efficient-tiny"), fetch.Options{Import: true})
	if !errors.Is(err, fetch.ErrOffline) {
		t.Fatalf("err = %v, want ErrOffline", err)
	}
	for _, want := range []string{"http://127.0.0.1:1", "t5zoo import hf google/t5-efficient-tiny", "T5ZOO_REGISTRY", "t5zoo convert", "t5zoo push"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message lacks %q:\n%v", want, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v: the offline case waited for retries", d)
	}
}

// TestModelImportsOnce: concurrent calls for one ref share one import.
func TestModelImportsOnce(t *testing.T) {
	hubSrv := hubtest.New(goldenRepo(t, "google/t5-efficient-tiny"))
	defer hubSrv.Close()
	f := newFetcher(t, hubSrv.URL, goldenCatalog(t, "t5-efficient-tiny"))
	ref := zoo.MustParseRef("t5-efficient-tiny")
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	dirs := make([]string, n)
	for i := range n {
		wg.Go(func() {
			lm, err := f.Model(t.Context(), ref, fetch.Options{Import: true})
			errs[i] = err
			if err == nil {
				dirs[i] = lm.Dir
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || dirs[i] != f.Cache.ModelDir(ref) {
			t.Errorf("call %d: %q, %v", i, dirs[i], err)
		}
	}
	if got := weightRequests(hubSrv); got != 1 {
		t.Errorf("the weights were downloaded %d times, want once", got)
	}
}

// TestImportShapeMismatch: a checkpoint is not imported under a published catalog name
// whose shape it does not have.
func TestImportShapeMismatch(t *testing.T) {
	gated, err := hubtest.LoadDir("google/t5-efficient-tiny", "../testdata/golden/tiny-gated/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	hubSrv := hubtest.New(gated)
	defer hubSrv.Close()
	f := newFetcher(t, hubSrv.URL, goldenCatalog(t, "t5-efficient-tiny"))
	ref := zoo.MustParseRef("t5-efficient-tiny")
	_, err = f.Import(t.Context(), fetch.ImportOptions{Repo: "google/t5-efficient-tiny", Ref: ref})
	if !errors.Is(err, zoo.ErrInvalidModel) || !strings.Contains(err.Error(), "feed_forward_proj") {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.Store.GetManifest(t.Context(), ref); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("pushed anyway: %v", err)
	}
	// Under another name it imports.
	if _, err := f.Import(t.Context(), fetch.ImportOptions{Repo: "google/t5-efficient-tiny", Ref: zoo.MustParseRef("acme/gated")}); err != nil {
		t.Fatal(err)
	}
}

// TestImportParityGate: a lossy import below the gate pushes nothing unless forced.
func TestImportParityGate(t *testing.T) {
	gated, err := hubtest.LoadDir("acme/gated", "../testdata/golden/tiny-gated/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	hubSrv := hubtest.New(gated)
	defer hubSrv.Close()
	f := newFetcher(t, hubSrv.URL, nil)
	ref := zoo.MustParseRef("acme/gated:int8")
	var verdict *bool
	o := fetch.ImportOptions{Repo: "acme/gated", Ref: ref, DType: catalog.Int8,
		OnConverted: func(m *convert.Meta) { verdict = &m.Parity.Passed }}
	_, err = f.Import(t.Context(), o)
	if !errors.Is(err, fetch.ErrParity) || !strings.Contains(err.Error(), "nothing was pushed") || verdict == nil || *verdict {
		t.Fatalf("err = %v, verdict %v", err, verdict)
	}
	if _, err := f.Store.GetManifest(t.Context(), ref); !errors.Is(err, zoo.ErrNotFound) {
		t.Fatalf("pushed anyway: %v", err)
	}
	// The download stays for the next attempt, which transfers nothing again.
	dl, _ := f.DownloadDir("acme/gated", "main")
	if _, err := os.Stat(filepath.Join(dl, "config.json")); err != nil {
		t.Fatalf("download removed after a failure: %v", err)
	}
	o.Force = true
	res, err := f.Import(t.Context(), o)
	if err != nil || res.Meta.Parity.Passed {
		t.Fatalf("forced: %+v, %v", res, err)
	}
}

func TestDownloadDir(t *testing.T) {
	f := newFetcher(t, "", nil)
	root := f.Cache.Root()
	for _, tt := range []struct {
		repo, rev, want string
	}{
		{"google/t5-efficient-tiny", "main", "downloads/hf/google/t5-efficient-tiny/main"},
		{"tiny", "refs/pr/1", "downloads/hf/tiny/refs%2Fpr%2F1"},
		{"acme/x", "..", ""},
		{"acme/x", "../../../etc", "downloads/hf/acme/x/..%2F..%2F..%2Fetc"},
		{"../x", "main", ""},
		{"a/b/c", "main", ""},
		{"acme/x", "", ""},
	} {
		got, err := f.DownloadDir(tt.repo, tt.rev)
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s@%s: %s, want an error", tt.repo, tt.rev, got)
			}
			continue
		}
		if err != nil || got != filepath.Join(root, filepath.FromSlash(tt.want)) {
			t.Errorf("%s@%s: %s, %v; want %s", tt.repo, tt.rev, got, err, tt.want)
		}
	}
}
