package serve

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/serve/api"
)

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
	free, err := s.mem.acquire(c.Request.Context(), r, "scoring these pairs", r.model.ScoreBytes(pairs), s.models.evictIdle)
	if err != nil {
		writeError(c, err)
		return
	}
	defer free()
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
	need := r.model.EncodeBytes(inputs)
	if req.Hidden {
		// The answer's JSON: about 12 bytes a float, in a buffer that grows by doubling.
		need += int64(totalLen(inputs)) * int64(r.model.Shape().DModel) * 32
	}
	free, err := s.mem.acquire(c.Request.Context(), r, "encoding these inputs", need, s.models.evictIdle)
	if err != nil {
		writeError(c, err)
		return
	}
	defer free()
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
