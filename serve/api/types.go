// Package api holds the wire types of t5zoo serve's HTTP API and a Go client for it. The
// routes, their request and response bodies and their errors are documented in docs/api.md
// and, as OpenAPI 3, at GET /api/openapi.json.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/t5zoo/t5zoo/catalog"
)

// ErrorBody is the body of the native API's error answers: {"error": "<message>", "code":
// "<code>"}, the message where Ollama-style clients look for it and a machine-readable code
// beside it ("not_found", "invalid_request", ...; see docs/api.md). In streams (NDJSON,
// server-sent events) an error after the first byte is sent the same way, as the last line
// or event.
type ErrorBody struct {
	Error string `json:"error"` // the message, for people
	Code  string `json:"code"`
}

// OpenAIErrorBody is the body of the error answers of the /v1 routes, as OpenAI's API
// documents it: {"error": {"message", "type", "param", "code"}}. A /v1 stream that fails
// after its first chunk ends with one as plain data.
type OpenAIErrorBody struct {
	Error OpenAIError `json:"error"`
}

// OpenAIError is OpenAI's error object.
type OpenAIError struct {
	Message string `json:"message"`
	// Type is OpenAI's class of the error: "invalid_request_error", "authentication_error",
	// "permission_error", "not_found_error", "rate_limit_error" or "server_error".
	Type string `json:"type"`
	// Param names the request field at fault; the server leaves it null.
	Param *string `json:"param"`
	// Code is the code of the native API's ErrorBody.
	Code string `json:"code"`
}

// Duration is a time.Duration on the wire: a Go duration string ("5m", "90s") or a number of
// seconds. Keep-alive values use it: a negative value keeps a model loaded until it is
// unloaded or evicted, 0 unloads it as soon as it is idle. Values must be finite and within
// time.Duration's range (about ±292 years).
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch t := v.(type) {
	case float64:
		return d.setSeconds(t)
	case string:
		// ParseFloat also reads "NaN" and "Inf": setSeconds refuses them.
		if n, err := strconv.ParseFloat(t, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			if err != nil {
				return fmt.Errorf("duration %q: out of range", t)
			}
			return d.setSeconds(n)
		}
		p, err := time.ParseDuration(t)
		if err != nil {
			return fmt.Errorf("duration %q: %w", t, err)
		}
		d.Duration = p
	default:
		return fmt.Errorf("duration: want a string or a number of seconds, got %s", b)
	}
	return nil
}

// setSeconds sets d to s seconds. Converting a float outside int64's range to an integer
// gives an arbitrary value in Go, so such values (and NaN) are refused first.
func (d *Duration) setSeconds(s float64) error {
	ns := s * float64(time.Second)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns < math.MinInt64 {
		return fmt.Errorf("duration: %v seconds is not a finite duration within ±%v", s, time.Duration(math.MaxInt64).Truncate(time.Hour))
	}
	d.Duration = time.Duration(ns)
	return nil
}

// GenerateOptions are the decoding options of the engine (infer.GenerateOptions), named as
// Hugging Face's generate names them. The zero value is greedy decoding of up to 20 tokens.
type GenerateOptions struct {
	// MaxNewTokens bounds the generated tokens (not counting the decoder start token);
	// 0 means 20. The server refuses more than its limit.
	MaxNewTokens int `json:"max_new_tokens,omitempty"`
	// NumBeams > 1 selects beam search (HF v4.30.2's rules).
	NumBeams int `json:"num_beams,omitempty"`
	// LengthPenalty is beam search's length exponent; absent means 1.
	LengthPenalty *float64 `json:"length_penalty,omitempty"`
	// EarlyStopping ends a beam search once num_beams hypotheses are finished.
	EarlyStopping bool `json:"early_stopping,omitempty"`
	// NumReturnSequences is the number of hypotheses per input (beams or samples).
	NumReturnSequences int `json:"num_return_sequences,omitempty"`
	// DoSample selects multinomial sampling after temperature, top_k and top_p.
	DoSample bool `json:"do_sample,omitempty"`
	// Temperature divides the logits before sampling; 0 means 1.
	Temperature float64 `json:"temperature,omitempty"`
	// TopK keeps the k most likely tokens when sampling; 0 keeps all.
	TopK int `json:"top_k,omitempty"`
	// TopP keeps the most likely tokens whose probability reaches p; 0 and 1 keep all.
	TopP float64 `json:"top_p,omitempty"`
	// Seed seeds sampling; the same seed gives the same samples, whatever the batch.
	Seed uint64 `json:"seed,omitempty"`
	// TopLogprobs also returns the most likely tokens at each position (greedy decoding and
	// sampling; at most 20).
	TopLogprobs int `json:"top_logprobs,omitempty"`
}

