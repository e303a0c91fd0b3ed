package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/t5zoo/t5zoo/internal/miniotest"
	"github.com/t5zoo/t5zoo/serve"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// TestDisconnectCancels opens a raw TCP connection, posts a long streaming generation,
// reads the first token and closes the socket: the request must leave the decoding batch
// at once, long before its max_new_tokens.
func TestDisconnectCancels(t *testing.T) {
	const maxNew = 3000
	ts := newTestServer(t, func(c *serve.Config) { c.Limits.MaxNewTokens = maxNew })
	for _, path := range []string{"/api/generate", "/v1/completions"} {
		t.Run(path, func(t *testing.T) {
			var body []byte
			if path == "/api/generate" {
				body, _ = json.Marshal(api.GenerateRequest{Model: longModel, Input: longInput, Stream: true, GenerateOptions: api.GenerateOptions{MaxNewTokens: maxNew}})
			} else {
				body, _ = json.Marshal(api.CompletionRequest{Model: longModel, Prompt: api.Prompt{Texts: []string{longInput}}, Stream: true, MaxTokens: ptr(maxNew), Temperature: ptr(0.0)})
			}
			before := metricValue(t, ts, "t5zoo_batch_rows_count", "model="+longModel)
			conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading the stream: %v", err)
				}
				if strings.HasPrefix(line, "data: ") {
					break // the first token
				}
			}
			conn.Close()
			waitFor(t, "the request to leave the batch", func() bool {
				ps, err := ts.Client.Ps(t.Context())
				return err == nil && len(ps.Models) == 1 && ps.Models[0].Decoding == 0 && ps.Models[0].Requests == 0
			})
			steps := metricValue(t, ts, "t5zoo_batch_rows_count", "model="+longModel) - before
			time.Sleep(100 * time.Millisecond)
			if again := metricValue(t, ts, "t5zoo_batch_rows_count", "model="+longModel) - before; again != steps {
				t.Errorf("decoding went on after the request left: %v then %v steps", steps, again)
			}
			if steps >= maxNew/2 {
				t.Errorf("%v decoder steps: the disconnect did not stop the request (max %d)", steps, maxNew)
			}
			if n := metricValue(t, ts, "t5zoo_inference_requests_in_flight"); n != 0 {
				t.Errorf("%v requests in flight after the disconnect", n)
			}
		})
	}
}

// TestLongModelRunsLong guards the premise of the cancellation tests: the long model's
// greedy decoding of longInput does not stop early.
func TestLongModelRunsLong(t *testing.T) {
	ts := newTestServer(t, nil)
	var r api.GenerateResponse
	err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: longModel, Input: longInput, GenerateOptions: api.GenerateOptions{MaxNewTokens: 512}}, func(x api.GenerateResponse) error { r = x; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if h := r.Results[0].Hypotheses[0]; len(h.IDs) != 512 || h.FinishReason != "length" {
		t.Fatalf("the long model stopped after %d tokens (%s)", len(h.IDs), h.FinishReason)
	}
}

// TestGracefulShutdown cancels Serve's context while a request is in flight (its model
// being pulled) and a stream runs: /readyz turns 503, both requests complete, new
// connections are refused, the models are unloaded and Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	var gs *gatedStore
	ts := newTestServer(t, func(c *serve.Config) {
		gs = newGatedStore(c.Cache.Registry())
		c.Store = gs
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- ts.Serve(ctx, ln) }()
	live := &testServer{Server: ts.Server, URL: "http://" + ln.Addr().String(), Log: ts.Log}
	live.Client, _ = api.NewClient(live.URL, api.ClientOptions{})
	rest, _ := startStream(t, live, longModel, 400)
	pending := make(chan error, 1)
	go func() {
		_, err := live.Client.Encode(t.Context(), &api.EncodeRequest{Model: reluRef, Input: "a"})
		pending <- err
	}()
	<-gs.waiting
	cancel()
	waitFor(t, "readyz to turn 503", func() bool {
		status, _, _ := do(t, http.MethodGet, ts.URL+"/readyz", "")
		return status == http.StatusServiceUnavailable
	})
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(gs.gate)
	if err := <-pending; err != nil {
		t.Errorf("the request in flight: %v", err)
	}
	events := rest()
	if last := events[len(events)-1]; last.name != "done" {
		t.Errorf("the stream in flight ended with %+v", last)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	status, _, body := do(t, http.MethodPost, ts.URL+"/api/generate", `{"model":"`+longModel+`","input":"a"}`)
	if status != http.StatusServiceUnavailable || errorCode(body) != "shutting_down" {
		t.Errorf("request after shutdown: %d %s", status, body)
	}
	if !strings.Contains(ts.Log.String(), `reason=shutdown`) {
		t.Error("the models were not unloaded at shutdown")
	}
}

// TestRegistryThroughServerFromMinIO pushes a model to MinIO, serves that bucket, and pulls
// the model through the server with an HTTPStore (no bucket credentials) into a fresh
// cache: the blob GETs are redirected to presigned URLs and the files are byte-identical.
func TestRegistryThroughServerFromMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	s3, err := zoo.NewS3Store(zoo.S3Options{
		Endpoint: srv.Endpoint(), Bucket: srv.Bucket, Prefix: "zoo",
		Creds: credentials.NewStaticV4(miniotest.AccessKey, miniotest.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := zoo.MustParseRef(reluRef)
	pushed, err := zoo.Push(t.Context(), s3, goldenRelu, ref, zoo.PushOptions{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *serve.Config) { c.Store = s3 })
	hs, err := zoo.NewHTTPStore(ts.URL, zoo.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if refs, err := hs.ListManifests(t.Context()); err != nil || len(refs) != 1 || refs[0] != ref {
		t.Fatalf("list through the server: %v %v", refs, err)
	}
	cache, err := zoo.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lm, err := cache.Pull(t.Context(), hs, ref, zoo.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lm.Digest != pushed.Digest {
		t.Errorf("manifest digest %s, pushed %s", lm.Digest, pushed.Digest)
	}
	for _, f := range pushed.Manifest.Files {
		a, err1 := os.ReadFile(filepath.Join(goldenRelu, f.Path))
		b, err2 := os.ReadFile(filepath.Join(lm.Dir, f.Path))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Errorf("%s differs after the pull through the server (%v %v)", f.Path, err1, err2)
		}
	}
	// A blob GET answers with a redirect to the bucket.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	blob := pushed.Manifest.Files[0].Chunks[0].Digest
	resp, err := noFollow.Get(ts.URL + "/" + zoo.BlobKey(blob))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, srv.Addr) || !strings.Contains(loc, "X-Amz-Signature") {
		t.Errorf("blob GET: %d Location %q", resp.StatusCode, loc)
	}
	// HEAD answers from the store without a redirect.
	resp, err = noFollow.Head(ts.URL + "/" + zoo.BlobKey(blob))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		t.Errorf("blob HEAD: %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}
	// The server itself loads the model from the bucket on first use.
	if err := use(t, ts, reluRef, nil); err != nil {
		t.Error(err)
	}
}

// TestServeHandlerOnly makes sure Handler works without Serve (httptest, as the other
// tests) and that Close is idempotent.
func TestServeHandlerOnly(t *testing.T) {
	ts := newTestServer(t, nil)
	hs := httptest.NewServer(ts.Handler())
	defer hs.Close()
	if status, _, _ := do(t, http.MethodGet, hs.URL+"/healthz", ""); status != 200 {
		t.Error(status)
	}
	ts.Close()
	ts.Close()
}
