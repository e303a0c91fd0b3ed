// Package hub downloads model repositories from the Hugging Face Hub (or any server with its
// URL layout, such as a mirror named by HF_ENDPOINT): it lists a repository's files at a
// revision, chooses the files a T5 import needs, and downloads them resumably, verifying each
// file's size and content hash before it is renamed into place.
//
// The Hub's layout, as this package uses it:
//
//	GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true
//	    JSON {id, sha, siblings: [{rfilename, size, blobId, lfs: {sha256, size}}]}
//	GET {endpoint}/{repo}/resolve/{rev}/{file}
//	    the file, or (LFS files) a redirect to a CDN; the first response carries
//	    X-Repo-Commit, X-Linked-Etag (the sha256 of an LFS file's content) or ETag (the git
//	    blob sha1 of a regular file), and X-Linked-Size
//
// Errors carry the Hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound,
// GatedRepo) as a *StatusError that unwraps to ErrNotFound or ErrUnauthorized.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub's address when Client.Endpoint is empty.
const DefaultEndpoint = "https://huggingface.co"

// Client talks to the Hub. Its zero value works: the public Hub, no token, retries with the
// defaults documented on each field. A Client is safe for concurrent use.
type Client struct {
	// Endpoint is the Hub's base URL (HF_ENDPOINT); "" means DefaultEndpoint.
	Endpoint string
	// Token is sent as "Authorization: Bearer <Token>" (HF_TOKEN) when not empty. Go's HTTP
	// client drops it when a redirect leaves the endpoint's host (the CDN).
	Token string
	// HTTP sends the requests; nil means a client with http.DefaultTransport and no overall
	// timeout (downloads are long; StallTimeout bounds silence instead).
	HTTP *http.Client
	// Logger receives retries (warn) and transfers (debug); nil discards.
	Logger *slog.Logger
	// MaxAttempts is the number of tries of one request or transfer when it fails
	// transiently (5xx, 408, 429, a dropped connection, a stall); 0 means 5.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled for each further one (with jitter,
	// at most 30 s; a Retry-After header takes precedence); 0 means 1 s.
	Backoff time.Duration
	// StallTimeout abandons (and retries) a transfer that receives no byte for that long;
	// 0 means 60 s.
	StallTimeout time.Duration
	// UserAgent is sent with every request; "" means "t5zoo-hub".
	UserAgent string
}

// ErrNotFound is wrapped by errors for a repository, revision or file the Hub does not have
// (or, for a repository, does not show without a token).
var ErrNotFound = errors.New("hub: not found")

// ErrUnauthorized is wrapped by errors for a repository that needs a token (gated or
// private) or a token the Hub rejects.
var ErrUnauthorized = errors.New("hub: unauthorized")

// StatusError is an HTTP error response from the Hub.
type StatusError struct {
	Method     string
	URL        string
	StatusCode int
	// Code and Message are the Hub's X-Error-Code and X-Error-Message headers.
	Code    string
	Message string
	// Hint says what to do about it, when there is something to say.
	Hint string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "; %s", e.Hint)
	}
	return b.String()
}

// Unwrap maps the response to ErrNotFound or ErrUnauthorized.
func (e *StatusError) Unwrap() error {
	switch {
	case e.Code == "RepoNotFound" || e.Code == "RevisionNotFound" || e.Code == "EntryNotFound" || e.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case e.Code == "GatedRepo" || e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		return ErrUnauthorized
	}
	return nil
}

// temporary reports whether the request may succeed when retried.
func (e *StatusError) temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
}

// VerifyError reports a downloaded file whose size or hash is not what the Hub announced.
type VerifyError struct {
	File string
	// What is "size", "sha256" or "git-sha1".
	What      string
	Want, Got string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s: %s mismatch: got %s, want %s (corrupted transfer; the partial file was removed)", e.File, e.What, e.Got, e.Want)
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP == nil {
		return &http.Client{}
	}
	return c.HTTP
}

func (c *Client) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c *Client) maxAttempts() int {
	if c.MaxAttempts <= 0 {
		return 5
	}
	return c.MaxAttempts
}

func (c *Client) stallTimeout() time.Duration {
	if c.StallTimeout <= 0 {
		return 60 * time.Second
	}
	return c.StallTimeout
}

// checkRepo accepts "name" or "namespace/name" with no empty, "." or ".." segment.
func checkRepo(repo string) error {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("hub: repository %q: want namespace/name", repo)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "\\?#%") {
			return fmt.Errorf("hub: repository %q: want namespace/name", repo)
		}
	}
	return nil
}

