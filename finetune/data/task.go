package data

import (
	"context"
	"fmt"

	"github.com/t5zoo/t5zoo/evaluate/task"
)

// FromTask reads one split of an evaluate task (task.SplitTrain or task.SplitValidation)
// from dataDir, with T5's preprocessing for that split, as pairs of T5's
// inputs_pretokenized and targets_pretokenized. The Set's Name is
// "task:<name>/<split>" and its Digest that of the canonical pairs (PairsDigest), so it
// changes exactly when the pairs do (the data or the task's preprocessing).
func FromTask(ctx context.Context, t *task.Task, dataDir, split string) (*Set, error) {
	exs, err := t.LoadSplit(ctx, dataDir, split)
	if err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	if len(exs) == 0 {
		return nil, fmt.Errorf("training data: %s %s: no examples", t.Name(), split)
	}
	pairs := make([]Pair, len(exs))
	for i, ex := range exs {
		pairs[i] = Pair{Input: ex.Input, Target: ex.Target}
	}
	return &Set{Name: "task:" + t.Name() + "/" + split, Digest: PairsDigest(pairs), Pairs: pairs}, nil
}
