package zoo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/zoo"
	"github.com/t5zoo/t5zoo/zoo/zootest"
)

const testModel = "../testdata/golden/tiny-relu/checkpoint"

func localHarness(t *testing.T) zootest.Harness {
	dir := t.TempDir()
	s, err := zoo.NewLocalStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return zootest.Harness{
		Store: s,
		PutRaw: func(t *testing.T, key string, data []byte) {
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(key)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		DeleteRaw: func(t *testing.T, key string) {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// newS3Store returns a store on srv's bucket under prefix, with the root credentials.
func newS3Store(t *testing.T, srv *miniotest.Server, bucket, prefix string) *zoo.S3Store {
	t.Helper()
	s, err := zoo.NewS3Store(zoo.S3Options{
		Endpoint: srv.Endpoint(),
		Bucket:   bucket,
		Prefix:   prefix,
		Creds:    credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func s3Harness(srv *miniotest.Server) func(t *testing.T) zootest.Harness {
	return func(t *testing.T) zootest.Harness {
		bucket := srv.NewBucket(t)
		const prefix = "team/zoo"
		client := srv.Client(t)
		return zootest.Harness{
			Store: newS3Store(t, srv, bucket, prefix),
			PutRaw: func(t *testing.T, key string, data []byte) {
				_, err := client.PutObject(context.Background(), bucket, prefix+"/"+key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
			},
			DeleteRaw: func(t *testing.T, key string) {
				if err := client.RemoveObject(context.Background(), bucket, prefix+"/"+key, minio.RemoveObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			},
		}
	}
}

// TestZooLocalStore and TestZooS3Store run the same suite, so the two stores give the same
// results.
func TestZooLocalStore(t *testing.T) {
	t.Parallel()
	zootest.Run(t, testModel, localHarness)
}

func TestZooS3Store(t *testing.T) {
	t.Parallel()
	srv := miniotest.Start(t)
	zootest.Run(t, testModel, s3Harness(srv))

	t.Run("WrongCredentials", func(t *testing.T) {
		for _, creds := range []*credentials.Credentials{
			credentials.NewStaticV4(miniotest.AccessKey, "not-the-secret", ""),
			credentials.NewStaticV4("nobody", "nobody-secret", ""),
			nil, // anonymous
		} {
			s, err := zoo.NewS3Store(zoo.S3Options{Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Creds: creds})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := zoo.OpenCache(t.TempDir())
			_, err = c.Pull(t.Context(), s, zoo.MustParseRef("tiny"), zoo.PullOptions{})
			if !errors.Is(err, zoo.ErrAccessDenied) {
				t.Errorf("pull with bad credentials: %v, want ErrAccessDenied", err)
			}
			_, err = zoo.Push(t.Context(), s, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{})
			if !errors.Is(err, zoo.ErrAccessDenied) {
				t.Errorf("push with bad credentials: %v, want ErrAccessDenied", err)
			}
			if _, err := s.ListManifests(t.Context()); !errors.Is(err, zoo.ErrAccessDenied) {
				t.Errorf("list with bad credentials: %v, want ErrAccessDenied", err)
			}
		}
	})
	t.Run("MissingBucket", func(t *testing.T) {
		s := newS3Store(t, srv, "no-such-bucket", "")
		c, _ := zoo.OpenCache(t.TempDir())
		_, err := c.Pull(t.Context(), s, zoo.MustParseRef("tiny"), zoo.PullOptions{})
		if !errors.Is(err, zoo.ErrNoBucket) || !strings.Contains(err.Error(), "no-such-bucket") {
			t.Errorf("pull from a missing bucket: %v, want ErrNoBucket naming it", err)
		}
		_, err = zoo.Push(t.Context(), s, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{})
		if !errors.Is(err, zoo.ErrNoBucket) {
			t.Errorf("push to a missing bucket: %v, want ErrNoBucket", err)
		}
		if _, err := s.ListManifests(t.Context()); !errors.Is(err, zoo.ErrNoBucket) {
			t.Errorf("list of a missing bucket: %v, want ErrNoBucket", err)
		}
	})
}

func TestZooLocalStoreChecksPuts(t *testing.T) {
	s, err := zoo.NewLocalStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	content := []byte("chunk")
	stored := zstdOf(t, content)
	d := zoo.DigestOf(content)
	for _, tc := range []struct {
		name   string
		digest zoo.Digest
		data   []byte
		size   int64
	}{
		{"WrongDigest", zoo.DigestOf([]byte("other")), stored, int64(len(stored))},
		{"ShortRead", d, stored[:len(stored)-2], int64(len(stored))},
		{"LongerThanSize", d, append(stored, 0), int64(len(stored))},
		{"NotZstd", d, content, int64(len(content))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutBlob(ctx, tc.digest, bytes.NewReader(tc.data), tc.size); err == nil {
				t.Fatal("put accepted")
			}
			if _, err := s.StatBlob(ctx, tc.digest); !errors.Is(err, zoo.ErrNotFound) {
				t.Fatalf("a rejected blob is visible: %v", err)
			}
			entries, _ := os.ReadDir(filepath.Join(s.Root(), "blobs", "sha256"))
			if len(entries) != 0 {
				t.Fatalf("temporary files left: %v", entries)
			}
		})
	}
}

func TestZooS3URL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://models", "models", "", true},
		{"s3://models/", "models", "", true},
		{"s3://models/team/zoo", "models", "team/zoo", true},
		{"s3://models/team/zoo/", "models", "team/zoo", true},
		{"s3://Models", "", "", false},
		{"s3://models/../x", "", "", false},
		{"s3://models//x", "", "", false},
		{"s3://models/.hidden", "", "", false},
		{"http://models", "", "", false},
		{"s3://", "", "", false},
	} {
		b, p, err := zoo.ParseS3URL(tc.in)
		if (err == nil) != tc.ok || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseS3URL(%q) = %q, %q, %v", tc.in, b, p, err)
		}
	}
}
