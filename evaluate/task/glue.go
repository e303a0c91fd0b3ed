package task

import (
	"context"
	"io"
	"strconv"
)

// glueColumn maps a TFDS feature to the TSV column it is read from (TFDS's text_features).
type glueColumn struct{ feature, column string }

// glueSource describes one GLUE config as TFDS's glue.py reads its dev file.
type glueSource struct {
	benchmark string       // the name glue() prepends ("mnli" for both MNLI splits)
	columns   []glueColumn // text features
	label     string       // label column
	classes   []string     // label_classes; nil for STS-B's float score
	noHeader  bool         // CoLA's train and dev files have no header
}

// readGLUE reads a GLUE dev TSV as TFDS does: csv.DictReader with delimiter "\t" and
// QUOTE_NONE (CoLA: csv.reader, sentence = row[3], label = row[1]); idx is the 0-based row
// number; labels that are not class names go through int(); rows with a missing feature
// or an empty label are dropped (TFDS's "Filter out corrupted rows"). The examples are
// T5's: glue() for every config but STS-B, preprocessors.stsb for it.
func readGLUE(ctx context.Context, r io.Reader, file string, src glueSource) ([]Example, error) {
	var out []Example
	emit := func(line, idx int, values map[string]string, label string) error {
		feats := make([]feature, 0, len(src.columns))
		for _, c := range src.columns {
			feats = append(feats, feature{c.feature, values[c.feature]})
		}
		ex := Example{ID: strconv.Itoa(idx), Input: glueInputs(src.benchmark, sortedFeatures(feats...))}
		if src.classes == nil {
			v, err := pyFloat(label)
			if err != nil {
				return lineErr(file, line, "score %q is not a number", label)
			}
			ex.Target = stsbTarget(float32(v)) // TFDS: process_label=np.float32
			ex.Choices = stsbChoices()
		} else {
			idx, ok, err := labelIndex(label, src.classes)
			if err != nil {
				return &LineError{File: file, Line: line, Err: err}
			}
			if !ok {
				return nil
			}
			ex.Target = targetName(idx, src.classes)
			ex.Choices = append([]string(nil), src.classes...)
		}
		out = append(out, ex)
		return nil
	}
	if src.noHeader {
		err := scanTSV(ctx, r, file, func(rec tsvRecord) error {
			if len(rec.Fields) < 4 {
				return lineErr(file, rec.Line, "CoLA row has %d fields, want 4 (source, label, original label, sentence)", len(rec.Fields))
			}
			return emit(rec.Line, rec.Line-1, map[string]string{"sentence": rec.Fields[3]}, rec.Fields[1])
		})
		return out, err
	}
	required := []string{src.label}
	for _, c := range src.columns {
		required = append(required, c.column)
	}
	err := scanDictTSV(ctx, r, file, required, func(row dictRow) error {
		values := make(map[string]string, len(src.columns))
		for _, c := range src.columns {
			v, ok := row.Get(c.column)
			if !ok {
				return nil // TFDS drops a row with a None feature
			}
			values[c.feature] = v
		}
		label, ok := row.Get(src.label)
		if !ok {
			if src.classes == nil {
				// TFDS would make np.float32(None) = nan and T5 the target "nan": refuse.
				return lineErr(file, row.Line, "row has no %q", src.label)
			}
			return nil
		}
		return emit(row.Line, row.N, values, label)
	})
	return out, err
}

// glueTask is one built-in GLUE task.
type glueTask struct {
	name, t5Name, dir, file, description string
	src                                  glueSource
}

// glueHint says where the GLUE files come from.
const glueHint = "GLUE's dev sets come from https://gluebenchmark.com/tasks; the download_glue_data.py script lays them out as <data>/glue/<TASK>/dev.tsv, MRPC's included"

