package data

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/t5zoo/t5zoo/infer/tokenizer"
)

// t5Vocab is the real T5 vocabulary the tokenizer's tests use.
const t5Vocab = "../../infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer"

func openT5(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Open(t5Vocab)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenize(t *testing.T) {
	tok := openT5(t)
	// HF T5Tokenizer's ids for this text are [37 32099 10681 16 32098 2447 1] (tokenizer's example).
	walks := "The <extra_id_0> walks in <extra_id_1> park"
	s := &Set{Name: "s", Pairs: []Pair{
		{walks, "park"},
		{"positive", walks},
		{"ends with </s>", "x </s>"},
	}}
	cases := []struct {
		maxIn, maxTgt int
		in0, tgt1     []int
		stats         TokenStats
	}{
		{0, 0, []int{37, 32099, 10681, 16, 32098, 2447, 1}, []int{37, 32099, 10681, 16, 32098, 2447, 1},
			TokenStats{Examples: 3}},
		{7, 7, []int{37, 32099, 10681, 16, 32098, 2447, 1}, []int{37, 32099, 10681, 16, 32098, 2447, 1},
			TokenStats{Examples: 3}},
		{4, 3, []int{37, 32099, 10681, 1}, []int{37, 32099, 1},
			TokenStats{Examples: 3, TruncatedInputs: 1, TruncatedTargets: 1}},
		{1, 1, []int{1}, []int{1}, TokenStats{Examples: 3, TruncatedInputs: 3, TruncatedTargets: 3}},
	}
	for _, c := range cases {
		exs, st, err := Tokenize(t.Context(), tok, s, c.maxIn, c.maxTgt)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(exs[0].Input, c.in0) || !slices.Equal(exs[1].Target, c.tgt1) {
			t.Errorf("limits %d/%d: input %v target %v, want %v %v", c.maxIn, c.maxTgt, exs[0].Input, exs[1].Target, c.in0, c.tgt1)
		}
		in, tgt := 0, 0
		for i, ex := range exs {
			if ex.Input[len(ex.Input)-1] != 1 || ex.Target[len(ex.Target)-1] != 1 {
				t.Errorf("example %d does not end with </s>: %v %v", i, ex.Input, ex.Target)
			}
			if (c.maxIn > 0 && len(ex.Input) > c.maxIn) || (c.maxTgt > 0 && len(ex.Target) > c.maxTgt) {
				t.Errorf("example %d over the limits %d/%d", i, c.maxIn, c.maxTgt)
			}
			if slices.Contains(ex.Target[:len(ex.Target)-1], 1) && i == 2 {
				t.Errorf("a text ending with </s> got a second one: %v", ex.Target)
			}
			in += len(ex.Input)
			tgt += len(ex.Target)
		}
		c.stats.InputTokens, c.stats.TargetTokens = in, tgt
		if st != c.stats {
			t.Errorf("limits %d/%d: stats %+v, want %+v", c.maxIn, c.maxTgt, st, c.stats)
		}
	}

	if _, _, err := Tokenize(t.Context(), tok, s, -1, 0); err == nil {
		t.Error("negative limit: no error")
	}
	if _, _, err := Tokenize(t.Context(), nil, s, 0, 0); err == nil {
		t.Error("nil tokenizer: no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := Tokenize(ctx, tok, s, 0, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

// TestTokenizeTask tokenizes a task's train split end to end.
func TestTokenizeTask(t *testing.T) {
	s, err := ReadFile(t.Context(), "testdata/sst2_sample.tsv")
	if err != nil {
		t.Fatal(err)
	}
	exs, st, err := Tokenize(t.Context(), openT5(t), s, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Examples != s.Len() || st.TruncatedInputs == 0 || st.TruncatedTargets != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, ex := range exs {
		// "negative" and "positive" are one piece each in T5's vocabulary.
		if len(ex.Target) != 2 || (ex.Target[0] != 2841 && ex.Target[0] != 1465) {
			t.Errorf("target ids %v, want [negative|positive </s>]", ex.Target)
		}
		if len(ex.Input) > 16 || ex.Input[len(ex.Input)-1] != 1 {
			t.Errorf("input ids %v, want at most 16 ending with </s>", ex.Input)
		}
	}
}
