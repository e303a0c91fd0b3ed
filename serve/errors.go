package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// Sentinel errors of the server. Handlers wrap them (or the errors of zoo, infer and
// catalog) with what was being done; writeError maps them to statuses.
var (
	// ErrBadRequest: a request that does not parse or breaks a rule of the API.
	ErrBadRequest = errors.New("serve: invalid request")
	// ErrLimit: a request over one of the server's limits (tokens, inputs).
	ErrLimit = errors.New("serve: over a limit")
	// ErrUnauthorized: no API key, or one the server does not know.
	ErrUnauthorized = errors.New("serve: missing or unknown API key")
	// ErrForbidden: an API key without the scope the route needs.
	ErrForbidden = errors.New("serve: API key lacks the scope")
	// ErrBusy: the request queue is full, or every loaded model is in use and none can be
	// evicted for the one asked for; the answer carries Retry-After.
	ErrBusy = errors.New("serve: busy")
	// ErrTooLarge: a model that cannot fit the memory budget even with nothing else loaded.
	ErrTooLarge = errors.New("serve: model does not fit the memory budget")
	// ErrInUse: an operation that needs an idle model (delete) on one serving requests.
	ErrInUse = errors.New("serve: model in use")
	// ErrNoTokenizer: text sent to a model whose directory has no spiece.model.
	ErrNoTokenizer = errors.New("serve: model has no tokenizer")
	// ErrShuttingDown: the server is draining.
	ErrShuttingDown = errors.New("serve: shutting down")
	// ErrNoMemory: a request whose working memory (decoding caches, encode or score scratch)
	// cannot fit the memory budget beside its model, however long it waits.
	ErrNoMemory = errors.New("serve: request does not fit the memory budget")
	// ErrOrigin: a browser request from an origin --allow-origin does not name, or a Host
	// header that names neither the server nor an --allow-host (DNS rebinding).
	ErrOrigin = errors.New("serve: origin or host not allowed")
	// ErrMediaType: a state-changing request whose body is not application/json (a browser's
	// form or text/plain post, which needs no CORS preflight).
	ErrMediaType = errors.New("serve: unsupported media type")

	// errMethodNotAllowed: a route that exists, with another method.
	errMethodNotAllowed = errors.New("serve: method not allowed")
	// errLoadCancelled: the load the request waited for was cancelled by an unload.
	errLoadCancelled = errors.New("serve: load cancelled")
	// errBodyTimeout: the request body did not arrive within the read timeout.
	errBodyTimeout = errors.New("serve: request body too slow")
)

// retryAfterSeconds is the Retry-After of 503 answers: one decoding batch of a small model
// frees rows within about a second.
const retryAfterSeconds = 1

// statusOf maps an error to its HTTP status and API code (docs/api.md, "Errors").
func statusOf(err error) (int, string) {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrOrigin):
		return http.StatusForbidden, "origin_not_allowed"
	case errors.Is(err, ErrMediaType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type"
	case errors.Is(err, errBodyTimeout):
		return http.StatusRequestTimeout, "body_timeout"
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, "method_not_allowed"
	case errors.Is(err, catalog.ErrUnknownShape):
		return http.StatusNotFound, "not_found" // before ErrBadName, which it also wraps
	case errors.Is(err, ErrLimit):
		return http.StatusBadRequest, "limit_exceeded"
	case errors.Is(err, ErrBadRequest), errors.Is(err, infer.ErrInvalidInput),
		errors.Is(err, zoo.ErrBadRef), errors.Is(err, catalog.ErrBadName), errors.Is(err, ErrNoTokenizer):
		return http.StatusBadRequest, "invalid_request"
	case errors.Is(err, zoo.ErrNotFound), errors.Is(err, errNoRoute), errors.Is(err, errEvalJobNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, errEvalJobActive):
		return http.StatusConflict, "job_active"
	case errors.Is(err, errEvalUnavailable):
		return http.StatusNotImplemented, "eval_unavailable"
	case errors.Is(err, ErrInUse):
		return http.StatusConflict, "model_in_use"
	case errors.Is(err, errLoadCancelled):
		return http.StatusConflict, "load_cancelled"
	case errors.Is(err, ErrTooLarge):
		return http.StatusInsufficientStorage, "model_too_large"
	case errors.Is(err, ErrNoMemory), errors.Is(err, infer.ErrMemory):
		return http.StatusInsufficientStorage, "insufficient_memory"
	case errors.Is(err, infer.ErrNumerics):
		return http.StatusInternalServerError, "model_numerics"
	case errors.Is(err, ErrBusy), errors.Is(err, infer.ErrQueueFull):
		return http.StatusServiceUnavailable, "busy"
	case errors.Is(err, ErrShuttingDown), errors.Is(err, infer.ErrClosed):
		return http.StatusServiceUnavailable, "shutting_down"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout"
	case errors.Is(err, context.Canceled):
		return 499, "cancelled" // nginx's "client closed request": nobody reads it
	case errors.Is(err, fetch.ErrOffline):
		return http.StatusBadGateway, "hub_unreachable"
	case errors.Is(err, fetch.ErrParity):
		return http.StatusBadGateway, "import_failed"
	case errors.Is(err, zoo.ErrNoBucket):
		return http.StatusBadGateway, "registry_no_bucket"
	case errors.Is(err, zoo.ErrAccessDenied):
		return http.StatusBadGateway, "registry_access_denied"
	case errors.Is(err, zoo.ErrCorrupt), errors.Is(err, zoo.ErrBadManifest):
		return http.StatusBadGateway, "registry_error"
	case errors.Is(err, infer.ErrCheckpoint), errors.Is(err, zoo.ErrInvalidModel):
		return http.StatusUnprocessableEntity, "invalid_model"
	}
	return http.StatusInternalServerError, "internal"
}

