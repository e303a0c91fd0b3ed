package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/t5zoo/t5zoo/evaluate"
	"github.com/t5zoo/t5zoo/evaluate/task"
)

// maxPredictionLine bounds one line of a predictions file.
const maxPredictionLine = 16 << 20

func newEvalMetricsCmd() *cobra.Command {
	var (
		taskName, predictions, data string
		jsonOut                     bool
	)
	cmd := &cobra.Command{
		Use:   "metrics --task TASK --predictions FILE.jsonl",
		Short: "Compute a task's T5 metrics from predictions made elsewhere",
		Long: `Metrics reads one JSON object per line and scores the predictions with TASK's T5
postprocessing and metrics, exactly as eval does: check your own pipeline's numbers
against T5's.

Each line holds "prediction" (the model's raw text) and either "target" (the gold
target text, or for several acceptable answers, as SQuAD and ReCoRD have, a list) or "id"
(the example's id in the task's data, which is then read from --data; eval's
<mode>.examples.jsonl files have both). MultiRC and ReCoRD lines also need "group" (the
question or query) when they give a target; super_glue/wsc needs ids, since its gold label
is not in its target text.`,
		Example: `  t5zoo eval metrics --task glue/cola --predictions preds.jsonl
  echo '{"target": "positive", "prediction": "positive"}' | t5zoo eval metrics --task glue/sst2 --predictions -
  t5zoo eval metrics --task super_glue/wsc --predictions wsc.jsonl --data ~/superglue-data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := task.Resolve([]string{taskName})
			if err != nil {
				return err
			}
			if len(t) != 1 {
				return fmt.Errorf("--task %s names %d tasks; metrics scores one", taskName, len(t))
			}
			var r io.Reader = cmd.InOrStdin()
			if predictions != "-" {
				f, err := os.Open(predictions)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			if data == "" {
				data = getenv("T5ZOO_DATA")
			}
			scored, n, err := scorePredictions(cmd.Context(), t[0], r, predictions, data)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				enc := json.NewEncoder(out)
				return enc.Encode(struct {
					Task     string           `json:"task"`
					Version  string           `json:"task_version"`
					Examples int              `json:"examples"`
					Invalid  int              `json:"invalid"`
					Metrics  evaluate.Metrics `json:"metrics"`
				}{t[0].Name(), t[0].Version(), n, scored.Invalid, evaluate.Metrics(scored.Metrics)})
			}
			fmt.Fprintf(out, "%s (%s): %s (%d examples, %d invalid)\n", t[0].Name(), t[0].Version(), formatMetrics(scored.Metrics), n, scored.Invalid)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&taskName, "task", "", "task name or spec file")
	fl.StringVar(&predictions, "predictions", "", "JSONL file of predictions (- for standard input)")
	fl.StringVar(&data, "data", "", "folder of the task's official files, for lines that give an id instead of a target (default $T5ZOO_DATA)")
	fl.BoolVar(&jsonOut, "json", false, "print the metrics as JSON")
	_ = cmd.MarkFlagRequired("task")
	_ = cmd.MarkFlagRequired("predictions")
	return cmd
}

// predictionLine is one line of a predictions file.
type predictionLine struct {
	ID         *string         `json:"id"`
	Target     json.RawMessage `json:"target"`
	Prediction *string         `json:"prediction"`
	Group      string          `json:"group"`
}

// scorePredictions reads a predictions file and scores it with t.
func scorePredictions(ctx context.Context, t *task.Task, r io.Reader, name, data string) (task.Scored, int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxPredictionLine)
	var (
		examples []task.Example
		preds    []string
		byID     map[string]task.Example
	)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		// Other fields (eval's examples files carry input, value, scores) are ignored.
		var pl predictionLine
		if err := json.Unmarshal([]byte(text), &pl); err != nil {
			return task.Scored{}, 0, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if pl.Prediction == nil {
			return task.Scored{}, 0, fmt.Errorf("%s:%d: no \"prediction\"", name, line)
		}
		var ex task.Example
		switch {
		case pl.ID != nil && (len(pl.Target) == 0 || t.Name() == "super_glue/wsc"):
			if byID == nil {
				if data == "" {
					return task.Scored{}, 0, fmt.Errorf("%s:%d: a line with an id and no target needs the task's data (--data or T5ZOO_DATA)", name, line)
				}
				all, err := t.Load(ctx, data)
				if err != nil {
					return task.Scored{}, 0, err
				}
				byID = make(map[string]task.Example, len(all))
				for _, e := range all {
					byID[e.ID] = e
				}
			}
			e, ok := byID[*pl.ID]
			if !ok {
				return task.Scored{}, 0, fmt.Errorf("%s:%d: %s has no example with id %q", name, line, t.Name(), *pl.ID)
			}
			ex = e
		case len(pl.Target) > 0:
			if t.Name() == "super_glue/wsc" {
				return task.Scored{}, 0, fmt.Errorf("%s:%d: super_glue/wsc needs the example's id (its gold label is not in the target text)", name, line)
			}
			var s string
			var list []string
			if err := json.Unmarshal(pl.Target, &s); err == nil {
				ex.Target = s
			} else if err := json.Unmarshal(pl.Target, &list); err == nil && len(list) > 0 {
				ex.Target, ex.Answers = list[0], list
			} else {
				return task.Scored{}, 0, fmt.Errorf("%s:%d: \"target\" must be a string or a non-empty list of strings", name, line)
			}
			ex.Group = pl.Group
			if pl.ID != nil {
				ex.ID = *pl.ID
			} else {
				ex.ID = fmt.Sprint(line)
			}
		default:
			return task.Scored{}, 0, fmt.Errorf("%s:%d: want \"target\" or \"id\"", name, line)
		}
		examples = append(examples, ex)
		preds = append(preds, *pl.Prediction)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return task.Scored{}, 0, fmt.Errorf("%s:%d: line longer than %d bytes", name, line+1, maxPredictionLine)
		}
		return task.Scored{}, 0, fmt.Errorf("read %s: %w", name, err)
	}
	if len(examples) == 0 {
		return task.Scored{}, 0, fmt.Errorf("%s: no predictions", name)
	}
	scored, err := t.Evaluate(examples, preds)
	if err != nil {
		return task.Scored{}, 0, err
	}
	return scored, len(examples), nil
}