// checkFile accepts a relative slash-separated path inside the repository.
func checkFile(file string) error {
	if file == "" || strings.HasPrefix(file, "/") || strings.Contains(file, "\\") || path.Clean(file) != file || file == "." ||
		file == ".." || strings.HasPrefix(file, "../") {
		return fmt.Errorf("hub: file name %q is not a relative path inside the repository", file)
	}
	return nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// ResolveURL is the address of file in repo at revision (a branch, tag or commit; slashes in
// it are escaped, as in refs/pr/1).
func (c *Client) ResolveURL(repo, revision, file string) string {
	return c.endpoint() + "/" + escapePath(repo) + "/resolve/" + url.PathEscape(revision) + "/" + escapePath(file)
}

func (c *Client) newRequest(ctx context.Context, method, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	ua := c.UserAgent
	if ua == "" {
		ua = "t5zoo-hub"
	}
	req.Header.Set("User-Agent", ua)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// statusError builds the error for a non-2xx response, with a hint about repo and file.
func (c *Client) statusError(resp *http.Response, repo, revision, file string) *StatusError {
	e := &StatusError{
		Method:     resp.Request.Method,
		URL:        resp.Request.URL.Redacted(),
		StatusCode: resp.StatusCode,
		Code:       resp.Header.Get("X-Error-Code"),
		Message:    resp.Header.Get("X-Error-Message"),
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := time.ParseDuration(s + "s"); err == nil && n > 0 {
			e.RetryAfter = n
		}
	}
	switch {
	case e.Code == "GatedRepo" && c.Token == "":
		e.Hint = fmt.Sprintf("repository %s is gated: accept its conditions on the Hub, then set HF_TOKEN to a token of that account", repo)
	case e.Code == "GatedRepo":
		e.Hint = fmt.Sprintf("repository %s is gated and the token's account has not been granted access", repo)
	case e.Code == "RepoNotFound" && c.Token == "":
		e.Hint = fmt.Sprintf("repository %s not found (if it is private or gated, set HF_TOKEN)", repo)
	case e.Code == "RepoNotFound":
		e.Hint = fmt.Sprintf("repository %s not found, or the token cannot see it", repo)
	case e.Code == "RevisionNotFound":
		e.Hint = fmt.Sprintf("revision %q not found in %s", revision, repo)
	case e.Code == "EntryNotFound" || (resp.StatusCode == http.StatusNotFound && file != ""):
		e.Hint = fmt.Sprintf("file %q not found in %s at revision %q", file, repo, revision)
	case resp.StatusCode == http.StatusUnauthorized && c.Token == "":
		e.Hint = fmt.Sprintf("%s needs a token: set HF_TOKEN", repo)
	case resp.StatusCode == http.StatusUnauthorized:
		e.Hint = "the Hub rejected the token (HF_TOKEN)"
	case resp.StatusCode == http.StatusForbidden:
		e.Hint = fmt.Sprintf("access to %s denied for this token", repo)
	}
	if e.Message == "" && resp.StatusCode >= 400 {
		// The Hub puts a JSON {"error": ...} in the body of most errors.
		var body struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &body) == nil {
			e.Message = body.Error
		}
	}
	return e
}

// FileInfo is one file of a repository listing.
type FileInfo struct {
	// Path is the file's path in the repository (rfilename).
	Path string
	// Size is the file's size in bytes, -1 when the listing does not say.
	Size int64
	// BlobID is the git blob id (for an LFS file, the pointer's).
	BlobID string
	// LFS is set for files stored with git LFS (weights, spiece.model).
	LFS *LFSInfo
}

// LFSInfo is what the Hub says of an LFS file's content.
type LFSInfo struct {
	SHA256 string
	Size   int64
}

// RepoInfo is a repository at one revision.
type RepoInfo struct {
	// ID is the repository (namespace/name).
	ID string
	// SHA is the commit the revision resolved to.
	SHA   string
	Files []FileInfo
}

// File returns the listing entry of path.
func (r *RepoInfo) File(path string) (FileInfo, bool) {
	for _, f := range r.Files {
		if f.Path == path {
			return f, true
		}
	}
	return FileInfo{}, false
}

// Names lists the repository's file paths.
func (r *RepoInfo) Names() []string {
	names := make([]string, len(r.Files))
	for i, f := range r.Files {
		names[i] = f.Path
	}
	return names
}

// maxInfoBytes bounds the listing response.
const maxInfoBytes = 64 << 20

// Repo lists repo's files at revision (a branch, tag or commit; "" means "main").
func (c *Client) Repo(ctx context.Context, repo, revision string) (*RepoInfo, error) {
	if revision == "" {
		revision = "main"
	}
	if err := checkRepo(repo); err != nil {
		return nil, err
	}
	u := c.endpoint() + "/api/models/" + escapePath(repo) + "/revision/" + url.PathEscape(revision) + "?blobs=true"
	var info *RepoInfo
	err := c.retry(ctx, "list "+repo, func(ctx context.Context) error {
		req, err := c.newRequest(ctx, http.MethodGet, u)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := c.httpClient().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return c.statusError(resp, repo, revision, "")
		}
		var raw struct {
			ID       string `json:"id"`
			SHA      string `json:"sha"`
			Siblings []struct {
				RFilename string `json:"rfilename"`
				Size      *int64 `json:"size"`
				BlobID    string `json:"blobId"`
				LFS       *struct {
					SHA256 string `json:"sha256"`
					Size   int64  `json:"size"`
				} `json:"lfs"`
			} `json:"siblings"`
		}
		dec := json.NewDecoder(io.LimitReader(resp.Body, maxInfoBytes))
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("decode the listing: %w", err)
		}
		if raw.ID == "" {
			raw.ID = repo
		}
		info = &RepoInfo{ID: raw.ID, SHA: raw.SHA}
		for _, s := range raw.Siblings {
			f := FileInfo{Path: s.RFilename, Size: -1, BlobID: s.BlobID}
			if s.Size != nil {
				f.Size = *s.Size
			}
			if s.LFS != nil {
				f.LFS = &LFSInfo{SHA256: strings.ToLower(s.LFS.SHA256), Size: s.LFS.Size}
				f.Size = s.LFS.Size
			}
			info.Files = append(info.Files, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hub: list %s at %s: %w", repo, revision, err)
	}
	return info, nil
}
