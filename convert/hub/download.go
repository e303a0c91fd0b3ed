package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errStalled cancels a transfer that received nothing for StallTimeout.
var errStalled = errors.New("hub: transfer stalled")

// errRestart asks for an immediate new attempt from the first byte: the partial file was
// discarded because it cannot be continued (the file changed, or the server answered the
// range request with another range).
var errRestart = errors.New("hub: partial download discarded; restarting from the first byte")

// retryable reports whether err is worth another attempt.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.temporary()
	}
	var ne net.Error
	return errors.Is(err, errStalled) || errors.Is(err, errRestart) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne)
}

// delay is the wait before attempt+1: exponential with jitter, or the server's Retry-After.
func (c *Client) delay(attempt int, err error) time.Duration {
	if errors.Is(err, errRestart) {
		return 0
	}
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return min(se.RetryAfter, time.Minute)
	}
	base := c.Backoff
	if base <= 0 {
		base = time.Second
	}
	d := min(base<<min(attempt-1, 20), 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// retry runs op until it succeeds, fails permanently, or MaxAttempts tries have failed.
// A restart from the first byte (errRestart) does not count as an attempt, twice at most.
func (c *Client) retry(ctx context.Context, what string, op func(context.Context) error) error {
	restarts := 0
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (after %v)", context.Cause(ctx), err)
		}
		if errors.Is(err, errRestart) && restarts < 2 {
			restarts++
			attempt--
			c.logger().Info("hub: restarting", "op", what, "reason", err)
			continue
		}
		if !retryable(err) || attempt >= c.maxAttempts() {
			if attempt > 1 {
				return fmt.Errorf("%w (attempt %d of %d)", err, attempt, c.maxAttempts())
			}
			return err
		}
		d := c.delay(attempt, err)
		c.logger().Warn("hub: retrying", "op", what, "attempt", attempt, "wait", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %v)", context.Cause(ctx), err)
		}
	}
}

// DownloadOptions are the per-call options of Download.
type DownloadOptions struct {
	// Progress, when set, is called as bytes arrive with the bytes of file present so far and
	// its size (-1 when unknown). It must be quick; it is called from the downloading
	// goroutine.
	Progress func(file string, done, total int64)
}

// Downloaded describes a file that is in place and verified.
type Downloaded struct {
	// File is the path in the repository, Path the local one.
	File, Path string
	Size       int64
	// SHA256 is the hex sha256 of the content, computed while downloading (or verifying).
	SHA256 string
	// ETag is the Hub's normalized ETag: the content's sha256 for LFS files, the git blob
	// sha1 for regular files.
	ETag string
	// Commit is the commit the Hub resolved the revision to (X-Repo-Commit), when it said.
	Commit string
	// Skipped is set when Snapshot found the file already present and verified.
	Skipped bool
}

// Download fetches file from repo at revision to dst. It writes to dst+".part" (and
// dst+".part.json", which records what the partial data is), resumes an earlier partial
// transfer with a Range request (If-Range keeps a changed file from being spliced), retries
// transient failures, checks the size and, where the Hub's ETag is a content hash (sha256 for
// LFS files, git blob sha1 for regular files), the hash, then renames the file into place.
// A corrupted file is deleted, never renamed.
func (c *Client) Download(ctx context.Context, repo, revision, file, dst string, opts DownloadOptions) (*Downloaded, error) {
	if revision == "" {
		revision = "main"
	}
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	if err := checkFile(file); err != nil {
		return nil, err
	}
	return c.download(ctx, repo, revision, file, dst, nil, opts.Progress)
}

func (c *Client) download(ctx context.Context, repo, revision, file, dst string, expect *FileInfo, progress func(string, int64, int64)) (*Downloaded, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, fmt.Errorf("hub: download %s: %w", file, err)
	}
	var d *Downloaded
	err := c.retry(ctx, "download "+repo+"/"+file, func(ctx context.Context) error {
		var err error
		d, err = c.transfer(ctx, repo, revision, file, dst, expect, progress)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hub: download %s from %s at %s: %w", file, repo, revision, err)
	}
	c.logger().Debug("hub: downloaded", "repo", repo, "file", file, "bytes", d.Size, "sha256", d.SHA256)
	return d, nil
}

