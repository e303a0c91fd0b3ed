package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// superGLUEHint says where the SuperGLUE files come from.
const superGLUEHint = "SuperGLUE's v2 dev sets come from https://super.gluebenchmark.com/tasks, one zip per task (https://dl.fbaipublicfiles.com/glue/superglue/data/v2/<Task>.zip), unzipped as <data>/superglue/<Task>/val.jsonl"

// boolClasses are TFDS SuperGlueConfig's default label_classes.
func boolClasses() []string { return []string{"False", "True"} }

// castLabel is TFDS super_glue.py's _cast_label followed by ClassLabel encoding: a string
// must be a class name; a bool is "True"/"False"; an int must be 0 or 1 and becomes "0"/"1"
// (which only a class named so accepts); anything else is an error.
func castLabel(raw json.RawMessage, classes []string) (int, error) {
	var name string
	switch {
	case len(raw) > 0 && raw[0] == '"':
		if err := json.Unmarshal(raw, &name); err != nil {
			return 0, fmt.Errorf("label: %w", err)
		}
	case string(raw) == "true":
		name = "True"
	case string(raw) == "false":
		name = "False"
	default:
		var v int64
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, fmt.Errorf("label %s: want a string, a bool or 0/1", abbrev(raw))
		}
		if v != 0 && v != 1 {
			return 0, fmt.Errorf("label %d: TFDS accepts only 0 or 1", v)
		}
		name = strconv.FormatInt(v, 10)
	}
	i := classID(name, classes)
	if i < 0 {
		return 0, fmt.Errorf("label %q is not one of %s", name, strings.Join(classes, ", "))
	}
	return i, nil
}

// rowLabel reads a SuperGLUE row's label; TFDS asserts a row without one is from the test
// split.
func rowLabel(row jsonObject, classes []string) (int, error) {
	raw, ok := row["label"]
	if !ok {
		return 0, errors.New(`no "label" (a test split? Load reads the validation split, val.jsonl)`)
	}
	return castLabel(raw, classes)
}

