package serve_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/serve/api"
)

func ptr[T any](v T) *T { return &v }

// complete calls /v1/completions without streaming.
func complete(t *testing.T, ts *testServer, req api.CompletionRequest) api.CompletionResponse {
	t.Helper()
	var out api.CompletionResponse
	if err := ts.Client.Completions(t.Context(), &req, func(r api.CompletionResponse) error { out = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// streamCompletion calls /v1/completions with stream and joins the chunks per choice.
func streamCompletion(t *testing.T, ts *testServer, req api.CompletionRequest) (texts map[int]string, reasons map[int]string, chunks []api.CompletionResponse) {
	t.Helper()
	req.Stream = true
	texts, reasons = map[int]string{}, map[int]string{}
	err := ts.Client.Completions(t.Context(), &req, func(r api.CompletionResponse) error {
		chunks = append(chunks, r)
		for _, c := range r.Choices {
			if reasons[c.Index] != "" {
				t.Errorf("choice %d: a chunk after its finish_reason", c.Index)
			}
			texts[c.Index] += c.Text
			if c.FinishReason != nil {
				reasons[c.Index] = *c.FinishReason
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return texts, reasons, chunks
}

// TestCompletions checks the OpenAI-compatible endpoint against the native one: greedy,
// n with sampling, several prompts, logprobs, echo, stop, and streaming of each.
func TestCompletions(t *testing.T) {
	ts := newTestServer(t, nil)
	native := func(model, text string, opts api.GenerateOptions) []api.Hypothesis {
		var r api.GenerateResponse
		err := ts.Client.Generate(t.Context(), &api.GenerateRequest{Model: model, Input: text, GenerateOptions: opts}, func(x api.GenerateResponse) error { r = x; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return r.Results[0].Hypotheses
	}
	// The long model writes long greedy texts, for the stop strings.
	greedy := native(longModel, goldenTexts[1], api.GenerateOptions{MaxNewTokens: 20, TopLogprobs: 2})[0]
	if len(greedy.Text) < 8 {
		t.Fatalf("greedy text %q too short for the stop test", greedy.Text)
	}
	stop := greedy.Text[len(greedy.Text)/2 : len(greedy.Text)/2+3]
	cut := greedy.Text[:strings.Index(greedy.Text, stop)]
	samples := native(reluRef, goldenTexts[0], api.GenerateOptions{MaxNewTokens: 10, DoSample: true, Temperature: 0.8, Seed: 9, NumReturnSequences: 3})

	for _, tc := range []struct {
		name    string
		model   string
		req     api.CompletionRequest
		texts   []string
		reasons []string
	}{
		{"greedy", longModel, api.CompletionRequest{Prompt: api.Prompt{Texts: goldenTexts[1:2]}, MaxTokens: ptr(20), Temperature: ptr(0.0)},
			[]string{greedy.Text}, []string{greedy.FinishReason}},
		{"greedy n=2", longModel, api.CompletionRequest{Prompt: api.Prompt{Texts: goldenTexts[1:2]}, MaxTokens: ptr(20), Temperature: ptr(0.0), N: ptr(2)},
			[]string{greedy.Text, greedy.Text}, []string{greedy.FinishReason, greedy.FinishReason}},
		{"sampling n=3", reluRef, api.CompletionRequest{Prompt: api.Prompt{Texts: goldenTexts[:1]}, MaxTokens: ptr(10), Temperature: ptr(0.8), Seed: ptr(uint64(9)), N: ptr(3)},
			[]string{samples[0].Text, samples[1].Text, samples[2].Text}, []string{samples[0].FinishReason, samples[1].FinishReason, samples[2].FinishReason}},
		{"two prompts", longModel, api.CompletionRequest{Prompt: api.Prompt{Texts: []string{goldenTexts[1], goldenTexts[1]}}, MaxTokens: ptr(20), Temperature: ptr(0.0)},
			[]string{greedy.Text, greedy.Text}, []string{greedy.FinishReason, greedy.FinishReason}},
		{"stop", longModel, api.CompletionRequest{Prompt: api.Prompt{Texts: goldenTexts[1:2]}, MaxTokens: ptr(20), Temperature: ptr(0.0), Stop: api.Stop{"zzzz", stop}},
			[]string{cut}, []string{"stop"}},
		{"echo", longModel, api.CompletionRequest{Prompt: api.Prompt{Texts: goldenTexts[1:2]}, MaxTokens: ptr(20), Temperature: ptr(0.0), Echo: true},
			[]string{goldenTexts[1] + greedy.Text}, []string{greedy.FinishReason}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Model = tc.model
			r := complete(t, ts, tc.req)
			if r.Object != "text_completion" || !strings.HasPrefix(r.ID, "cmpl-") || r.Model != tc.model || len(r.Choices) != len(tc.texts) {
				t.Fatalf("response %+v", r)
			}
			for i, c := range r.Choices {
				if c.Index != i || c.Text != tc.texts[i] || c.FinishReason == nil || *c.FinishReason != tc.reasons[i] {
					t.Errorf("choice %d: %q (%v), want %q (%s)", i, c.Text, c.FinishReason, tc.texts[i], tc.reasons[i])
				}
			}
			if r.Usage == nil || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens || r.Usage.PromptTokens == 0 {
				t.Errorf("usage %+v", r.Usage)
			}
			texts, reasons, chunks := streamCompletion(t, ts, tc.req)
			for i := range tc.texts {
				if texts[i] != tc.texts[i] || reasons[i] != tc.reasons[i] {
					t.Errorf("streamed choice %d: %q (%s), want %q (%s)", i, texts[i], reasons[i], tc.texts[i], tc.reasons[i])
				}
			}
			for _, c := range chunks {
				if c.ID != chunks[0].ID || c.Object != "text_completion" {
					t.Errorf("chunk %+v", c)
				}
			}
		})
	}

	t.Run("logprobs", func(t *testing.T) {
		r := complete(t, ts, api.CompletionRequest{Model: longModel, Prompt: api.Prompt{Texts: goldenTexts[1:2]}, MaxTokens: ptr(20), Temperature: ptr(0.0), Logprobs: ptr(2), Echo: true})
		lp := r.Choices[0].Logprobs
		if lp == nil {
			t.Fatalf("no logprobs: %+v", r.Choices[0])
		}
		// The tokens join to the text, but for special tokens, named by their piece, which
		// add no text.
		var joined strings.Builder
		specials := 0
		for i, tok := range lp.Tokens {
			if lp.TextOffset[i] != joined.Len() {
				t.Errorf("token %d %q: text_offset %d, want %d", i, tok, lp.TextOffset[i], joined.Len())
			}
			if tok == "</s>" || strings.HasPrefix(tok, "<extra_id_") {
				specials++
				continue
			}
			joined.WriteString(tok)
		}
		if joined.String() != r.Choices[0].Text || specials == 0 {
			t.Fatalf("logprobs %+v for %q", lp, r.Choices[0].Text)
		}
		gen := 0
		for i, tok := range lp.Tokens {
			if lp.TokenLogprobs[i] == nil {
				if gen > 0 || len(lp.TopLogprobs[i]) != 0 {
					t.Errorf("token %d: a prompt token after generated ones, or with alternatives", i)
				}
				continue
			}
			if *lp.TokenLogprobs[i] != greedy.TokenLogprobs[gen] || len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 2 || lp.TopLogprobs[i][0].Text != tok {
				t.Errorf("token %d: logprob %v (want %v), top %v", i, *lp.TokenLogprobs[i], greedy.TokenLogprobs[gen], lp.TopLogprobs[i])
			}
			gen++
		}
		if gen != len(greedy.IDs) {
			t.Errorf("%d generated tokens with logprobs, want %d", gen, len(greedy.IDs))
		}
	})
	t.Run("usage chunk", func(t *testing.T) {
		_, _, chunks := streamCompletion(t, ts, api.CompletionRequest{Model: reluRef, Prompt: api.Prompt{IDs: [][]int{{100, 200, 1}}}, MaxTokens: ptr(4), Temperature: ptr(0.0),
			StreamOptions: &api.StreamOptions{IncludeUsage: true}})
		last := chunks[len(chunks)-1]
		if last.Usage == nil || len(last.Choices) != 0 || last.Usage.PromptTokens != 3 {
			t.Errorf("last chunk %+v", last)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, body := range []string{
			`{"model":"` + reluRef + `","prompt":"x","suffix":"y"}`,
			`{"model":"` + reluRef + `","prompt":"x","logit_bias":{"5":1}}`,
			`{"model":"` + reluRef + `","prompt":"x","presence_penalty":0.5}`,
			`{"model":"` + reluRef + `","prompt":"x","n":0}`,
			`{"model":"` + reluRef + `","prompt":"x","best_of":3}`,
			`{"model":"` + reluRef + `","prompt":"x","logprobs":6}`,
			`{"model":"` + reluRef + `","prompt":"x","max_tokens":100000}`,
			`{"model":"` + reluRef + `","prompt":[]}`,
			`{"model":"` + reluRef + `","prompt":"x","temperature":-1}`,
		} {
			status, _, b := do(t, http.MethodPost, ts.URL+"/v1/completions", body)
			if status != http.StatusBadRequest || errorCode(b) == "" {
				t.Errorf("%s: %d %s", body, status, b)
			}
		}
		// Unknown fields are ignored, as OpenAI clients send many.
		status, _, b := do(t, http.MethodPost, ts.URL+"/v1/completions", `{"model":"`+reluRef+`","prompt":"x","user":"u","max_tokens":2,"something_new":true}`)
		if status != http.StatusOK {
			t.Errorf("unknown field: %d %s", status, b)
		}
	})
	t.Run("models", func(t *testing.T) {
		status, _, b := do(t, http.MethodGet, ts.URL+"/v1/models", "")
		var l api.OpenAIModelList
		if status != http.StatusOK || json.Unmarshal(b, &l) != nil || l.Object != "list" {
			t.Fatalf("%d %s", status, b)
		}
		var ids []string
		for _, m := range l.Data {
			ids = append(ids, m.ID)
		}
		if want := longModel + "," + gatedRef + "," + reluRef; strings.Join(ids, ",") != want {
			t.Errorf("models %v, want %s: the registry's, the cache's (pulled) and the directory model, sorted", ids, want)
		}
	})
}
