package task

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/t5zoo/t5zoo/evaluate/metric"
)

// tmplPart is a literal run of a spec's input template, or a field to fill in.
type tmplPart struct {
	lit   string
	field string
}

// parseTemplate splits an input template: "{name}" is a field, "{{" and "}}" are literal
// braces, and any other brace is an error.
func parseTemplate(s string) ([]tmplPart, error) {
	var parts []tmplPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, tmplPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			if i+1 < len(s) && s[i+1] == '{' {
				lit.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] != '}' {
				return nil, fmt.Errorf("unclosed { at byte %d (write {{ for a literal brace)", i)
			}
			name := s[i+1 : i+1+end]
			switch {
			case name == "":
				return nil, fmt.Errorf("empty field name at byte %d", i)
			case strings.TrimSpace(name) != name:
				return nil, fmt.Errorf("field name %q has spaces around it", name)
			}
			flush()
			parts = append(parts, tmplPart{field: name})
			i += 1 + end
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				lit.WriteByte('}')
				i++
				continue
			}
			return nil, fmt.Errorf("lone } at byte %d (write }} for a literal brace)", i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

// specRow is one data row of a spec task: its fields by name.
type specRow interface {
	// text returns a field as text: a string as is, a JSON number as written, a JSON bool
	// as True/False (as TFDS writes labels).
	text(field string) (string, error)
	// raw returns a field's JSON value (JSONL), or nil (TSV, CSV).
	raw(field string) json.RawMessage
}

type jsonRow jsonObject

func (r jsonRow) raw(field string) json.RawMessage { return r[field] }

func (r jsonRow) text(field string) (string, error) {
	raw, ok := r[field]
	if !ok {
		return "", fmt.Errorf("no field %q", field)
	}
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("field %q: %w", field, err)
		}
		return s, nil
	case string(raw) == "true":
		return "True", nil
	case string(raw) == "false":
		return "False", nil
	case len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')):
		return string(raw), nil
	}
	return "", fmt.Errorf("field %q: want a string, number or bool, got %s", field, abbrev(raw))
}

type tableRow struct {
	header map[string]int
	fields []string
}

func (r tableRow) raw(string) json.RawMessage { return nil }

func (r tableRow) text(field string) (string, error) {
	i, ok := r.header[field]
	if !ok {
		return "", fmt.Errorf("no column %q", field)
	}
	if i >= len(r.fields) {
		return "", fmt.Errorf("row too short for column %q", field)
	}
	return r.fields[i], nil
}

// scanSpecData calls fn with each data row of a spec's file, its line and its 0-based
// number.
func (s Spec) scanSpecData(ctx context.Context, r io.Reader, file string, fn func(line, n int, row specRow) error) error {
	n := 0
	switch s.Format {
	case "jsonl":
		return scanJSONL(ctx, r, file, func(line int, obj jsonObject) error {
			n++
			return fn(line, n-1, jsonRow(obj))
		})
	case "tsv":
		var header map[string]int
		return scanTSV(ctx, r, file, func(rec tsvRecord) error {
			if header == nil {
				header = headerIndex(rec.Fields)
				return nil
			}
			if len(rec.Fields) == 0 {
				return nil
			}
			n++
			return fn(rec.Line, n-1, tableRow{header, rec.Fields})
		})
	}
	cr := csv.NewReader(newLimitedReader(r))
	cr.FieldsPerRecord = -1
	var header map[string]int
	for {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("read %s: %w", file, err)
			}
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return &LineError{File: file, Line: pe.Line, Err: pe.Err}
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		line, _ := cr.FieldPos(0)
		if header == nil {
			header = headerIndex(rec)
			continue
		}
		n++
		if err := fn(line, n-1, tableRow{header, rec}); err != nil {
			return err
		}
	}
}

func headerIndex(fields []string) map[string]int {
	h := make(map[string]int, len(fields))
	for i, f := range fields {
		if i == 0 {
			f = strings.TrimPrefix(f, "\ufeff")
		}
		h[f] = i
	}
	return h
}

