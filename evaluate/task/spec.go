package task

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxSpecBytes bounds a spec file.
const MaxSpecBytes = 1 << 20

// Spec is a user task as a JSON or YAML file (docs/eval-spec.md has the long form):
//
//	name: reviews/sentiment      # required; letters, digits, . _ - and / between parts
//	version: "3"                 # optional, yours: written into the task's Version
//	description: one line        # optional
//	data: reviews.jsonl          # required: relative to the spec's folder, absolute, or
//	                             # "data:rel/path" for a path under --data
//	format: jsonl                # jsonl | tsv | csv; default from the extension
//	input: "review: {text}"      # required template: {field} is a field, {{ and }} are braces
//	target: label                # the gold field ... or
//	targets: answers             # ... a field holding a list of gold answers (any matches)
//	choices: [negative, positive]  # classification: the target is one of these or its index
//	id: review_id                # optional id field; default the 0-based row number
//	decode_length: 16            # predict mode's token budget; default 128
//	metrics: [accuracy, f1]      # default accuracy with choices, exact_match without
//	modes: [predict, rank]       # default predict, plus rank with choices
//
// Metrics and the keys they report: accuracy ("accuracy"; class ids with choices, the
// prediction equal to a target otherwise), f1 ("f1", binary over two choices, positive
// choices[1], invalid predictions wrong as T5's f1_score_with_invalid), macro_f1
// ("mean_<N>class_f1", T5's mean_multiclass_f1), mcc ("matthews_corrcoef"), pearson
// ("pearson_corrcoef") and spearman ("spearman_corrcoef") on the texts as Python floats
// (string_to_float: −1 when a prediction does not parse), exact_match ("exact_match":
// equal to a target after stripping whitespace), squad ("em", "f1": SQuAD v1.1's
// normalisation, max over the targets), bleu ("bleu": sacrebleu with the intl tokenizer as
// T5's bleu), bleu_13a ("bleu_13a"), bleu_intl ("bleu_intl"), rouge ("rouge1", "rouge2",
// "rougeLsum": rouge-score F-measure means). BLEU takes every target as a reference;
// ROUGE uses each example's first.
//
// Unknown keys, repeated keys and values of the wrong type are errors. The task's Version
// is "spec-" + the first 12 hex digits of the sha256 of the spec's bytes (+ "+version"):
// editing the spec changes it; editing the data file does not, so bump version when you
// change the data.
type Spec struct {
	Name         string   `json:"name" yaml:"name"`
	Version      string   `json:"version" yaml:"version"`
	Description  string   `json:"description" yaml:"description"`
	Data         string   `json:"data" yaml:"data"`
	Format       string   `json:"format" yaml:"format"`
	Input        string   `json:"input" yaml:"input"`
	Target       string   `json:"target" yaml:"target"`
	Targets      string   `json:"targets" yaml:"targets"`
	Choices      []string `json:"choices" yaml:"choices"`
	ID           string   `json:"id" yaml:"id"`
	DecodeLength int      `json:"decode_length" yaml:"decode_length"`
	Metrics      []string `json:"metrics" yaml:"metrics"`
	Modes        []string `json:"modes" yaml:"modes"`
}

// specKeys are the keys a spec may have, as Spec's tags spell them.
func specKeys() []string {
	return []string{"name", "version", "description", "data", "format", "input", "target",
		"targets", "choices", "id", "decode_length", "metrics", "modes"}
}

// SpecError is a spec that does not validate.
type SpecError struct {
	Field string // the key at fault, "" for the document as a whole
	Err   error
}

func (e *SpecError) Error() string {
	if e.Field == "" {
		return "task spec: " + e.Err.Error()
	}
	return "task spec: " + e.Field + ": " + e.Err.Error()
}

func (e *SpecError) Unwrap() error { return e.Err }

func specErr(field, format string, args ...any) error {
	return &SpecError{Field: field, Err: fmt.Errorf(format, args...)}
}

// metricKeys are the result keys each spec metric reports (macro_f1's depends on the
// number of choices and is filled in by validation).
func metricKeys(name string, choices int) []string {
	switch name {
	case "accuracy", "f1", "exact_match", "bleu", "bleu_13a", "bleu_intl":
		return []string{name}
	case "macro_f1":
		return []string{fmt.Sprintf("mean_%dclass_f1", choices)}
	case "mcc":
		return []string{"matthews_corrcoef"}
	case "pearson":
		return []string{"pearson_corrcoef"}
	case "spearman":
		return []string{"spearman_corrcoef"}
	case "squad":
		return []string{"em", "f1"}
	case "rouge":
		return []string{"rouge1", "rouge2", "rougeLsum"}
	}
	return nil
}

