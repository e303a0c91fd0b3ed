package metric

import (
	"math"
	"sort"
)

// AUCROC is sklearn's roc_auc_score for binary targets (1 positive, anything
// else negative), unscaled as T5's auc reports it: the trapezoid area under
// the ROC curve through one point per distinct score, so tied scores form
// one diagonal step. NaN when the targets hold a single class (sklearn
// raises), when empty, or when a score is not finite (sklearn rejects it).
func AUCROC(targets []int, scores []float64) float64 {
	checkLen("AUCROC", len(targets), len(scores))
	fps, tps, ok := binaryCurve(targets, scores)
	if !ok || tps[len(tps)-1] == 0 || fps[len(fps)-1] == 0 {
		return math.NaN()
	}
	// roc_curve(drop_intermediate=True): keep the ends and every point where
	// the curve bends, then prepend the origin.
	keep := []int{0}
	for i := 1; i < len(tps)-1; i++ {
		if fps[i+1]-2*fps[i]+fps[i-1] != 0 || tps[i+1]-2*tps[i]+tps[i-1] != 0 {
			keep = append(keep, i)
		}
	}
	if len(tps) > 1 {
		keep = append(keep, len(tps)-1)
	}
	fpr := []float64{0}
	tpr := []float64{0}
	for _, i := range keep {
		fpr = append(fpr, fps[i]/fps[len(fps)-1])
		tpr = append(tpr, tps[i]/tps[len(tps)-1])
	}
	// np.trapezoid(tpr, fpr): sum of d·(y[i+1]+y[i])/2.
	terms := make([]float64, len(fpr)-1)
	for i := range terms {
		terms[i] = (fpr[i+1] - fpr[i]) * (tpr[i+1] + tpr[i]) / 2.0
	}
	return pairwiseSum(terms)
}

// AveragePrecision is sklearn's average_precision_score for binary targets
// (1 positive), unscaled: Σ (R_n − R_{n−1}) P_n over the distinct score
// thresholds, the step-wise sum, not an interpolated area. With no positive
// target it is 0 (sklearn warns and sets recall to 1 throughout). NaN when
// empty or a score is not finite.
func AveragePrecision(targets []int, scores []float64) float64 {
	checkLen("AveragePrecision", len(targets), len(scores))
	fps, tps, ok := binaryCurve(targets, scores)
	if !ok {
		return math.NaN()
	}
	n := len(tps)
	// precision_recall_curve, reversed so recall decreases, ending (1, 0).
	precision := make([]float64, n+1)
	recall := make([]float64, n+1)
	for i := range n {
		k := n - 1 - i
		if ps := tps[k] + fps[k]; ps != 0 {
			precision[i] = tps[k] / ps
		}
		if tps[n-1] == 0 {
			recall[i] = 1
		} else {
			recall[i] = tps[k] / tps[n-1]
		}
	}
	precision[n], recall[n] = 1, 0
	terms := make([]float64, n)
	for i := range terms {
		terms[i] = (recall[i+1] - recall[i]) * precision[i]
	}
	return -pairwiseSum(terms)
}

// binaryCurve is sklearn's _binary_clf_curve: scores sorted descending, and
// at the last position of each distinct score the cumulative false and true
// positive counts. ok is false for empty or non-finite input.
func binaryCurve(targets []int, scores []float64) (fps, tps []float64, ok bool) {
	if len(scores) == 0 {
		return nil, nil, false
	}
	for _, s := range scores {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, nil, false
		}
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	tp := 0.0
	for k, i := range idx {
		if targets[i] == 1 {
			tp++
		}
		if k == len(idx)-1 || scores[idx[k+1]] != scores[i] {
			tps = append(tps, tp)
			fps = append(fps, float64(k+1)-tp)
		}
	}
	return fps, tps, true
}
