package miniotest

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	c := s.Client(t)
	if _, err := c.PutObject(ctx, s.Bucket, "k", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Stop(t)
	if _, err := c.StatObject(ctx, s.Bucket, "k", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat succeeded with the server stopped")
	}
	s.Restart(t)
	obj, err := c.GetObject(ctx, s.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}

// TestVersionMatchesScript keeps the pinned release here and in scripts/test the same.
func TestVersionMatchesScript(t *testing.T) {
	b, err := os.ReadFile("../../scripts/test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "MINIO_MODULE="+Version+"\n") {
		t.Fatalf("scripts/test does not install %s", Version)
	}
}
