package zoo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"

	"github.com/t5zoo/t5zoo/internal/miniotest"
)

// benchModel writes a model directory with size bytes of synthetic float32 weights
// (syntheticWeights) and the test model's config.json and spiece.model.
func benchModel(b *testing.B, size int) string {
	b.Helper()
	dir := b.TempDir()
	for _, name := range []string{"config.json", "spiece.model"} {
		data, err := os.ReadFile(filepath.Join("../testdata/golden/tiny-relu/checkpoint", name))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		b.Fatal(err)
	}
	const piece = 64 << 20
	for off := 0; off < size; off += piece {
		if _, err := f.Write(syntheticWeights(min(piece, size-off), false, uint64(off))); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkMinIO measures, against a local MinIO, on a 1 GiB model of synthetic float32
// weights (ZOO_BENCH_MIB to change the size), for the default blob encoding and for raw
// (uncompressed) zstd blocks: Push into an empty prefix; Pull into an empty cache (GET, zstd
// decode, sha256, write, fsync, install); as the reference, plain parallel GETs of the same
// stored objects with minio-go into io.Discard, at the same concurrency (GetRaw); and the two
// alternated, reporting their ratio (PullVsGet). Throughput is in model bytes. BENCHMARKS.md
// records a run of:
//
//	go test ./zoo -run '^$' -bench MinIO -benchtime 3x -count 5 -timeout 60m
func BenchmarkMinIO(b *testing.B) {
	mib := 1024
	if s := os.Getenv("ZOO_BENCH_MIB"); s != "" {
		mib, _ = strconv.Atoi(s)
	}
	size := mib << 20
	srv := miniotest.Start(b)
	model := benchModel(b, size)
	newStore := func(b *testing.B, prefix string) *S3Store {
		s, err := NewS3Store(S3Options{Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: prefix,
			Creds: credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, "")})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	ref := MustParseRef("bench/f32")
	pushes := 0 // across every run of the sub-benchmarks, so that each push starts from nothing
	for _, enc := range []encoding{defaultEncoding(), {level: zstd.SpeedDefault}} {
		prefix := strings.ReplaceAll(enc.String(), "+", "-")
		store := newStore(b, prefix)
		res, err := Push(ctx, store, model, ref, PushOptions{encoding: enc})
		if err != nil {
			b.Fatal(err)
		}
		var stored int64
		for _, d := range res.Manifest.Blobs() {
			n, err := store.StatBlob(ctx, d)
			if err != nil {
				b.Fatal(err)
			}
			stored += n
		}
		total := res.Manifest.Size()
		b.Logf("%s: model %d bytes, %d chunks, stored %d bytes (ratio %.4f), GOMAXPROCS %d",
			enc, total, res.Manifest.Chunks(), stored, float64(stored)/float64(total), runtime.GOMAXPROCS(0))

		client, err := minio.New(srv.Addr, &minio.Options{Creds: credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, "")})
		if err != nil {
			b.Fatal(err)
		}
		core := minio.Core{Client: client}
		// getAll is the reference: every stored object of the model, DefaultConcurrency GETs
		// at a time, into io.Discard.
		getAll := func() error {
			g, ctx := errgroup.WithContext(ctx)
			g.SetLimit(DefaultConcurrency)
			for _, f := range res.Manifest.Files {
				for _, ch := range f.Chunks {
					g.Go(func() error {
						body, _, _, err := core.GetObject(ctx, srv.Bucket, prefix+"/"+BlobKey(ch.Digest), minio.GetObjectOptions{})
						if err != nil {
							return err
						}
						defer body.Close()
						_, err = io.Copy(io.Discard, body)
						return err
					})
				}
			}
			return g.Wait()
		}
		// pullOnce pulls into an empty cache; only the pull is timed.
		pullOnce := func(b *testing.B) time.Duration {
			b.StopTimer()
			defer b.StartTimer()
			c, err := OpenCache(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(c.Root())
			b.StartTimer()
			start := time.Now()
			_, err = c.Pull(ctx, store, ref, PullOptions{})
			took := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			return took
		}
		b.Run(enc.String()+"/GetRaw", func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				if err := getAll(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(enc.String()+"/Pull", func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				pullOnce(b)
			}
		})
		// PullVsGet alternates the two within each iteration, so that the load of a shared
		// machine weighs on both alike, and reports pull throughput as a fraction of GET's.
		b.Run(enc.String()+"/PullVsGet", func(b *testing.B) {
			var get, pull time.Duration
			for b.Loop() {
				start := time.Now()
				if err := getAll(); err != nil {
					b.Fatal(err)
				}
				get += time.Since(start)
				pull += pullOnce(b)
			}
			b.ReportMetric(get.Seconds()/pull.Seconds(), "pull/get")
		})
		b.Run(enc.String()+"/Push", func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				pushes++
				if _, err := Push(ctx, newStore(b, fmt.Sprintf("push-%d", pushes)), model, ref, PushOptions{encoding: enc}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
