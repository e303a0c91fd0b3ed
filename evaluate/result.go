package evaluate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/t5zoo/t5zoo/evaluate/metric"
)

// ResultSchema names the format of a cell's results JSON; it changes when a field changes
// meaning.
const ResultSchema = "t5zoo.eval.cell/1"

// Mode is how a cell turns a model into predictions.
type Mode string

const (
	// Predict generates greedily, postprocesses the text as T5 does and compares: the
	// numbers T5 reports.
	Predict Mode = "predict"
	// Rank scores log p(choice | input) for each of an example's choices and takes the
	// argmax: no invalid predictions are possible.
	Rank Mode = "rank"
)

// ParseMode reads a --mode value.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Predict, Rank:
		return Mode(s), nil
	}
	return "", fmt.Errorf("mode %q: want predict or rank", s)
}

// Status is a cell's outcome.
type Status string

const (
	// StatusOK marks a finished cell with metrics.
	StatusOK Status = "ok"
	// StatusFailed marks a cell whose model or task failed; Error says why. A rerun retries it.
	StatusFailed Status = "failed"
)

// Metrics maps T5's metric keys to values (×100 as T5 reports them); NaN is null in JSON.
type Metrics = metric.Values

// ModelInfo identifies the model a cell evaluated.
type ModelInfo struct {
	// Name is the model as the user named it: a registry reference, a catalog shape or a
	// directory.
	Name string `json:"name"`
	// Digest identifies the exact weights: the sha256 manifest digest for a registry model,
	// or the sha256 of the directory's files (DirDigest) for a directory.
	Digest string `json:"digest"`
	// DigestOf says what Digest hashes: "manifest" or "directory".
	DigestOf string `json:"digest_of"`
	// Shape is the catalog name of the model's shape when it has one ("" otherwise).
	Shape string `json:"shape,omitempty"`
	// Params is the model's parameter count (catalog cost model).
	Params int64 `json:"params"`
	// FLOPsPerToken is the cost model's forward FLOPs of a 512-token input and a 128-token
	// target, divided by those 640 tokens: the x axis of the FLOPs Pareto plot.
	FLOPsPerToken float64 `json:"flops_per_token"`
	// DType is the engine's weight dtype ("f32", "bf16", "f16", "int8").
	DType string `json:"dtype"`
}

// CellResult is the results JSON of one (model, task, mode) cell.
type CellResult struct {
	Schema string `json:"schema"`
	Status Status `json:"status"`
	// Error is why the cell failed (Status failed).
	Error string `json:"error,omitempty"`

	Model       ModelInfo `json:"model"`
	Task        string    `json:"task"`
	TaskVersion string    `json:"task_version"`
	// Benchmark is "glue", "super_glue" or "" for a task outside both.
	Benchmark string `json:"benchmark,omitempty"`
	Mode      Mode   `json:"mode"`
	// DataDigest is the sha256 over the data files the task read (DataDigest), so that
	// results on edited or different data are not taken for these.
	DataDigest string `json:"data_digest,omitempty"`

	// Limit is the --limit the cell ran with (0: the whole split).
	Limit int `json:"limit,omitempty"`
	// MaxInputTokens is the length inputs were trimmed to (0: not trimmed).
	MaxInputTokens int `json:"max_input_tokens,omitempty"`
	// Examples is the number of examples scored; Invalid how many predictions T5's
	// postprocessor could not parse (always 0 in rank mode).
	Examples int     `json:"examples"`
	Invalid  int     `json:"invalid"`
	Metrics  Metrics `json:"metrics,omitempty"`

	WallSeconds       float64   `json:"wall_seconds"`
	ExamplesPerSecond float64   `json:"examples_per_second"`
	Started           time.Time `json:"started"`
	Finished          time.Time `json:"finished"`
	// Version is the t5zoo version that produced the cell.
	Version string `json:"t5zoo_version"`
	// Kernels is the CPU kernel path (or device) the engine ran on.
	Kernels string `json:"kernels,omitempty"`
	// ExamplesFile is the key of the per-example JSONL beside this file.
	ExamplesFile string `json:"examples_file,omitempty"`
}

// Cell is one (model, task, mode) of a sweep.
type Cell struct {
	Model string // the model's name as given
	Task  string // the task's name
	Mode  Mode
}

func (c Cell) String() string { return c.Model + " × " + c.Task + " (" + string(c.Mode) + ")" }

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// keyPart turns a model or task name into one safe path element: letters, digits, '.', '_'
// and '-' stay, runs of anything else become '_' ("glue/sst2" → "glue_sst2",
// "./models/t5" → "._models_t5"); a name that would be empty, "." or ".." gets a prefix.
func keyPart(s string) string {
	p := unsafeKeyChars.ReplaceAllString(s, "_")
	p = strings.Trim(p, "_")
	if p == "" || p == "." || p == ".." {
		p = "_" + p
	}
	return p
}

// ResultKey is the store key of a cell's results JSON:
// <model>/<task>/<mode>.json, each part made safe by keyPart.
func (c Cell) ResultKey() string {
	return path.Join(keyPart(c.Model), keyPart(c.Task), string(c.Mode)+".json")
}

// ExamplesKey is the store key of a cell's per-example JSONL, beside its results JSON.
func (c Cell) ExamplesKey() string {
	return path.Join(keyPart(c.Model), keyPart(c.Task), string(c.Mode)+".examples.jsonl")
}

// ParseResult reads a results JSON, refusing another schema.
func ParseResult(data []byte) (*CellResult, error) {
	var r CellResult
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("evaluate: results JSON: %w", err)
	}
	if r.Schema != ResultSchema {
		return nil, fmt.Errorf("evaluate: results JSON has schema %q, want %q", r.Schema, ResultSchema)
	}
	return &r, nil
}

// ExampleRecord is one line of a cell's per-example JSONL.
type ExampleRecord struct {
	ID     string `json:"id"`
	Input  string `json:"input"`
	Target string `json:"target"`
	// Prediction is the generated text (predict mode) or the chosen choice (rank mode).
	Prediction string `json:"prediction"`
	// Value is the postprocessed prediction the metrics saw (a class name, a number, text).
	Value any `json:"value,omitempty"`
	// Invalid marks a prediction the postprocessor could not parse.
	Invalid bool `json:"invalid,omitempty"`
	// Choices and Scores are rank mode's candidates and their log p(choice | input).
	Choices []string  `json:"choices,omitempty"`
	Scores  []float64 `json:"scores,omitempty"`
}
