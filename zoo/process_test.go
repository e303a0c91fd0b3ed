package zoo_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/zoo"
	"github.com/t5zoo/t5zoo/zoo/zootest"
)

// TestMain lets the test binary run as a pulling child process (the re-exec pattern of
// os/exec's tests): ZOO_TEST_CHILD=pull makes it pull and exit instead of testing.
func TestMain(m *testing.M) {
	if os.Getenv("ZOO_TEST_CHILD") == "pull" {
		os.Exit(childPull())
	}
	os.Exit(m.Run())
}

// childResult is what a child prints on success.
type childResult struct {
	Gets int    `json:"gets"`
	Dir  string `json:"dir"`
}

// childPull pulls ZOO_TEST_REF from ZOO_TEST_STORE into the cache at ZOO_TEST_CACHE. With
// ZOO_TEST_BLOCK_AFTER=n every GET after the n-th blocks until the process is killed;
// ZOO_TEST_GET_DELAY slows every GET.
func childPull() int {
	store, err := storeFromSpec(os.Getenv("ZOO_TEST_STORE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	counting := zootest.NewCountingStore(store)
	blockAfter, _ := strconv.Atoi(os.Getenv("ZOO_TEST_BLOCK_AFTER"))
	delay, _ := time.ParseDuration(os.Getenv("ZOO_TEST_GET_DELAY"))
	counting.BeforeGet = func(ctx context.Context, n int) error {
		if blockAfter > 0 && n > blockAfter {
			<-ctx.Done() // until killed
			return ctx.Err()
		}
		time.Sleep(delay)
		return nil
	}
	concurrency, _ := strconv.Atoi(os.Getenv("ZOO_TEST_CONCURRENCY"))
	c, err := zoo.OpenCache(os.Getenv("ZOO_TEST_CACHE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	lm, err := c.Pull(context.Background(), counting, zoo.MustParseRef(os.Getenv("ZOO_TEST_REF")), zoo.PullOptions{Concurrency: concurrency})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(childResult{Gets: counting.Gets(), Dir: lm.Dir})
	return 0
}

// storeFromSpec opens "local:DIR" or "s3:ENDPOINT|BUCKET" (root test credentials).
func storeFromSpec(spec string) (zoo.Store, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "local":
		return zoo.NewLocalStore(arg)
	case "s3":
		endpoint, bucket, _ := strings.Cut(arg, "|")
		return zoo.NewS3Store(zoo.S3Options{Endpoint: endpoint, Bucket: bucket,
			Creds: credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, "")})
	}
	return nil, fmt.Errorf("bad ZOO_TEST_STORE %q", spec)
}

// child returns a command running this test binary as a pulling child.
func child(t *testing.T, storeSpec, cache, ref string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ZOO_TEST_CHILD=pull", "ZOO_TEST_STORE="+storeSpec, "ZOO_TEST_CACHE="+cache, "ZOO_TEST_REF="+ref)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// processStores are the stores the process tests run against, as child specs.
func processStores(t *testing.T) map[string]func(t *testing.T) (zoo.Store, string) {
	return map[string]func(t *testing.T) (zoo.Store, string){
		"Local": func(t *testing.T) (zoo.Store, string) {
			dir := t.TempDir()
			s, _ := zoo.NewLocalStore(dir)
			return s, "local:" + dir
		},
		"S3": func(t *testing.T) (zoo.Store, string) {
			srv := miniotest.Start(t)
			return newS3Store(t, srv, srv.Bucket, ""), "s3:" + srv.Endpoint() + "|" + srv.Bucket
		},
	}
}

// TestPullKilled kills (SIGKILL) a child process in the middle of a pull and checks that the
// next pull fetches only the chunks the child had not finished.
func TestPullKilled(t *testing.T) {
	t.Parallel()
	for name, open := range processStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, spec := open(t)
			res, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{ChunkSize: zootest.ChunkSize})
			if err != nil {
				t.Fatal(err)
			}
			const done = 9
			cacheDir := t.TempDir()
			cmd := child(t, spec, cacheDir, "tiny", "ZOO_TEST_BLOCK_AFTER="+strconv.Itoa(done), "ZOO_TEST_CONCURRENCY=1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			journal := filepath.Join(cacheDir, "partial", res.Digest.Hex(), "journal")
			deadline := time.Now().Add(30 * time.Second)
			for journalLines(journal) < done {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("child journaled %d chunks in 30s; stderr: %s", journalLines(journal), stderr.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			c, err := zoo.OpenCache(cacheDir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Model(zoo.MustParseRef("tiny")); err == nil {
				t.Fatal("a killed pull left a whole-looking model")
			}
			counting := zootest.NewCountingStore(store)
			lm, err := c.Pull(t.Context(), counting, zoo.MustParseRef("tiny"), zoo.PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if want := res.Manifest.Chunks() - done; counting.Gets() != want {
				t.Fatalf("resumed pull made %d GETs; want %d", counting.Gets(), want)
			}
			if err := c.Verify(t.Context(), lm.Ref, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func journalLines(p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

// TestPullTwoProcesses runs two pulls of one model in two processes at once: both succeed,
// and the chunks are downloaded once between them.
func TestPullTwoProcesses(t *testing.T) {
	t.Parallel()
	for name, open := range processStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, spec := open(t)
			res, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef("tiny"), zoo.PushOptions{ChunkSize: zootest.ChunkSize})
			if err != nil {
				t.Fatal(err)
			}
			cacheDir := t.TempDir()
			var cmds [2]*exec.Cmd
			var outs [2]bytes.Buffer
			var errs [2]bytes.Buffer
			for i := range cmds {
				cmds[i] = child(t, spec, cacheDir, "tiny", "ZOO_TEST_GET_DELAY=3ms", "ZOO_TEST_CONCURRENCY=2")
				cmds[i].Stdout, cmds[i].Stderr = &outs[i], &errs[i]
				if err := cmds[i].Start(); err != nil {
					t.Fatal(err)
				}
			}
			gets := waitChildren(t, cmds[:], outs[:], errs[:])
			if gets != res.Manifest.Chunks() {
				t.Fatalf("two processes made %d GETs for %d chunks", gets, res.Manifest.Chunks())
			}
			c, _ := zoo.OpenCache(cacheDir)
			if err := c.Verify(t.Context(), zoo.MustParseRef("tiny"), nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPullTwoProcessesIdenticalManifests pulls two tags holding the same manifest bytes in
// two processes at once: both succeed, and the chunks are downloaded once between them.
func TestPullTwoProcessesIdenticalManifests(t *testing.T) {
	t.Parallel()
	for name, open := range processStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			store, spec := open(t)
			res, err := zoo.Push(t.Context(), store, testModel, zoo.MustParseRef("acme/m:1"), zoo.PushOptions{ChunkSize: zootest.ChunkSize})
			if err != nil {
				t.Fatal(err)
			}
			data, err := store.GetManifest(t.Context(), zoo.MustParseRef("acme/m:1"))
			if err != nil {
				t.Fatal(err)
			}
			if err := store.PutManifest(t.Context(), zoo.MustParseRef("acme/m:2"), data); err != nil {
				t.Fatal(err)
			}
			cacheDir := t.TempDir()
			refs := [2]string{"acme/m:1", "acme/m:2"}
			var cmds [2]*exec.Cmd
			var outs, errs [2]bytes.Buffer
			for i := range cmds {
				cmds[i] = child(t, spec, cacheDir, refs[i], "ZOO_TEST_GET_DELAY=3ms", "ZOO_TEST_CONCURRENCY=2")
				cmds[i].Stdout, cmds[i].Stderr = &outs[i], &errs[i]
				if err := cmds[i].Start(); err != nil {
					t.Fatal(err)
				}
			}
			gets := waitChildren(t, cmds[:], outs[:], errs[:])
			if gets != res.Manifest.Chunks() {
				t.Errorf("two processes made %d GETs for %d chunks", gets, res.Manifest.Chunks())
			}
			c, _ := zoo.OpenCache(cacheDir)
			for _, ref := range refs {
				if err := c.Verify(t.Context(), zoo.MustParseRef(ref), nil); err != nil {
					t.Fatal(err)
				}
			}
			if entries, _ := os.ReadDir(filepath.Join(cacheDir, "partial")); len(entries) != 0 {
				t.Errorf("partial left after both pulls: %v", entries)
			}
		})
	}
}

// waitChildren waits for the pulling children and returns the GETs they made in all.
func waitChildren(t *testing.T, cmds []*exec.Cmd, outs, errs []bytes.Buffer) int {
	t.Helper()
	gets := 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d (%s): %v; stderr: %s", i, strings.Join(cmd.Args[1:], " "), err, errs[i].String())
		}
		var r childResult
		if err := json.NewDecoder(bufio.NewReader(&outs[i])).Decode(&r); err != nil {
			t.Fatalf("child %d output %q: %v", i, outs[i].String(), err)
		}
		gets += r.Gets
	}
	return gets
}