// load reads a spec task's examples.
func (s Spec) load(ctx context.Context, path string, tmpl []tmplPart) ([]Example, error) {
	f, err := openData(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	floats := s.floats()
	var out []Example
	ids := make(map[string]int)
	err = s.scanSpecData(ctx, f, path, func(line, n int, row specRow) error {
		ex, err := s.example(row, n, tmpl, floats)
		if err != nil {
			return &LineError{File: path, Line: line, Err: err}
		}
		if prev, ok := ids[ex.ID]; ok {
			return lineErr(path, line, "id %q repeats the id of line %d", ex.ID, prev)
		}
		ids[ex.ID] = line
		out = append(out, ex)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples", path)
	}
	return out, nil
}

// example builds one spec example from a row.
func (s Spec) example(row specRow, n int, tmpl []tmplPart, floats bool) (Example, error) {
	var ex Example
	var in strings.Builder
	for _, p := range tmpl {
		if p.field == "" {
			in.WriteString(p.lit)
			continue
		}
		v, err := row.text(p.field)
		if err != nil {
			return ex, fmt.Errorf("input: %w", err)
		}
		in.WriteString(v)
	}
	ex.Input = in.String()
	ex.ID = strconv.Itoa(n)
	if s.ID != "" {
		id, err := row.text(s.ID)
		if err != nil {
			return ex, fmt.Errorf("id: %w", err)
		}
		ex.ID = id
	}
	switch {
	case s.Targets != "":
		raw := row.raw(s.Targets)
		if raw == nil {
			return ex, fmt.Errorf("targets: no field %q", s.Targets)
		}
		var answers []string
		if err := json.Unmarshal(raw, &answers); err != nil || len(answers) == 0 {
			return ex, fmt.Errorf("targets: field %q: want a non-empty list of strings, got %s", s.Targets, abbrev(raw))
		}
		ex.Target, ex.Answers = answers[0], answers
	case s.Choices != nil:
		c, err := s.choice(row)
		if err != nil {
			return ex, err
		}
		ex.Target = s.Choices[c]
		ex.Choices = slices.Clone(s.Choices)
	default:
		t, err := row.text(s.Target)
		if err != nil {
			return ex, fmt.Errorf("target: %w", err)
		}
		ex.Target = t
	}
	if floats {
		for _, t := range answersOf(ex) {
			if _, err := pyFloat(t); err != nil {
				return ex, fmt.Errorf("target %q is not a number (pearson and spearman need numbers)", t)
			}
		}
	}
	return ex, nil
}

// choice reads a classification target: a choice's text, its 0-based index (a JSON
// integer, or text that is not a choice but an integer), or with two choices a JSON bool
// (false the first, true the second).
func (s Spec) choice(row specRow) (int, error) {
	raw := row.raw(s.Target)
	switch {
	case raw != nil && string(raw) == "true" && len(s.Choices) == 2:
		return 1, nil
	case raw != nil && string(raw) == "false" && len(s.Choices) == 2:
		return 0, nil
	}
	t, err := row.text(s.Target)
	if err != nil {
		return 0, fmt.Errorf("target: %w", err)
	}
	if c := classID(t, s.Choices); c >= 0 {
		return c, nil
	}
	if v, err := pyInt(t); err == nil && (raw == nil || raw[0] != '"') {
		if v < 0 || v >= int64(len(s.Choices)) {
			return 0, fmt.Errorf("target index %d: want 0 to %d", v, len(s.Choices)-1)
		}
		return int(v), nil
	}
	return 0, fmt.Errorf("target %q is not one of the choices (%s) or an index", t, strings.Join(s.Choices, ", "))
}

// floats reports whether the spec asks for a metric on numbers.
func (s Spec) floats() bool {
	return slices.Contains(s.Metrics, "pearson") || slices.Contains(s.Metrics, "spearman")
}

// score computes a spec task's metrics. The outcomes are class ids with choices, numbers
// for pearson/spearman without choices, the prediction text otherwise.
func (s Spec) score(examples []Example, predictions []string) (Scored, error) {
	var gold, pred []int
	var goldF, predF []float64
	var sc Scored
	switch {
	case s.Choices != nil:
		gold, pred, sc = classify(examples, predictions, s.Choices)
	case s.floats():
		goldF, predF, sc = floatsOf(examples, predictions)
	default:
		sc.Outcomes = make([]Outcome, len(examples))
		for i := range examples {
			sc.Outcomes[i] = Outcome{Value: predictions[i]}
		}
	}
	if s.floats() && goldF == nil {
		goldF, predF, _ = floatsOf(examples, predictions)
	}
	sc.Metrics = make(map[string]float64)
	firsts := make([]string, len(examples))
	for i, ex := range examples {
		firsts[i] = ex.Target
	}
	for _, m := range s.Metrics {
		switch m {
		case "accuracy":
			if s.Choices != nil {
				sc.Metrics["accuracy"] = metric.Accuracy(gold, pred)
			} else {
				sc.Metrics["accuracy"] = anyMatch(examples, predictions, func(a, b string) bool { return a == b })
			}
		case "exact_match":
			sc.Metrics["exact_match"] = anyMatch(examples, predictions, func(a, b string) bool { return pyStrip(a) == pyStrip(b) })
		case "f1":
			sc.Metrics["f1"] = metric.F1WithInvalid(gold, pred)
		case "macro_f1":
			sc.Metrics[fmt.Sprintf("mean_%dclass_f1", len(s.Choices))] = metric.MeanMulticlassF1(gold, pred, len(s.Choices))
		case "mcc":
			sc.Metrics["matthews_corrcoef"] = metric.MatthewsCorrcoef(gold, pred)
		case "pearson":
			sc.Metrics["pearson_corrcoef"] = metric.Pearson(goldF, predF)
		case "spearman":
			sc.Metrics["spearman_corrcoef"] = metric.Spearman(goldF, predF)
		case "squad":
			answers := make([][]string, len(examples))
			for i, ex := range examples {
				answers[i] = answersOf(ex)
			}
			sc.Metrics["em"], sc.Metrics["f1"] = metric.SQuAD(answers, predictions)
		case "bleu", "bleu_13a", "bleu_intl":
			tok := "intl"
			if m == "bleu_13a" {
				tok = "13a"
			}
			v, err := metric.BLEU(predictions, refStreams(examples), tok)
			if err != nil {
				return Scored{}, fmt.Errorf("%s: %w", m, err)
			}
			sc.Metrics[m] = v
		case "rouge":
			r, err := metric.Rouge(firsts, predictions, "rouge1", "rouge2", "rougeLsum")
			if err != nil {
				return Scored{}, fmt.Errorf("rouge: %w", err)
			}
			for k, v := range r {
				sc.Metrics[k] = v
			}
		}
	}
	return sc, nil
}

// anyMatch is the share ×100 of predictions that match one of their example's targets.
func anyMatch(examples []Example, predictions []string, eq func(a, b string) bool) float64 {
	if len(examples) == 0 {
		return math.NaN()
	}
	hits := 0
	for i, ex := range examples {
		for _, t := range answersOf(ex) {
			if eq(predictions[i], t) {
				hits++
				break
			}
		}
	}
	return 100 * float64(hits) / float64(len(examples))
}

// refStreams lays examples' answers out as sacrebleu's reference streams: stream k holds
// each example's k-th answer, "" where an example has fewer.
func refStreams(examples []Example) [][]string {
	n := 1
	for _, ex := range examples {
		n = max(n, len(answersOf(ex)))
	}
	streams := make([][]string, n)
	for k := range streams {
		streams[k] = make([]string, len(examples))
	}
	for i, ex := range examples {
		for k, a := range answersOf(ex) {
			streams[k][i] = a
		}
	}
	return streams
}
