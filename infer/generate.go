package infer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// DefaultMaxNewTokens is the MaxNewTokens a zero GenerateOptions gets (HF's default
// max_length of 20 counts the decoder start token, so HF itself generates 19).
const DefaultMaxNewTokens = 20

// maxBeamsOrSamples bounds NumBeams and NumReturnSequences.
const maxBeamsOrSamples = 64

// GenerateOptions select the decoding strategy, as HF generate's arguments of the same
// names do. The zero value is greedy decoding of up to DefaultMaxNewTokens tokens.
type GenerateOptions struct {
	// MaxNewTokens bounds the tokens generated after the decoder start token; 0 means
	// DefaultMaxNewTokens. Decoding also stops at </s> (eos_token_id).
	MaxNewTokens int
	// NumBeams > 1 selects beam search with HF v4.30.2's rules; 0 and 1 mean greedy (or
	// sampling with Sample).
	NumBeams int
	// LengthPenalty is the exponent of the length that divides a finished beam's summed
	// log-probability; nil means 1.0, HF's default.
	LengthPenalty *float64
	// EarlyStopping ends a beam search as soon as NumBeams hypotheses are finished, instead
	// of HF's heuristic of stopping when no open beam can beat the worst finished one.
	EarlyStopping bool
	// NumReturnSequences is the number of hypotheses returned per input: the best beams
	// (at most NumBeams) or independent samples; 0 means 1. Greedy decoding returns one.
	NumReturnSequences int

	// Sample selects multinomial sampling from the model's distribution after Temperature,
	// TopK and TopP are applied in that order (HF's logits warpers).
	Sample bool
	// Temperature divides the logits before sampling; 0 means 1.
	Temperature float64
	// TopK keeps the K most likely tokens (and ties with the K-th); 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability reaches TopP
	// (nucleus sampling); 0 and 1 keep all.
	TopP float64
	// Seed seeds each sample's random source (math/rand/v2 PCG seeded with Seed and the
	// sample's index), so that a seed reproduces its samples whatever the batch.
	Seed uint64

	// TopLogprobs, for greedy decoding and sampling, also records at every step the
	// TopLogprobs most likely tokens and their log-probabilities (Hypothesis.TopLogprobs),
	// as OpenAI's logprobs parameter asks; 0 records none, at most maxTopLogprobs.
	TopLogprobs int
}

// maxTopLogprobs bounds GenerateOptions.TopLogprobs (OpenAI allows 5; HF's output_scores
// any number).
const maxTopLogprobs = 20

// TokenLogprob is a token and its log-probability at one position.
type TokenLogprob struct {
	ID      int
	Logprob float64
}

// Hypothesis is one generated sequence.
type Hypothesis struct {
	// IDs is the decoder start token, the generated tokens and </s> when one was emitted.
	IDs []int
	// TokenLogprobs[j] is the model's log-probability of IDs[j+1] (the float64 log-softmax of
	// the float32 logits, before any sampling warper).
	TokenLogprobs []float64
	// Score is, for beam search, HF's sequence score: the float32 sum of the token
	// log-probabilities divided by the hypothesis length (counting the start token, not the
	// final </s>) raised to LengthPenalty. For greedy decoding and sampling it is the sum
	// of TokenLogprobs.
	Score float64
	// TopLogprobs[j], when GenerateOptions.TopLogprobs is set, holds the most likely tokens
	// at the position of IDs[j+1], best first (ties by id), with their log-probabilities.
	TopLogprobs [][]TokenLogprob
	// Stopped is true for a sequence its caller ended early (GenerateHooks.Stop).
	Stopped bool
}

// Generation holds the hypotheses of one input: beams best first, samples in the order of
// their random sources.
type Generation struct {
	Hypotheses []Hypothesis
}

// genConfig is GenerateOptions with defaults applied.
type genConfig struct {
	maxNew, beams, numReturn int
	lengthPenalty            float64
	earlyStopping            bool
	sample                   bool
	temperature, topP        float64
	topK                     int
	seed                     uint64
	topLogprobs              int
}

