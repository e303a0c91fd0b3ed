// Package metric holds the metrics the T5 codebase scores its tasks with,
// ported so that a Go evaluation reports the numbers T5 would. They are pure
// functions over targets and predictions: no I/O, no state.
//
// Every metric returns T5's scale (×100) except AUCROC and AveragePrecision,
// which T5 reports unscaled. Inputs of unequal length panic (a programmer
// error); empty inputs give NaN, because an average over nothing is not a
// score.
//
// Metrics, with the T5 function and result key each one ports
// (t5/evaluation/metrics.py at google-research/text-to-text-transfer-transformer
// e081111ccd51df425aa7124e8e311ed6d403d767):
//
//	Accuracy          accuracy                                      "accuracy"
//	SequenceAccuracy  sequence_accuracy                             "sequence_accuracy"
//	MatthewsCorrcoef  sklearn_metrics_wrapper("matthews_corrcoef")  "matthews_corrcoef"
//	F1WithInvalid     f1_score_with_invalid                         "f1"
//	                  multirc_f1_over_all_answers                   "f1"
//	MeanMulticlassF1  mean_multiclass_f1(num_classes)               "mean_<N>class_f1"
//	Pearson           pearson_corrcoef                              "pearson_corrcoef"
//	Spearman          spearman_corrcoef                             "spearman_corrcoef"
//	AllMatch          all_match                                     "exact_match"
//	GroupMean         mean_group_metric(fn)                         fn's keys
//	FirstPerGroup     deduplicate_metric(fn)                        fn's keys
//	SQuAD             squad                                         "em", "f1"
//	TriviaQA          trivia_qa                                     "em", "f1"
//	BLEU              bleu (T5 tokenizes "intl")                    "bleu"
//	Rouge             rouge_mean                                    "rouge1", "rouge2", "rougeLsum" (+ "rougeL")
//	AUCROC            auc                                           "auc-roc"
//	AveragePrecision  auc                                           "auc-pr"
//
// The T5 functions delegate to reference implementations, ported here with
// their edge cases:
//
//   - scikit-learn sklearn/metrics/_classification.py at
//     f5242163c8a4b80945a64dfc1ed726dd3f93fa14 (accuracy_score, f1_score,
//     fbeta_score, matthews_corrcoef) and sklearn/metrics/_ranking.py
//     (roc_auc_score, average_precision_score, ported from the same
//     lineage; the facts pin no commit for that file);
//   - scipy.stats pearsonr and spearmanr;
//   - the official SQuAD v1.1 evaluate-v1.1.py (verbatim in seominjoon/denspi
//     at 51915f65b9e5345cbd3dee8af2dc02eeb1cb43dd) through T5's
//     t5/evaluation/qa_utils.py;
//   - sacrebleu sacrebleu/metrics/bleu.py at
//     071aeb448bb7a481585eae62837e3f670cbb8b8a, tokenizers
//     sacrebleu/tokenizers/tokenizer_re.py at
//     03d775bc0d1e066ca90c9a8776ce1d6385665a12 and tokenizer_13a.py at
//     84187d17a73e934badaef4ee31e9bfaf4d807e83, test vectors from
//     test/test_bleu.py at 2ae13669da7225533712cb839e70b169336caadf;
//   - rouge-score (google-research/google-research rouge/rouge_scorer.py and
//     rouge/tokenize.py at 0c1bbe5fc971a1de1a427debc814e66ab4f1e7fa, test
//     vectors from rouge/rouge_scorer_test.py at
//     066e6a12a3817e45919458090102abfc0a09d287).
//
// Where Python and Go differ (Unicode lower-casing, \b, str.split, numpy's
// pairwise summation) the Python behaviour is replicated, not "fixed". The
// BLEU tokenizers' regexps are rune loops, checked in the tests against Go
// regexps of the source's patterns. Strings are read as UTF-8; invalid
// bytes count as U+FFFD, since a Python str cannot hold them.
package metric

import (
	"fmt"
	"math"
)

// checkLen panics when two parallel inputs differ in length: the callers
// build them side by side, so a mismatch is a bug, not bad data.
func checkLen(fn string, a, b int) {
	if a != b {
		panic(fmt.Sprintf("metric: %s: %d targets != %d predictions", fn, a, b))
	}
}

// Accuracy is sklearn's accuracy_score ×100: the share of positions where
// the prediction equals the target.
func Accuracy[T comparable](targets, predictions []T) float64 {
	checkLen("Accuracy", len(targets), len(predictions))
	if len(targets) == 0 {
		return math.NaN()
	}
	n := 0
	for i := range targets {
		if targets[i] == predictions[i] {
			n++
		}
	}
	// T5 scales the score: 100 * accuracy_score(...).
	return 100 * (float64(n) / float64(len(targets)))
}

// SequenceAccuracy is T5's sequence_accuracy: 100 * the mean of exact string
// equality between each target and its prediction.
func SequenceAccuracy(targets, predictions []string) float64 {
	checkLen("SequenceAccuracy", len(targets), len(predictions))
	return Accuracy(targets, predictions)
}

