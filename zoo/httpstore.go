package zoo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The HTTP registry protocol, served by RegistryHandler (t5zoo serve mounts it at its root)
// and spoken by HTTPStore. Paths are those of pathFor below a base URL:
//
//	GET, HEAD <base>/blobs/sha256/<hex>             the stored (zstd) bytes; GET may answer
//	                                                307 to a presigned URL of the bucket
//	GET, HEAD <base>/manifests/<name>/_tags/<tag>   the manifest bytes
//	GET       <base>/manifests/                     {"manifests": ["NAME:TAG", ...]}, sorted
//
// Errors are JSON {"error": {"code", "message"}}: 404 means not found; 401 and 403 mean the
// client's key was refused; 502 with code "registry_no_bucket" or "registry_access_denied"
// means the server's own store failed that way. Nothing can be written.
const (
	// ListMediaType is the Content-Type of the manifest listing.
	ListMediaType = "application/json"
	// blobMediaType is the Content-Type of stored blobs.
	blobMediaType = "application/zstd"
)

// Error codes of the HTTP registry protocol, beside the HTTP status.
const (
	codeNotFound             = "not_found"
	codeBadRequest           = "invalid_request"
	codeRegistryNoBucket     = "registry_no_bucket"
	codeRegistryAccessDenied = "registry_access_denied"
	codeRegistryError        = "registry_error"
)

// manifestList is the body of GET <base>/manifests/.
type manifestList struct {
	Manifests []string `json:"manifests"`
}

// HTTPOptions configures an HTTPStore. The zero value works.
type HTTPOptions struct {
	// Token, if not empty, is sent as "Authorization: Bearer <Token>" (an API key of the
	// t5zoo serve behind the URL). It is never sent after a redirect to another host.
	Token string
	// Client carries the requests; nil: a client on http.DefaultTransport. Its
	// CheckRedirect is wrapped so that the token does not follow redirects.
	Client *http.Client
}

// HTTPStore is a read-only registry reached over HTTP: a t5zoo serve (or any server of the
// protocol above) in front of a local or S3 store, so that clients pull without bucket
// credentials. Its writing methods fail with ErrAccessDenied.
type HTTPStore struct {
	base   *url.URL // without a trailing slash
	token  string
	client *http.Client
}

var _ Store = (*HTTPStore)(nil)

// NewHTTPStore returns a store for the registry at base, "http(s)://host[:port][/path]". It
// sends no request.
func NewHTTPStore(base string, opts HTTPOptions) (*HTTPStore, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("zoo: http store %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("zoo: http store %q: want http(s)://host[:port][/path]", base)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &http.Client{}
	if opts.Client != nil {
		*c = *opts.Client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != u.Scheme || req.URL.Host != u.Host {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &HTTPStore{base: u, token: opts.Token, client: c}, nil
}

// String describes the store, its base URL.
func (s *HTTPStore) String() string { return s.base.String() }

// do sends method to the object at key and returns the response of a 2xx status; other
// statuses are mapped to errors (see the protocol above) and their bodies closed.
func (s *HTTPStore) do(ctx context.Context, method, key, op string) (*http.Response, error) {
	u := *s.base
	u.Path += "/" + key
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, fmt.Errorf("%s: %w", op, statusError(resp))
}

// statusError maps a failed response to the package's sentinels.
func statusError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Error.Message != "" {
		msg = body.Error.Message
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	err := fmt.Errorf("%s %s: %d: %s", resp.Request.Method, resp.Request.URL.Redacted(), resp.StatusCode, msg)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden,
		body.Error.Code == codeRegistryAccessDenied:
		return fmt.Errorf("%w: %w", ErrAccessDenied, err)
	case body.Error.Code == codeRegistryNoBucket:
		return fmt.Errorf("%w: %w", ErrNoBucket, err)
	case resp.StatusCode == http.StatusBadRequest:
		return permanent(err)
	}
	return err
}

// StatBlob implements Store with a HEAD request.
func (s *HTTPStore) StatBlob(ctx context.Context, d Digest) (int64, error) {
	resp, err := s.do(ctx, http.MethodHead, BlobKey(d), "stat blob "+d.Short())
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("stat blob %s: no Content-Length", d.Short())
	}
	return resp.ContentLength, nil
}

// GetBlob implements Store. The body streams from the response (or from the bucket the
// server redirects to).
func (s *HTTPStore) GetBlob(ctx context.Context, d Digest) (io.ReadCloser, error) {
	resp, err := s.do(ctx, http.MethodGet, BlobKey(d), "get blob "+d.Short())
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// GetManifest implements Store.
func (s *HTTPStore) GetManifest(ctx context.Context, ref Ref) ([]byte, error) {
	op := "get manifest " + ref.String()
	resp, err := s.do(ctx, http.MethodGet, ManifestKey(ref), op)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(resp.Body, MaxManifestSize+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if buf.Len() > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", op, ErrBadManifest, MaxManifestSize)
	}
	if resp.ContentLength >= 0 && int64(buf.Len()) != resp.ContentLength {
		return nil, fmt.Errorf("%s: got %d of %d bytes", op, buf.Len(), resp.ContentLength)
	}
	return buf.Bytes(), nil
}

// ListManifests implements Store.
func (s *HTTPStore) ListManifests(ctx context.Context) ([]Ref, error) {
	resp, err := s.do(ctx, http.MethodGet, pathFor(manifestsRootPathSpec{})+"/", "list manifests")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l manifestList
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&l); err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	refs := make([]Ref, 0, len(l.Manifests))
	for _, m := range l.Manifests {
		if r, err := ParseRef(m); err == nil && r.String() == m {
			refs = append(refs, r)
		}
	}
	slices.SortFunc(refs, func(a, b Ref) int { return cmp.Compare(a.String(), b.String()) })
	return refs, nil
}

// PutBlob implements Store: an HTTP registry is read-only.
func (s *HTTPStore) PutBlob(ctx context.Context, d Digest, r io.Reader, size int64) error {
	return fmt.Errorf("put blob %s: %w: %s is read-only", d.Short(), ErrAccessDenied, s)
}

// PutManifest implements Store: an HTTP registry is read-only.
func (s *HTTPStore) PutManifest(ctx context.Context, ref Ref, data []byte) error {
	return fmt.Errorf("put manifest %s: %w: %s is read-only", ref, ErrAccessDenied, s)
}

// DeleteManifest implements Store: an HTTP registry is read-only.
func (s *HTTPStore) DeleteManifest(ctx context.Context, ref Ref) error {
	return fmt.Errorf("delete manifest %s: %w: %s is read-only", ref, ErrAccessDenied, s)
}

// contentLength formats n for a Content-Length header.
func contentLength(n int64) string { return strconv.FormatInt(n, 10) }
