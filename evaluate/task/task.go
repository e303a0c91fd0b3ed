// Package task holds t5zoo's evaluation tasks as the T5 codebase defines them: each reads
// its validation split from the official file layout (GLUE TSV, SuperGLUE JSONL, SQuAD JSON)
// the way TensorFlow Datasets reads it, turns rows into T5's text-to-text examples
// (inputs_pretokenized / targets_pretokenized, byte for byte), postprocesses model output
// with T5's postprocessor and scores it with T5's metrics. Users add tasks of their own
// with a small JSON or YAML spec (ParseSpec).
//
// Built in (T5 task → name here):
//   - glue_<name>_v002 → glue/<name> for cola, sst2, mrpc, qqp, stsb, mnli_matched,
//     mnli_mismatched, qnli, rte and wnli;
//   - super_glue_<name>_v102 → super_glue/<name> for boolq, cb, copa, multirc, record, rte
//     and wic, and super_glue_wsc_v102_simple_eval → super_glue/wsc (T5 evaluates WSC only
//     in its "simple" form);
//   - squad_v010_allanswers → squad.
//
// Left out: glue/ax, super_glue/axb and super_glue/axg, whose only split is a test
// set without labels (T5 registers no metrics for them), and the training-only mixtures.
//
// Sources, pinned (see ../shared/facts/eval_formats.md of the project for the quotes):
// google-research/text-to-text-transfer-transformer e081111ccd51df425aa7124e8e311ed6d403d767
// (t5/data/preprocessors.py, postprocessors.py, glue_utils.py, tasks.py,
// t5/evaluation/eval_utils.py); tensorflow/datasets 0560e686ded1ed7876137f062fa09467717a8e42
// (tensorflow_datasets/text/glue.py, super_glue.py) and the squad/v1.1:3.0.0 reader
// (question_answering/qa_utils.py generate_squadlike_examples).
//
// Where the TFDS readers would crash on a malformed row (an int() that fails, a missing
// key) Load returns a *LineError naming the file and line instead; where TFDS silently
// drops a row (a TSV row too short to hold a feature, an empty label) Load drops it too.
// The few places that differ from TFDS on purpose:
//   - MRPC is read from GLUE's dev.tsv; TFDS rebuilds it from msr_paraphrase_train.txt and
//     dev_ids.tsv, which gives the same rows in the same order but numbers idx by the
//     MSR file's rows. IDs here are dev.tsv's row numbers (metrics do not depend on them).
//   - An STS-B row without a score column is an error (TFDS would make the label NaN and
//     T5 the target "nan"); a blank JSONL line is skipped (json.loads would fail on it).
//   - ReCoRD: T5 makes one example per gold answer and scores only the first of each query
//     (deduplicate_metric); Load returns that first one, so the metrics are T5's without
//     decoding the same input several times.
//   - SQuAD is read as TFDS's squad/v1.1:3.0.0 (T5's current task source): nothing
//     stripped, repeated ids merged.
package task

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Example is one evaluation example in T5's text-to-text form.
type Example struct {
	// ID is stable within the task: the TFDS idx ("12"), "p3/q12/a2" for a MultiRC
	// answer, "p1/q4" for a ReCoRD query, the question id for SQuAD.
	ID string
	// Input is T5's inputs_pretokenized (no </s>; the engine adds it).
	Input string
	// Target is T5's targets_pretokenized: the first gold target.
	Target string
	// Answers holds every gold answer where there are several (SQuAD, ReCoRD, a spec's
	// targets); nil otherwise.
	Answers []string
	// Choices are rank mode's candidate targets (class names, STS-B's 26 values, ReCoRD's
	// entities); nil when the example cannot be ranked.
	Choices []string
	// Group is the MultiRC question ("q12") or ReCoRD query ("p1/q4") the example belongs
	// to: Limit keeps groups whole and the metrics group by it. Empty elsewhere.
	Group string

	// gold is WSC's gold label (0/1), which its target text does not carry; goldSet says
	// Load set it.
	gold    int
	goldSet bool
}

// Scored is a task's score on a set of predictions.
type Scored struct {
	// Metrics maps T5's metric keys ("accuracy", "f1", "matthews_corrcoef", "em", ...) to
	// values ×100 as T5 reports them; a value T5 would report as NaN is NaN.
	Metrics map[string]float64
	// Invalid counts predictions T5's postprocessor could not parse (class −1, float
	// default −1.0, WSC −1).
	Invalid int
	// Outcomes holds the postprocessed prediction of each example, in order.
	Outcomes []Outcome
}

// Outcome is the postprocessed prediction the metrics saw for one example.
type Outcome struct {
	// Value is a class id (int) for classification tasks, a number (float64) for STS-B
	// and float metrics — written "NaN", "+Inf" or "-Inf" as a string when not finite, so
	// that it stays JSON — WSC's 0/1/−1 (int), or the text for QA and free-text tasks.
	Value any
	// Invalid marks a prediction the postprocessor could not parse.
	Invalid bool
}

