package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/serve/api"
)

// useModel acquires the request's model (loading it if needed) and records its name for
// the metrics and the request log. The caller calls release when done.
func (s *Server) useModel(c *gin.Context, name string, keepAlive *api.Duration) (*resident, func(), error) {
	var ka *time.Duration
	if keepAlive != nil {
		d := keepAlive.Duration
		ka = &d
	}
	r, release, err := s.models.acquire(c.Request.Context(), name, ka)
	if err != nil {
		return nil, nil, err
	}
	c.Set(modelKey, r.name)
	return r, release, nil
}

// tokenize returns the token ids of texts with the model's tokenizer (</s> appended).
func (r *resident) tokenize(what string, texts []string) ([][]int, error) {
	if r.tok == nil {
		return nil, fmt.Errorf("%w: %s has no spiece.model: send token ids", ErrNoTokenizer, r.name)
	}
	out := make([][]int, len(texts))
	for i, t := range texts {
		ids, err := r.tok.Encode(t)
		if err != nil {
			return nil, badRequest("%s %d: %v", what, i, err)
		}
		out[i] = ids
	}
	return out, nil
}

// decode returns the text of ids, special tokens left out; "" without a tokenizer.
func (r *resident) decode(ids []int) string {
	if r.tok == nil {
		return ""
	}
	text, err := r.tok.Decode(ids, true)
	if err != nil {
		return ""
	}
	return text
}