// MatthewsCorrcoef is sklearn's matthews_corrcoef ×100. Classes are the
// union of the labels seen in targets and predictions, so an invalid
// prediction (−1) is a class of its own, as in T5's CoLA scoring. A
// degenerate confusion matrix (one side has a single class) gives 0.
func MatthewsCorrcoef(targets, predictions []int) float64 {
	checkLen("MatthewsCorrcoef", len(targets), len(predictions))
	if len(targets) == 0 {
		return math.NaN()
	}
	// sklearn's LabelEncoder: the classes are the sorted union; only the
	// per-class row and column sums and the trace matter, so a map will do.
	tSum := map[int]float64{}
	pSum := map[int]float64{}
	correct := 0.0
	for i, t := range targets {
		p := predictions[i]
		tSum[t]++
		pSum[p]++
		if t == p {
			correct++
		}
	}
	n := float64(len(targets))
	dotTP, dotPP, dotTT := 0.0, 0.0, 0.0
	for c, ts := range tSum {
		dotTP += ts * pSum[c]
		dotTT += ts * ts
	}
	for _, ps := range pSum {
		dotPP += ps * ps
	}
	// sklearn sums in float64 (C.sum(axis, dtype=np.float64)); the counts
	// are integers, so every product here is exact below 2^53.
	covYtYp := correct*n - dotTP
	covYpYp := n*n - dotPP
	covYtYt := n*n - dotTT
	if covYpYp*covYtYt == 0 {
		return 0
	}
	return 100 * (covYtYp / math.Sqrt(covYtYt*covYpYp))
}

// F1WithInvalid is T5's f1_score_with_invalid: a prediction outside {0, 1}
// is replaced by 1 − target (so it is always wrong), then sklearn's binary
// f1_score with positive label 1, ×100. F1 is 0 when there are no true
// positives, false positives or false negatives (sklearn's zero_division).
func F1WithInvalid(targets, predictions []int) float64 {
	checkLen("F1WithInvalid", len(targets), len(predictions))
	if len(targets) == 0 {
		return math.NaN()
	}
	var tp, fp, fn int
	for i, t := range targets {
		p := predictions[i]
		if p != 0 && p != 1 {
			p = 1 - t
		}
		switch {
		case p == 1 && t == 1:
			tp++
		case p == 1:
			fp++
		case t == 1:
			fn++
		}
	}
	return 100 * f1Counts(tp, tp+fn, tp+fp)
}

// f1Counts is sklearn's F-beta for beta=1 from counts: 2·tp / (true + pred),
// 0 when the denominator is 0 (zero_division's default).
func f1Counts(tp, trueSum, predSum int) float64 {
	d := trueSum + predSum
	if d == 0 {
		return 0
	}
	return float64(2*tp) / float64(d)
}

// MeanMulticlassF1 is T5's mean_multiclass_f1(num_classes): sklearn's
// fbeta_score(beta=1, labels=range(numClasses), average="macro") ×100. A
// prediction outside the range counts for no class but still costs its
// target class recall; a label with neither support nor predictions
// contributes 0 to the mean.
func MeanMulticlassF1(targets, predictions []int, numClasses int) float64 {
	checkLen("MeanMulticlassF1", len(targets), len(predictions))
	if numClasses <= 0 {
		panic(fmt.Sprintf("metric: MeanMulticlassF1: numClasses %d <= 0", numClasses))
	}
	if len(targets) == 0 {
		return math.NaN()
	}
	tp := make([]int, numClasses)
	trueSum := make([]int, numClasses)
	predSum := make([]int, numClasses)
	for i, t := range targets {
		p := predictions[i]
		if t >= 0 && t < numClasses {
			trueSum[t]++
		}
		if p >= 0 && p < numClasses {
			predSum[p]++
			if p == t {
				tp[p]++
			}
		}
	}
	f := make([]float64, numClasses)
	for k := range f {
		f[k] = f1Counts(tp[k], trueSum[k], predSum[k])
	}
	return 100 * npMean(f)
}

// AllMatch is T5's all_match: 100 when every prediction equals its target,
// else 0 (np.array_equal).
func AllMatch[T comparable](targets, predictions []T) float64 {
	checkLen("AllMatch", len(targets), len(predictions))
	if len(targets) == 0 {
		return math.NaN()
	}
	for i := range targets {
		if targets[i] != predictions[i] {
			return 0
		}
	}
	return 100
}

// GroupMean is T5's mean_group_metric: fn is applied to the indices of each
// group (groups in first-seen order, indices ascending) and the results are
// averaged with np.mean. MultiRC's exact_match is
// GroupMean(questions, func(idx) { return AllMatch(t[idx], p[idx]) }).
func GroupMean(groups []string, fn func(idx []int) float64) float64 {
	if len(groups) == 0 {
		return math.NaN()
	}
	order := []string{}
	members := map[string][]int{}
	for i, g := range groups {
		if _, ok := members[g]; !ok {
			order = append(order, g)
		}
		members[g] = append(members[g], i)
	}
	vals := make([]float64, len(order))
	for k, g := range order {
		vals[k] = fn(members[g])
	}
	return npMean(vals)
}

// FirstPerGroup is T5's deduplicate_metric: the indices of the first example
// of each group, in input order. ReCoRD scores SQuAD over these.
func FirstPerGroup(groups []string) []int {
	seen := make(map[string]bool, len(groups))
	idx := []int{}
	for i, g := range groups {
		if !seen[g] {
			seen[g] = true
			idx = append(idx, i)
		}
	}
	return idx
}

// npMean is np.mean of a float64 vector: numpy's pairwise sum divided by n,
// so long averages round as T5's do. NaN when empty.
func npMean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	return pairwiseSum(x) / float64(len(x))
}

// pairwiseSum is numpy's pairwise_sum (numpy/_core/src/umath/loops_utils.h.src):
// sequential below 8 elements, eight interleaved accumulators up to the
// 128-element block, halves (rounded down to a multiple of 8) above it.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		res := 0.0
		for _, v := range a {
			res += v
		}
		return res
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range r {
				r[j] += a[i+j]
			}
		}
		res := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}
