package serve_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/t5zoo/t5zoo/serve/api"
)

// TestOpenAISDK drives the server with OpenAI's official Go SDK over a real socket:
// completions with stop, logprobs and n, unstreamed and streamed, the model list and one
// model, and an error. The SDK must parse every answer, the streamed texts must be the
// unstreamed ones, and the finish reasons right.
func TestOpenAISDK(t *testing.T) {
	ts := newTestServer(t, nil)
	c := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))

	// A stop string from the middle of the long model's greedy text.
	var g api.GenerateResponse
	if err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: longModel, Input: longInput, GenerateOptions: api.GenerateOptions{MaxNewTokens: 16}},
		func(r api.GenerateResponse) error { g = r; return nil }); err != nil {
		t.Fatal(err)
	}
	greedy := g.Results[0].Hypotheses[0].Text
	if len(greedy) < 12 {
		t.Fatalf("greedy text %q too short", greedy)
	}
	stop := greedy[len(greedy)/2 : len(greedy)/2+2]

	for _, tc := range []struct {
		name    string
		params  openai.CompletionNewParams
		reasons []openai.CompletionChoiceFinishReason
	}{
		{"greedy n=2 stop logprobs", openai.CompletionNewParams{
			Model:     longModel,
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(longInput)},
			MaxTokens: openai.Int(16), Temperature: openai.Float(0), N: openai.Int(2), Logprobs: openai.Int(3),
			Stop: openai.CompletionNewParamsStopUnion{OfStringArray: []string{"zzz", stop}},
		}, []openai.CompletionChoiceFinishReason{"stop", "stop"}},
		{"sampling n=3 logprobs", openai.CompletionNewParams{
			Model:     reluRef,
			Prompt:    openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: goldenTexts[:2]},
			MaxTokens: openai.Int(6), Temperature: openai.Float(0.9), Seed: openai.Int(4), N: openai.Int(3), Logprobs: openai.Int(2),
		}, nil},
		{"length", openai.CompletionNewParams{
			Model:     longModel,
			Prompt:    openai.CompletionNewParamsPromptUnion{OfArrayOfTokenArrays: [][]int64{{100, 200, 1}}},
			MaxTokens: openai.Int(5), Temperature: openai.Float(0), Echo: openai.Bool(true), Logprobs: openai.Int(1),
		}, []openai.CompletionChoiceFinishReason{"length"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			whole, err := c.Completions.New(t.Context(), tc.params)
			if err != nil {
				t.Fatal(err)
			}
			if whole.Object != "text_completion" || whole.Model == "" || whole.Usage.TotalTokens != whole.Usage.PromptTokens+whole.Usage.CompletionTokens {
				t.Errorf("completion %s", whole.RawJSON())
			}
			for i, ch := range whole.Choices {
				if ch.Index != int64(i) || ch.FinishReason != "stop" && ch.FinishReason != "length" ||
					tc.reasons != nil && ch.FinishReason != tc.reasons[i] {
					t.Errorf("choice %d: %s", i, ch.RawJSON())
				}
				if lp := ch.Logprobs; len(lp.Tokens) == 0 || len(lp.TopLogprobs) != len(lp.Tokens) || len(lp.TextOffset) != len(lp.Tokens) {
					t.Errorf("choice %d logprobs: %s", i, lp.RawJSON())
				}
				if ch.FinishReason == "stop" && tc.reasons != nil && ch.Text == greedy {
					t.Errorf("choice %d: %q not cut at %q", i, ch.Text, stop)
				}
			}

			stream := c.Completions.NewStreaming(t.Context(), tc.params)
			texts := map[int64]string{}
			reasons := map[int64]openai.CompletionChoiceFinishReason{}
			tokens := map[int64][]string{}
			for stream.Next() {
				for _, ch := range stream.Current().Choices {
					if reasons[ch.Index] != "" {
						t.Errorf("choice %d: a chunk after its finish_reason", ch.Index)
					}
					texts[ch.Index] += ch.Text
					reasons[ch.Index] = ch.FinishReason
					tokens[ch.Index] = append(tokens[ch.Index], ch.Logprobs.Tokens...)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if err := stream.Close(); err != nil {
				t.Fatal(err)
			}
			if len(texts) != len(whole.Choices) {
				t.Fatalf("%d streamed choices, %d unstreamed", len(texts), len(whole.Choices))
			}
			for i, ch := range whole.Choices {
				idx := int64(i)
				if texts[idx] != ch.Text || reasons[idx] != ch.FinishReason || !slices.Equal(tokens[idx], ch.Logprobs.Tokens) {
					t.Errorf("choice %d: streamed %q (%s) %q, unstreamed %q (%s) %q", i, texts[idx], reasons[idx], tokens[idx], ch.Text, ch.FinishReason, ch.Logprobs.Tokens)
				}
			}
		})
	}

	t.Run("models", func(t *testing.T) {
		page, err := c.Models.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if !slices.Contains(ids, gatedRef) || !slices.Contains(ids, longModel) {
			t.Errorf("models %v", ids)
		}
		m, err := c.Models.Get(t.Context(), gatedRef)
		if err != nil || m.ID != gatedRef || m.OwnedBy != "t5zoo" {
			t.Errorf("model %s: %+v, %v", gatedRef, m, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := c.Models.Get(t.Context(), "acme/nothing:v1")
		var e *openai.Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || e.Type != "not_found_error" || e.Code != "not_found" || e.Message == "" {
			t.Errorf("unknown model: %v", err)
		}
		_, err = c.Completions.New(t.Context(), openai.CompletionNewParams{Model: reluRef, Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}, N: openai.Int(0)})
		if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || e.Type != "invalid_request_error" || e.Code != "invalid_request" {
			t.Errorf("n=0: %v", err)
		}
	})
}
