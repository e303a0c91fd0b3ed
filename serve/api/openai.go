package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Prompt is the prompt of an OpenAI completion request: a string, an array of strings, an
// array of token ids or an array of arrays of token ids. Exactly one of Texts and IDs is
// set after decoding.
type Prompt struct {
	Texts []string
	IDs   [][]int
}

// MarshalJSON writes a single prompt as a string (or id array), several as an array.
func (p Prompt) MarshalJSON() ([]byte, error) {
	switch {
	case len(p.IDs) == 1:
		return json.Marshal(p.IDs[0])
	case p.IDs != nil:
		return json.Marshal(p.IDs)
	case len(p.Texts) == 1:
		return json.Marshal(p.Texts[0])
	}
	return json.Marshal(p.Texts)
}

// UnmarshalJSON reads the four forms OpenAI accepts.
func (p *Prompt) UnmarshalJSON(b []byte) error {
	*p = Prompt{}
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return errPrompt
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		p.Texts = []string{s}
		return nil
	}
	var ss []string
	if json.Unmarshal(b, &ss) == nil && len(ss) > 0 {
		p.Texts = ss
		return nil
	}
	var ids []int
	if json.Unmarshal(b, &ids) == nil && len(ids) > 0 {
		p.IDs = [][]int{ids}
		return nil
	}
	var idss [][]int
	if json.Unmarshal(b, &idss) == nil && len(idss) > 0 && !slices.ContainsFunc(idss, func(ids []int) bool { return len(ids) == 0 }) {
		p.IDs = idss
		return nil
	}
	return errPrompt
}

var errPrompt = errors.New("prompt: want a string, an array of strings, an array of token ids or an array of arrays of token ids, none empty")

// Stop is OpenAI's stop parameter: a string or an array of up to 4 strings.
type Stop []string

// UnmarshalJSON reads a string or an array of strings.
func (s *Stop) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = Stop{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop: want a string or an array of strings")
	}
	*s = many
	return nil
}

// CompletionRequest is the body of POST /v1/completions, OpenAI's legacy completions API.
// Parameters OpenAI defines that the server does not implement are refused with a 400
// when set to anything but their default (suffix, logit_bias, presence_penalty,
// frequency_penalty, best_of other than n); unknown fields are ignored.
type CompletionRequest struct {
	Model  string `json:"model"`
	Prompt Prompt `json:"prompt"`
	// MaxTokens bounds the generated tokens; absent means 16 (OpenAI's default).
	MaxTokens *int `json:"max_tokens,omitempty"`
	// Temperature 0 is greedy decoding; otherwise sampling at that temperature. Absent
	// means 1, as OpenAI.
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	// TopK is an extension (vLLM's): keep the k most likely tokens when sampling.
	TopK *int `json:"top_k,omitempty"`
	// N is the number of completions per prompt; absent means 1.
	N *int `json:"n,omitempty"`
	// Stream sends chunks as server-sent events, ending with "data: [DONE]".
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
	// Logprobs returns the log-probabilities of the chosen tokens and of the Logprobs
	// most likely ones (at most 5).
	Logprobs *int `json:"logprobs,omitempty"`
	// Echo prepends the prompt to each completion's text (its tokens get null logprobs:
	// an encoder input has no likelihood).
	Echo bool `json:"echo,omitempty"`
	// Stop ends a completion's text before the first occurrence of any of these strings.
	Stop Stop `json:"stop,omitempty"`
	// Seed makes sampling reproducible; absent picks a random seed.
	Seed *uint64 `json:"seed,omitempty"`
	User string  `json:"user,omitempty"`

	Suffix           *string            `json:"suffix,omitempty"`
	LogitBias        map[string]float64 `json:"logit_bias,omitempty"`
	PresencePenalty  *float64           `json:"presence_penalty,omitempty"`
	FrequencyPenalty *float64           `json:"frequency_penalty,omitempty"`
	BestOf           *int               `json:"best_of,omitempty"`
}

// StreamOptions is OpenAI's stream_options.
type StreamOptions struct {
	// IncludeUsage sends a last chunk with the usage and no choices.
	IncludeUsage bool `json:"include_usage"`
}

// CompletionLogprobs is OpenAI's logprobs object of a choice. Tokens[j] names the j-th
// token by the text it adds (so that the tokens join to the text), except special tokens
// such as </s>, which add no text and are named by their piece; TopLogprobs names tokens
// the same way.
type CompletionLogprobs struct {
	Tokens        []string      `json:"tokens"`
	TokenLogprobs []*float64    `json:"token_logprobs"`
	TopLogprobs   []TopLogprobs `json:"top_logprobs"`
	TextOffset    []int         `json:"text_offset"`
}

// TextLogprob is a token named by its text, with its log-probability.
type TextLogprob struct {
	Text    string
	Logprob float64
}

// TopLogprobs is one position of OpenAI's top_logprobs: the most likely tokens, best first.
// On the wire it is a JSON object from text to log-probability whose keys keep that order
// (a Go map would marshal them sorted by text); nil is null. The server sends {} (never
// null) where it has no alternatives, as OpenAI's SDKs drop a top_logprobs array holding
// null.
type TopLogprobs []TextLogprob

// MarshalJSON writes the object, best first, with "<" and ">" as they are (as "tokens"
// has them once the response is written, not as \u003c).
func (t TopLogprobs) MarshalJSON() ([]byte, error) {
	if t == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, e := range t {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(e.Text); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		if err := enc.Encode(e.Logprob); err != nil {
			return nil, fmt.Errorf("top_logprobs %q: %w", e.Text, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object (or null) keeping the order of its keys.
func (t *TopLogprobs) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("top_logprobs: %w", err)
	}
	if tok == nil {
		*t = nil
		return nil
	}
	if tok != json.Delim('{') {
		return errTopLogprobs
	}
	out := TopLogprobs{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return fmt.Errorf("top_logprobs: %w", err)
		}
		var v float64
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("top_logprobs: %w", err)
		}
		out = append(out, TextLogprob{Text: k.(string), Logprob: v})
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("top_logprobs: %w", err)
	}
	*t = out
	return nil
}

var errTopLogprobs = errors.New("top_logprobs: want an object from token text to log-probability, or null")

// CompletionChoice is one completion.
type CompletionChoice struct {
	Text     string              `json:"text"`
	Index    int                 `json:"index"`
	Logprobs *CompletionLogprobs `json:"logprobs"`
	// FinishReason is "stop" (</s> or a stop string), "length", or null in stream chunks
	// before the last.
	FinishReason *string `json:"finish_reason"`
}

// CompletionUsage counts tokens as OpenAI does.
type CompletionUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// CompletionResponse answers a CompletionRequest (object "text_completion"); streamed,
// each chunk has the same form with the text added since the previous chunk.
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *CompletionUsage   `json:"usage,omitempty"`
}

// OpenAIModel is one entry of GET /v1/models.
type OpenAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// OpenAIModelList answers GET /v1/models (object "list").
type OpenAIModelList struct {
	Object string        `json:"object"`
	Data   []OpenAIModel `json:"data"`
}