// writeError answers with err's status and the error body of the route's family (see
// errorBodyFor), adding Retry-After to 503s, and records err for the request log. It is the
// one place that turns errors into responses.
func writeError(c *gin.Context, err error) {
	status, code := statusOf(err)
	c.Error(err) //nolint:errcheck // recorded for the request log
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="t5zoo"`)
	}
	c.Header("X-Content-Type-Options", "nosniff")
	if scrub, ok := c.Get(scrubKey); ok {
		err = scrub.(func(error) error)(err) // the log above keeps the paths; the answer does not
	}
	c.AbortWithStatusJSON(status, errorBodyFor(c.Request.URL.Path, status, code, err))
}

// scrubKey is the gin context key of the server's path scrubber (Server.scrubErr), which
// observe sets for writeError.
const scrubKey = "t5zoo.scrub"

// errorBodyFor is the error body of the family of routes path belongs to (docs/api.md,
// "Errors"): OpenAI's on /v1, so that OpenAI's clients read it; the registry protocol's on
// the registry routes, which zoo.HTTPStore reads; the native API's everywhere else.
func errorBodyFor(path string, status int, code string, err error) any {
	switch {
	case path == "/v1" || strings.HasPrefix(path, "/v1/"):
		return api.OpenAIErrorBody{Error: api.OpenAIError{Message: err.Error(), Type: openAIErrorType(status, code), Code: code}}
	case strings.HasPrefix(path, "/blobs/") || path == "/manifests" || strings.HasPrefix(path, "/manifests/"):
		var b registryErrorBody
		b.Error.Code, b.Error.Message = code, err.Error()
		return b
	}
	return errorBody(code, err)
}

// registryErrorBody is the error body of the registry protocol (zoo's registry handler
// writes the same).
type registryErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// openAIErrorType is the "type" OpenAI's API gives an error of this status and code.
func openAIErrorType(status int, code string) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests, code == "busy":
		return "rate_limit_error"
	case status >= 500, status == http.StatusUnprocessableEntity:
		return "server_error" // the server's or the model's fault, not the request's
	}
	return "invalid_request_error"
}

// errorBody is the native API's error body.
func errorBody(code string, err error) api.ErrorBody {
	return api.ErrorBody{Error: err.Error(), Code: code}
}

// streamError is the JSON of an error sent inside a native stream (NDJSON, server-sent
// events) after the first byte.
func streamError(err error) []byte {
	_, code := statusOf(err)
	b, _ := json.Marshal(errorBody(code, err))
	return b
}

// streamErrorFor is the JSON of an error sent inside the stream of a request to path, in the
// body of its family of routes.
func streamErrorFor(path string, err error) []byte {
	status, code := statusOf(err)
	b, _ := json.Marshal(errorBodyFor(path, status, code, err))
	return b
}

// badRequest returns an error wrapping ErrBadRequest.
func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// overLimit returns an error wrapping ErrLimit.
func overLimit(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrLimit, fmt.Sprintf(format, args...))
}