// GenerateRequest is the body of POST /api/generate. Exactly one of Input, Inputs and
// InputIDs is set.
type GenerateRequest struct {
	// Model is NAME[:TAG] of the registry (pulled on first use) or a name the server was
	// started with (--model NAME=DIR).
	Model string `json:"model"`
	// Input is one text, tokenized with the model's tokenizer (</s> appended).
	Input string `json:"input,omitempty"`
	// Inputs is a batch of texts.
	Inputs []string `json:"inputs,omitempty"`
	// InputIDs is a batch of token id sequences, used as they are.
	InputIDs [][]int `json:"input_ids,omitempty"`
	GenerateOptions
	// Stream sends each token as soon as it is decided (greedy decoding and sampling), then
	// the whole response: as server-sent events, or as NDJSON lines when the request's
	// Accept is application/x-ndjson (ClientOptions.NDJSON).
	Stream bool `json:"stream,omitempty"`
	// KeepAlive sets how long the model stays loaded once idle; absent keeps the
	// model's current setting (the server's --keep-alive at first).
	KeepAlive *Duration `json:"keep_alive,omitempty"`
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	ID      int     `json:"id"`
	Text    string  `json:"text,omitempty"`
	Logprob float64 `json:"logprob"`
}

// Hypothesis is one generated sequence.
type Hypothesis struct {
	// Text is the decoded text of IDs, special tokens left out (empty when the model has
	// no tokenizer).
	Text string `json:"text"`
	// IDs are the generated tokens, without the decoder start token, with the final </s>
	// when one was generated.
	IDs []int `json:"ids"`
	// TokenLogprobs[j] is the model's log-probability of IDs[j].
	TokenLogprobs []float64 `json:"token_logprobs"`
	// TopLogprobs[j] lists the most likely tokens at position j, with top_logprobs.
	TopLogprobs [][]TokenLogprob `json:"top_logprobs,omitempty"`
	// Score is beam search's length-normalised score, or the sum of TokenLogprobs.
	Score float64 `json:"score"`
	// FinishReason is "stop" when </s> was generated, "length" when max_new_tokens was
	// reached.
	FinishReason string `json:"finish_reason"`
}

// Generation holds the hypotheses of one input: beams best first, or samples in order.
type Generation struct {
	Hypotheses []Hypothesis `json:"hypotheses"`
}

// Usage counts the tokens of a request.
type Usage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// StreamToken is one token of a streamed generation.
type StreamToken struct {
	Input    int     `json:"input"`    // index of the input in the request
	Sequence int     `json:"sequence"` // index of the sample (0 for greedy decoding)
	ID       int     `json:"id"`
	Text     string  `json:"text"` // the text this token adds to the sequence's decoded text
	Logprob  float64 `json:"logprob"`
	// TopLogprobs lists the most likely tokens at this position, with top_logprobs.
	TopLogprobs []TokenLogprob `json:"top_logprobs,omitempty"`
}