// inputs turns a request's one text, texts or token ids (exactly one of them) into token
// sequences within the limits.
func (s *Server) inputs(r *resident, input string, texts []string, ids [][]int) ([][]int, error) {
	set := 0
	for _, ok := range []bool{input != "", texts != nil, ids != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return nil, badRequest("set exactly one of input, inputs and input_ids")
	}
	if input != "" {
		texts = []string{input}
	}
	n := len(texts) + len(ids)
	switch {
	case n == 0:
		return nil, badRequest("no inputs")
	case n > s.cfg.Limits.MaxInputs:
		return nil, overLimit("%d inputs, the limit is %d", n, s.cfg.Limits.MaxInputs)
	}
	if texts != nil {
		var err error
		if ids, err = r.tokenize("input", texts); err != nil {
			return nil, err
		}
	}
	for i, in := range ids {
		if err := s.checkLen(fmt.Sprintf("input %d", i), in); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// checkLen enforces Limits.MaxInputTokens.
func (s *Server) checkLen(what string, ids []int) error {
	if len(ids) == 0 {
		return badRequest("%s is empty", what)
	}
	if len(ids) > s.cfg.Limits.MaxInputTokens {
		return overLimit("%s has %d tokens, the limit is %d", what, len(ids), s.cfg.Limits.MaxInputTokens)
	}
	return nil
}

// genOptions converts the wire options, enforcing Limits.MaxNewTokens; the engine checks
// the rest.
func (s *Server) genOptions(o api.GenerateOptions) (infer.GenerateOptions, error) {
	if o.MaxNewTokens < 0 || o.MaxNewTokens > s.cfg.Limits.MaxNewTokens {
		return infer.GenerateOptions{}, overLimit("max_new_tokens %d outside 1..%d", o.MaxNewTokens, s.cfg.Limits.MaxNewTokens)
	}
	return infer.GenerateOptions{
		MaxNewTokens: o.MaxNewTokens, NumBeams: o.NumBeams, LengthPenalty: o.LengthPenalty,
		EarlyStopping: o.EarlyStopping, NumReturnSequences: o.NumReturnSequences, Sample: o.DoSample,
		Temperature: o.Temperature, TopK: o.TopK, TopP: o.TopP, Seed: o.Seed, TopLogprobs: o.TopLogprobs,
	}, nil
}

// countTokens records a request's tokens in the metrics.
func (s *Server) countTokens(model string, in, out int) {
	s.metrics.tokensIn.WithLabelValues(model).Add(float64(in))
	if out > 0 {
		s.metrics.tokensOut.WithLabelValues(model).Add(float64(out))
	}
}

func totalLen(ids [][]int) int {
	n := 0
	for _, x := range ids {
		n += len(x)
	}
	return n
}

// generate answers POST /api/generate, as one JSON object or, with "stream": true, as
// server-sent events.
func (s *Server) generate(c *gin.Context) {
	var req api.GenerateRequest
	if err := decodeJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	opts, err := s.genOptions(req.GenerateOptions)
	if err != nil {
		writeError(c, err)
		return
	}
	r, release, err := s.useModel(c, req.Model, req.KeepAlive)
	if err != nil {
		writeError(c, err)
		return
	}
	defer release()
	inputs, err := s.inputs(r, req.Input, req.Inputs, req.InputIDs)
	if err != nil {
		writeError(c, err)
		return
	}
	if !req.Stream {
		gens, err := r.batcher.Generate(c.Request.Context(), inputs, opts, nil)
		if err != nil {
			writeError(c, err)
			return
		}
		c.PureJSON(http.StatusOK, s.generateResponse(r, inputs, gens))
		return
	}

	sse := newSSE(c, "error")
	detok := newDetokenizer(r)
	gens, err := s.runStream(c.Request.Context(), r, inputs, opts, func(toks []infer.Token) error {
		for _, t := range toks {
			st := &api.StreamToken{Input: t.Input, Sequence: t.Sequence, ID: t.ID, Text: detok.add(t.Input, t.Sequence, t.ID), Logprob: t.Logprob}
			st.TopLogprobs = r.topLogprobs(t.Top)
			if err := sse.event("token", api.GenerateResponse{Model: r.name, Token: st}); err != nil {
				return err
			}
		}
		return sse.flush()
	})
	if err != nil {
		sse.fail(err)
		return
	}
	if err := sse.event("done", s.generateResponse(r, inputs, gens)); err == nil {
		sse.flush()
	}
}

// generateResponse builds the answer to a generation and counts its tokens.
func (s *Server) generateResponse(r *resident, inputs [][]int, gens []infer.Generation) api.GenerateResponse {
	eos := r.model.Shape().EOSTokenID
	out := api.GenerateResponse{Model: r.name, Done: true, Results: make([]api.Generation, len(gens))}
	usage := api.Usage{InputTokens: totalLen(inputs)}
	for i, g := range gens {
		hs := make([]api.Hypothesis, len(g.Hypotheses))
		for j, h := range g.Hypotheses {
			ids := h.IDs[1:] // without the decoder start token
			usage.OutputTokens += len(ids)
			finish := "length"
			if len(ids) > 0 && ids[len(ids)-1] == eos {
				finish = "stop"
			}
			hs[j] = api.Hypothesis{
				Text: r.decode(ids), IDs: ids, TokenLogprobs: h.TokenLogprobs, Score: h.Score, FinishReason: finish,
			}
			if hs[j].TokenLogprobs == nil {
				hs[j].TokenLogprobs = []float64{}
			}
			for _, top := range h.TopLogprobs {
				hs[j].TopLogprobs = append(hs[j].TopLogprobs, r.topLogprobs(top))
			}
		}
		out.Results[i] = api.Generation{Hypotheses: hs}
	}
	out.Usage = &usage
	s.countTokens(r.name, usage.InputTokens, usage.OutputTokens)
	return out
}

// topLogprobs converts the engine's alternatives, with each token's text.
func (r *resident) topLogprobs(top []infer.TokenLogprob) []api.TokenLogprob {
	if top == nil {
		return nil
	}
	out := make([]api.TokenLogprob, len(top))
	for i, t := range top {
		out[i] = api.TokenLogprob{ID: t.ID, Text: r.pieceText(t.ID), Logprob: t.Logprob}
	}
	return out
}

// pieceText is the text of one token on its own, special tokens included.
func (r *resident) pieceText(id int) string {
	if r.tok == nil {
		return ""
	}
	t, err := r.tok.Decode([]int{id}, false)
	if err != nil {
		return ""
	}
	return t
}

// tokenQueue passes tokens from the Batcher's goroutine (which must not block) to the
// handler's: push appends and signals, take drains.
type tokenQueue struct {
	mu     sync.Mutex
	toks   []infer.Token
	notify chan struct{}
}

func (q *tokenQueue) push(t infer.Token) {
	q.mu.Lock()
	q.toks = append(q.toks, t)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *tokenQueue) take() []infer.Token {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.toks
	q.toks = nil
	return t
}

// runStream generates in the model's batch, passing tokens to emit as they are decided.
// When emit fails (the client is gone), the request leaves the batch before the next step.
func (s *Server) runStream(ctx context.Context, r *resident, inputs [][]int, opts infer.GenerateOptions, emit func([]infer.Token) error) ([]infer.Generation, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := &tokenQueue{notify: make(chan struct{}, 1)}
	type result struct {
		gens []infer.Generation
		err  error
	}
	done := make(chan result, 1)
	go func() {
		g, err := r.batcher.Generate(ctx, inputs, opts, q.push)
		done <- result{g, err}
	}()
	for {
		select {
		case <-q.notify:
			if err := emit(q.take()); err != nil {
				cancel()
				<-done
				return nil, err
			}
		case res := <-done:
			// Generate calls push no more once it has returned.
			if toks := q.take(); len(toks) > 0 && res.err == nil {
				if err := emit(toks); err != nil {
					return nil, err
				}
			}
			return res.gens, res.err
		}
	}
}

// detokenizer turns streamed tokens into text increments, per (input, sequence), in
// constant time per token: the text a token adds is the decoding of a window that starts
// one token before the last increment, minus the decoding of the window without the new
// token (text-generation-inference's prefix and read offsets). Starting the window on an
// already emitted token keeps the space SentencePiece puts before a word, which decoding
// strips at the start of a text. Decoding rules that reach further back (rare) can make the
// increments differ from the final text; the final event carries the authoritative text.
type detokenizer struct {
	r    *resident
	seqs map[[2]int]*detokSeq
}

type detokSeq struct {
	ids              []int
	prefix, readFrom int // the window is ids[prefix:]; ids[prefix:readFrom] were emitted
}

func newDetokenizer(r *resident) *detokenizer {
	return &detokenizer{r: r, seqs: map[[2]int]*detokSeq{}}
}

// add appends id to the sequence and returns the text it adds.
func (d *detokenizer) add(input, seq, id int) string {
	k := [2]int{input, seq}
	st := d.seqs[k]
	if st == nil {
		st = &detokSeq{}
		d.seqs[k] = st
	}
	st.ids = append(st.ids, id)
	before := d.r.decode(st.ids[st.prefix:st.readFrom])
	after := d.r.decode(st.ids[st.prefix:])
	if len(after) <= len(before) {
		return "" // nothing visible yet (a special token, or a piece that adds no text)
	}
	delta := after[len(before):]
	if !strings.HasPrefix(after, before) {
		n := 0
		for n < len(after) && n < len(before) && after[n] == before[n] {
			n++
		}
		delta = after[n:]
	}
	st.prefix, st.readFrom = st.readFrom, len(st.ids)
	return delta
}

// sse writes server-sent events. The status line and headers go with the first event, so
// that a request failing before any output still gets an ordinary error answer.
type sse struct {
	c       *gin.Context
	w       *bufio.Writer
	started bool
	// errorEvent names the event of an error after the first event: "error" in the
	// native API; "" in the OpenAI API, whose streams carry errors as plain data.
	errorEvent string
}

func newSSE(c *gin.Context, errorEvent string) *sse {
	return &sse{c: c, w: bufio.NewWriter(c.Writer), errorEvent: errorEvent}
}

func (e *sse) start() {
	if e.started {
		return
	}
	e.started = true
	h := e.c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	e.c.Status(http.StatusOK)
}

// event writes one event (name may be empty) with v as its JSON data.
func (e *sse) event(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return e.raw(name, b)
}

func (e *sse) raw(name string, data []byte) error {
	e.start()
	if name != "" {
		e.w.WriteString("event: ")
		e.w.WriteString(name)
		e.w.WriteByte('\n')
	}
	e.w.WriteString("data: ")
	e.w.Write(data)
	_, err := e.w.WriteString("\n\n")
	return err
}

func (e *sse) flush() error {
	if err := e.w.Flush(); err != nil {
		return err
	}
	e.c.Writer.Flush()
	return nil
}

// fail ends the stream with err: an ordinary error answer before the first event, an
// "error" event after it.
func (e *sse) fail(err error) {
	if !e.started {
		writeError(e.c, err)
		return
	}
	e.c.Error(err) //nolint:errcheck // for the request log
	if errors.Is(e.c.Request.Context().Err(), context.Canceled) {
		return // nobody is listening (a timeout, by contrast, is reported)
	}
	e.raw(e.errorEvent, streamError(err))
	e.flush()
}

// score answers POST /api/score.
func (s *Server) score(c *gin.Context) {
	var req api.ScoreRequest
	if err := decodeJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	switch n := len(req.Pairs); {
	case n == 0:
		writeError(c, badRequest("no pairs"))
		return
	case n > s.cfg.Limits.MaxInputs:
		writeError(c, overLimit("%d pairs, the limit is %d", n, s.cfg.Limits.MaxInputs))
		return
	}
	r, release, err := s.useModel(c, req.Model, req.KeepAlive)
	if err != nil {
		writeError(c, err)
		return
	}
	defer release()
	pairs := make([]infer.ScorePair, len(req.Pairs))
	in := 0
	for i, p := range req.Pairs {
		if pairs[i].Input, err = s.pairSide(r, fmt.Sprintf("pair %d input", i), p.Input, p.InputIDs); err == nil {
			pairs[i].Target, err = s.pairSide(r, fmt.Sprintf("pair %d target", i), p.Target, p.TargetIDs)
		}
		if err != nil {
			writeError(c, err)
			return
		}
		in += len(pairs[i].Input) + len(pairs[i].Target)
	}
	res, err := r.model.Score(c.Request.Context(), pairs)
	if err != nil {
		writeError(c, err)
		return
	}
	out := api.ScoreResponse{Model: r.name, Results: make([]api.ScoreResult, len(res)), Usage: api.Usage{InputTokens: in}}
	for i, x := range res {
		out.Results[i] = api.ScoreResult{SumLogprob: x.SumLogprob, TargetIDs: pairs[i].Target, TokenLogprobs: x.TokenLogprobs}
	}
	s.countTokens(r.name, in, 0)
	c.PureJSON(http.StatusOK, out)
}

// pairSide returns one side of a score pair: a text (tokenized) or ids, not both.
func (s *Server) pairSide(r *resident, what, text string, ids []int) ([]int, error) {
	switch {
	case text != "" && ids != nil:
		return nil, badRequest("%s: set the text or the ids, not both", what)
	case text != "":
		t, err := r.tokenize(what, []string{text})
		if err != nil {
			return nil, err
		}
		ids = t[0]
	}
	return ids, s.checkLen(what, ids)
}

// encode answers POST /api/encode.
func (s *Server) encode(c *gin.Context) {
	var req api.EncodeRequest
	if err := decodeJSON(c, &req, true); err != nil {
		writeError(c, err)
		return
	}
	r, release, err := s.useModel(c, req.Model, req.KeepAlive)
	if err != nil {
		writeError(c, err)
		return
	}
	defer release()
	inputs, err := s.inputs(r, req.Input, req.Inputs, req.InputIDs)
	if err != nil {
		writeError(c, err)
		return
	}
	encs, err := r.model.Encode(c.Request.Context(), inputs)
	if err != nil {
		writeError(c, err)
		return
	}
	d := r.model.Shape().DModel
	out := api.EncodeResponse{Model: r.name, Embeddings: make([][]float32, len(encs)), Usage: api.Usage{InputTokens: totalLen(inputs)}}
	for i, e := range encs {
		out.Embeddings[i] = e.Mean
		if req.Hidden {
			rows := make([][]float32, len(e.Hidden)/d)
			for j := range rows {
				rows[j] = e.Hidden[j*d : (j+1)*d]
			}
			out.Hidden = append(out.Hidden, rows)
		}
	}
	s.countTokens(r.name, out.Usage.InputTokens, 0)
	c.PureJSON(http.StatusOK, out)
}