func (m *Model) genConfig(o GenerateOptions) (genConfig, error) {
	c := genConfig{
		maxNew: o.MaxNewTokens, beams: max(o.NumBeams, 1), numReturn: max(o.NumReturnSequences, 1),
		lengthPenalty: 1, earlyStopping: o.EarlyStopping, sample: o.Sample,
		temperature: o.Temperature, topK: o.TopK, topP: o.TopP, seed: o.Seed,
		topLogprobs: o.TopLogprobs,
	}
	if o.LengthPenalty != nil {
		c.lengthPenalty = *o.LengthPenalty
	}
	if c.maxNew == 0 {
		c.maxNew = DefaultMaxNewTokens
	}
	if c.temperature == 0 {
		c.temperature = 1
	}
	if c.topP == 0 {
		c.topP = 1
	}
	bad := func(format string, args ...any) (genConfig, error) {
		return genConfig{}, fmt.Errorf("%w: generate: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
	}
	switch {
	case c.maxNew < 0 || c.maxNew > m.maxTokens:
		return bad("max_new_tokens %d outside 1..%d", o.MaxNewTokens, m.maxTokens)
	case o.NumBeams < 0 || c.beams > maxBeamsOrSamples:
		return bad("num_beams %d outside 1..%d", o.NumBeams, maxBeamsOrSamples)
	case o.NumReturnSequences < 0 || c.numReturn > maxBeamsOrSamples:
		return bad("num_return_sequences %d outside 1..%d", o.NumReturnSequences, maxBeamsOrSamples)
	case c.beams > 1 && c.numReturn > c.beams:
		return bad("num_return_sequences %d is more than num_beams %d", c.numReturn, c.beams)
	case c.beams == 1 && !c.sample && c.numReturn > 1:
		return bad("greedy decoding returns one sequence, not %d (use beams or sampling)", c.numReturn)
	case c.beams > 1 && c.sample:
		return bad("beam sampling is not supported: use num_beams or sample, not both")
	case math.IsNaN(c.lengthPenalty) || math.IsInf(c.lengthPenalty, 0):
		return bad("length_penalty %v", c.lengthPenalty)
	case !(c.temperature > 0) || math.IsInf(c.temperature, 0):
		return bad("temperature %v must be positive", o.Temperature)
	case c.topK < 0:
		return bad("top_k %d is negative", c.topK)
	case !(c.topP > 0 && c.topP <= 1):
		return bad("top_p %v outside (0, 1]", o.TopP)
	case c.topLogprobs < 0 || c.topLogprobs > maxTopLogprobs:
		return bad("top_logprobs %d outside 0..%d", c.topLogprobs, maxTopLogprobs)
	case c.topLogprobs > 0 && c.beams > 1:
		return bad("top_logprobs goes with greedy decoding or sampling, not beam search")
	}
	return c, nil
}

// search is the decoding state of one input.
type search interface {
	// pending returns the sequences to step next and the token each is fed; none when done.
	pending() ([]*Sequence, []int)
	// advance consumes the next-token logits of the pending sequences, one row each.
	advance(logits []float32) error
	// result returns the finished hypotheses, best first.
	result() Generation
}

// Search is the decoding state of one input under one GenerateOptions: greedy decoding,
// sampling or beam search, exactly as Generate runs it. It is what a continuous-batching
// scheduler drives: Pending lists the sequences to step next, the caller steps them (with
// those of other searches) through Model.Step, and Advance consumes their logits; when Done,
// Result holds the hypotheses. A Search is used by one goroutine at a time.
type Search struct {
	s    search
	rows int
}

// NewSearch starts decoding enc with opts. It fails, wrapping ErrInvalidInput, on options
// Generate would refuse.
func (m *Model) NewSearch(enc *EncoderOutput, opts GenerateOptions) (*Search, error) {
	c, err := m.genConfig(opts)
	if err != nil {
		return nil, err
	}
	return m.newSearch(enc, c), nil
}

func (m *Model) newSearch(enc *EncoderOutput, c genConfig) *Search {
	s := &Search{rows: max(c.beams, c.numReturn)}
	if c.beams > 1 {
		s.s = newBeamSearch(m, enc, c)
	} else {
		s.s = newSampleSearch(m, enc, c)
	}
	return s
}

// Pending returns the sequences to step next and the token to feed each; none once the
// search is done.
func (s *Search) Pending() ([]*Sequence, []int) { return s.s.pending() }

// Advance consumes the next-token logits of the sequences Pending returned, one
// vocab_size-wide row each, in their order.
func (s *Search) Advance(logits []float32) error { return s.s.advance(logits) }

// Done reports whether the search has finished (Pending returns nothing).
func (s *Search) Done() bool {
	seqs, _ := s.s.pending()
	return len(seqs) == 0
}

// stop ends stream j of greedy decoding or sampling now, keeping its tokens; it reports
// whether the stream was still running. Beam search has no stream to end on its own.
func (s *Search) stop(j int) bool {
	ss, ok := s.s.(*sampleSearch)
	if !ok || j < 0 || j >= len(ss.streams) || ss.streams[j].done {
		return false
	}
	st := ss.streams[j]
	st.done, st.stopped, st.seq = true, true, nil
	return true
}

// Rows is the most sequences the search steps at once: its beams or samples.
func (s *Search) Rows() int { return s.rows }

// Result returns the finished hypotheses, best first (see Generation).
func (s *Search) Result() Generation { return s.s.result() }

// Generated returns, for greedy decoding and sampling, what each returned sequence has
// generated so far: its tokens after the start token, their log-probabilities, and (with
// TopLogprobs) the most likely tokens at each position; nil for beam search, whose beams are
// reordered until the search ends. The slices are the search's own: read them before the
// next Advance and do not modify them.
func (s *Search) Generated() []Hypothesis {
	ss, ok := s.s.(*sampleSearch)
	if !ok {
		return nil
	}
	out := make([]Hypothesis, len(ss.streams))
	for j, st := range ss.streams {
		out[j] = Hypothesis{IDs: st.ids[1:], TokenLogprobs: st.lps, TopLogprobs: st.top}
	}
	return out
}

// maxStepRows bounds the sequences (inputs × beams or samples) Generate decodes together;
// larger batches are decoded in groups (the results do not depend on the grouping).
const maxStepRows = 256

// Generate decodes every input with the same options, stepping the sequences (beams,
// samples) of many inputs together through the decoder, and returns one Generation per
// input. The result for an input does not depend on the other inputs of the batch.
func (m *Model) Generate(ctx context.Context, inputs [][]int, opts GenerateOptions) ([]Generation, error) {
	c, err := m.genConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := m.checkInputs(inputs); err != nil {
		return nil, err
	}
	perInput := max(c.beams, c.numReturn)
	group := max(1, maxStepRows/perInput)
	out := make([]Generation, 0, len(inputs))
	for lo := 0; lo < len(inputs); lo += group {
		g, err := m.generate(ctx, inputs[lo:min(len(inputs), lo+group)], c)
		if err != nil {
			return nil, err
		}
		out = append(out, g...)
	}
	return out, nil
}

func (m *Model) generate(ctx context.Context, inputs [][]int, c genConfig) ([]Generation, error) {
	encs, err := m.RunEncoder(ctx, inputs)
	if err != nil {
		return nil, err
	}
	searches := make([]search, len(encs))
	for i, e := range encs {
		searches[i] = m.newSearch(e, c).s
	}
	if err := m.run(ctx, searches); err != nil {
		return nil, err
	}
	out := make([]Generation, len(searches))
	for i, s := range searches {
		out[i] = s.result()
	}
	return out, nil
}

// run steps all searches until every one is done, checking ctx before each step.
func (m *Model) run(ctx context.Context, searches []search) error {
	var logits []float32
	V := m.shape.VocabSize
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var seqs []*Sequence
		var toks []int
		counts := make([]int, len(searches))
		for i, s := range searches {
			ss, ts := s.pending()
			seqs = append(seqs, ss...)
			toks = append(toks, ts...)
			counts[i] = len(ss)
		}
		if len(seqs) == 0 {
			return nil
		}
		var err error
		logits, err = m.Step(ctx, seqs, toks, logits)
		if err != nil {
			return err
		}
		r := 0
		for i, s := range searches {
			if counts[i] == 0 {
				continue
			}
			if err := s.advance(logits[r*V : (r+counts[i])*V]); err != nil {
				return err
			}
			r += counts[i]
		}
	}
}