var (
	specNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)
	specVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// decodeSpec parses spec bytes: JSON when the first non-space byte is '{', YAML otherwise,
// strictly in both.
func decodeSpec(data []byte) (Spec, error) {
	var s Spec
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\ufeff")), " \t\r\n")
	if len(trimmed) == 0 {
		return s, specErr("", "empty spec")
	}
	if trimmed[0] == '{' {
		if err := checkJSONKeys(trimmed); err != nil {
			return s, err
		}
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if err := dec.Decode(&s); err != nil {
			return s, specJSONErr(err)
		}
		return s, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return s, specErr("", "empty spec")
		}
		if unquotedTemplate(data) {
			return s, specErr("input", `YAML reads an unquoted {…} as a mapping: quote the template (input: "review: {text}")`)
		}
		return s, &SpecError{Err: fmt.Errorf("YAML: %w", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return s, specErr("", "more than one YAML document")
	}
	return s, nil
}

// unquotedTemplate reports whether a YAML spec's input is a mapping or a sequence: an
// unquoted "{text}" (or "[x]") template.
func unquotedTemplate(data []byte) bool {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	m := doc.Content[0].Content
	for i := 0; i+1 < len(m); i += 2 {
		if m[i].Value == "input" && (m[i+1].Kind == yaml.MappingNode || m[i+1].Kind == yaml.SequenceNode) {
			return true
		}
	}
	return false
}

// checkJSONKeys refuses unknown and repeated top-level keys, matched exactly (Go's JSON
// decoding alone would accept "Name" for "name" and keep the last of two "name"s).
func checkJSONKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return specJSONErr(err)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return specJSONErr(err)
		}
		key, ok := tok.(string)
		if !ok {
			return specErr("", "JSON: want a key, got %v", tok)
		}
		if !slices.Contains(specKeys(), key) {
			return specErr(key, "unknown key (known: %s)", strings.Join(specKeys(), ", "))
		}
		if seen[key] {
			return specErr(key, "repeated key")
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return specJSONErr(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return specJSONErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return specErr("", "JSON: data after the spec object")
	}
	return nil
}

func specJSONErr(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return specErr(te.Field, "want %v, got JSON %s", te.Type, te.Value)
	}
	return &SpecError{Err: fmt.Errorf("JSON: %w", err)}
}

