package hub_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/t5zoo/t5zoo/convert/hub"
	"github.com/t5zoo/t5zoo/convert/hub/hubtest"
)

const (
	reluRepo  = "google/t5-tiny-relu"
	gatedRepo = "google/t5-tiny-gated"
	goldenDir = "../../testdata/golden"
)

func goldenRepo(t *testing.T, id, model string) hubtest.Repo {
	t.Helper()
	r, err := hubtest.LoadDir(id, filepath.Join(goldenDir, model, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newHub serves both golden checkpoints; the tiny-gated one is a gated repository.
func newHub(t *testing.T) *hubtest.Server {
	t.Helper()
	gated := goldenRepo(t, gatedRepo, "tiny-gated")
	gated.Gated = true
	s := hubtest.New(goldenRepo(t, reluRepo, "tiny-relu"), gated)
	t.Cleanup(s.Close)
	return s
}

func newClient(s *hubtest.Server) *hub.Client {
	return &hub.Client{Endpoint: s.URL, Backoff: time.Millisecond, StallTimeout: 2 * time.Second}
}

func golden(t *testing.T, model, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, model, "checkpoint", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, not byte-identical to the %d served", path, len(got), len(want))
	}
}

func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") || strings.HasSuffix(e.Name(), ".part.json") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

func TestRepo(t *testing.T) {
	s := newHub(t)
	info, err := newClient(s).Repo(t.Context(), reluRepo, "main")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != reluRepo || len(info.SHA) != 40 || len(info.Files) != 7 {
		t.Fatalf("info = %+v", info)
	}
	st, ok := info.File("model.safetensors")
	if !ok || st.LFS == nil || st.Size != int64(len(golden(t, "tiny-relu", "model.safetensors"))) || len(st.LFS.SHA256) != 64 {
		t.Errorf("model.safetensors = %+v", st)
	}
	cfg, _ := info.File("config.json")
	if cfg.LFS != nil || len(cfg.BlobID) != 40 {
		t.Errorf("config.json = %+v", cfg)
	}
	// The commit id works as a revision too.
	if _, err := newClient(s).Repo(t.Context(), reluRepo, info.SHA); err != nil {
		t.Error(err)
	}
}

func TestDownloadT5(t *testing.T) {
	s := newHub(t)
	dir := t.TempDir()
	var mu sync.Mutex
	last := map[string][2]int64{}
	snap, err := newClient(s).DownloadT5(t.Context(), reluRepo, "", dir, hub.SnapshotOptions{
		Progress: func(file string, done, total int64) {
			mu.Lock()
			last[file] = [2]int64{done, total}
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}
	var got []string
	for _, f := range snap.Files {
		got = append(got, f.File)
		data := golden(t, "tiny-relu", f.File)
		sameFile(t, filepath.Join(dir, f.File), data)
		if f.Size != int64(len(data)) || len(f.SHA256) != 64 || f.Commit != snap.Commit || f.Skipped {
			t.Errorf("%+v", f)
		}
		if p := last[f.File]; p[0] != f.Size || p[1] != f.Size {
			t.Errorf("%s: last progress %v, want %d of %d", f.File, p, f.Size, f.Size)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, want %v (pytorch_model.bin is not needed beside model.safetensors)", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "pytorch_model.bin")); !os.IsNotExist(err) {
		t.Error("pytorch_model.bin downloaded")
	}
	noLeftovers(t, dir)
	// LFS files came through the CDN redirect, with the resolve request pinned to the commit.
	var cdn, pinned int
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, "/cdn/") {
			cdn++
		}
		if strings.Contains(r.Path, "/resolve/"+snap.Commit+"/") {
			pinned++
		}
	}
	if cdn != 2 || pinned != 6 {
		t.Errorf("%d CDN requests (want 2: model.safetensors, spiece.model), %d resolve requests at the commit (want 6)", cdn, pinned)
	}
	// A second run finds every file in place and verified: only the listing is requested.
	before := len(s.Requests())
	snap, err = newClient(s).DownloadT5(t.Context(), reluRepo, "main", dir, hub.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Requests()) - before; n != 1 {
		t.Errorf("second run made %d requests, want 1", n)
	}
	for _, f := range snap.Files {
		if !f.Skipped {
			t.Errorf("%s downloaded again", f.File)
		}
	}
}

// TestResumeAfterCut: the connection drops mid-body; the client resumes with a range request
// and the file is byte-identical.
func TestResumeAfterCut(t *testing.T) {
	for _, file := range []string{"model.safetensors", "tokenizer_config.json"} { // LFS and regular
		t.Run(file, func(t *testing.T) {
			s := newHub(t)
			data := golden(t, "tiny-relu", file)
			cut := int64(len(data) / 3)
			s.Inject(reluRepo, file, hubtest.Fault{CutAfter: cut})
			dst := filepath.Join(t.TempDir(), file)
			d, err := newClient(s).Download(t.Context(), reluRepo, "main", file, dst, hub.DownloadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sameFile(t, dst, data)
			if d.Size != int64(len(data)) {
				t.Errorf("size %d", d.Size)
			}
			var ranged *hubtest.Request
			for _, r := range s.Requests() {
				if r.Range != "" {
					ranged = &r
				}
			}
			if ranged == nil || !strings.HasPrefix(ranged.Range, "bytes=") || ranged.IfRange == "" || ranged.Status != 206 {
				t.Fatalf("no resumed range request in %+v", s.Requests())
			}
			noLeftovers(t, filepath.Dir(dst))
		})
	}
}

// TestResumeAcrossCalls: a failed call leaves the partial file; the next call resumes it.
func TestResumeAcrossCalls(t *testing.T) {
	s := newHub(t)
	data := golden(t, "tiny-relu", "pytorch_model.bin")
	s.Inject(reluRepo, "pytorch_model.bin", hubtest.Fault{CutAfter: 500000})
	c := newClient(s)
	c.MaxAttempts = 1
	dst := filepath.Join(t.TempDir(), "pytorch_model.bin")
	if _, err := c.Download(t.Context(), reluRepo, "main", "pytorch_model.bin", dst, hub.DownloadOptions{}); err == nil {
		t.Fatal("the cut transfer succeeded")
	}
	if st, err := os.Stat(dst + ".part"); err != nil || st.Size() != 500000 {
		t.Fatalf("partial file: %v, %v", st, err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("the final file exists after a failed transfer")
	}
	var first []int64
	_, err := c.Download(t.Context(), reluRepo, "main", "pytorch_model.bin", dst, hub.DownloadOptions{
		Progress: func(_ string, done, _ int64) { first = append(first, done) },
	})
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, dst, data)
	if len(first) == 0 || first[0] != 500000 {
		t.Errorf("progress started at %v, want 500000 (resumed)", first[:min(1, len(first))])
	}
	reqs := s.Requests()
	if last := reqs[len(reqs)-1]; last.Range != "bytes=500000-" || last.Status != 206 {
		t.Errorf("last request %+v, want a 206 answer to bytes=500000-", last)
	}
}

// TestChangedFileRestarts: the file changes between attempts; If-Range (and the ETag recorded
// beside the partial file) make the client start over instead of splicing two versions.
func TestChangedFileRestarts(t *testing.T) {
	for _, file := range []string{"spiece.model", "special_tokens_map.json"} { // LFS and regular
		t.Run(file, func(t *testing.T) {
			s := newHub(t)
			data := golden(t, "tiny-relu", file)
			changed := append(bytes.Clone(data), "-changed"...)
			changed[10] ^= 1
			s.Inject(reluRepo, file, hubtest.Fault{CutAfter: int64(len(data) / 2), Then: func() { s.SetFile(reluRepo, file, changed) }})
			c := newClient(s)
			c.MaxAttempts = 1
			dst := filepath.Join(t.TempDir(), file)
			if _, err := c.Download(t.Context(), reluRepo, "main", file, dst, hub.DownloadOptions{}); err == nil {
				t.Fatal("the cut transfer succeeded")
			}
			c.MaxAttempts = 3
			if _, err := c.Download(t.Context(), reluRepo, "main", file, dst, hub.DownloadOptions{}); err != nil {
				t.Fatal(err)
			}
			sameFile(t, dst, changed)
		})
	}
	// Within one call: the retry after the cut sees the new version.
	s := newHub(t)
	data := golden(t, "tiny-relu", "model.safetensors")
	changed := bytes.Clone(data)
	changed[len(changed)-1] ^= 1
	s.Inject(reluRepo, "model.safetensors", hubtest.Fault{CutAfter: 1000, Then: func() { s.SetFile(reluRepo, "model.safetensors", changed) }})
	dst := filepath.Join(t.TempDir(), "m")
	if _, err := newClient(s).Download(t.Context(), reluRepo, "main", "model.safetensors", dst, hub.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, dst, changed)
}

// TestChangedFileIgnoredIfRange: a server that ignores If-Range answers the range of the new
// version; the ETag recorded beside the partial file catches it.
func TestChangedFileIgnoredIfRange(t *testing.T) {
	for _, file := range []string{"model.safetensors", "generation_config.json"} {
		t.Run(file, func(t *testing.T) {
			s := newHub(t)
			data := golden(t, "tiny-relu", file)
			changed := bytes.Clone(data)
			changed[10] ^= 1 // in the part already received: a splice would keep the old byte
			s.Inject(reluRepo, file, hubtest.Fault{CutAfter: int64(len(data) / 2), Then: func() { s.SetFile(reluRepo, file, changed) }},
				hubtest.Fault{IgnoreIfRange: true})
			c := newClient(s)
			c.MaxAttempts = 1
			dst := filepath.Join(t.TempDir(), file)
			if _, err := c.Download(t.Context(), reluRepo, "main", file, dst, hub.DownloadOptions{}); err == nil {
				t.Fatal("the cut transfer succeeded")
			}
			if _, err := c.Download(t.Context(), reluRepo, "main", file, dst, hub.DownloadOptions{}); err != nil {
				t.Fatal(err) // one attempt suffices: a restart from the first byte is not counted
			}
			sameFile(t, dst, changed)
			var statuses []int
			for _, r := range s.Requests() {
				if r.Path == "/"+reluRepo+"/resolve/main/"+file || strings.HasPrefix(r.Path, "/cdn/") {
					statuses = append(statuses, r.Status)
				}
			}
			if !slices.Contains(statuses, 206) {
				t.Errorf("statuses %v: the server never answered the stale range", statuses)
			}
		})
	}
}

func TestIgnoredRange(t *testing.T) {
	s := newHub(t)
	data := golden(t, "tiny-relu", "model.safetensors")
	s.Inject(reluRepo, "model.safetensors", hubtest.Fault{CutAfter: 4096}, hubtest.Fault{IgnoreRange: true})
	dst := filepath.Join(t.TempDir(), "model.safetensors")
	if _, err := newClient(s).Download(t.Context(), reluRepo, "main", "model.safetensors", dst, hub.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, dst, data)
}

func TestCorruptBody(t *testing.T) {
	for _, file := range []string{"model.safetensors", "config.json"} { // sha256 and git sha1
		t.Run(file, func(t *testing.T) {
			s := newHub(t)
			s.Inject(reluRepo, file, hubtest.Fault{Corrupt: true})
			dir := t.TempDir()
			dst := filepath.Join(dir, file)
			_, err := newClient(s).Download(t.Context(), reluRepo, "main", file, dst, hub.DownloadOptions{})
			var ve *hub.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Download = %v, want a *VerifyError", err)
			}
			t.Log(err)
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Error("the corrupted file was renamed into place")
			}
			noLeftovers(t, dir)
		})
	}
	// Snapshot also checks against the listing.
	s := newHub(t)
	s.Inject(reluRepo, "config.json", hubtest.Fault{Corrupt: true})
	_, err := newClient(s).Snapshot(t.Context(), reluRepo, "main", t.TempDir(), []string{"config.json"}, hub.SnapshotOptions{})
	var ve *hub.VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("Snapshot = %v", err)
	}
}

func TestErrors(t *testing.T) {
	s := newHub(t)
	c := newClient(s)
	dst := filepath.Join(t.TempDir(), "x")
	tests := []struct {
		name                 string
		client               *hub.Client
		repo, revision, file string
		want                 error
		code, hint           string
	}{
		{"repo not found", c, "google/nope", "main", "config.json", hub.ErrNotFound, "RepoNotFound", "HF_TOKEN"},
		{"repo not found with token", &hub.Client{Endpoint: s.URL, Token: "x"}, "google/nope", "main", "config.json", hub.ErrNotFound, "RepoNotFound", "cannot see it"},
		{"revision not found", c, reluRepo, "v9", "config.json", hub.ErrNotFound, "RevisionNotFound", `revision "v9"`},
		{"file not found", c, reluRepo, "main", "tf_model.h5", hub.ErrNotFound, "EntryNotFound", `file "tf_model.h5"`},
		{"gated without token", c, gatedRepo, "main", "config.json", hub.ErrUnauthorized, "GatedRepo", "set HF_TOKEN"},
		{"gated with a wrong token", &hub.Client{Endpoint: s.URL, Token: "hf_wrong"}, gatedRepo, "main", "config.json", hub.ErrUnauthorized, "GatedRepo", "not been granted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(s.Requests())
			_, err := tt.client.Download(t.Context(), tt.repo, tt.revision, tt.file, dst, hub.DownloadOptions{})
			var se *hub.StatusError
			if !errors.Is(err, tt.want) || !errors.As(err, &se) || se.Code != tt.code || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("Download = %v; want %v, code %s, hint %q", err, tt.want, tt.code, tt.hint)
			}
			if n := len(s.Requests()) - before; n != 1 {
				t.Errorf("%d requests: a %d must not be retried", n, se.StatusCode)
			}
			if _, err := tt.client.Repo(t.Context(), tt.repo, tt.revision); tt.file == "config.json" && !errors.Is(err, tt.want) {
				t.Errorf("Repo = %v, want %v", err, tt.want)
			}
		})
	}
	// The gated repository with the right token.
	tok := &hub.Client{Endpoint: s.URL, Token: s.Token}
	if _, err := tok.DownloadT5(t.Context(), gatedRepo, "main", t.TempDir(), hub.SnapshotOptions{}); err != nil {
		t.Fatalf("gated repository with its token: %v", err)
	}
	for _, bad := range []string{"", "a/b/c", "../x", "a/..", "a?b"} {
		if _, err := c.Repo(t.Context(), bad, "main"); err == nil {
			t.Errorf("repository %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a\\b", "."} {
		if _, err := c.Download(t.Context(), reluRepo, "main", bad, dst, hub.DownloadOptions{}); err == nil {
			t.Errorf("file %q accepted", bad)
		}
	}
	if _, err := c.Snapshot(t.Context(), reluRepo, "main", t.TempDir(), []string{"nope.json"}, hub.SnapshotOptions{}); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Snapshot of a missing file = %v", err)
	}
}

