package serve

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/serve/api"
)

// OpenAI's limits and defaults for the completions API.
const (
	openAIDefaultMaxTokens = 16 // max_tokens when absent
	openAIMaxLogprobs      = 5  // logprobs at most
	openAIMaxStops         = 4  // stop strings at most
)

// openAIModels answers GET /v1/models: the models /api/models lists.
func (s *Server) openAIModels(c *gin.Context) {
	local, err := s.cache.List(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	out := api.OpenAIModelList{Object: "list", Data: []api.OpenAIModel{}}
	for _, lm := range local {
		out.Data = append(out.Data, api.OpenAIModel{ID: lm.Ref.String(), Object: "model", Created: lm.Manifest.Created.Unix(), OwnedBy: "t5zoo"})
	}
	for _, name := range sortedKeys(s.cfg.Models) {
		out.Data = append(out.Data, api.OpenAIModel{ID: name, Object: "model", OwnedBy: "t5zoo"})
	}
	c.PureJSON(http.StatusOK, out)
}

// completion is a parsed CompletionRequest.
type completion struct {
	n        int // completions per prompt
	opts     infer.GenerateOptions
	greedyN  bool // greedy decoding computed once per prompt and repeated n times
	logprobs int  // -1: none
	echo     bool
	stop     []string
	stream   bool
	usage    bool
}

// parseCompletion checks the request against what the server implements.
func (s *Server) parseCompletion(req *api.CompletionRequest) (completion, error) {
	cp := completion{n: 1, logprobs: -1, echo: req.Echo, stop: req.Stop, stream: req.Stream}
	cp.usage = req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	switch {
	case req.Suffix != nil && *req.Suffix != "":
		return cp, badRequest("suffix is not supported")
	case len(req.LogitBias) > 0:
		return cp, badRequest("logit_bias is not supported")
	case req.PresencePenalty != nil && *req.PresencePenalty != 0, req.FrequencyPenalty != nil && *req.FrequencyPenalty != 0:
		return cp, badRequest("presence_penalty and frequency_penalty are not supported")
	case len(req.Stop) > openAIMaxStops:
		return cp, badRequest("stop: at most %d strings", openAIMaxStops)
	}
	if req.N != nil {
		cp.n = *req.N
	}
	if cp.n < 1 || cp.n > 64 {
		return cp, badRequest("n %d outside 1..64", cp.n)
	}
	if req.BestOf != nil && *req.BestOf != cp.n {
		return cp, badRequest("best_of is supported only equal to n")
	}
	maxTokens := openAIDefaultMaxTokens
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if maxTokens < 1 || maxTokens > s.cfg.Limits.MaxNewTokens {
		return cp, overLimit("max_tokens %d outside 1..%d", maxTokens, s.cfg.Limits.MaxNewTokens)
	}
	if req.Logprobs != nil {
		cp.logprobs = *req.Logprobs
		if cp.logprobs < 0 || cp.logprobs > openAIMaxLogprobs {
			return cp, badRequest("logprobs %d outside 0..%d", cp.logprobs, openAIMaxLogprobs)
		}
	}
	cp.opts = infer.GenerateOptions{MaxNewTokens: maxTokens, TopLogprobs: max(cp.logprobs, 0)}
	temp := 1.0 // OpenAI's default
	if req.Temperature != nil {
		temp = *req.Temperature
	}
	if temp < 0 || math.IsNaN(temp) || temp > 2 {
		return cp, badRequest("temperature %v outside 0..2", temp)
	}
	if temp == 0 {
		cp.greedyN = cp.n > 1
		return cp, nil
	}
	cp.opts.Sample, cp.opts.Temperature, cp.opts.NumReturnSequences = true, temp, cp.n
	if req.TopP != nil {
		cp.opts.TopP = *req.TopP
	}
	if req.TopK != nil {
		cp.opts.TopK = *req.TopK
	}
	if req.Seed != nil {
		cp.opts.Seed = *req.Seed
	} else {
		cp.opts.Seed = mrand.Uint64()
	}
	return cp, nil
}

// completions answers POST /v1/completions, OpenAI's completions API: a completion per
// prompt and n, text or server-sent chunks ending with "data: [DONE]".
func (s *Server) completions(c *gin.Context) {
	var req api.CompletionRequest
	if err := decodeJSON(c, &req, false); err != nil {
		writeError(c, err)
		return
	}
	cp, err := s.parseCompletion(&req)
	if err != nil {
		writeError(c, err)
		return
	}
	r, release, err := s.useModel(c, req.Model, nil)
	if err != nil {
		writeError(c, err)
		return
	}
	defer release()
	prompts, err := s.inputs(r, "", req.Prompt.Texts, req.Prompt.IDs)
	if err != nil {
		writeError(c, err)
		return
	}
	resp := api.CompletionResponse{ID: "cmpl-" + randomID(), Object: "text_completion", Created: time.Now().Unix(), Model: r.name}
	choices := make([]*choice, len(prompts)*cp.n)
	for i := range choices {
		choices[i] = newChoice(r, cp, prompts[i/cp.n])
	}
	if !cp.stream {
		gens, err := r.batcher.Generate(c.Request.Context(), prompts, cp.opts, nil)
		if err != nil {
			writeError(c, err)
			return
		}
		usage := s.completionUsage(r, prompts, gens, cp)
		for i, ch := range choices {
			h := gens[i/cp.n].Hypotheses[0]
			if !cp.greedyN {
				h = gens[i/cp.n].Hypotheses[i%cp.n]
			}
			ids := h.IDs[1:]
			for k, id := range ids {
				ch.add(id, h.TokenLogprobs[k], topOf(h, k), k == len(ids)-1)
			}
			resp.Choices = append(resp.Choices, ch.whole(i))
		}
		resp.Usage = &usage
		c.PureJSON(http.StatusOK, resp)
		return
	}

	sse := newSSE(c, "")
	chunk := func(cs ...api.CompletionChoice) error {
		r := resp
		r.Choices = cs
		return sse.event("", r)
	}
	gens, err := s.runStream(c.Request.Context(), r, prompts, cp.opts, func(toks []infer.Token) error {
		for _, t := range toks {
			for j := range cp.n {
				if !cp.greedyN && j != t.Sequence {
					continue
				}
				i := t.Input*cp.n + j
				ch := choices[i]
				if ch.done {
					continue
				}
				ch.add(t.ID, t.Logprob, t.Top, t.Last)
				if out, ok := ch.next(i); ok {
					if err := chunk(out); err != nil {
						return err
					}
				}
			}
		}
		return sse.flush()
	})
	if err != nil {
		sse.fail(err)
		return
	}
	usage := s.completionUsage(r, prompts, gens, cp)
	if cp.usage {
		u := resp
		u.Choices, u.Usage = []api.CompletionChoice{}, &usage
		sse.event("", u)
	}
	sse.raw("", []byte("[DONE]"))
	sse.flush()
}

// completionUsage counts the tokens of a completion request (and records them).
func (s *Server) completionUsage(r *resident, prompts [][]int, gens []infer.Generation, cp completion) api.CompletionUsage {
	u := api.CompletionUsage{PromptTokens: totalLen(prompts)}
	for _, g := range gens {
		for _, h := range g.Hypotheses {
			u.CompletionTokens += len(h.IDs) - 1
		}
	}
	s.countTokens(r.name, u.PromptTokens, u.CompletionTokens)
	if cp.greedyN {
		u.CompletionTokens *= cp.n
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

func topOf(h infer.Hypothesis, k int) []infer.TokenLogprob {
	if h.TopLogprobs == nil {
		return nil
	}
	return h.TopLogprobs[k]
}

// choice builds one completion as its tokens arrive: the text (after the echoed prompt),
// OpenAI's logprobs, stop strings, and, when streaming, what has been sent.
type choice struct {
	r        *resident
	cp       completion
	detok    *detokenizer
	ids      []int
	text     string // decoded completion, prompt excluded, cut at a stop string
	prefix   string // the echoed prompt
	lp       api.CompletionLogprobs
	sent     int  // bytes of text streamed
	chunks   int  // chunks streamed
	lpSent   int  // logprobs entries streamed
	done     bool // no more tokens are taken
	finishAt string
}

func newChoice(r *resident, cp completion, prompt []int) *choice {
	ch := &choice{r: r, cp: cp, detok: newDetokenizer(r)}
	if cp.echo {
		d := newDetokenizer(r)
		for _, id := range prompt {
			piece := d.add(0, 0, id)
			if cp.logprobs >= 0 {
				ch.lp.Tokens = append(ch.lp.Tokens, piece)
				ch.lp.TokenLogprobs = append(ch.lp.TokenLogprobs, nil)
				ch.lp.TopLogprobs = append(ch.lp.TopLogprobs, nil)
				ch.lp.TextOffset = append(ch.lp.TextOffset, len(ch.prefix))
			}
			ch.prefix += piece
		}
	}
	return ch
}

// add appends a generated token; last marks the sequence's final token.
func (ch *choice) add(id int, logprob float64, top []infer.TokenLogprob, last bool) {
	if ch.done {
		return
	}
	ch.ids = append(ch.ids, id)
	piece := ch.detok.add(0, 0, id)
	if ch.cp.logprobs >= 0 {
		lp := logprob
		ch.lp.Tokens = append(ch.lp.Tokens, piece)
		ch.lp.TokenLogprobs = append(ch.lp.TokenLogprobs, &lp)
		var tops map[string]float64
		if ch.cp.logprobs > 0 {
			tops = make(map[string]float64, len(top))
			for _, t := range top {
				if _, dup := tops[ch.r.pieceText(t.ID)]; !dup {
					tops[ch.r.pieceText(t.ID)] = t.Logprob
				}
			}
		}
		ch.lp.TopLogprobs = append(ch.lp.TopLogprobs, tops)
		ch.lp.TextOffset = append(ch.lp.TextOffset, len(ch.prefix)+len(ch.text))
	}
	ch.text += piece
	if i := ch.stopAt(); i >= 0 {
		ch.text = ch.text[:i]
		ch.done, ch.finishAt = true, "stop"
		// Drop the tokens that start at or after the stop string.
		n := len(ch.lp.TextOffset)
		for n > 0 && ch.lp.TextOffset[n-1] >= len(ch.prefix)+i && ch.lp.TokenLogprobs[n-1] != nil {
			n--
		}
		ch.lp.Tokens, ch.lp.TokenLogprobs = ch.lp.Tokens[:n], ch.lp.TokenLogprobs[:n]
		ch.lp.TopLogprobs, ch.lp.TextOffset = ch.lp.TopLogprobs[:n], ch.lp.TextOffset[:n]
		return
	}
	if last {
		ch.done, ch.finishAt = true, "length"
		if id == ch.r.model.Shape().EOSTokenID {
			ch.finishAt = "stop"
		}
	}
}

// stopAt returns where the first stop string starts in the text, or -1.
func (ch *choice) stopAt() int {
	at := -1
	for _, st := range ch.cp.stop {
		if st == "" {
			continue
		}
		if i := strings.Index(ch.text, st); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	return at
}

// whole returns the finished choice (not streamed).
func (ch *choice) whole(index int) api.CompletionChoice {
	out := api.CompletionChoice{Text: ch.prefix + ch.text, Index: index}
	reason := ch.finishAt
	out.FinishReason = &reason
	if ch.cp.logprobs >= 0 {
		lp := ch.lp
		out.Logprobs = &lp
	}
	return out
}

// next returns the stream chunk for what was added since the last one: the text not sent
// yet, holding back a tail that could still become the start of a stop string until the
// choice is done, and the new tokens' logprobs. ok is false when there is nothing to send.
func (ch *choice) next(index int) (out api.CompletionChoice, ok bool) {
	end := len(ch.text)
	if !ch.done {
		hold := 0
		for _, st := range ch.cp.stop {
			hold = max(hold, len(st)-1)
		}
		end = max(ch.sent, end-hold)
	}
	text := ch.text[ch.sent:end]
	if ch.chunks == 0 {
		text = ch.prefix + text
	}
	ch.sent = end
	out = api.CompletionChoice{Text: text, Index: index}
	if ch.done {
		reason := ch.finishAt
		out.FinishReason = &reason
	}
	if ch.cp.logprobs >= 0 {
		n := len(ch.lp.Tokens)
		from := min(ch.lpSent, n)
		out.Logprobs = &api.CompletionLogprobs{
			Tokens: ch.lp.Tokens[from:n], TokenLogprobs: ch.lp.TokenLogprobs[from:n],
			TopLogprobs: ch.lp.TopLogprobs[from:n], TextOffset: ch.lp.TextOffset[from:n],
		}
		ch.lpSent = n
	}
	ch.chunks++
	return out, true
}

// randomID returns 24 random hex digits.
func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
