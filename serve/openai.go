package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/serve/api"
	"github.com/t5zoo/t5zoo/zoo"
)

// OpenAI's limits and defaults for the completions API.
const (
	openAIDefaultMaxTokens = 16 // max_tokens when absent
	openAIMaxLogprobs      = 5  // logprobs at most
	openAIMaxStops         = 4  // stop strings at most
)

// openAIModels answers GET /v1/models: every model a request can name, once each and
// sorted: the local cache's, the registry's (pulled on first use) and the --model
// directories. A registry that cannot be listed leaves its models out (and is logged), so
// that clients which list models at start still work with what is local.
func (s *Server) openAIModels(c *gin.Context) {
	ctx := c.Request.Context()
	local, err := s.cache.List(ctx)
	if err != nil {
		writeError(c, err)
		return
	}
	byID := map[string]api.OpenAIModel{}
	if refs, err := s.store.ListManifests(ctx); err != nil {
		if ctx.Err() != nil {
			writeError(c, err)
			return
		}
		s.log.Warn("GET /v1/models: listing the registry failed: its models are left out", "registry", storeName(s.store), "err", err)
	} else {
		for _, ref := range refs {
			byID[ref.String()] = openAIModel(ref.String(), time.Time{})
		}
	}
	for _, lm := range local {
		byID[lm.Ref.String()] = openAIModel(lm.Ref.String(), lm.Manifest.Created)
	}
	for name := range s.cfg.Models {
		byID[name] = openAIModel(name, time.Time{}) // a directory shadows the reference it spells
	}
	out := api.OpenAIModelList{Object: "list", Data: make([]api.OpenAIModel, 0, len(byID))}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		out.Data = append(out.Data, byID[id])
	}
	c.PureJSON(http.StatusOK, out)
}

// openAIModelByID answers GET /v1/models/{id}: the model, or 404 when no request could
// use it. The id is a model name as requests give it (it may hold "/" and ":").
func (s *Server) openAIModelByID(c *gin.Context) {
	id := strings.TrimPrefix(c.Param("id"), "/")
	m, err := s.findModel(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.PureJSON(http.StatusOK, m)
}

// findModel returns the model a request naming name would use, without loading it.
func (s *Server) findModel(ctx context.Context, name string) (api.OpenAIModel, error) {
	key, ref, isDir, err := s.models.key(name)
	switch {
	case err != nil:
		// Not a model name (a malformed one is a 400 in requests): no model has it.
		return api.OpenAIModel{}, fmt.Errorf("%w: model %q: no model has this name", zoo.ErrNotFound, name)
	case isDir:
		return openAIModel(key, time.Time{}), nil
	}
	if lm, err := s.cache.Model(ref); err == nil {
		return openAIModel(key, lm.Manifest.Created), nil
	}
	if _, err := s.store.GetManifest(ctx, ref); err != nil {
		return api.OpenAIModel{}, fmt.Errorf("model %s: %w", key, err)
	}
	return openAIModel(key, time.Time{}), nil // as the listing has it
}

// openAIModel is a model in OpenAI's shape; created is the push time of a pulled model (0
// for the others: the listing does not read every manifest of the registry).
func openAIModel(id string, created time.Time) api.OpenAIModel {
	m := api.OpenAIModel{ID: id, Object: "model", OwnedBy: "t5zoo"}
	if !created.IsZero() {
		m.Created = created.Unix()
	}
	return m
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
// prompt and n, text or server-sent chunks ending with "data: [DONE]". Both go through the
// stream of tokens, so that a completion whose text reaches a stop string leaves the
// decoding batch at once (infer.StopSet) instead of decoding on to max_tokens.
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
	if err == nil {
		err = s.checkDecodeMemory(r, prompts, cp.opts)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	resp := api.CompletionResponse{ID: "cmpl-" + randomID(), Object: "text_completion", Created: time.Now().Unix(), Model: r.name}
	choices := make([]*choice, len(prompts)*cp.n)
	for i := range choices {
		choices[i] = newChoice(r, cp, prompts[i/cp.n])
	}
	var sse *sse
	if cp.stream {
		sse = newSSE(c, "")
	}
	var ended func(infer.Token) bool
	if slices.ContainsFunc(cp.stop, func(s string) bool { return s != "" }) {
		ended = newStopWatch(r, cp.stop).ended
	}
	gens, err := s.runStream(c.Request.Context(), r, prompts, cp.opts, ended, func(toks []infer.Token) error {
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
				if sse == nil {
					continue
				}
				if out, ok := ch.next(i); ok {
					chunk := resp
					chunk.Choices = []api.CompletionChoice{out}
					if err := sse.event("", chunk); err != nil {
						return err
					}
				}
			}
		}
		if sse == nil {
			return nil
		}
		return sse.flush()
	})
	if err != nil {
		if sse != nil {
			sse.fail(err)
		} else {
			writeError(c, err)
		}
		return
	}
	usage := s.completionUsage(r, prompts, gens, choices)
	if sse == nil {
		for i, ch := range choices {
			resp.Choices = append(resp.Choices, ch.whole(i))
		}
		resp.Usage = &usage
		c.PureJSON(http.StatusOK, resp)
		return
	}
	if cp.usage {
		u := resp
		u.Choices, u.Usage = []api.CompletionChoice{}, &usage
		sse.event("", u)
	}
	sse.raw("", []byte("[DONE]"))
	sse.flush()
}

