package serve

import (
	"fmt"
	"time"

	"github.com/dustin/go-humanize"
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

// checkDecodeMemory refuses, with ErrNoMemory, a generation one of whose inputs could never
// decode within the memory budget beside its model (it would wait in the batch's queue until
// its deadline): its encoder output and the caches of its beams or samples at max_new_tokens.
func (s *Server) checkDecodeMemory(r *resident, inputs [][]int, opts infer.GenerateOptions) error {
	b := s.cfg.MemoryBudget
	if b <= 0 {
		return nil
	}
	longest := 0
	for _, in := range inputs {
		longest = max(longest, len(in))
	}
	need, err := r.model.GenerateBytes(longest, opts)
	if err != nil {
		return err
	}
	if need > b-r.fixed {
		return fmt.Errorf("%w: decoding an input of %d tokens with these options needs %s of memory, and the budget of %s leaves %s beside %s; ask for fewer beams, samples or max_new_tokens",
			ErrNoMemory, longest, humanize.IBytes(uint64(need)), humanize.IBytes(uint64(b)), humanize.IBytes(uint64(max(0, b-r.fixed))), r.name)
	}
	return nil
}

// countTokens records a request's tokens in the metrics.
func (s *Server) countTokens(model string, in, out int) {
	model = s.metrics.label(model)
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