// partMeta is the sidecar of a partial download.
type partMeta struct {
	// ETag is the Hub's ETag of the file the partial data belongs to.
	ETag string `json:"etag"`
	// Validator is the ETag of the response that delivered the data, for If-Range.
	Validator string `json:"validator"`
	Size      int64  `json:"size"`
}

func discardPartial(part, meta string) {
	os.Remove(part)
	os.Remove(meta)
}

// resumeState returns how many bytes of part can be continued, and their sidecar.
func resumeState(part, meta string) (int64, partMeta) {
	st, err := os.Stat(part)
	if err != nil || st.Size() == 0 {
		return 0, partMeta{}
	}
	var m partMeta
	b, err := os.ReadFile(meta)
	if err != nil || json.Unmarshal(b, &m) != nil || !strongETag(m.Validator) || (m.Size >= 0 && st.Size() > m.Size) {
		discardPartial(part, meta)
		return 0, partMeta{}
	}
	return st.Size(), m
}

func strongETag(e string) bool { return len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' }

// normalizeETag strips a weak prefix and quotes, as huggingface_hub's _normalize_etag does.
func normalizeETag(e string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(e), "W/"), `"`)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// contentRange parses "bytes start-end/total" (total may be "*", returned as -1).
func contentRange(h string) (start, total int64, ok bool) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	s, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	if tot == "*" {
		return start, -1, true
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	if err != nil || total < 0 {
		return 0, 0, false
	}
	return start, total, true
}

// stallReader cancels the transfer when no byte arrives for the timeout.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}