// strs reads several string fields of a row.
func strs(row jsonObject, keys ...string) ([]string, error) {
	out := make([]string, len(keys))
	for i, k := range keys {
		s, err := row.str(k)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// simpleSource is a SuperGLUE config whose rows map one-to-one to examples.
type simpleSource struct {
	benchmark string
	features  []string // TFDS features (all strings here), in feature_names order when ordered
	ordered   bool     // glue() gets feature_names (WiC) instead of sorting
	extraInts []string // further TFDS int features that must be present (WiC's offsets)
	classes   []string
	copa      bool // label is "choice2" if truthy else "choice1"
}

// readSimple reads boolq, cb, copa, rte and wic rows.
func readSimple(ctx context.Context, r io.Reader, file string, src simpleSource) ([]Example, error) {
	var out []Example
	err := scanJSONL(ctx, r, file, func(line int, row jsonObject) error {
		bad := func(err error) error { return &LineError{File: file, Line: line, Err: err} }
		vals, err := strs(row, src.features...)
		if err != nil {
			return bad(err)
		}
		for _, k := range src.extraInts {
			if _, err := row.integer(k); err != nil {
				return bad(err)
			}
		}
		idx, err := row.integer("idx")
		if err != nil {
			return bad(err)
		}
		var label int
		if src.copa {
			raw, ok := row["label"]
			if !ok {
				return bad(errors.New(`no "label" (a test split?)`))
			}
			truthy, err := pyTruthy(raw)
			if err != nil {
				return bad(fmt.Errorf("label: %w", err))
			}
			if truthy {
				label = 1
			}
		} else if label, err = rowLabel(row, src.classes); err != nil {
			return bad(err)
		}
		feats := make([]feature, len(vals))
		for i, v := range vals {
			feats[i] = feature{src.features[i], v}
		}
		if !src.ordered {
			feats = sortedFeatures(feats...)
		}
		out = append(out, Example{
			ID:      strconv.FormatInt(idx, 10),
			Input:   glueInputs(src.benchmark, feats),
			Target:  src.classes[label],
			Choices: append([]string(nil), src.classes...),
		})
		return nil
	})
	return out, err
}

// passageRow reads the idx, passage object and passage text of a MultiRC or ReCoRD row.
func passageRow(row jsonObject) (idx int64, passage jsonObject, text string, err error) {
	if idx, err = row.integer("idx"); err != nil {
		return 0, nil, "", err
	}
	if passage, err = row.object("passage"); err != nil {
		return 0, nil, "", err
	}
	if text, err = passage.str("text"); err != nil {
		return 0, nil, "", fmt.Errorf("passage: %w", err)
	}
	return idx, passage, text, nil
}

// readMultiRC flattens MultiRC as TFDS does (one example per answer, idx =
// {paragraph, question, answer}) into T5's examples: "multirc question: … answer: …
// paragraph: …" with <br> and <b> markup removed, target "False"/"True" ("<unk>" when an
// answer has no label), grouped by question idx as T5's multirc postprocessor groups.
func readMultiRC(ctx context.Context, r io.Reader, file string) ([]Example, error) {
	var out []Example
	err := scanJSONL(ctx, r, file, func(line int, row jsonObject) error {
		bad := func(err error) error { return &LineError{File: file, Line: line, Err: err} }
		pidx, passage, text, err := passageRow(row)
		if err != nil {
			return bad(err)
		}
		questions, err := passage.objects("questions")
		if err != nil {
			return bad(fmt.Errorf("passage: %w", err))
		}
		for qi, q := range questions {
			question, err := q.str("question")
			if err == nil {
				var qidx int64
				if qidx, err = q.integer("idx"); err == nil {
					var answers []jsonObject
					if answers, err = q.objects("answers"); err == nil {
						err = multircAnswers(&out, pidx, qidx, text, question, answers)
					}
				}
			}
			if err != nil {
				return bad(fmt.Errorf("passage.questions[%d]: %w", qi, err))
			}
		}
		return nil
	})
	return out, err
}

func multircAnswers(out *[]Example, pidx, qidx int64, paragraph, question string, answers []jsonObject) error {
	for ai, a := range answers {
		text, err := a.str("text")
		if err != nil {
			return fmt.Errorf("answers[%d]: %w", ai, err)
		}
		aidx, err := a.integer("idx")
		if err != nil {
			return fmt.Errorf("answers[%d]: %w", ai, err)
		}
		target := "<unk>"
		if raw, ok := a["label"]; ok && string(raw) != "null" {
			truthy, err := pyTruthy(raw) // TFDS: _cast_label(bool(label))
			if err != nil {
				return fmt.Errorf("answers[%d]: label: %w", ai, err)
			}
			target = boolClasses()[b2i(truthy)]
		}
		*out = append(*out, Example{
			ID:      fmt.Sprintf("p%d/q%d/a%d", pidx, qidx, aidx),
			Input:   glueInputs("multirc", []feature{{"question", question}, {"answer", text}, {"paragraph", paragraph}}),
			Target:  target,
			Choices: boolClasses(),
			Group:   fmt.Sprintf("q%d", qidx),
		})
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// recordQuery is one ReCoRD query as TFDS yields it.
type recordQuery struct {
	passageIdx, queryIdx int64
	passage, query       string
	entities, answers    []string // unique, sorted
}

// recordExamples is preprocessors.record for one query: one example per answer (target =
// the answer; "<unk>" and no Answers when there is none), every one carrying all answers.
func recordExamples(q recordQuery) []Example {
	input := recordInputs(q.query, q.entities, q.passage)
	id := fmt.Sprintf("p%d/q%d", q.passageIdx, q.queryIdx)
	targets := q.answers
	if len(targets) == 0 {
		targets = []string{"<unk>"}
	}
	out := make([]Example, len(targets))
	for i, tgt := range targets {
		out[i] = Example{ID: id, Input: input, Target: tgt, Answers: q.answers, Choices: q.entities, Group: id}
	}
	return out
}

// readReCoRD reads ReCoRD rows (a passage with entity offsets and its queries) as TFDS
// does: entities are text[start:end+1] in code points (end inclusive), de-duplicated and
// sorted, as are the answers. Load keeps only the first of T5's per-answer examples of
// each query: it is the one deduplicate_metric(squad) scores, and the others have the same
// input, so the metrics are T5's at a fraction of the decoding.
func readReCoRD(ctx context.Context, r io.Reader, file string) ([]Example, error) {
	return readReCoRDExamples(ctx, r, file, false)
}

// readReCoRDExamples is readReCoRD keeping, when all, every one of T5's per-answer
// examples (its training examples) instead of the first of each query.
func readReCoRDExamples(ctx context.Context, r io.Reader, file string, all bool) ([]Example, error) {
	var out []Example
	err := scanJSONL(ctx, r, file, func(line int, row jsonObject) error {
		bad := func(err error) error { return &LineError{File: file, Line: line, Err: err} }
		pidx, passage, text, err := passageRow(row)
		if err != nil {
			return bad(err)
		}
		ents, err := passage.objects("entities")
		if err != nil {
			return bad(fmt.Errorf("passage: %w", err))
		}
		runes := []rune(text)
		set := make(map[string]bool, len(ents))
		for i, e := range ents {
			start, err := e.integer("start")
			if err == nil {
				var end int64
				if end, err = e.integer("end"); err == nil {
					lo, hi := pySlice(len(runes), clampInt(start), clampInt(end)+1)
					set[string(runes[lo:hi])] = true
				}
			}
			if err != nil {
				return bad(fmt.Errorf("passage.entities[%d]: %w", i, err))
			}
		}
		entities := sortedKeys(set)
		qas, err := row.objects("qas")
		if err != nil {
			return bad(err)
		}
		for i, qa := range qas {
			q, err := recordQA(qa)
			if err != nil {
				return bad(fmt.Errorf("qas[%d]: %w", i, err))
			}
			q.passageIdx, q.passage, q.entities = pidx, text, entities
			if exs := recordExamples(q); all {
				out = append(out, exs...)
			} else {
				out = append(out, exs[0])
			}
		}
		return nil
	})
	return out, err
}

func recordQA(qa jsonObject) (recordQuery, error) {
	var q recordQuery
	var err error
	if q.query, err = qa.str("query"); err != nil {
		return q, err
	}
	if q.queryIdx, err = qa.integer("idx"); err != nil {
		return q, err
	}
	if !qa.has("answers") {
		return q, nil
	}
	answers, err := qa.objects("answers")
	if err != nil {
		return q, err
	}
	set := make(map[string]bool, len(answers))
	for i, a := range answers {
		s, err := a.str("text")
		if err != nil {
			return q, fmt.Errorf("answers[%d]: %w", i, err)
		}
		set[s] = true
	}
	q.answers = sortedKeys(set)
	return q, nil
}

// clampInt keeps a JSON offset within int range; pySlice clamps it further.
func clampInt(v int64) int {
	const lim = 1 << 40
	return int(max(-lim, min(lim, v)))
}

// sortedKeys is Python's sorted(set): code-point order, which is byte order in UTF-8.
func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// wscRow is a WSC row after TFDS's row.update(row["target"]).
type wscRow struct {
	text                   string
	span1Index, span2Index int64
	span1Text, span2Text   string
}

// fixWSC is TFDS's _fix_wst (the wsc.fixed config): a span text that is not a substring
// of the text gets the case of the word at its index, loses trailing dots and newlines,
// and must then be a substring. Its "theyscold" branch sets span2_index to 10 and (a bug
// kept as is) leaves the text alone.
func fixWSC(ex *wscRow) error {
	fix := func(name string, text *string, index int64) error {
		if strings.Contains(ex.text, *text) {
			return nil
		}
		if *text == "Kamenev and Zinoviev" || *text == "Kamenev, Zinoviev, and Stalin" {
			return nil
		}
		if strings.Contains(*text, "theyscold") {
			ex.span2Index = 10
		}
		words := pySplit(ex.text)
		i := index
		if i < 0 {
			i += int64(len(words))
		}
		if i < 0 || i >= int64(len(words)) {
			return fmt.Errorf("%s_index %d outside the %d words of the text", name, index, len(words))
		}
		if *text == "" {
			return fmt.Errorf("%s_text is empty", name)
		}
		first, _ := utf8.DecodeRuneInString(words[i])
		head, size := utf8.DecodeRuneInString(*text)
		var s string
		if unicode.IsLower(first) || unicode.Is(unicode.Other_Lowercase, first) {
			s = strings.ToLower(string(head)) + (*text)[size:]
		} else {
			s = strings.ToUpper(string(head)) + (*text)[size:]
		}
		s = strings.TrimRight(s, ".")
		s = strings.ReplaceAll(s, "\n", " ")
		if !strings.Contains(ex.text, s) {
			return fmt.Errorf("%s_text %q is not in the text even after TFDS's fixes", name, s)
		}
		*text = s
		return nil
	}
	if err := fix("span1", &ex.span1Text, ex.span1Index); err != nil {
		return err
	}
	return fix("span2", &ex.span2Text, ex.span2Index)
}

// readWSC reads WSC rows as TFDS's wsc.fixed config and makes T5's
// super_glue_wsc_v102_simple_eval examples: input "wsc: <text with *pronoun*>", target
// the candidate noun phrase (span1_text), the gold label kept for the postprocessor.
func readWSC(ctx context.Context, r io.Reader, file string) ([]Example, error) {
	var out []Example
	err := scanJSONL(ctx, r, file, func(line int, row jsonObject) error {
		bad := func(err error) error { return &LineError{File: file, Line: line, Err: err} }
		var ex wscRow
		target, err := row.object("target")
		if err != nil {
			return bad(err)
		}
		// row.update(row["target"]): the target's keys win.
		get := func(k string) jsonObject {
			if target.has(k) {
				return target
			}
			return row
		}
		if ex.text, err = get("text").str("text"); err != nil {
			return bad(err)
		}
		if ex.span1Index, err = get("span1_index").integer("span1_index"); err != nil {
			return bad(err)
		}
		if ex.span2Index, err = get("span2_index").integer("span2_index"); err != nil {
			return bad(err)
		}
		if ex.span1Text, err = get("span1_text").str("span1_text"); err != nil {
			return bad(err)
		}
		if ex.span2Text, err = get("span2_text").str("span2_text"); err != nil {
			return bad(err)
		}
		idx, err := get("idx").integer("idx")
		if err != nil {
			return bad(err)
		}
		labelRow := row
		if target.has("label") {
			labelRow = target
		}
		label, err := rowLabel(labelRow, boolClasses())
		if err != nil {
			return bad(err)
		}
		if err := fixWSC(&ex); err != nil {
			return bad(err)
		}
		input, err := wscInputs(ex.text, ex.span2Index, ex.span2Text)
		if err != nil {
			return bad(err)
		}
		out = append(out, Example{ID: strconv.FormatInt(idx, 10), Input: input, Target: ex.span1Text, gold: label, goldSet: true})
		return nil
	})
	return out, err
}

// superGLUETask is one built-in SuperGLUE task.
type superGLUETask struct {
	name, t5Name, dir, description string
	read                           func(ctx context.Context, r io.Reader, file string) ([]Example, error)
	score                          func([]Example, []string) (Scored, error)
	rankable                       bool
}

func superGLUETasks() []superGLUETask {
	simple := func(src simpleSource) func(ctx context.Context, r io.Reader, file string) ([]Example, error) {
		return func(ctx context.Context, r io.Reader, file string) ([]Example, error) {
			return readSimple(ctx, r, file, src)
		}
	}
	cb := []string{"entailment", "contradiction", "neutral"}
	rte := []string{"entailment", "not_entailment"}
	copa := []string{"choice1", "choice2"}
	return []superGLUETask{
		{"boolq", "super_glue_boolq_v102", "BoolQ", "BoolQ: yes/no question about a Wikipedia passage (accuracy)",
			simple(simpleSource{benchmark: "boolq", features: []string{"question", "passage"}, classes: boolClasses()}),
			scoreClasses(boolClasses(), metricAccuracy), true},
		{"cb", "super_glue_cb_v102", "CB", "CommitmentBank: entailment, contradiction or neutral (mean 3-class F1, accuracy)",
			simple(simpleSource{benchmark: "cb", features: []string{"premise", "hypothesis"}, classes: cb}),
			scoreClasses(cb, metricMacroF1, metricAccuracy), true},
		{"copa", "super_glue_copa_v102", "COPA", "COPA: which choice is the cause/effect of the premise (accuracy)",
			simple(simpleSource{benchmark: "copa", features: []string{"premise", "choice1", "choice2", "question"}, classes: copa, copa: true}),
			scoreClasses(copa, metricAccuracy), true},
		{"multirc", "super_glue_multirc_v102", "MultiRC", "MultiRC: is each answer to a passage question true (F1 over answers, exact match per question)",
			readMultiRC, scoreMultiRC, true},
		{"record", "super_glue_record_v102", "ReCoRD", "ReCoRD: which entity fills the query's @placeholder (SQuAD EM/F1, first example per query)",
			readReCoRD, scoreReCoRD, true},
		{"rte", "super_glue_rte_v102", "RTE", "SuperGLUE RTE: textual entailment (accuracy)",
			simple(simpleSource{benchmark: "rte", features: []string{"premise", "hypothesis"}, classes: rte}),
			scoreClasses(rte, metricAccuracy), true},
		{"wic", "super_glue_wic_v102", "WiC", "WiC: is the word used in the same sense in both sentences (accuracy)",
			simple(simpleSource{benchmark: "wic", features: []string{"sentence1", "sentence2", "word"}, ordered: true,
				extraInts: []string{"start1", "start2", "end1", "end2"}, classes: boolClasses()}),
			scoreClasses(boolClasses(), metricAccuracy), true},
		{"wsc", "super_glue_wsc_v102_simple_eval", "WSC", "WSC as T5's wsc_simple: generate the pronoun's referent, compared with the candidate (accuracy)",
			readWSC, scoreWSC, false},
	}
}

func newSuperGLUETask(g superGLUETask) *Task {
	modes := []string{"predict"}
	if g.rankable {
		modes = append(modes, "rank")
	}
	read := g.read
	return &Task{
		name:         "super_glue/" + g.name,
		t5Name:       g.t5Name,
		version:      builtinVersion("super_glue/" + g.name),
		benchmark:    "super_glue",
		description:  g.description,
		files:        [][]string{{"superglue/" + g.dir + "/val.jsonl", g.dir + "/val.jsonl"}},
		hint:         superGLUEHint,
		decodeLength: t5DecodeLength,
		rankable:     g.rankable,
		modes:        modes,
		score:        g.score,
		load: func(ctx context.Context, paths []string) ([]Example, error) {
			f, err := openData(paths[0])
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return read(ctx, f, paths[0])
		},
	}
}
