package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// StatusError is an error answer of the server: its HTTP status and its ErrorBody (or, from
// a /v1 route, its OpenAIErrorBody). Errors sent inside a stream after the first byte have
// the status of the stream (200).
type StatusError struct {
	StatusCode int
	Code       string
	Message    string
	// Type is OpenAI's error type, for errors of the /v1 routes; "" otherwise.
	Type string
	// RetryAfter is the server's Retry-After on 503 answers (queue full, models busy).
	RetryAfter time.Duration
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("t5zoo serve: %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// ClientOptions configures a Client. The zero value works.
type ClientOptions struct {
	// APIKey, if not empty, is sent as "Authorization: Bearer <APIKey>".
	APIKey string
	// HTTPClient carries the requests; nil: http.DefaultClient.
	HTTPClient *http.Client
	// NDJSON asks for streamed generations as NDJSON lines (Accept: application/x-ndjson)
	// instead of server-sent events. Either way Generate reads what the server sends.
	NDJSON bool
}

// Client calls a t5zoo serve. Its methods are safe for concurrent use.
type Client struct {
	base   *url.URL
	key    string
	hc     *http.Client
	ndjson bool
}

// NewClient returns a client of the server at base, "http(s)://host:port".
func NewClient(base string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("api: client %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("api: client %q: want http(s)://host:port", base)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	hc := opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, key: opts.APIKey, hc: hc, ndjson: opts.NDJSON}, nil
}

// do sends a request with a JSON body (none when body is nil) and returns the response of a
// 2xx status; others become a *StatusError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	return c.doAccept(ctx, method, path, query, body, "")
}

// doAccept is do with an Accept header (none when accept is "").
func (c *Client) doAccept(ctx context.Context, method, path string, query url.Values, body any, accept string) (*http.Response, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return nil, statusError(resp.StatusCode, raw, resp.Header.Get("Retry-After"))
}

func statusError(status int, raw []byte, retryAfter string) *StatusError {
	e := &StatusError{StatusCode: status, Code: "http_" + strconv.Itoa(status), Message: strings.TrimSpace(string(raw))}
	parseError(raw, e)
	if s, err := strconv.Atoi(retryAfter); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// parseError fills e from raw when it is an ErrorBody or an OpenAIErrorBody, and reports
// whether it was one.
func parseError(raw []byte, e *StatusError) bool {
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`{`)) {
		return false
	}
	var native ErrorBody
	if json.Unmarshal(raw, &native) == nil && native.Code != "" {
		e.Code, e.Message = native.Code, native.Error
		return true
	}
	var oa OpenAIErrorBody
	if json.Unmarshal(raw, &oa) == nil && (oa.Error.Code != "" || oa.Error.Type != "") {
		e.Code, e.Message, e.Type = oa.Error.Code, oa.Error.Message, oa.Error.Type
		if e.Code == "" {
			e.Code = oa.Error.Type
		}
		return true
	}
	return false
}

// isError reports whether a stream's event data or line is an error body.
func isError(data []byte) bool {
	return bytes.HasPrefix(data, []byte(`{"error":`)) && parseError(data, &StatusError{})
}

// call sends a request and decodes the JSON answer into out.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("api: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Generate calls POST /api/generate. fn receives the response, or with req.Stream each token
// (event or NDJSON line, see ClientOptions.NDJSON) and then the final response (Done true);
// an error fn returns ends the call.
func (c *Client) Generate(ctx context.Context, req *GenerateRequest, fn func(GenerateResponse) error) error {
	accept := ""
	if req.Stream && c.ndjson {
		accept = NDJSONType
	}
	resp, err := c.doAccept(ctx, http.MethodPost, "/api/generate", nil, req, accept)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !req.Stream {
		var r GenerateResponse
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return fmt.Errorf("api: generate: decode answer: %w", err)
		}
		return fn(r)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), NDJSONType) {
		return readLines(resp.Body, resp.StatusCode, func(line []byte) (bool, error) {
			var r GenerateResponse
			if err := json.Unmarshal(line, &r); err != nil {
				return false, fmt.Errorf("api: generate: line: %w", err)
			}
			return r.Done, fn(r)
		})
	}
	return readEvents(resp.Body, func(event string, data []byte) (bool, error) {
		var r GenerateResponse
		if err := json.Unmarshal(data, &r); err != nil {
			return false, fmt.Errorf("api: generate: event %q: %w", event, err)
		}
		return r.Done, fn(r)
	})
}

// NDJSONType is the media type of the server's NDJSON streams (POST /api/pull, and POST
// /api/generate when asked with Accept).
const NDJSONType = "application/x-ndjson"

