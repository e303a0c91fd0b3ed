package task

import (
	"fmt"

	"github.com/t5zoo/t5zoo/evaluate/metric"
)

// classMetric is one of the metrics T5 computes on class ids.
type classMetric int

const (
	metricAccuracy classMetric = iota // accuracy → "accuracy"
	metricMCC                         // sklearn matthews_corrcoef ×100 → "matthews_corrcoef"
	metricF1                          // f1_score_with_invalid → "f1"
	metricMacroF1                     // mean_multiclass_f1(len(classes)) → "mean_<N>class_f1"
)

// classScores computes metrics on gold and predicted class ids (−1: invalid).
func classScores(gold, pred []int, numClasses int, metrics []classMetric) map[string]float64 {
	out := make(map[string]float64, len(metrics))
	for _, m := range metrics {
		switch m {
		case metricAccuracy:
			out["accuracy"] = metric.Accuracy(gold, pred)
		case metricMCC:
			out["matthews_corrcoef"] = metric.MatthewsCorrcoef(gold, pred)
		case metricF1:
			out["f1"] = metric.F1WithInvalid(gold, pred)
		case metricMacroF1:
			out[fmt.Sprintf("mean_%dclass_f1", numClasses)] = metric.MeanMulticlassF1(gold, pred, numClasses)
		}
	}
	return out
}

// classify postprocesses targets and predictions with string_label_to_class_id, as
// seqio postprocesses both: the gold class comes from the target text.
func classify(examples []Example, predictions []string, classes []string) (gold, pred []int, s Scored) {
	gold = make([]int, len(examples))
	pred = make([]int, len(examples))
	s.Outcomes = make([]Outcome, len(examples))
	for i, ex := range examples {
		gold[i] = classID(ex.Target, classes)
		pred[i] = classID(predictions[i], classes)
		s.Outcomes[i] = Outcome{Value: pred[i], Invalid: pred[i] < 0}
		if pred[i] < 0 {
			s.Invalid++
		}
	}
	return gold, pred, s
}

// scoreClasses is the score of a task with string_label_to_class_id postprocessing.
func scoreClasses(classes []string, metrics ...classMetric) func([]Example, []string) (Scored, error) {
	return func(examples []Example, predictions []string) (Scored, error) {
		gold, pred, s := classify(examples, predictions, classes)
		s.Metrics = classScores(gold, pred, len(classes), metrics)
		return s, nil
	}
}

// floatsOf postprocesses targets and predictions with string_to_float: −1.0 (and
// invalid) for a prediction that does not parse.
func floatsOf(examples []Example, predictions []string) (gold, pred []float64, s Scored) {
	gold = make([]float64, len(examples))
	pred = make([]float64, len(examples))
	s.Outcomes = make([]Outcome, len(examples))
	for i, ex := range examples {
		gold[i], _ = stringToFloat(ex.Target)
		v, ok := stringToFloat(predictions[i])
		pred[i] = v
		s.Outcomes[i] = Outcome{Value: floatValue(v), Invalid: !ok}
		if !ok {
			s.Invalid++
		}
	}
	return gold, pred, s
}

// scoreSTSB is glue_stsb_v002's: string_to_float on targets and predictions, Pearson and
// Spearman against the rounded target strings.
func scoreSTSB(examples []Example, predictions []string) (Scored, error) {
	gold, pred, s := floatsOf(examples, predictions)
	s.Metrics = map[string]float64{
		"pearson_corrcoef":  metric.Pearson(gold, pred),
		"spearman_corrcoef": metric.Spearman(gold, pred),
	}
	return s, nil
}

// scoreMultiRC is super_glue_multirc_v102's: the multirc postprocessor (class ids of
// "False"/"True", grouped by question), multirc_f1_over_all_answers → "f1" and
// mean_group_metric(all_match) → "exact_match".
func scoreMultiRC(examples []Example, predictions []string) (Scored, error) {
	gold, pred, s := classify(examples, predictions, boolClasses())
	groups := make([]string, len(examples))
	for i, ex := range examples {
		groups[i] = ex.Group
	}
	s.Metrics = map[string]float64{
		"f1": metric.F1WithInvalid(gold, pred),
		"exact_match": metric.GroupMean(groups, func(idx []int) float64 {
			g, p := make([]int, len(idx)), make([]int, len(idx))
			for k, i := range idx {
				g[k], p[k] = gold[i], pred[i]
			}
			return metric.AllMatch(g, p)
		}),
	}
	return s, nil
}

// answersOf is an example's gold answers for the SQuAD metric: its Answers, or its
// Target alone.
func answersOf(ex Example) []string {
	if ex.Answers != nil {
		return ex.Answers
	}
	return []string{ex.Target}
}

// scoreReCoRD is super_glue_record_v102's: deduplicate_metric(squad) keeps the first
// example of each (passage, query) group and scores the raw prediction against all of
// the query's answers.
func scoreReCoRD(examples []Example, predictions []string) (Scored, error) {
	s := Scored{Outcomes: make([]Outcome, len(examples))}
	groups := make([]string, len(examples))
	for i, ex := range examples {
		groups[i] = ex.Group
		s.Outcomes[i] = Outcome{Value: predictions[i]}
	}
	first := metric.FirstPerGroup(groups)
	answers := make([][]string, len(first))
	preds := make([]string, len(first))
	for k, i := range first {
		answers[k] = examples[i].Answers
		preds[k] = predictions[i]
	}
	em, f1 := metric.SQuAD(answers, preds)
	s.Metrics = map[string]float64{"em": em, "f1": f1}
	return s, nil
}

// scoreWSC is super_glue_wsc_v102_simple_eval's: wsc_simple turns the prediction into
// 1/0 (it names the candidate or not) or −1 (empty), and accuracy compares that with the
// gold label.
func scoreWSC(examples []Example, predictions []string) (Scored, error) {
	gold := make([]int, len(examples))
	pred := make([]int, len(examples))
	s := Scored{Outcomes: make([]Outcome, len(examples))}
	for i, ex := range examples {
		if !ex.goldSet {
			return Scored{}, fmt.Errorf("example %q: %w", ex.ID, errNoGold)
		}
		gold[i] = ex.gold
		pred[i] = wscSimple(predictions[i], ex.Target)
		s.Outcomes[i] = Outcome{Value: pred[i], Invalid: pred[i] < 0}
		if pred[i] < 0 {
			s.Invalid++
		}
	}
	s.Metrics = map[string]float64{"accuracy": metric.Accuracy(gold, pred)}
	return s, nil
}

// scoreSQuAD is squad_v010_allanswers's: the qa postprocessor passes the prediction
// through; squad takes the max EM and F1 over the (padded) answers.
func scoreSQuAD(examples []Example, predictions []string) (Scored, error) {
	s := Scored{Outcomes: make([]Outcome, len(examples))}
	answers := make([][]string, len(examples))
	for i, ex := range examples {
		answers[i] = answersOf(ex)
		s.Outcomes[i] = Outcome{Value: predictions[i]}
	}
	em, f1 := metric.SQuAD(answers, predictions)
	s.Metrics = map[string]float64{"em": em, "f1": f1}
	return s, nil
}
