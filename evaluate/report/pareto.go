package report

import (
	"cmp"
	"math"
	"slices"
)

// Point is one model on a Pareto plot.
type Point struct {
	Label   string
	Cost    float64 // x: parameters, FLOPs per token or ms per token; > 0
	Quality float64 // y: a benchmark average or a task metric
}

// Frontier returns the indices of the points on the Pareto frontier: those no other point
// dominates, where q dominates p when q costs no more and scores no less, and one of the
// two strictly (so the highest quality available at each budget). Equal points are all on
// it. The indices are in order of cost, then quality (highest first), then index. Points
// with a NaN coordinate are never on it.
func Frontier(pts []Point) []int {
	idx := make([]int, 0, len(pts))
	for i, p := range pts {
		if !math.IsNaN(p.Cost) && !math.IsNaN(p.Quality) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(pts[a].Cost, pts[b].Cost), cmp.Compare(pts[b].Quality, pts[a].Quality), cmp.Compare(a, b))
	})
	var front []int
	best := math.Inf(-1) // the best quality at a strictly lower cost
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && pts[idx[j]].Cost == pts[idx[i]].Cost {
			j++
		}
		top := pts[idx[i]].Quality // the group's best (sorted first)
		if top > best {
			for _, k := range idx[i:j] {
				if pts[k].Quality == top {
					front = append(front, k)
				}
			}
			best = top
		}
		i = j
	}
	return front
}
