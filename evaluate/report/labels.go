package report

import (
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// pointLabels draws each point's label at the first of a few places around it (above
// left, above right, below left, below right, left, right) that overlaps no marker, no
// frontier segment and no label already placed, or else at the place that overlaps
// least. Shapes of one sweep crowd around the same sizes (the DeepNarrow variants of
// Base), and plotter.Labels' fixed offset writes their names over each other.
type pointLabels struct {
	xys    plotter.XYs
	labels []string
	order  []int       // placement order: frontier points first, they matter most
	front  plotter.XYs // the frontier's points, whose step line labels avoid
	style  text.Style
	marker vg.Length // marker radius to keep clear of
}

type placement struct {
	xalign text.XAlignment
	yalign text.YAlignment
	dx, dy vg.Length
}

var placements = []placement{
	{draw.XRight, draw.YBottom, -3, 3},
	{draw.XLeft, draw.YBottom, 3, 3},
	{draw.XRight, draw.YTop, -3, -3},
	{draw.XLeft, draw.YTop, 3, -3},
	{draw.XRight, draw.YCenter, -6, 0},
	{draw.XLeft, draw.YCenter, 6, 0},
}

// Plot implements plot.Plotter.
func (l *pointLabels) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	at := func(xy plotter.XY) vg.Point { return vg.Point{X: trX(xy.X), Y: trY(xy.Y)} }
	var taken []vg.Rectangle
	for _, xy := range l.xys {
		pt := at(xy)
		r := l.marker
		taken = append(taken, vg.Rectangle{Min: vg.Point{X: pt.X - r, Y: pt.Y - r}, Max: vg.Point{X: pt.X + r, Y: pt.Y + r}})
	}
	// The step line: horizontal from each frontier point, then up into the next.
	const half = 1
	for i := 0; i+1 < len(l.front); i++ {
		a, b := at(l.front[i]), at(l.front[i+1])
		taken = append(taken,
			vg.Rectangle{Min: vg.Point{X: a.X, Y: a.Y - half}, Max: vg.Point{X: b.X, Y: a.Y + half}},
			vg.Rectangle{Min: vg.Point{X: b.X - half, Y: a.Y}, Max: vg.Point{X: b.X + half, Y: b.Y}})
	}
	for _, i := range l.order {
		pt := at(l.xys[i])
		if !c.Contains(pt) {
			continue
		}
		best, bestCost := -1, vg.Length(-1)
		var bestBox vg.Rectangle
		for k, pl := range placements {
			sty := l.style
			sty.XAlign, sty.YAlign = pl.xalign, pl.yalign
			box := sty.Rectangle(l.labels[i]).Add(vg.Point{X: pt.X + pl.dx, Y: pt.Y + pl.dy})
			cost := overlap(box, taken)
			if !inside(box, c.Rectangle) {
				cost += area(box) // a clipped label is as bad as a covered one
			}
			if best < 0 || cost < bestCost {
				best, bestCost, bestBox = k, cost, box
			}
			if cost == 0 {
				break
			}
		}
		pl := placements[best]
		sty := l.style
		sty.XAlign, sty.YAlign = pl.xalign, pl.yalign
		c.FillText(sty, vg.Point{X: pt.X + pl.dx, Y: pt.Y + pl.dy}, l.labels[i])
		taken = append(taken, bestBox)
	}
}

// GlyphBoxes implements plot.GlyphBoxer with the first placement, so that the plot leaves
// room for the labels of the outermost points.
func (l *pointLabels) GlyphBoxes(p *plot.Plot) []plot.GlyphBox {
	pl := placements[0]
	sty := l.style
	sty.XAlign, sty.YAlign = pl.xalign, pl.yalign
	boxes := make([]plot.GlyphBox, len(l.labels))
	for i, s := range l.labels {
		boxes[i] = plot.GlyphBox{
			X: p.X.Norm(l.xys[i].X), Y: p.Y.Norm(l.xys[i].Y),
			Rectangle: sty.Rectangle(s).Add(vg.Point{X: pl.dx, Y: pl.dy}),
		}
	}
	return boxes
}

func area(r vg.Rectangle) vg.Length {
	return (r.Max.X - r.Min.X) * (r.Max.Y - r.Min.Y)
}

// overlap is the area box shares with the rectangles.
func overlap(box vg.Rectangle, rs []vg.Rectangle) vg.Length {
	var sum vg.Length
	for _, r := range rs {
		w := min(box.Max.X, r.Max.X) - max(box.Min.X, r.Min.X)
		h := min(box.Max.Y, r.Max.Y) - max(box.Min.Y, r.Min.Y)
		if w > 0 && h > 0 {
			sum += w * h
		}
	}
	return sum
}

func inside(box, c vg.Rectangle) bool {
	return box.Min.X >= c.Min.X && box.Max.X <= c.Max.X && box.Min.Y >= c.Min.Y && box.Max.Y <= c.Max.Y
}
