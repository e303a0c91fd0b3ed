package evaluate

import (
	"context"
	"fmt"

	"github.com/t5zoo/t5zoo/infer"
	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

// Engine is what a cell needs of a model, in text: greedy generation for predict mode and
// choice scoring for rank mode. NewEngine makes one from a loaded model; a server makes one
// that routes the same calls through its batcher and memory budget.
type Engine interface {
	// Generate decodes each input greedily, up to maxTokens new tokens, and returns the
	// generated texts (special tokens dropped).
	Generate(ctx context.Context, inputs []string, maxTokens int) ([]string, error)
	// Rank returns log p(choice | input) for each choice of each input, the encoder running
	// once per input.
	Rank(ctx context.Context, inputs []string, choices [][]string) ([][]float64, error)
	// DType is the engine's weight dtype.
	DType() string
	// Kernels names the kernels (or device) the engine runs on.
	Kernels() string
}

// EngineOptions adapt NewEngine. The zero value runs calls on the model directly.
type EngineOptions struct {
	// MaxInputTokens, when positive, trims each tokenized input to this many tokens, the
	// last being </s> (seqio's append_eos_after_trim, as T5 feeds 512-token inputs).
	MaxInputTokens int
	// Generate, when set, replaces m.Generate (a server routes it through its Batcher and
	// memory budget).
	Generate func(ctx context.Context, inputs [][]int, opts infer.GenerateOptions) ([]infer.Generation, error)
	// ScoreChoices, when set, replaces m.ScoreChoices (same reason).
	ScoreChoices func(ctx context.Context, sets []infer.ChoiceSet) ([][]infer.ScoreResult, error)
}

// NewEngine returns the Engine of a loaded model and its tokenizer. Texts are tokenized as
// T5 feeds them (</s> appended); generations are decoded with special tokens dropped.
func NewEngine(m *infer.Model, tok *tokenizer.Tokenizer, opts EngineOptions) Engine {
	if opts.Generate == nil {
		opts.Generate = m.Generate
	}
	if opts.ScoreChoices == nil {
		opts.ScoreChoices = m.ScoreChoices
	}
	return &textEngine{m: m, tok: tok, opts: opts}
}

type textEngine struct {
	m    *infer.Model
	tok  *tokenizer.Tokenizer
	opts EngineOptions
}

func (e *textEngine) DType() string   { return string(e.m.DType()) }
func (e *textEngine) Kernels() string { return e.m.Kernels() }

// encode tokenizes an input, trimmed to MaxInputTokens with </s> kept last.
func (e *textEngine) encode(text string, trim bool) ([]int, error) {
	ids, err := e.tok.Encode(text)
	if err != nil {
		return nil, err
	}
	if n := e.opts.MaxInputTokens; trim && n > 0 && len(ids) > n {
		ids = append(ids[:n-1:n-1], e.tok.EOSID())
	}
	return ids, nil
}

func (e *textEngine) encodeAll(texts []string) ([][]int, error) {
	out := make([][]int, len(texts))
	for i, s := range texts {
		ids, err := e.encode(s, true)
		if err != nil {
			return nil, fmt.Errorf("tokenize input %d: %w", i, err)
		}
		out[i] = ids
	}
	return out, nil
}

func (e *textEngine) Generate(ctx context.Context, inputs []string, maxTokens int) ([]string, error) {
	ids, err := e.encodeAll(inputs)
	if err != nil {
		return nil, err
	}
	gens, err := e.opts.Generate(ctx, ids, infer.GenerateOptions{MaxNewTokens: maxTokens})
	if err != nil {
		return nil, err
	}
	out := make([]string, len(gens))
	for i, g := range gens {
		if len(g.Hypotheses) == 0 {
			return nil, fmt.Errorf("generate: input %d: no hypothesis", i)
		}
		text, err := e.tok.Decode(g.Hypotheses[0].IDs, true)
		if err != nil {
			return nil, fmt.Errorf("decode generation %d: %w", i, err)
		}
		out[i] = text
	}
	return out, nil
}

func (e *textEngine) Rank(ctx context.Context, inputs []string, choices [][]string) ([][]float64, error) {
	if len(inputs) != len(choices) {
		return nil, fmt.Errorf("rank: %d inputs, %d choice lists", len(inputs), len(choices))
	}
	ids, err := e.encodeAll(inputs)
	if err != nil {
		return nil, err
	}
	sets := make([]infer.ChoiceSet, len(inputs))
	// Choices repeat across examples (label names): tokenize each string once.
	memo := map[string][]int{}
	for i, cs := range choices {
		sets[i].Input = ids[i]
		sets[i].Targets = make([][]int, len(cs))
		for j, c := range cs {
			t, ok := memo[c]
			if !ok {
				if t, err = e.encode(c, false); err != nil {
					return nil, fmt.Errorf("tokenize choice %q: %w", c, err)
				}
				memo[c] = t
			}
			sets[i].Targets[j] = t
		}
	}
	res, err := e.opts.ScoreChoices(ctx, sets)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(res))
	for i, r := range res {
		out[i] = make([]float64, len(r))
		for j, s := range r {
			out[i][j] = s.SumLogprob
		}
	}
	return out, nil
}
