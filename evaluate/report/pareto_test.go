package report

import (
	"math"
	"slices"
	"testing"
)

func TestFrontier(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		name string
		pts  [][2]float64 // cost, quality
		want []int
	}{
		{"empty", nil, nil},
		{"one", [][2]float64{{10, 50}}, []int{0}},
		{"all on it", [][2]float64{{30, 90}, {10, 70}, {20, 80}}, []int{1, 2, 0}},
		{"dominated: costs more, scores less", [][2]float64{{10, 80}, {20, 70}, {30, 90}}, []int{0, 2}},
		{"dominated: same cost, scores less", [][2]float64{{10, 70}, {10, 80}, {20, 90}}, []int{1, 2}},
		{"dominated: same quality, costs more", [][2]float64{{10, 80}, {20, 80}, {30, 95}}, []int{0, 2}},
		{"equal points are both on it", [][2]float64{{10, 80}, {10, 80}, {5, 60}}, []int{2, 0, 1}},
		{"one best point dominates all", [][2]float64{{50, 10}, {1, 99}, {20, 50}}, []int{1}},
		{"NaN is never on it", [][2]float64{{10, nan}, {nan, 90}, {20, 60}}, []int{2}},
		{"negative qualities (MCC)", [][2]float64{{1, -20}, {2, -30}, {3, 5}}, []int{0, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pts := make([]Point, len(c.pts))
			for i, p := range c.pts {
				pts[i] = Point{Cost: p[0], Quality: p[1]}
			}
			if got := Frontier(pts); !slices.Equal(got, c.want) {
				t.Errorf("Frontier = %v, want %v", got, c.want)
			}
		})
	}
}

// TestFrontierDominance checks Frontier against the definition on a grid of points with
// many ties.
func TestFrontierDominance(t *testing.T) {
	var pts []Point
	for i := range 40 {
		pts = append(pts, Point{Cost: float64(1 + (i*7)%9), Quality: float64((i * 13) % 11)})
	}
	front := Frontier(pts)
	for i, p := range pts {
		dominated := slices.ContainsFunc(pts, func(q Point) bool {
			return q.Cost <= p.Cost && q.Quality >= p.Quality && (q.Cost < p.Cost || q.Quality > p.Quality)
		})
		if on := slices.Contains(front, i); on == dominated {
			t.Errorf("point %d %+v: on frontier %v, dominated %v", i, p, on, dominated)
		}
	}
	for i := 1; i < len(front); i++ {
		a, b := pts[front[i-1]], pts[front[i]]
		if a.Cost > b.Cost || (a.Cost == b.Cost && a.Quality < b.Quality) {
			t.Errorf("frontier not in cost order at %d: %+v then %+v", i, a, b)
		}
	}
}
