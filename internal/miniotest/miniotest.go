// Package miniotest runs a real MinIO server for tests: on 127.0.0.1 only, on a free port,
// with a temporary data directory and fixed root credentials, stopped when the test ends.
//
// The binary is the one scripts/test installs (a pinned github.com/minio/minio, see
// Version): $T5ZOO_MINIO, else ${XDG_CACHE_HOME:-$HOME/.cache}/t5zoo-tools/<ToolDir>/minio. When
// it is absent, Start skips the test, or fails it when T5ZOO_REQUIRE_MINIO=1 (as
// scripts/test sets), so that CI never passes by skipping.
package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Version is the MinIO release scripts/test installs.
const Version = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// ToolDir is the folder of the tools cache that holds this Version's binary, so that a new
// pin never runs an old build.
const ToolDir = "minio-20260212201848-7aac2a2c5b7c"

// The root credentials of every test server.
const (
	AccessKey = "t5zoo-test"
	SecretKey = "t5zoo-test-secret"
)

// Server is a running MinIO.
type Server struct {
	Addr   string // host:port of the S3 API
	Bucket string // a bucket created at start

	bin     string
	dataDir string
	console string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of the MinIO binary tests use, or an error saying how to get it.
func Binary() (string, error) {
	if p := os.Getenv("T5ZOO_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("T5ZOO_MINIO=%s: %w", p, err)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	p := filepath.Join(cache, "t5zoo-tools", ToolDir, "minio")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no MinIO binary at %s; run ./scripts/test, which installs %s", p, Version)
	}
	return p, nil
}

// Start runs a MinIO server for the rest of tb, with one bucket. It skips tb when the binary
// is missing, unless T5ZOO_REQUIRE_MINIO=1.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("T5ZOO_REQUIRE_MINIO") == "1" {
			tb.Fatalf("miniotest: %v", err)
		}
		tb.Skipf("miniotest: %v (T5ZOO_REQUIRE_MINIO=1 makes this a failure)", err)
	}
	dir := tb.TempDir()
	s := &Server{bin: bin, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "minio.log")}
	var lastErr error
	for range 3 { // a port picked free can be taken before MinIO binds it
		s.Addr, s.console = freeAddr(tb), freeAddr(tb)
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("miniotest: %v", lastErr)
	}
	tb.Cleanup(func() { s.stop() })
	s.Bucket = s.NewBucket(tb)
	return s
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("miniotest: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *Server) start() error {
	if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Addr, "--console-address", s.console, s.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey,
		"MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("minio exited at start: %s", log)
		default:
		}
		if s.healthy(client, "live") && s.healthy(client, "ready") && s.serving(client) {
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.stop()
	log, _ := os.ReadFile(s.logPath)
	return fmt.Errorf("minio not live after 30s: %s", log)
}

// healthy asks /minio/health/<what>: "live" once the process serves HTTP, "ready" once it
// can serve requests (before that MinIO answers "Server not initialized yet").
func (s *Server) healthy(client *http.Client, what string) bool {
	resp, err := client.Get("http://" + s.Addr + "/minio/health/" + what)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// serving reports whether the S3 API answers requests: after a restart the health checks can
// pass while object requests still get 503 "Server not initialized yet". An anonymous
// listing is refused (403) once the object layer is up.
func (s *Server) serving(client *http.Client) bool {
	resp, err := client.Get("http://" + s.Addr + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusServiceUnavailable
}

// stop kills the server and waits for it to exit.
func (s *Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill() // SIGKILL: a crash, not a shutdown
	<-done
}

// Stop kills the server (as a crash would), keeping its data for Restart.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.stop()
}

// Restart starts the server again on the same address and data directory.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.stop()
	var err error
	for range 50 { // the port can linger for a moment after the kill
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("miniotest: restart: %v", err)
}

// Endpoint is the server's URL, "http://127.0.0.1:PORT".
func (s *Server) Endpoint() string { return "http://" + s.Addr }

// Client returns a minio-go client with the root credentials.
func (s *Server) Client(tb testing.TB) *minio.Client {
	tb.Helper()
	c, err := minio.New(s.Addr, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), MaxRetries: 1})
	if err != nil {
		tb.Fatalf("miniotest: %v", err)
	}
	return c
}

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "t5zoo-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := s.Client(tb).MakeBucket(ctx, name, minio.MakeBucketOptions{})
		if err == nil {
			return name
		}
		// Right after start, MinIO can still answer "Server not initialized yet".
		if ctx.Err() != nil || !strings.Contains(err.Error(), "not initialized") {
			tb.Fatalf("miniotest: make bucket: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns what the server has written to its log so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	return string(b)
}

// Port returns the port of the S3 API.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