// GenerateResponse answers a GenerateRequest. Without streaming it is the whole answer
// (Done true). Streamed, each "token" event (or NDJSON line) carries one with Token set, and
// the final "done" event (or last line) one with Done true and the results.
type GenerateResponse struct {
	Model   string       `json:"model"`
	Token   *StreamToken `json:"token,omitempty"`
	Done    bool         `json:"done"`
	Results []Generation `json:"results,omitempty"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// ScorePair is one (input, target) pair: texts, or token ids used as they are.
type ScorePair struct {
	Input     string `json:"input,omitempty"`
	Target    string `json:"target,omitempty"`
	InputIDs  []int  `json:"input_ids,omitempty"`
	TargetIDs []int  `json:"target_ids,omitempty"`
}

// ScoreRequest is the body of POST /api/score: log p(target | input) for each pair, e.g.
// one input with each candidate label for rank classification.
type ScoreRequest struct {
	Model     string      `json:"model"`
	Pairs     []ScorePair `json:"pairs"`
	KeepAlive *Duration   `json:"keep_alive,omitempty"`
}

// ScoreResult is log p(target | input) for one pair.
type ScoreResult struct {
	SumLogprob float64 `json:"sum_logprob"`
	// TargetIDs is the scored target, </s> included.
	TargetIDs []int `json:"target_ids"`
	// TokenLogprobs[j] is log p(target[j] | input, target[:j]).
	TokenLogprobs []float64 `json:"token_logprobs"`
}

// ScoreResponse answers a ScoreRequest, a result per pair.
type ScoreResponse struct {
	Model   string        `json:"model"`
	Results []ScoreResult `json:"results"`
	Usage   Usage         `json:"usage"`
}

// EncodeRequest is the body of POST /api/encode. Exactly one of Input, Inputs and InputIDs
// is set.
type EncodeRequest struct {
	Model    string   `json:"model"`
	Input    string   `json:"input,omitempty"`
	Inputs   []string `json:"inputs,omitempty"`
	InputIDs [][]int  `json:"input_ids,omitempty"`
	// Hidden also returns every position's last hidden state.
	Hidden    bool      `json:"hidden,omitempty"`
	KeepAlive *Duration `json:"keep_alive,omitempty"`
}

// EncodeResponse answers an EncodeRequest: per input, the mean of the encoder's last
// hidden states (d_model values) and, with hidden, the states themselves (one row of
// d_model values per token).
type EncodeResponse struct {
	Model      string        `json:"model"`
	Embeddings [][]float32   `json:"embeddings"`
	Hidden     [][][]float32 `json:"hidden,omitempty"`
	Usage      Usage         `json:"usage"`
}

// CatalogResponse answers GET /api/catalog: the published shapes that pass the filters.
type CatalogResponse struct {
	Shapes []catalog.Row `json:"shapes"`
}

// ShapeResponse answers GET /api/catalog/{name}: a shape (published or derived from the
// name grammar) with its costs at the requested lengths.
type ShapeResponse struct {
	catalog.Entry
	FLOPs   catalog.FLOPs           `json:"flops"`
	Bytes   map[catalog.DType]int64 `json:"bytes"`
	KVCache catalog.KVCache         `json:"kv_cache"`
	// RequestKVBytes is the cache one request of the requested lengths holds at its
	// longest.
	RequestKVBytes int64 `json:"request_kv_bytes"`
	Tensors        int   `json:"tensors"`
}

// ModelInfo is a model the server can load: a whole model of its local cache, or a model
// directory it was started with (--model NAME=DIR), which has only Name, Source and Loaded.
type ModelInfo struct {
	Name    string     `json:"name"`   // NAME:TAG, or the directory model's name
	Source  string     `json:"source"` // "cache" or "directory"
	Digest  string     `json:"digest,omitempty"`
	Size    int64      `json:"size,omitempty"` // bytes of its files
	Files   int        `json:"files,omitempty"`
	Created *time.Time `json:"created,omitempty"` // when it was pushed
	Loaded  bool       `json:"loaded"`
}

// ModelsResponse answers GET /api/models.
type ModelsResponse struct {
	Models []ModelInfo `json:"models"`
}

// PullRequest is the body of POST /api/pull.
type PullRequest struct {
	Model string `json:"model"`
	// Stream sends progress as NDJSON lines; absent means true.
	Stream *bool `json:"stream,omitempty"`
}

// ProgressResponse is one line of POST /api/pull's NDJSON stream: "pulling" lines with a
// file's progress, then one "success" line (or an error line, ErrorBody).
type ProgressResponse struct {
	Status    string `json:"status"` // "pulling" or "success"
	File      string `json:"file,omitempty"`
	Digest    string `json:"digest,omitempty"` // of the file, or of the manifest on success
	Total     int64  `json:"total,omitempty"`
	Completed int64  `json:"completed,omitempty"`
	Model     string `json:"model,omitempty"` // NAME:TAG, on success
}

// DeleteResponse answers DELETE /api/models/{name}.
type DeleteResponse struct {
	Deleted string `json:"deleted"` // NAME:TAG
}

// LoadedModel is a model resident in the server's memory, or being loaded.
type LoadedModel struct {
	Name string `json:"name"`
	// State is "loading" (pulling or reading the checkpoint; POST /api/unload cancels it) or
	// "ready".
	State string `json:"state"`
	// Load is how far a loading model's pull has got; absent once ready.
	Load *LoadProgress `json:"load,omitempty"`
	// MemoryBytes is what the model counts against --memory-budget now: WeightBytes +
	// KVBytes + RequestBytes.
	MemoryBytes int64 `json:"memory_bytes"`
	// WeightBytes is the weights in the load type and the position-bias tables.
	WeightBytes int64 `json:"weight_bytes"`
	// KVBytes is the working memory kept for the model: a decoder step of a full batch, the
	// encoder pass between steps, and the scratch reused between calls.
	KVBytes int64 `json:"kv_bytes"`
	// RequestBytes is what the model's requests hold now: the caches of the inputs
	// decoding, and the scratch of the encode and score calls running.
	RequestBytes int64     `json:"request_bytes"`
	LoadedAt     time.Time `json:"loaded_at"`
	LastUsed     time.Time `json:"last_used"`
	// IdleSeconds is the time since the last request ended; 0 while requests run.
	IdleSeconds float64 `json:"idle_seconds"`
	// KeepAlive is how long the model stays loaded once idle; negative: until evicted.
	KeepAlive Duration `json:"keep_alive"`
	// ExpiresAt is when an idle model will be unloaded; absent while in use or kept.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Requests  int        `json:"requests"` // requests using the model now
	Queued    int        `json:"queued"`   // inputs waiting to join the decoding batch
	Decoding  int        `json:"decoding"` // inputs in the decoding batch
}

// LoadProgress is how far the pull of a loading model has got, in bytes of its files.
type LoadProgress struct {
	Completed int64 `json:"completed"`
	Total     int64 `json:"total"`
	// Since is when the load started.
	Since time.Time `json:"since"`
}

// PsResponse answers GET /api/ps.
type PsResponse struct {
	Models []LoadedModel `json:"models"`
	// MemoryBytes is the sum of the loaded models' MemoryBytes; MemoryBudget the server's
	// limit (0: none); MaxLoaded its limit on loaded models (0: none).
	MemoryBytes  int64 `json:"memory_bytes"`
	MemoryBudget int64 `json:"memory_budget"`
	MaxLoaded    int   `json:"max_loaded"`
}

// UnloadRequest is the body of POST /api/unload.
type UnloadRequest struct {
	Model string `json:"model"`
}

// UnloadResponse answers an UnloadRequest: "unloaded", or "unloading" when requests still
// use the model (it is unloaded when the last one ends).
type UnloadResponse struct {
	Model  string `json:"model"`
	Status string `json:"status"`
}

// HealthResponse answers GET /healthz and GET /readyz.
type HealthResponse struct {
	Status string `json:"status"` // "ok", or "shutting down" (readyz, 503)
}