// completionUsage counts the tokens of a completion request: each choice's, up to and
// including the token that completed its stop string (or </s>, or the max_tokens-th). The
// metrics record the tokens the engine decoded, once per sequence.
func (s *Server) completionUsage(r *resident, prompts [][]int, gens []infer.Generation, choices []*choice) api.CompletionUsage {
	u := api.CompletionUsage{PromptTokens: totalLen(prompts)}
	for _, ch := range choices {
		u.CompletionTokens += len(ch.ids)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	decoded := 0
	for _, g := range gens {
		for _, h := range g.Hypotheses {
			decoded += len(h.IDs) - 1
		}
	}
	s.countTokens(r.name, u.PromptTokens, decoded)
	return u
}

// choice builds one completion as its tokens arrive: the text (after the echoed prompt),
// OpenAI's logprobs, stop strings, and, when streaming, what has been sent.
type choice struct {
	r        *resident
	cp       completion
	detok    *detokenizer
	ids      []int
	text     string // decoded completion, prompt excluded, cut at a stop string
	scanned  int    // bytes of text searched for stop strings
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
				ch.lp.Tokens = append(ch.lp.Tokens, r.tokenName(id, piece))
				ch.lp.TokenLogprobs = append(ch.lp.TokenLogprobs, nil)
				ch.lp.TopLogprobs = append(ch.lp.TopLogprobs, api.TopLogprobs{})
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
	tops := api.TopLogprobs{}
	if ch.cp.logprobs > 0 {
		tops = ch.topLogprobs(top) // before add: the alternatives at this position
	}
	ch.ids = append(ch.ids, id)
	piece := ch.detok.add(0, 0, id)
	if ch.cp.logprobs >= 0 {
		lp := logprob
		ch.lp.Tokens = append(ch.lp.Tokens, ch.r.tokenName(id, piece))
		ch.lp.TokenLogprobs = append(ch.lp.TokenLogprobs, &lp)
		ch.lp.TopLogprobs = append(ch.lp.TopLogprobs, tops)
		ch.lp.TextOffset = append(ch.lp.TextOffset, len(ch.prefix)+len(ch.text))
	}
	ch.text += piece
	i := findStop(ch.text, ch.scanned, ch.cp.stop)
	ch.scanned = len(ch.text)
	if i >= 0 {
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

// topLogprobs names the alternatives at the next position as the tokens are named (what
// each would add to the text here), best first; a name that two tokens share keeps the
// better one.
func (ch *choice) topLogprobs(top []infer.TokenLogprob) api.TopLogprobs {
	out := make(api.TopLogprobs, 0, len(top))
	for _, t := range top {
		name := ch.r.tokenName(t.ID, ch.detok.peek(0, 0, t.ID))
		if !slices.ContainsFunc(out, func(e api.TextLogprob) bool { return e.Text == name }) {
			out = append(out, api.TextLogprob{Text: name, Logprob: t.Logprob})
		}
	}
	return out
}

// findStop returns where the first stop string starts in text, or -1, searching only what
// follows scanned (bytes already searched) and the tail of it a stop string could start
// in, so that a long completion costs linear time.
func findStop(text string, scanned int, stops []string) int {
	at := -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		from := max(0, scanned-len(st)+1)
		if i := strings.Index(text[from:], st); i >= 0 && (at < 0 || from+i < at) {
			at = from + i
		}
	}
	return at
}

// stopWatch finds, on the Batcher's goroutine, the token at which each sequence's text
// reaches a stop string: the token at which choice.add ends the choice, since both decode
// the same tokens the same way.
type stopWatch struct {
	stops []string
	detok *detokenizer
	seqs  map[[2]int]*watchedText
}

type watchedText struct {
	text    string
	scanned int
	done    bool
}

func newStopWatch(r *resident, stops []string) *stopWatch {
	return &stopWatch{stops: stops, detok: newDetokenizer(r), seqs: map[[2]int]*watchedText{}}
}

// ended reports whether t completes a stop string in its sequence, which then needs no
// further token (the n greedy copies of a prompt share a sequence, and stop together).
func (w *stopWatch) ended(t infer.Token) bool {
	k := [2]int{t.Input, t.Sequence}
	st := w.seqs[k]
	if st == nil {
		st = &watchedText{}
		w.seqs[k] = st
	}
	if st.done {
		return false
	}
	st.text += w.detok.add(t.Input, t.Sequence, t.ID)
	at := findStop(st.text, st.scanned, w.stops)
	st.scanned = len(st.text)
	if at >= 0 {
		st.done = true
		st.text = "" // no longer needed
		return !t.Last
	}
	return false
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
// yet, holding back, until the choice is done, a tail that could still become the start of
// a stop string, and the logprobs of the tokens that start in the text sent. ok is false
// when there is nothing to send.
func (ch *choice) next(index int) (out api.CompletionChoice, ok bool) {
	end := len(ch.text)
	if !ch.done {
		end = max(ch.sent, holdBack(ch.text, ch.cp.stop))
	}
	n := len(ch.lp.Tokens)
	if !ch.done {
		for n > ch.lpSent && ch.lp.TextOffset[n-1] >= len(ch.prefix)+end {
			n--
		}
	}
	if ch.chunks > 0 && !ch.done && end == ch.sent && n == ch.lpSent {
		return out, false
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

// holdBack returns how much of text can be streamed before the choice is done: all of it
// but its longest tail that is the start of a stop string (a stop string can only begin
// there), cut back to the start of a UTF-8 sequence so that no chunk splits a character.
func holdBack(text string, stops []string) int {
	hold := 0
	for _, st := range stops {
		for k := min(len(st)-1, len(text)); k > hold; k-- {
			if strings.HasSuffix(text, st[:k]) {
				hold = k
				break
			}
		}
	}
	end := len(text) - hold
	for end > 0 && end < len(text) && !utf8.RuneStart(text[end]) {
		end--
	}
	return end
}

// randomID returns 24 random hex digits.
func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
