package metric

import (
	"math"
	"sort"
)

// Pearson is scipy.stats.pearsonr's coefficient ×100 (T5's
// pearson_corrcoef). It is NaN when either side is constant or has fewer
// than two values (scipy returns nan there, with a warning), and NaN when a
// value is NaN.
func Pearson(targets, predictions []float64) float64 {
	checkLen("Pearson", len(targets), len(predictions))
	if len(targets) < 2 || constant(targets) || constant(predictions) {
		return math.NaN()
	}
	if len(targets) == 2 {
		// scipy special-cases two points: the sign of the slope, exactly.
		s := sign(targets[1]-targets[0]) * sign(predictions[1]-predictions[0])
		return 100 * s
	}
	xm := centered(targets)
	ym := centered(predictions)
	nx := math.Sqrt(dot(xm, xm))
	ny := math.Sqrt(dot(ym, ym))
	for i := range xm {
		xm[i] /= nx
		ym[i] /= ny
	}
	return 100 * clip1(dot(xm, ym))
}

// Spearman is scipy.stats.spearmanr's coefficient ×100 (T5's
// spearman_corrcoef): the correlation of the ranks, ties getting the average
// of the ranks they span. NaN for constant input, fewer than two values, or
// a NaN value (nan_policy="propagate").
func Spearman(targets, predictions []float64) float64 {
	checkLen("Spearman", len(targets), len(predictions))
	if len(targets) < 2 || constant(targets) || constant(predictions) {
		return math.NaN()
	}
	for i := range targets {
		if math.IsNaN(targets[i]) || math.IsNaN(predictions[i]) {
			return math.NaN()
		}
	}
	// spearmanr ranks both sides and takes np.corrcoef: covariance with
	// ddof=1 divided by each standard deviation in turn.
	xm := centered(rankAverage(targets))
	ym := centered(rankAverage(predictions))
	d := float64(len(xm) - 1)
	cxy := dot(xm, ym) / d
	cxx := dot(xm, xm) / d
	cyy := dot(ym, ym) / d
	return 100 * clip1(cxy/math.Sqrt(cxx)/math.Sqrt(cyy))
}

// rankAverage is scipy.stats.rankdata(method="average"): 1-based ranks,
// tied values sharing the mean of their ranks.
func rankAverage(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && x[idx[j]] == x[idx[i]] {
			j++
		}
		// Ranks i+1 … j share their mean, (i+1+j)/2.
		avg := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// constant reports whether every value equals the first, by ==, as scipy's
// (x == x[0]).all() does (so a NaN first value is never constant).
func constant(x []float64) bool {
	for _, v := range x {
		if v != x[0] {
			return false
		}
	}
	return true
}

// centered returns x minus its np.mean.
func centered(x []float64) []float64 {
	m := npMean(x)
	c := make([]float64, len(x))
	for i, v := range x {
		c[i] = v - m
	}
	return c
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	case v == 0:
		return 0
	}
	return math.NaN()
}

// clip1 bounds a coefficient to [−1, 1] as scipy and np.corrcoef do, since
// rounding can push |r| just past 1.
func clip1(r float64) float64 {
	return math.Max(-1, math.Min(1, r))
}