// transfer is one attempt: request (with a range when there is partial data), stream to the
// part file, verify, rename.
func (c *Client) transfer(ctx context.Context, repo, revision, file, dst string, expect *FileInfo, progress func(string, int64, int64)) (*Downloaded, error) {
	part, meta := dst+".part", dst+".part.json"
	offset, pm := resumeState(part, meta)

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := c.stallTimeout()
	timer := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer timer.Stop()
	stalled := func(err error) error {
		if errors.Is(context.Cause(actx), errStalled) && ctx.Err() == nil {
			return fmt.Errorf("%w: nothing received for %v", errStalled, stall)
		}
		return err
	}

	req, err := c.newRequest(actx, http.MethodGet, c.ResolveURL(repo, revision, file))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		req.Header.Set("If-Range", pm.Validator)
	}
	// The Hub's metadata headers come on the first response (the redirect to the CDN for
	// LFS files): keep it.
	var first *http.Response
	hc := *c.httpClient()
	check := hc.CheckRedirect
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if first == nil {
			first = r.Response
		}
		if check != nil {
			return check(r, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, stalled(err)
	}
	defer resp.Body.Close()
	timer.Reset(stall)
	hub := resp.Header
	if first != nil {
		hub = first.Header
	}

	var bodyTotal int64 = -1
	switch resp.StatusCode {
	case http.StatusOK:
		offset = 0
		bodyTotal = resp.ContentLength
	case http.StatusPartialContent:
		start, total, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset || offset == 0 {
			discardPartial(part, meta)
			return nil, fmt.Errorf("%w (asked for byte %d, got Content-Range %q)", errRestart, offset, resp.Header.Get("Content-Range"))
		}
		bodyTotal = total
	case http.StatusRequestedRangeNotSatisfiable:
		discardPartial(part, meta)
		return nil, fmt.Errorf("%w (range from byte %d not satisfiable)", errRestart, offset)
	default:
		return nil, c.statusError(resp, repo, revision, file)
	}

	etag := normalizeETag(hub.Get("X-Linked-Etag"))
	if etag == "" {
		etag = normalizeETag(hub.Get("ETag"))
	}
	total := bodyTotal
	if s := hub.Get("X-Linked-Size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad X-Linked-Size %q", s)
		}
		total = n
	}
	if expect != nil && expect.Size >= 0 && total >= 0 && expect.Size != total {
		return nil, &VerifyError{File: file, What: "size", Want: strconv.FormatInt(expect.Size, 10), Got: strconv.FormatInt(total, 10) + " (announced by the server)"}
	}
	if offset > 0 && pm.ETag != "" && etag != "" && pm.ETag != etag {
		discardPartial(part, meta)
		return nil, fmt.Errorf("%w (the file changed: ETag %s, partial data is of %s)", errRestart, etag, pm.ETag)
	}
	mb, _ := json.Marshal(partMeta{ETag: etag, Validator: resp.Header.Get("ETag"), Size: total})
	if err := os.WriteFile(meta, mb, 0o644); err != nil {
		return nil, err
	}

	flags := os.O_RDWR | os.O_CREATE
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum := sha256.New()
	if offset > 0 {
		if _, err := io.Copy(sum, io.NewSectionReader(f, 0, offset)); err != nil {
			return nil, err
		}
		if err := f.Truncate(offset); err != nil {
			return nil, err
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	done := offset
	if progress != nil {
		progress(file, done, total)
	}
	body := &stallReader{r: resp.Body, timer: timer, d: stall}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return nil, err
			}
			sum.Write(buf[:n])
			done += int64(n)
			if progress != nil {
				progress(file, done, total)
			}
			if total >= 0 && done > total {
				discardPartial(part, meta)
				return nil, &VerifyError{File: file, What: "size", Want: strconv.FormatInt(total, 10), Got: "more"}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, stalled(rerr)
		}
	}
	if total >= 0 && done < total {
		return nil, fmt.Errorf("connection closed after %d of %d bytes: %w", done, total, io.ErrUnexpectedEOF)
	}
	d := &Downloaded{File: file, Path: dst, Size: done, SHA256: hex.EncodeToString(sum.Sum(nil)), ETag: etag, Commit: hub.Get("X-Repo-Commit")}
	if err := verify(f, d, expect); err != nil {
		f.Close()
		discardPartial(part, meta)
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(part, dst); err != nil {
		return nil, err
	}
	os.Remove(meta)
	syncDir(filepath.Dir(dst))
	return d, nil
}

// verify checks the content hashes the Hub announced: the ETag (sha256 for LFS files, git blob
// sha1 for regular files) and the listing's, when the caller has one.
func verify(f io.ReaderAt, d *Downloaded, expect *FileInfo) error {
	if isHex(d.ETag, 64) && !strings.EqualFold(d.ETag, d.SHA256) {
		return &VerifyError{File: d.File, What: "sha256", Want: d.ETag, Got: d.SHA256}
	}
	if expect != nil && expect.LFS != nil && !strings.EqualFold(expect.LFS.SHA256, d.SHA256) {
		return &VerifyError{File: d.File, What: "sha256", Want: expect.LFS.SHA256, Got: d.SHA256}
	}
	var wantGit string
	switch {
	case isHex(d.ETag, 40):
		wantGit = d.ETag
	case expect != nil && expect.LFS == nil && isHex(expect.BlobID, 40):
		wantGit = expect.BlobID
	}
	if wantGit != "" {
		got, err := gitBlobSHA1(f, d.Size)
		if err != nil {
			return err
		}
		if !strings.EqualFold(got, wantGit) {
			return &VerifyError{File: d.File, What: "git-sha1", Want: wantGit, Got: got}
		}
	}
	return nil
}

// gitBlobSHA1 is git's object id of a blob: sha1("blob <size>\x00" + content).
func gitBlobSHA1(r io.ReaderAt, size int64) (string, error) {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", size)
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// syncDir makes a rename durable; errors are ignored (some file systems refuse).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
