package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/serve/api"
)

// generate answers POST /api/generate, as one JSON object or, with "stream": true, as
// server-sent events, or NDJSON lines when the request's Accept asks for them.
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
	if err == nil {
		err = s.checkDecodeMemory(r, inputs, opts)
	}
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

	var out eventStream = newSSE(c, "error")
	if wantsNDJSON(c) {
		out = newNDJSON(c)
	}
	detok := newDetokenizer(r)
	gens, err := s.runStream(c.Request.Context(), r, inputs, opts, nil, func(toks []infer.Token) error {
		for _, t := range toks {
			st := &api.StreamToken{Input: t.Input, Sequence: t.Sequence, ID: t.ID, Text: detok.add(t.Input, t.Sequence, t.ID), Logprob: t.Logprob}
			st.TopLogprobs = r.topLogprobs(t.Top)
			if err := out.event("token", api.GenerateResponse{Model: r.name, Token: st}); err != nil {
				return err
			}
		}
		return out.flush()
	})
	if err != nil {
		out.fail(err)
		return
	}
	if err := out.event("done", s.generateResponse(r, inputs, gens)); err == nil {
		out.flush()
	}
}

// wantsNDJSON reports whether the request's Accept header prefers NDJSON
// (application/x-ndjson or application/ndjson, as Ollama's clients send) to server-sent
// events; without the header, or with neither type, the stream is server-sent events.
func wantsNDJSON(c *gin.Context) bool {
	switch c.NegotiateFormat("text/event-stream", api.NDJSONType, "application/ndjson") {
	case api.NDJSONType, "application/ndjson":
		return true
	}
	return false
}

// eventStream is a stream of JSON values: server-sent events or NDJSON lines.
type eventStream interface {
	// event writes v; name is the event's name in server-sent events.
	event(name string, v any) error
	flush() error
	// fail ends the stream with err.
	fail(err error)
}

var (
	_ eventStream = (*sse)(nil)
	_ eventStream = (*ndjson)(nil)
)

// ndjson writes NDJSON lines (application/x-ndjson), as /api/pull does. As with sse, the
// status line and headers go with the first line.
type ndjson struct {
	c       *gin.Context
	w       *bufio.Writer
	started bool
}

func newNDJSON(c *gin.Context) *ndjson { return &ndjson{c: c, w: bufio.NewWriter(c.Writer)} }

func (n *ndjson) event(_ string, v any) error {
	b, err := marshalJSON(v)
	if err != nil {
		return err
	}
	return n.line(b)
}

func (n *ndjson) line(b []byte) error {
	if !n.started {
		n.started = true
		h := n.c.Writer.Header()
		h.Set("Content-Type", api.NDJSONType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		h.Set("X-Content-Type-Options", "nosniff")
		n.c.Status(http.StatusOK)
	}
	n.w.Write(b)
	return n.w.WriteByte('\n')
}

func (n *ndjson) flush() error {
	if err := n.w.Flush(); err != nil {
		return err
	}
	n.c.Writer.Flush()
	return nil
}

// fail ends the stream with err: an ordinary error answer before the first line, a last
// line with the error body after it.
func (n *ndjson) fail(err error) {
	if !n.started {
		writeError(n.c, err)
		return
	}
	n.c.Error(err) //nolint:errcheck // for the request log
	if errors.Is(n.c.Request.Context().Err(), context.Canceled) {
		return // nobody is listening
	}
	n.line(streamErrorFor(n.c.Request.URL.Path, err))
	n.flush()
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
// ended, if not nil, sees each token first, on the Batcher's goroutine (so it must be quick
// and must not block): a sequence for which it returns true leaves the batch before its
// next step (infer.StopSet), not some steps later when the handler gets to it. When emit
// fails (the client is gone), the request leaves the batch before the next step.
func (s *Server) runStream(ctx context.Context, r *resident, inputs [][]int, opts infer.GenerateOptions, ended func(infer.Token) bool, emit func([]infer.Token) error) ([]infer.Generation, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := &tokenQueue{notify: make(chan struct{}, 1)}
	type result struct {
		gens []infer.Generation
		err  error
	}
	done := make(chan result, 1)
	go func() {
		hooks := infer.GenerateHooks{Token: q.push}
		if ended != nil {
			stop := &infer.StopSet{}
			hooks.Stop = stop
			hooks.Token = func(t infer.Token) {
				q.push(t)
				if ended(t) {
					stop.Stop(t.Input, t.Sequence)
				}
			}
		}
		g, err := r.batcher.GenerateWith(ctx, inputs, opts, hooks)
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
// An increment never splits a UTF-8 sequence: one that would end inside a character waits
// for the tokens that complete it.
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
	delta, ok := d.delta(st.ids[st.prefix:st.readFrom], st.ids[st.prefix:])
	if ok {
		st.prefix, st.readFrom = st.readFrom, len(st.ids)
	}
	return delta
}

// peek returns the text add(input, seq, id) would return, without adding id.
func (d *detokenizer) peek(input, seq, id int) string {
	st := d.seqs[[2]int{input, seq}]
	if st == nil {
		st = &detokSeq{}
	}
	window := slices.Clip(st.ids[st.prefix:])
	delta, _ := d.delta(st.ids[st.prefix:st.readFrom], append(window, id))
	return delta
}

// delta returns the text that decoding after adds to decoding before; ok is false when
// there is none to emit yet (a special token, a piece that adds no text, or an unfinished
// UTF-8 sequence).
func (d *detokenizer) delta(before, after []int) (string, bool) {
	b, a := d.r.decode(before), d.r.decode(after)
	if len(a) <= len(b) {
		return "", false
	}
	n := len(b)
	if !strings.HasPrefix(a, b) {
		n = 0
		for n < len(a) && n < len(b) && a[n] == b[n] {
			n++
		}
		for n > 0 && !utf8.RuneStart(a[n]) {
			n-- // the texts differ inside a character: restart at its first byte
		}
	}
	delta := a[n:]
	if i := lastRuneStart(delta); i >= 0 && !utf8.FullRuneInString(delta[i:]) {
		return "", false
	}
	return delta, true
}

// lastRuneStart returns the index of the last byte of s that starts a UTF-8 sequence, or -1.
func lastRuneStart(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return -1
}

// special reports whether id is a control token (</s>, <pad>, <extra_id_N>) that decoding
// leaves out of texts.
func (r *resident) special(id int) bool {
	return r.tok != nil && r.decode([]int{id}) == "" && r.pieceText(id) != ""
}

// tokenName is how OpenAI's logprobs name token id, whose text here is piece: by that text,
// or, for a special token, which adds none, by its piece ("</s>").
func (r *resident) tokenName(id int, piece string) string {
	if piece == "" && r.special(id) {
		return r.pieceText(id)
	}
	return piece
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
	b, err := marshalJSON(v)
	if err != nil {
		return err
	}
	return e.raw(name, b)
}

// marshalJSON is json.Marshal without HTML escaping, as c.PureJSON writes answers: a
// token such as "</s>" reads the same streamed or not.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
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
	e.raw(e.errorEvent, streamErrorFor(e.c.Request.URL.Path, err))
	e.flush()
}
