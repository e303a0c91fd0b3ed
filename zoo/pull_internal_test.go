package zoo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestPullChecksDiskSpace(t *testing.T) {
	store, _ := NewLocalStore(t.TempDir())
	if _, err := Push(t.Context(), store, "../testdata/golden/tiny-relu/checkpoint", MustParseRef("tiny"), PushOptions{}); err != nil {
		t.Fatal(err)
	}
	c, _ := OpenCache(t.TempDir())
	c.diskFree = func(string) (uint64, error) { return 1 << 20, nil }
	_, err := c.Pull(t.Context(), store, MustParseRef("tiny"), PullOptions{})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "not enough disk space") {
		t.Fatalf("pull onto a full disk: %v", err)
	}
	for _, sub := range []string{"partial", "models", "manifests"} {
		if entries, _ := os.ReadDir(filepath.Join(c.Root(), sub)); len(entries) != 0 {
			t.Errorf("%s/ not empty after a refused pull: %v", sub, entries)
		}
	}
}

// TestPullWriteErrorsArePermanent checks which errors Pull and Push retry.
func TestPullWriteErrorsArePermanent(t *testing.T) {
	err := permanent(fmt.Errorf("write model.safetensors: %w", syscall.ENOSPC))
	if transient(context.Background(), err) {
		t.Fatal("a write error is retried")
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{io.ErrUnexpectedEOF, true},
		{syscall.ECONNRESET, true},
		{syscall.ECONNREFUSED, true},
		{fmt.Errorf("get: %w", ErrNotFound), false},
		{fmt.Errorf("get: %w", ErrAccessDenied), false},
		{fmt.Errorf("get: %w", ErrNoBucket), false},
		{&DigestError{}, false},
		{fmt.Errorf("x: %w", context.Canceled), false},
		{fmt.Errorf("x: %w", syscall.ENOSPC), false},
	} {
		if got := transient(context.Background(), tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if transient(ctx, io.ErrUnexpectedEOF) {
		t.Error("retrying after the context ended")
	}
}

func TestReadJournalIgnoresTornLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "journal")
	d := DigestOf([]byte("a"))
	content := fmt.Sprintf("model.safetensors 0 %s\nmodel.safetensors 65536 %s\nnot a line\nx 1 sha256:zz\nspiece.model 0 %s", d, d, d[:20])
	os.WriteFile(p, []byte(content), 0o644)
	got, err := readJournal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[journalEntry{"model.safetensors", 65536, d}] {
		t.Fatalf("readJournal = %v", got)
	}
	if got, err := readJournal(filepath.Join(t.TempDir(), "none")); err != nil || len(got) != 0 {
		t.Fatalf("missing journal: %v, %v", got, err)
	}
}

func TestVerifyReader(t *testing.T) {
	data := []byte("0123456789")
	d := DigestOf(data)
	for _, tc := range []struct {
		name string
		in   []byte
		size int64
		ok   bool
	}{
		{"Exact", data, 10, true},
		{"Short", data[:9], 10, false},
		{"Long", append(data, '!'), 10, false},
		{"Other", []byte("0123456780"), 10, false},
	} {
		_, err := io.Copy(io.Discard, newVerifyReader(strings.NewReader(string(tc.in)), d, tc.size))
		var de *DigestError
		if tc.ok != (err == nil) || !tc.ok && !errors.As(err, &de) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
