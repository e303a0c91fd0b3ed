package data

import (
	"context"
	"errors"
	"fmt"

	"github.com/t5zoo/t5zoo/infer/tokenizer"
	"github.com/t5zoo/t5zoo/t5"
)

// TokenStats count what Tokenize produced.
type TokenStats struct {
	// Examples is the number of examples.
	Examples int
	// InputTokens and TargetTokens are the tokens after truncation, </s> included.
	InputTokens, TargetTokens int
	// TruncatedInputs and TruncatedTargets count the examples cut to the limits.
	TruncatedInputs, TruncatedTargets int
}

// Tokenize turns pairs into t5.Examples: Input the input's ids and Target the target's,
// each ending with </s> (the tokenizer's Encode, which appends it), cut to maxInput and
// maxTarget tokens with the final </s> kept, as seqio's append_eos_after_trim does (trim
// to max−1, then add EOS). A limit of 0 cuts nothing; a negative one is an error.
func Tokenize(ctx context.Context, tok *tokenizer.Tokenizer, s *Set, maxInput, maxTarget int) ([]t5.Example, TokenStats, error) {
	var st TokenStats
	if tok == nil {
		return nil, st, errors.New("tokenize: no tokenizer")
	}
	if maxInput < 0 || maxTarget < 0 {
		return nil, st, fmt.Errorf("tokenize: negative length limit (inputs %d, targets %d)", maxInput, maxTarget)
	}
	eos := tok.EOSID()
	if eos < 0 {
		return nil, st, errors.New("tokenize: the tokenizer has no </s>")
	}
	out := make([]t5.Example, len(s.Pairs))
	for i, p := range s.Pairs {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, st, fmt.Errorf("tokenize %s: %w", s.Name, err)
			}
		}
		in, err := tok.Encode(p.Input)
		if err != nil {
			return nil, st, fmt.Errorf("tokenize %s: pair %d's input: %w", s.Name, i, err)
		}
		tgt, err := tok.Encode(p.Target)
		if err != nil {
			return nil, st, fmt.Errorf("tokenize %s: pair %d's target: %w", s.Name, i, err)
		}
		var cut bool
		if in, cut = trimEOS(in, maxInput, eos); cut {
			st.TruncatedInputs++
		}
		if tgt, cut = trimEOS(tgt, maxTarget, eos); cut {
			st.TruncatedTargets++
		}
		out[i] = t5.Example{Input: in, Target: tgt}
		st.InputTokens += len(in)
		st.TargetTokens += len(tgt)
	}
	st.Examples = len(out)
	return out, st, nil
}

// trimEOS cuts ids (which end with </s>) to max tokens, the last being </s>; max 0 keeps
// all. It reports whether it cut.
func trimEOS(ids []int, max, eos int) ([]int, bool) {
	if max == 0 || len(ids) <= max {
		return ids, false
	}
	out := make([]int, max) // a copy, so that a long text's ids are not kept alive
	copy(out, ids[:max-1])
	out[max-1] = eos
	return out, true
}
