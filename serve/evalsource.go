package serve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/infer"
)

// evalSource is the evaluate.ModelSource of the server's eval jobs: models are named as
// requests name them (residency.key), identified by their manifest digest (registry models,
// pulled into the cache first) or the hash of their directory (--model), and opened through
// the residency, so that an eval shares a model already loaded, keeps it loaded while its
// cells run, decodes in the model's Batcher beside interactive requests and charges its
// scoring to the memory budget as /api/score does.
type evalSource struct {
	s              *Server
	maxInputTokens int
}

var _ evaluate.ModelSource = (*evalSource)(nil)

// Resolve implements evaluate.ModelSource.
func (src *evalSource) Resolve(ctx context.Context, name string) (evaluate.ModelInfo, error) {
	info, err := src.resolve(ctx, name)
	return info, src.s.scrubErr(err)
}

func (src *evalSource) resolve(ctx context.Context, name string) (evaluate.ModelInfo, error) {
	s := src.s
	key, ref, isDir, err := s.models.key(name)
	if err != nil {
		return evaluate.ModelInfo{}, err
	}
	var loc evaluate.Located
	if isDir {
		loc.Dir = s.cfg.Models[key] // digest: the directory's hash
	} else {
		lm, err := s.localModel(ctx, ref, &resident{name: key})
		if err != nil {
			return evaluate.ModelInfo{}, err
		}
		loc = evaluate.Located{Dir: lm.Dir, Digest: lm.Digest.String(), DigestOf: "manifest"}
	}
	// The weight type the residency loads it in is part of the cells' identity.
	return evaluate.Identify(ctx, name, loc, s.cfg.DType)
}

// Open implements evaluate.ModelSource: the model is acquired from the residency (loaded
// if it is not) until the returned func is called.
func (src *evalSource) Open(ctx context.Context, info evaluate.ModelInfo) (evaluate.Engine, func(), error) {
	s := src.s
	r, release, err := src.acquire(ctx, info.Name)
	if err != nil {
		return nil, nil, s.scrubErr(err)
	}
	if r.tok == nil {
		release()
		return nil, nil, fmt.Errorf("%w: %s has no spiece.model, and tasks are text", ErrNoTokenizer, r.name)
	}
	eng := evaluate.NewEngine(r.model, r.tok, evaluate.EngineOptions{
		MaxInputTokens: src.maxInputTokens,
		Generate: func(ctx context.Context, inputs [][]int, opts infer.GenerateOptions) ([]infer.Generation, error) {
			gens, err := src.generate(ctx, r, inputs, opts)
			return gens, s.scrubErr(err)
		},
		ScoreChoices: func(ctx context.Context, sets []infer.ChoiceSet) ([][]infer.ScoreResult, error) {
			res, err := src.scoreChoices(ctx, r, sets)
			return res, s.scrubErr(err)
		},
	})
	return eng, release, nil
}

// Waits of an eval for a busy server: a full decoding queue, every model slot in use.
// Interactive requests get 503 and retry; an eval job waits instead, backing off.
const (
	evalRetryFirst = 50 * time.Millisecond
	evalRetryMax   = 2 * time.Second
)

// backoff waits d (doubled for the next wait, up to evalRetryMax) unless ctx ends first.
func backoff(ctx context.Context, d *time.Duration) error {
	t := time.NewTimer(*d)
	defer t.Stop()
	*d = min(2**d, evalRetryMax)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acquire is residency.acquire, waiting while every model slot is in use (ErrBusy).
func (src *evalSource) acquire(ctx context.Context, name string) (*resident, func(), error) {
	wait := evalRetryFirst
	for {
		r, release, err := src.s.models.acquire(ctx, name, nil)
		if !errors.Is(err, ErrBusy) {
			return r, release, err
		}
		src.s.log.Debug("eval waits for a model slot", "model", name, "err", err)
		if err := backoff(ctx, &wait); err != nil {
			return nil, nil, err
		}
	}
}

// generate decodes in the model's Batcher, as /api/generate does, in calls of at most
// Limits.MaxQueue inputs, each retried while the queue is full.
func (src *evalSource) generate(ctx context.Context, r *resident, inputs [][]int, opts infer.GenerateOptions) ([]infer.Generation, error) {
	s := src.s
	if err := s.checkDecodeMemory(r, inputs, opts); err != nil {
		return nil, err
	}
	out := make([]infer.Generation, 0, len(inputs))
	step := max(1, s.cfg.Limits.MaxQueue)
	for lo := 0; lo < len(inputs); lo += step {
		part := inputs[lo:min(len(inputs), lo+step)]
		wait := evalRetryFirst
		for {
			gens, err := r.batcher.Generate(ctx, part, opts, nil)
			if errors.Is(err, infer.ErrQueueFull) {
				if err := backoff(ctx, &wait); err != nil {
					return nil, err
				}
				continue
			}
			if err != nil {
				return nil, err
			}
			generated := 0
			for _, g := range gens {
				for _, h := range g.Hypotheses {
					generated += max(0, len(h.IDs)-1) // without the decoder start token
				}
			}
			s.countTokens(r.name, totalLen(part), generated)
			out = append(out, gens...)
			break
		}
	}
	return out, nil
}

// scoreChoices scores in the memory budget, as /api/score does: it waits for the memory
// of its scratch, and a batch that could never fit beside the model is split in halves
// until it does (a single set that cannot fit is ErrNoMemory).
func (src *evalSource) scoreChoices(ctx context.Context, r *resident, sets []infer.ChoiceSet) ([][]infer.ScoreResult, error) {
	s := src.s
	free, err := s.mem.acquire(ctx, r, "scoring an eval batch", r.model.ScoreChoicesBytes(sets), s.models.evictIdle)
	if errors.Is(err, ErrNoMemory) && len(sets) > 1 {
		half := len(sets) / 2
		a, err := src.scoreChoices(ctx, r, sets[:half])
		if err != nil {
			return nil, err
		}
		b, err := src.scoreChoices(ctx, r, sets[half:])
		if err != nil {
			return nil, err
		}
		return append(a, b...), nil
	}
	if err != nil {
		return nil, err
	}
	defer free()
	res, err := r.model.ScoreChoices(ctx, sets)
	if err != nil {
		return nil, err
	}
	in := 0
	for _, cs := range sets {
		in += len(cs.Input) + totalLen(cs.Targets)
	}
	s.countTokens(r.name, in, 0)
	return res, nil
}
