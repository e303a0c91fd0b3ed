package task

import (
	"context"
	"fmt"
	"io"
)

// squadHint says where SQuAD v1.1's dev file comes from.
const squadHint = "SQuAD v1.1's dev set comes from https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json, saved as <data>/squad/dev-v1.1.json"

// readSQuAD reads a SQuAD v1.1 JSON file as TFDS's squad/v1.1:3.0.0 does
// (qa_utils.generate_squadlike_examples: questions grouped by id in first-seen order, a
// repeated id adding its answers, nothing stripped) and makes preprocessors.squad's
// examples: "question: <q> context: <c>" with both punctuation-padded and whitespace
// collapsed, every answer padded, the first one the target.
func readSQuAD(ctx context.Context, r io.Reader, file string) ([]Example, error) {
	data, err := io.ReadAll(newLimitedReader(r))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	root, err := decodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	type qa struct {
		id, question, context string
		answers               []string
	}
	var order []*qa
	byID := make(map[string]*qa)
	articles, err := root.objects("data")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	for ai, article := range articles {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		fail := func(err error, format string, args ...any) error {
			return fmt.Errorf("%s: data[%d]%s: %w", file, ai, fmt.Sprintf(format, args...), err)
		}
		paragraphs, err := article.objects("paragraphs")
		if err != nil {
			return nil, fail(err, "")
		}
		for pi, p := range paragraphs {
			ctxText, err := p.str("context")
			if err != nil {
				return nil, fail(err, ".paragraphs[%d]", pi)
			}
			qas, err := p.objects("qas")
			if err != nil {
				return nil, fail(err, ".paragraphs[%d]", pi)
			}
			for qi, q := range qas {
				id, question, answers, err := squadQA(q)
				if err != nil {
					return nil, fail(err, ".paragraphs[%d].qas[%d]", pi, qi)
				}
				if prev, ok := byID[id]; ok {
					prev.answers = append(prev.answers, answers...)
					continue
				}
				e := &qa{id: id, question: question, context: ctxText, answers: answers}
				byID[id] = e
				order = append(order, e)
			}
		}
	}
	out := make([]Example, 0, len(order))
	for _, q := range order {
		if len(q.answers) == 0 {
			return nil, fmt.Errorf("%s: question %q has no answers (T5's target is the first)", file, q.id)
		}
		answers := make([]string, len(q.answers))
		for i, a := range q.answers {
			answers[i] = padPunctuation(a)
		}
		out = append(out, Example{
			ID:      q.id,
			Input:   squadInputs(padPunctuation(q.question), padPunctuation(q.context)),
			Target:  answers[0],
			Answers: answers,
		})
	}
	return out, nil
}

func squadQA(q jsonObject) (id, question string, answers []string, err error) {
	if id, err = q.str("id"); err != nil {
		return
	}
	if question, err = q.str("question"); err != nil {
		return
	}
	list, err := q.objects("answers")
	if err != nil {
		return
	}
	for i, a := range list {
		text, terr := a.str("text")
		if terr != nil {
			return "", "", nil, fmt.Errorf("answers[%d]: %w", i, terr)
		}
		if _, terr := a.integer("answer_start"); terr != nil {
			return "", "", nil, fmt.Errorf("answers[%d]: %w", i, terr)
		}
		answers = append(answers, text)
	}
	return id, question, answers, nil
}

func newSQuADTask() *Task {
	return &Task{
		name:         "squad",
		t5Name:       "squad_v010_allanswers",
		version:      builtinVersion("squad"),
		description:  "SQuAD v1.1: extract the answer span from a Wikipedia paragraph (EM, F1 over all answers)",
		files:        [][]string{{"squad/dev-v1.1.json", "dev-v1.1.json"}},
		hint:         squadHint,
		decodeLength: t5DecodeLength,
		modes:        []string{"predict"},
		score:        scoreSQuAD,
		load: func(ctx context.Context, paths []string) ([]Example, error) {
			f, err := openData(paths[0])
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return readSQuAD(ctx, f, paths[0])
		},
	}
}