// sampleSearch is greedy decoding (one stream) or sampling (NumReturnSequences independent
// streams, each with its own random source).
type sampleSearch struct {
	m       *Model
	c       genConfig
	streams []*stream
}

type stream struct {
	seq     *Sequence
	rng     *rand.Rand
	ids     []int
	lps     []float64
	top     [][]TokenLogprob // with topLogprobs
	done    bool
	stopped bool // ended by the caller (StopSet)
}

func newSampleSearch(m *Model, e *EncoderOutput, c genConfig) *sampleSearch {
	s := &sampleSearch{m: m, c: c}
	for j := range c.numReturn {
		st := &stream{seq: e.NewSequence(), ids: []int{m.shape.DecoderStartTokenID}}
		if c.sample {
			st.rng = rand.New(rand.NewPCG(c.seed, uint64(j)))
		}
		s.streams = append(s.streams, st)
	}
	return s
}

func (s *sampleSearch) pending() ([]*Sequence, []int) {
	var seqs []*Sequence
	var toks []int
	for _, st := range s.streams {
		if !st.done {
			seqs = append(seqs, st.seq)
			toks = append(toks, st.ids[len(st.ids)-1])
		}
	}
	return seqs, toks
}

func (s *sampleSearch) advance(logits []float32) error {
	V := s.m.shape.VocabSize
	r := 0
	for _, st := range s.streams {
		if st.done {
			continue
		}
		row := logits[r*V : (r+1)*V]
		r++
		lse := s.m.logSumExp(row)
		if !finite(lse) {
			return numericsError("the log-sum-exp of a logits row")
		}
		var tok int
		if s.c.sample {
			tok = s.sampleToken(row, st.rng)
		} else {
			tok = s.m.Argmax(row)
		}
		st.ids = append(st.ids, tok)
		st.lps = append(st.lps, float64(row[tok])-lse)
		if s.c.topLogprobs > 0 {
			st.top = append(st.top, topLogprobs(row, s.c.topLogprobs, lse))
		}
		if tok == s.m.shape.EOSTokenID || len(st.ids)-1 >= s.c.maxNew {
			st.done = true
			st.seq = nil // release the cache
		}
	}
	return nil
}

func (s *sampleSearch) result() Generation {
	var g Generation
	for _, st := range s.streams {
		var sum float64
		for _, lp := range st.lps {
			sum += lp
		}
		g.Hypotheses = append(g.Hypotheses, Hypothesis{IDs: st.ids, TokenLogprobs: st.lps, Score: sum, TopLogprobs: st.top, Stopped: st.stopped})
	}
	return g
}