// Task is one evaluation task: a built-in (Builtin, Lookup) or a user spec (ParseSpec).
type Task struct {
	name, t5Name string
	version      string
	benchmark    string
	description  string
	// files lists, for each file the task reads, the paths relative to the data folder
	// tried in order (the first is the canonical layout).
	files        [][]string
	hint         string // where the official files come from, for the missing-file error
	decodeLength int
	rankable     bool
	modes        []string
	// dataPath, for a spec task, is its data file: absolute, or relative to the data
	// folder when dataRel.
	dataPath string
	dataRel  bool

	load  func(ctx context.Context, paths []string) ([]Example, error)
	score func(examples []Example, predictions []string) (Scored, error)
}

// Name is the task's name: "glue/sst2", "super_glue/wsc", "squad", or a spec's name.
func (t *Task) Name() string { return t.name }

// T5Name is the T5 task a built-in reproduces ("glue_sst2_v002"); "" for a spec task.
func (t *Task) T5Name() string { return t.t5Name }

// Version changes when the task's preprocessing, postprocessing or metrics change. A
// built-in's is T5's task version plus t5zoo's revision ("v002.1"); a spec task's is
// "spec-" and the first 12 hex digits of the sha256 of the spec's bytes, then "+" and the
// spec's own version when it has one.
func (t *Task) Version() string { return t.version }

// Benchmark is "glue", "super_glue", or "" for a task outside both.
func (t *Task) Benchmark() string { return t.benchmark }

// Rankable reports whether rank mode is possible: every classification task (STS-B,
// COPA, MultiRC and ReCoRD included); not SQuAD, WSC-simple or free-text spec tasks.
func (t *Task) Rankable() bool { return t.rankable }

// Modes are the modes the task runs in by default: "predict", then "rank" when Rankable
// (a spec's modes field can narrow this).
func (t *Task) Modes() []string { return append([]string(nil), t.modes...) }

// DecodeLength is the greedy decoding budget in predict mode: 128 tokens for every
// built-in (T5's eval.gin max_decode_length), a spec's decode_length otherwise.
func (t *Task) DecodeLength() int { return t.decodeLength }

// Files lists the data files the task reads, relative to the data folder, in their
// canonical layout ("glue/SST-2/dev.tsv"). A spec task with an absolute data path lists it.
func (t *Task) Files() []string {
	if t.dataPath != "" {
		if t.dataRel {
			return []string{filepath.ToSlash(t.dataPath)}
		}
		return []string{t.dataPath}
	}
	out := make([]string, len(t.files))
	for i, alts := range t.files {
		out[i] = alts[0]
	}
	return out
}

// Description is one line saying what the task is.
func (t *Task) Description() string { return t.description }

// MissingDataError is a data file that is not where the task looks for it. It wraps
// fs.ErrNotExist.
type MissingDataError struct {
	Task  string
	Tried []string // the full paths tried
	Hint  string   // where the official files come from
}

func (e *MissingDataError) Error() string {
	msg := fmt.Sprintf("%s: data file not found; tried %s", e.Task, strings.Join(e.Tried, ", "))
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *MissingDataError) Unwrap() error { return fs.ErrNotExist }

// Paths returns the data files the task reads under dataDir, as Load finds them: a missing
// file is a *MissingDataError naming every path tried.
func (t *Task) Paths(dataDir string) ([]string, error) {
	if t.dataPath != "" {
		p := t.dataPath
		if t.dataRel {
			p = filepath.Join(dataDir, filepath.FromSlash(p))
		}
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &MissingDataError{Task: t.name, Tried: []string{p}}
			}
			return nil, fmt.Errorf("%s: %w", t.name, err)
		}
		return []string{p}, nil
	}
	var paths []string
	for _, alts := range t.files {
		p, err := findFile(dataDir, alts)
		if err != nil {
			var missing *MissingDataError
			if errors.As(err, &missing) {
				missing.Task, missing.Hint = t.name, t.hint
			}
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Load reads the task's validation split from dataDir in its official layout and returns
// its examples in file order. A missing file is a *MissingDataError naming every path
// tried; a malformed row is a *LineError naming the file and line.
func (t *Task) Load(ctx context.Context, dataDir string) ([]Example, error) {
	paths, err := t.Paths(dataDir)
	if err != nil {
		return nil, err
	}
	exs, err := t.load(ctx, paths)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.name, err)
	}
	return exs, nil
}

// findFile returns the first of alts (relative, slash-separated) that exists under dir.
func findFile(dir string, alts []string) (string, error) {
	tried := make([]string, 0, len(alts))
	for _, rel := range alts {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		st, err := os.Stat(p)
		if err == nil && !st.IsDir() {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("look for %s: %w", p, err)
		}
		if abs, aerr := filepath.Abs(p); aerr == nil {
			p = abs
		}
		tried = append(tried, p)
	}
	return "", &MissingDataError{Tried: tried}
}

// Evaluate scores predictions (predictions[i] is the text for examples[i]: generated, or
// in rank mode the chosen Choices[k]) with T5's postprocessor and metrics, invalid
// predictions handled as T5 handles them.
func (t *Task) Evaluate(examples []Example, predictions []string) (Scored, error) {
	if len(examples) != len(predictions) {
		return Scored{}, fmt.Errorf("%s: %d examples but %d predictions", t.name, len(examples), len(predictions))
	}
	s, err := t.score(examples, predictions)
	if err != nil {
		return Scored{}, fmt.Errorf("%s: %w", t.name, err)
	}
	return s, nil
}

// floatValue is an Outcome value for a number: the float itself when finite, its name
// otherwise (JSON has no NaN or infinities).
func floatValue(v float64) any {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return v
}
