package evaluate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/zoo"
)

// Both stores pass the same checks: the S3 view of the registry's bucket must behave as
// the folder does.
var _ Store = (*zoo.S3Objects)(nil)

func newS3Objects(t *testing.T, srv *miniotest.Server, prefix string) *zoo.S3Objects {
	t.Helper()
	o, err := zoo.NewS3Objects(zoo.S3Options{
		Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: prefix,
		Creds: credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestStores(t *testing.T) {
	dir, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("dir", func(t *testing.T) { storeConformance(t, dir) })
	if testing.Short() {
		t.Skip("MinIO store skipped in -short mode")
	}
	srv := miniotest.Start(t)
	t.Run("s3", func(t *testing.T) { storeConformance(t, newS3Objects(t, srv, "team/evals")) })
}

func storeConformance(t *testing.T, s Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "m/t/predict.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a missing key: %v, want fs.ErrNotExist", err)
	}
	if keys, err := s.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List of an empty store: %v, %v", keys, err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", "./a", `a\b`, ".."} {
		if err := s.Put(ctx, bad, []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted a bad key", bad)
		}
	}
	want := map[string]string{
		"m1/glue_sst2/predict.json":           `{"a":1}`,
		"m1/glue_sst2/predict.examples.jsonl": "{}\n{}\n",
		"m2/squad/predict.json":               `{"b":2}`,
	}
	for k, v := range want {
		if err := s.Put(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Put(%s): %v", k, err)
		}
	}
	if err := s.Put(ctx, "m2/squad/predict.json", []byte(`{"b":3}`)); err != nil {
		t.Fatal(err)
	}
	want["m2/squad/predict.json"] = `{"b":3}`
	for k, v := range want {
		got, err := s.Get(ctx, k)
		if err != nil || string(got) != v {
			t.Errorf("Get(%s) = %q, %v; want %q", k, got, err, v)
		}
	}
	keys, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var wantKeys []string
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("List = %v, want %v", keys, wantKeys)
	}
	if keys, _ := s.List(ctx, "m1/"); len(keys) != 2 {
		t.Errorf("List(m1/) = %v", keys)
	}
	rk, err := ResultKeys(ctx, s)
	if err != nil || !slices.Equal(rk, []string{"m1/glue_sst2/predict.json", "m2/squad/predict.json"}) {
		t.Errorf("ResultKeys = %v, %v", rk, err)
	}
	// Concurrent writers of one key leave one whole value, never a mix.
	var wg sync.WaitGroup
	vals := map[string]bool{}
	for i := range 8 {
		v := fmt.Sprintf("%d-%0*d", i, 4096, i)
		vals[v] = true
		wg.Go(func() {
			if err := s.Put(ctx, "race/k.json", []byte(v)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, err := s.Get(ctx, "race/k.json"); err != nil || !vals[string(got)] {
		t.Errorf("after concurrent Puts: %d bytes, %v", len(got), err)
	}
}

// TestDirStoreIgnoresTemporaries checks that a write interrupted before its rename (a
// kill -9 mid-Put) leaves no key behind.
func TestDirStoreIgnoresTemporaries(t *testing.T) {
	s, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Root(), "m", "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Root(), "m", "t", ".predict.json.tmp-123"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if keys, err := s.List(t.Context(), ""); err != nil || len(keys) != 0 {
		t.Errorf("List = %v, %v; want no keys", keys, err)
	}
}

func TestKeyPart(t *testing.T) {
	for in, want := range map[string]string{
		"glue/sst2":                  "glue_sst2",
		"t5-efficient-tiny":          "t5-efficient-tiny",
		"acme/sst2:v1":               "acme_sst2_v1",
		"./models/t5":                "._models_t5",
		"..":                         "_..",
		"":                           "_",
		"/abs/dir/model":             "abs_dir_model",
		"registry.example.com/a/b:c": "registry.example.com_a_b_c",
	} {
		if got := keyPart(in); got != want {
			t.Errorf("keyPart(%q) = %q, want %q", in, got, want)
		}
		if err := CheckKey(Cell{Model: in, Task: in, Mode: Predict}.ResultKey()); err != nil {
			t.Errorf("key of %q: %v", in, err)
		}
	}
}

// TestDirStoreRefusesHugeObjects: a results folder holding a hostile file larger than
// MaxObjectBytes costs its reader an error, not the memory.
func TestDirStoreRefusesHugeObjects(t *testing.T) {
	s, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Root(), "m", "t", "predict.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, MaxObjectBytes+1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	if _, err := s.Get(t.Context(), "m/t/predict.json"); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("Get of a %d-byte object: %v", MaxObjectBytes+1, err)
	}
}