// glueTasks are the GLUE tasks T5 evaluates, with TFDS's columns and label classes.
func glueTasks() []glueTask {
	pair := func(a, b string) []glueColumn { return []glueColumn{{a, a}, {b, b}} }
	mnli := glueSource{benchmark: "mnli", columns: []glueColumn{{"premise", "sentence1"}, {"hypothesis", "sentence2"}},
		label: "gold_label", classes: []string{"entailment", "neutral", "contradiction"}}
	return []glueTask{
		{"cola", "glue_cola_v002", "CoLA", "dev.tsv", "CoLA: is the sentence grammatically acceptable (Matthews correlation)",
			glueSource{benchmark: "cola", columns: []glueColumn{{"sentence", "sentence"}}, label: "is_acceptable",
				classes: []string{"unacceptable", "acceptable"}, noHeader: true}},
		{"sst2", "glue_sst2_v002", "SST-2", "dev.tsv", "SST-2: movie-review sentence sentiment (accuracy)",
			glueSource{benchmark: "sst2", columns: []glueColumn{{"sentence", "sentence"}}, label: "label",
				classes: []string{"negative", "positive"}}},
		{"mrpc", "glue_mrpc_v002", "MRPC", "dev.tsv", "MRPC: are the two news sentences paraphrases (F1, accuracy)",
			glueSource{benchmark: "mrpc", columns: []glueColumn{{"sentence1", "#1 String"}, {"sentence2", "#2 String"}},
				label: "Quality", classes: []string{"not_equivalent", "equivalent"}}},
		{"qqp", "glue_qqp_v002", "QQP", "dev.tsv", "QQP: are the two Quora questions duplicates (F1, accuracy)",
			glueSource{benchmark: "qqp", columns: pair("question1", "question2"), label: "is_duplicate",
				classes: []string{"not_duplicate", "duplicate"}}},
		{"stsb", "glue_stsb_v002", "STS-B", "dev.tsv", "STS-B: sentence similarity 0–5 as 26 strings (Pearson, Spearman)",
			glueSource{benchmark: "stsb", columns: pair("sentence1", "sentence2"), label: "score"}},
		{"mnli_matched", "glue_mnli_matched_v002", "MNLI", "dev_matched.tsv", "MNLI matched: entailment, neutral or contradiction, in-genre (accuracy)", mnli},
		{"mnli_mismatched", "glue_mnli_mismatched_v002", "MNLI", "dev_mismatched.tsv", "MNLI mismatched: entailment, neutral or contradiction, cross-genre (accuracy)", mnli},
		{"qnli", "glue_qnli_v002", "QNLI", "dev.tsv", "QNLI: does the sentence answer the question (accuracy)",
			glueSource{benchmark: "qnli", columns: pair("question", "sentence"), label: "label",
				classes: []string{"entailment", "not_entailment"}}},
		{"rte", "glue_rte_v002", "RTE", "dev.tsv", "GLUE RTE: textual entailment (accuracy)",
			glueSource{benchmark: "rte", columns: pair("sentence1", "sentence2"), label: "label",
				classes: []string{"entailment", "not_entailment"}}},
		{"wnli", "glue_wnli_v002", "WNLI", "dev.tsv", "WNLI: Winograd NLI (accuracy; outside T5's GLUE average)",
			glueSource{benchmark: "wnli", columns: pair("sentence1", "sentence2"), label: "label",
				classes: []string{"not_entailment", "entailment"}}},
	}
}

// newGLUETask builds the Task of a GLUE config.
func newGLUETask(g glueTask) *Task {
	src := g.src
	t := &Task{
		name:         "glue/" + g.name,
		t5Name:       g.t5Name,
		version:      builtinVersion("glue/" + g.name),
		benchmark:    "glue",
		description:  g.description,
		files:        [][]string{{"glue/" + g.dir + "/" + g.file, g.dir + "/" + g.file}},
		hint:         glueHint,
		decodeLength: t5DecodeLength,
		rankable:     true,
		modes:        []string{"predict", "rank"},
		load: func(ctx context.Context, paths []string) ([]Example, error) {
			f, err := openData(paths[0])
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return readGLUE(ctx, f, paths[0], src)
		},
	}
	switch g.name {
	case "cola":
		t.score = scoreClasses(src.classes, metricMCC)
	case "mrpc", "qqp":
		t.score = scoreClasses(src.classes, metricF1, metricAccuracy)
	case "stsb":
		t.score = scoreSTSB
	default:
		t.score = scoreClasses(src.classes, metricAccuracy)
	}
	return t
}

// t5DecodeLength is T5's eval decode budget (t5/models/gin/eval.gin max_decode_length).
const t5DecodeLength = 128