// readLines reads an NDJSON stream, passing each line to fn until fn reports the last one.
// A line holding an error body is returned as a *StatusError with the stream's status.
func readLines(r io.Reader, status int, fn func(line []byte) (last bool, err error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if isError(line) {
			return statusError(status, line, "")
		}
		last, err := fn(line)
		if err != nil || last {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("api: NDJSON stream: %w", err)
	}
	return fmt.Errorf("api: NDJSON stream: %w", io.ErrUnexpectedEOF)
}

// Completions calls POST /v1/completions. fn receives the response, or with req.Stream each
// chunk.
func (c *Client) Completions(ctx context.Context, req *CompletionRequest, fn func(CompletionResponse) error) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/completions", nil, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !req.Stream {
		var r CompletionResponse
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return fmt.Errorf("api: completions: decode answer: %w", err)
		}
		return fn(r)
	}
	return readEvents(resp.Body, func(_ string, data []byte) (bool, error) {
		if string(data) == "[DONE]" {
			return true, nil
		}
		var r CompletionResponse
		if err := json.Unmarshal(data, &r); err != nil {
			return false, fmt.Errorf("api: completions: chunk: %w", err)
		}
		return false, fn(r)
	})
}

// readEvents reads server-sent events, passing each one's name and data to fn until fn
// reports the last one. An "error" event, or data holding an ErrorBody, is returned as a
// *StatusError.
func readEvents(r io.Reader, fn func(event string, data []byte) (last bool, err error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	event, data := "", []byte(nil)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data == nil {
				continue
			}
			if event == "error" || isError(data) {
				return statusError(http.StatusOK, data, "")
			}
			last, err := fn(event, data)
			if err != nil || last {
				return err
			}
			event, data = "", nil
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("api: event stream: %w", err)
	}
	return fmt.Errorf("api: event stream: %w", io.ErrUnexpectedEOF)
}

// Pull calls POST /api/pull, streaming: fn receives each progress line, the last one with
// Status "success".
func (c *Client) Pull(ctx context.Context, model string, fn func(ProgressResponse) error) error {
	resp, err := c.do(ctx, http.MethodPost, "/api/pull", nil, &PullRequest{Model: model})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readLines(resp.Body, resp.StatusCode, func(line []byte) (bool, error) {
		var p ProgressResponse
		if err := json.Unmarshal(line, &p); err != nil {
			return false, fmt.Errorf("api: pull: %w", err)
		}
		return p.Status == "success", fn(p)
	})
}

// Score calls POST /api/score.
func (c *Client) Score(ctx context.Context, req *ScoreRequest) (*ScoreResponse, error) {
	var r ScoreResponse
	return &r, c.call(ctx, http.MethodPost, "/api/score", nil, req, &r)
}

// Encode calls POST /api/encode.
func (c *Client) Encode(ctx context.Context, req *EncodeRequest) (*EncodeResponse, error) {
	var r EncodeResponse
	return &r, c.call(ctx, http.MethodPost, "/api/encode", nil, req, &r)
}

// List calls GET /api/models.
func (c *Client) List(ctx context.Context) (*ModelsResponse, error) {
	var r ModelsResponse
	return &r, c.call(ctx, http.MethodGet, "/api/models", nil, nil, &r)
}

// Delete calls DELETE /api/models/{name}.
func (c *Client) Delete(ctx context.Context, model string) (*DeleteResponse, error) {
	var r DeleteResponse
	return &r, c.call(ctx, http.MethodDelete, "/api/models/"+model, nil, nil, &r)
}

// Ps calls GET /api/ps.
func (c *Client) Ps(ctx context.Context) (*PsResponse, error) {
	var r PsResponse
	return &r, c.call(ctx, http.MethodGet, "/api/ps", nil, nil, &r)
}

// Unload calls POST /api/unload.
func (c *Client) Unload(ctx context.Context, model string) (*UnloadResponse, error) {
	var r UnloadResponse
	return &r, c.call(ctx, http.MethodPost, "/api/unload", nil, &UnloadRequest{Model: model}, &r)
}

// Catalog calls GET /api/catalog with filters (FIELD OP VALUE, as t5zoo catalog ls
// --where) and sort keys.
func (c *Client) Catalog(ctx context.Context, where []string, sort string) (*CatalogResponse, error) {
	q := url.Values{"where": where}
	if sort != "" {
		q.Set("sort", sort)
	}
	var r CatalogResponse
	return &r, c.call(ctx, http.MethodGet, "/api/catalog", q, nil, &r)
}

// Shape calls GET /api/catalog/{name}.
func (c *Client) Shape(ctx context.Context, name string) (*ShapeResponse, error) {
	var r ShapeResponse
	return &r, c.call(ctx, http.MethodGet, "/api/catalog/"+name, nil, nil, &r)
}