// ParseSpec builds a task from a spec (JSON or YAML; see Spec). dir is the folder a
// relative data path resolves against (the spec file's folder). The data file is read by
// Load, not here.
func ParseSpec(data []byte, dir string) (*Task, error) {
	if len(data) > MaxSpecBytes {
		return nil, specErr("", "larger than %d bytes", MaxSpecBytes)
	}
	s, err := decodeSpec(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	version := "spec-" + hex.EncodeToString(sum[:])[:12]
	if s.Version != "" {
		version += "+" + s.Version
	}
	return s.task(version, dir)
}

// LoadSpec reads a spec file and builds its task; relative data paths resolve against
// the file's folder.
func LoadSpec(path string) (*Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("task: spec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("task: spec %s: %w", path, err)
	}
	t, err := ParseSpec(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// validate checks a decoded spec and fills its defaults.
func (s *Spec) validate() (tmpl []tmplPart, err error) {
	switch {
	case s.Name == "":
		return nil, specErr("name", "required")
	case !specNameRE.MatchString(s.Name) || len(s.Name) > 128:
		return nil, specErr("name", "%q: use letters, digits, '.', '_', '-', with '/' between parts (at most 128)", s.Name)
	}
	if _, err := Lookup(s.Name); err == nil {
		return nil, specErr("name", "%q names a built-in task; pick another", s.Name)
	}
	if s.Version != "" && !specVersionRE.MatchString(s.Version) {
		return nil, specErr("version", "%q: use letters, digits, '.', '_', '-' (at most 64)", s.Version)
	}
	if strings.ContainsAny(s.Description, "\r\n") {
		return nil, specErr("description", "one line, please")
	}
	if s.Data == "" {
		return nil, specErr("data", "required: the path of a .jsonl, .tsv or .csv file")
	}
	if s.Format == "" {
		switch strings.ToLower(filepath.Ext(strings.TrimPrefix(s.Data, "data:"))) {
		case ".jsonl", ".ndjson":
			s.Format = "jsonl"
		case ".tsv":
			s.Format = "tsv"
		case ".csv":
			s.Format = "csv"
		default:
			return nil, specErr("format", "cannot tell from %q; set jsonl, tsv or csv", s.Data)
		}
	}
	if s.Format != "jsonl" && s.Format != "tsv" && s.Format != "csv" {
		return nil, specErr("format", "%q: want jsonl, tsv or csv", s.Format)
	}
	if s.Input == "" {
		return nil, specErr("input", `required: a template such as "review: {text}"`)
	}
	if tmpl, err = parseTemplate(s.Input); err != nil {
		return nil, &SpecError{Field: "input", Err: err}
	}
	switch {
	case s.Target == "" && s.Targets == "":
		return nil, specErr("target", "set target (the gold field) or targets (a field with a list of answers)")
	case s.Target != "" && s.Targets != "":
		return nil, specErr("targets", "set target or targets, not both")
	case s.Targets != "" && s.Format != "jsonl":
		return nil, specErr("targets", "a list of answers needs jsonl data")
	case s.Targets != "" && s.Choices != nil:
		return nil, specErr("choices", "choices go with target, not targets")
	}
	if s.Choices != nil {
		if len(s.Choices) < 2 {
			return nil, specErr("choices", "want at least two")
		}
		for i, c := range s.Choices {
			if c == "" {
				return nil, specErr("choices", "choice %d is empty", i)
			}
			if slices.Index(s.Choices, c) != i {
				return nil, specErr("choices", "%q is listed twice", c)
			}
		}
	}
	switch {
	case s.DecodeLength == 0:
		s.DecodeLength = t5DecodeLength
	case s.DecodeLength < 1 || s.DecodeLength > 4096:
		return nil, specErr("decode_length", "%d: want 1 to 4096", s.DecodeLength)
	}
	if err := s.validateMetrics(); err != nil {
		return nil, err
	}
	return tmpl, s.validateModes()
}

func (s *Spec) validateMetrics() error {
	if s.Metrics == nil {
		s.Metrics = []string{"exact_match"}
		if s.Choices != nil {
			s.Metrics = []string{"accuracy"}
		}
	}
	if len(s.Metrics) == 0 {
		return specErr("metrics", "empty")
	}
	keys := make(map[string]string)
	for _, m := range s.Metrics {
		ks := metricKeys(m, len(s.Choices))
		if ks == nil {
			return specErr("metrics", "unknown metric %q (known: accuracy, f1, macro_f1, mcc, pearson, spearman, exact_match, squad, bleu, bleu_13a, bleu_intl, rouge)", m)
		}
		switch m {
		case "f1":
			if len(s.Choices) != 2 {
				return specErr("metrics", "f1 is binary: it needs exactly two choices (positive = the second)")
			}
		case "macro_f1", "mcc":
			if s.Choices == nil {
				return specErr("metrics", "%s needs choices", m)
			}
		}
		for _, k := range ks {
			if prev, ok := keys[k]; ok {
				return specErr("metrics", "%s and %s both report %q", prev, m, k)
			}
			keys[k] = m
		}
	}
	return nil
}

func (s *Spec) validateModes() error {
	if s.Modes == nil {
		s.Modes = []string{"predict"}
		if s.Choices != nil {
			s.Modes = append(s.Modes, "rank")
		}
	}
	if len(s.Modes) == 0 {
		return specErr("modes", "empty")
	}
	for i, m := range s.Modes {
		switch m {
		case "predict":
		case "rank":
			if s.Choices == nil {
				return specErr("modes", "rank needs choices to score")
			}
		default:
			return specErr("modes", "%q: want predict or rank", m)
		}
		if slices.Index(s.Modes, m) != i {
			return specErr("modes", "%q is listed twice", m)
		}
	}
	return nil
}

// task builds the Task of a valid spec.
func (s Spec) task(version, dir string) (*Task, error) {
	tmpl, err := s.validate()
	if err != nil {
		return nil, err
	}
	t := &Task{
		name:         s.Name,
		version:      version,
		description:  s.Description,
		decodeLength: s.DecodeLength,
		rankable:     slices.Contains(s.Modes, "rank"),
		modes:        slices.Clone(s.Modes),
	}
	if t.description == "" {
		t.description = "user task from " + filepath.Base(strings.TrimPrefix(s.Data, "data:"))
	}
	if rel, ok := strings.CutPrefix(s.Data, "data:"); ok {
		if rel == "" || filepath.IsAbs(rel) {
			return nil, specErr("data", `"data:" takes a path relative to the --data folder`)
		}
		t.dataPath, t.dataRel = filepath.Clean(rel), true
	} else {
		p := s.Data
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		t.dataPath = p
	}
	spec := s
	t.load = func(ctx context.Context, paths []string) ([]Example, error) {
		return spec.load(ctx, paths[0], tmpl)
	}
	t.score = spec.score
	return t, nil
}