func TestRetryServerErrors(t *testing.T) {
	s := newHub(t)
	s.Inject(reluRepo, "config.json", hubtest.Fault{Status: 503}, hubtest.Fault{Status: 500})
	dst := filepath.Join(t.TempDir(), "config.json")
	if _, err := newClient(s).Download(t.Context(), reluRepo, "main", "config.json", dst, hub.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, dst, golden(t, "tiny-relu", "config.json"))
	// With fewer attempts than failures the last error is returned.
	s.Inject(reluRepo, "config.json", hubtest.Fault{Status: 502}, hubtest.Fault{Status: 502})
	c := newClient(s)
	c.MaxAttempts = 2
	_, err := c.Download(t.Context(), reluRepo, "main", "config.json", dst, hub.DownloadOptions{})
	var se *hub.StatusError
	if !errors.As(err, &se) || se.StatusCode != 502 || !strings.Contains(err.Error(), "attempt 2 of 2") {
		t.Fatalf("Download = %v", err)
	}
}

func TestStall(t *testing.T) {
	s := newHub(t)
	data := golden(t, "tiny-relu", "model.safetensors")
	s.Inject(reluRepo, "model.safetensors", hubtest.Fault{CutAfter: 10000, Stall: time.Minute})
	c := newClient(s)
	c.StallTimeout = 200 * time.Millisecond
	dst := filepath.Join(t.TempDir(), "model.safetensors")
	start := time.Now()
	if _, err := c.Download(t.Context(), reluRepo, "main", "model.safetensors", dst, hub.DownloadOptions{}); err != nil {
		t.Fatal(err)
	}
	sameFile(t, dst, data)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestCancel(t *testing.T) {
	s := newHub(t)
	s.Inject(reluRepo, "model.safetensors", hubtest.Fault{CutAfter: 10000, Stall: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	c := newClient(s)
	c.StallTimeout = time.Minute
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err := c.Download(ctx, reluRepo, "main", "model.safetensors", filepath.Join(t.TempDir(), "m"), hub.DownloadOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Download = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

func TestT5Files(t *testing.T) {
	tests := []struct {
		files, want []string
		err         string
	}{
		{
			files: []string{"config.json", "model.safetensors", "pytorch_model.bin", "spiece.model", "tokenizer_config.json", "flax_model.msgpack", "README.md"},
			want:  []string{"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json"},
		},
		{
			files: []string{"config.json", "pytorch_model.bin", "tf_model.h5", "spiece.model", "generation_config.json", "special_tokens_map.json"},
			want:  []string{"config.json", "pytorch_model.bin", "spiece.model", "special_tokens_map.json", "generation_config.json"},
		},
		{
			files: []string{"config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "pytorch_model.bin", "spiece.model"},
			want:  []string{"config.json", "model.safetensors.index.json", "spiece.model"},
		},
		{
			files: []string{"config.json", "pytorch_model.bin.index.json", "spiece.model"},
			want:  []string{"config.json", "pytorch_model.bin.index.json", "spiece.model"},
		},
		{files: []string{"config.json", "tf_model.h5", "flax_model.msgpack", "spiece.model"}, err: "TensorFlow- and Flax-only"},
		{files: []string{"model.safetensors", "spiece.model"}, err: "config.json"},
		{files: []string{"config.json", "model.safetensors", "tokenizer.json"}, err: "spiece.model"},
	}
	for _, tt := range tests {
		got, err := hub.T5Files(tt.files)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("T5Files(%v) = %v, %v; want an error about %s", tt.files, got, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("T5Files(%v) = %v, %v; want %v", tt.files, got, err, tt.want)
		}
	}
}

func TestWeightShards(t *testing.T) {
	got, err := hub.WeightShards([]byte(`{"metadata": {"total_size": 1}, "weight_map": {"a": "model-00002-of-00002.safetensors", "b": "model-00001-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}`))
	if err != nil || !slices.Equal(got, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
		t.Errorf("WeightShards = %v, %v", got, err)
	}
	for _, bad := range []string{`{}`, `not json`, `{"weight_map": {"a": "../evil.safetensors"}}`, `{"weight_map": {"a": "/abs"}}`} {
		if _, err := hub.WeightShards([]byte(bad)); err == nil {
			t.Errorf("WeightShards(%s) succeeded", bad)
		}
	}
}

// TestShardedDownload: a sharded safetensors checkpoint brings its index's shards.
func TestShardedDownload(t *testing.T) {
	files := map[string][]byte{
		"config.json":                      []byte(`{}`),
		"spiece.model":                     []byte("spm"),
		"model.safetensors.index.json":     []byte(`{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}`),
		"model-00001-of-00002.safetensors": bytes.Repeat([]byte{1}, 3000),
		"model-00002-of-00002.safetensors": bytes.Repeat([]byte{2}, 5000),
		"pytorch_model.bin":                []byte("unused"),
	}
	s := hubtest.New(hubtest.Repo{ID: "org/sharded", Files: files})
	defer s.Close()
	dir := t.TempDir()
	snap, err := newClient(s).DownloadT5(t.Context(), "org/sharded", "main", dir, hub.SnapshotOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range snap.Files {
		got = append(got, f.File)
		sameFile(t, filepath.Join(dir, f.File), files[f.File])
	}
	want := []string{"config.json", "model.safetensors.index.json", "spiece.model", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	// A shard the listing lacks is an error.
	s.SetFile("org/sharded", "model.safetensors.index.json", []byte(`{"weight_map": {"a": "model-00003-of-00003.safetensors"}}`))
	if _, err := newClient(s).DownloadT5(t.Context(), "org/sharded", "main", t.TempDir(), hub.SnapshotOptions{}); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("missing shard: %v", err)
	}
}

// TestRevisionWithSlash: a revision such as refs/pr/1 is escaped into one path segment.
func TestRevisionWithSlash(t *testing.T) {
	c := &hub.Client{Endpoint: "https://hub.example/"}
	if got := c.ResolveURL("google/t5 x", "refs/pr/1", "dir/a b.json"); got != "https://hub.example/google/t5%20x/resolve/refs%2Fpr%2F1/dir/a%20b.json" {
		t.Errorf("ResolveURL = %s", got)
	}
	s := newHub(t)
	_, err := newClient(s).Download(t.Context(), reluRepo, "refs/pr/1", "config.json", filepath.Join(t.TempDir(), "c"), hub.DownloadOptions{})
	if !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), "refs/pr/1") {
		t.Errorf("Download at refs/pr/1 = %v", err)
	}
}
