package report

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/t5zoo/t5zoo/evaluate"
)

// The size plots are drawn at: 8×5.5 inches, the PNG at 150 dots per inch (1200×825
// pixels), large enough for a slide and for labels at 8 points to stay legible.
const (
	PlotWidth  = 8 * vg.Inch
	PlotHeight = 5.5 * vg.Inch
	PNGDPI     = 150
)

// Axis is a cost a Pareto plot puts on its x axis.
type Axis string

const (
	// AxisParams is the parameter count (catalog cost model).
	AxisParams Axis = "params"
	// AxisFLOPs is the forward FLOPs per target token (evaluate.ModelInfo.FLOPsPerToken).
	AxisFLOPs Axis = "flops"
	// AxisDecode is the measured decode latency at batch 1 (bench results).
	AxisDecode Axis = "decode-ms"
)

func (a Axis) label() string {
	switch a {
	case AxisParams:
		return "parameters (log scale)"
	case AxisFLOPs:
		return "forward FLOPs per target token, 512 → 128 tokens (log scale)"
	case AxisDecode:
		return "measured decode time, ms per token at batch 1 (log scale)"
	}
	return string(a)
}

// tick formats an axis value the way the axis's unit reads best.
func (a Axis) tick(v float64) string {
	switch a {
	case AxisParams:
		return siCount(v, "B")
	case AxisFLOPs:
		return siCount(v, "G")
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// siCount prints 2e8 as "200M", 1.5e9 as "1.5" + giga.
func siCount(v float64, giga string) string {
	for _, u := range []struct {
		div  float64
		unit string
	}{{1e12, "T"}, {1e9, giga}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return strconv.FormatFloat(v/u.div, 'g', 3, 64) + u.unit
		}
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// Chart is one Pareto plot: a quality measure of one mode against one cost.
type Chart struct {
	// Name is the file name without extension: <mode>-<measure>-<axis>, e.g.
	// "predict-glue-params", "rank-glue_mrpc.f1-decode-ms".
	Name   string
	Title  string
	Axis   Axis
	YLabel string
	Points []Point
	// Frontier indexes Points (Frontier's order: by cost).
	Frontier []int
}

// ChartOptions says which plots Charts draws beyond the benchmark averages.
type ChartOptions struct {
	// Metrics adds one plot per task metric: "TASK" (the first metric T5 reports for it),
	// or "TASK/KEY". TASK may be written without its benchmark ("mrpc") when that is unique.
	Metrics []string
	// Bench are bench results; with rows for batch 1 that match the models' shapes and
	// dtypes, each measure also gets a plot against decode latency.
	Bench []BenchRow
}

// measure is one quality a table's rows can be plotted by.
type measure struct {
	slug, title, ylabel string
	value               func(r *Row) (float64, bool)
}

// Charts builds the Pareto plots of the tables: for each table (mode), each benchmark
// average and each asked-for metric, against parameters, FLOPs per token and, when bench
// results match, decode latency. Models a plot leaves out (partial averages of another
// coverage, no parameter count, no bench row) come back as warnings, keyed by the plot.
func Charts(tables []*Table, opts ChartOptions) ([]*Chart, []Warning, error) {
	lat := decodeLatency(opts.Bench)
	var charts []*Chart
	var warns []Warning
	found := make([]bool, len(opts.Metrics))
	for _, t := range tables {
		var ms []measure
		for _, b := range t.Benchmarks {
			m, left := benchmarkMeasure(t, b)
			ms = append(ms, m)
			for _, w := range left {
				warns = append(warns, Warning{Key: string(t.Mode) + "-" + m.slug, Err: w})
			}
		}
		for i, ref := range opts.Metrics {
			m, ok, err := metricMeasure(t, ref)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				found[i] = true
				ms = append(ms, m)
			}
		}
		for _, m := range ms {
			axes := []Axis{AxisParams, AxisFLOPs}
			if len(lat) > 0 {
				axes = append(axes, AxisDecode)
			}
			for _, ax := range axes {
				c, left := chart(t, m, ax, lat)
				for _, l := range left {
					warns = append(warns, Warning{Key: c.Name, Err: fmt.Errorf("report: plot leaves out %s", l)})
				}
				if len(c.Points) > 0 {
					charts = append(charts, c)
				}
			}
		}
	}
	for i, ok := range found {
		if !ok {
			return nil, nil, fmt.Errorf("report: --metric %s: no such task in the results (tasks: %s)", opts.Metrics[i], strings.Join(allTasks(tables), ", "))
		}
	}
	return charts, warns, nil
}

func allTasks(tables []*Table) []string {
	var out []string
	for _, t := range tables {
		for _, c := range t.Tasks {
			if !slices.Contains(out, c.Task) {
				out = append(out, c.Task)
			}
		}
	}
	slices.SortFunc(out, compareTasks)
	return out
}

// benchmarkMeasure plots a benchmark's average. Averages over different sets of groups do
// not compare, so the plot keeps the rows whose set is the most common (ties: the larger
// set), and says whom it leaves out.
func benchmarkMeasure(t *Table, b string) (measure, []error) {
	count := map[string]int{}
	size := map[string]int{}
	for _, r := range t.Rows {
		if a, ok := r.Averages[b]; ok {
			k := strings.Join(a.Groups, ", ")
			count[k]++
			size[k] = len(a.Groups)
		}
	}
	var best string
	first := true
	for k, n := range count {
		if first || n > count[best] || (n == count[best] && (size[k] > size[best] || (size[k] == size[best] && k < best))) {
			best, first = k, false
		}
	}
	title := benchmarkTitle(b) + " average"
	var left []error
	var groups, missing []string
	for _, r := range t.Rows {
		a, ok := r.Averages[b]
		if !ok {
			continue
		}
		if strings.Join(a.Groups, ", ") != best {
			left = append(left, fmt.Errorf("report: plot leaves out %s: its %s average covers %s, the plot's %s",
				r.Model, benchmarkTitle(b), strings.Join(a.Groups, ", "), best))
			continue
		}
		groups, missing = a.Groups, a.Missing
	}
	// A partial average says what it covers, by the shorter of the two lists.
	ylabel := title
	if n := len(groups) + len(missing); len(missing) > 0 && len(groups) <= len(missing) {
		ylabel = fmt.Sprintf("%s over %s (%d of %d groups)", title, strings.Join(groups, ", "), len(groups), n)
	} else if len(missing) > 0 {
		ylabel = fmt.Sprintf("%s without %s (%d of %d groups)", title, strings.Join(missing, ", "), len(groups), n)
	}
	return measure{
		slug: b, title: title, ylabel: ylabel,
		value: func(r *Row) (float64, bool) {
			a, ok := r.Averages[b]
			if !ok || strings.Join(a.Groups, ", ") != best || math.IsNaN(float64(a.Value)) {
				return 0, false
			}
			return float64(a.Value), true
		},
	}, left
}

// metricMeasure resolves a --metric TASK[/KEY] against a table's columns; ok is false when
// the table has no such task (the other mode's table may).
func metricMeasure(t *Table, ref string) (m measure, ok bool, err error) {
	col, key, err := findColumn(t, ref)
	if err != nil || col == nil {
		return measure{}, false, err
	}
	if key == "" {
		key = col.Display[0]
	} else if !slices.Contains(col.Metrics, key) {
		return measure{}, false, fmt.Errorf("report: --metric %s: %s has no metric %q (metrics: %s)", ref, col.Task, key, strings.Join(col.Metrics, ", "))
	}
	task := col.Task
	return measure{
		slug:   strings.ReplaceAll(task, "/", "_") + "." + key,
		title:  task + " " + key,
		ylabel: task + " " + key,
		value: func(r *Row) (float64, bool) {
			c, ok := r.Cells[task]
			if !ok || c.Status != evaluate.StatusOK {
				return 0, false
			}
			v, ok := c.Metrics[key]
			return v, ok && !math.IsNaN(v)
		},
	}, true, nil
}

// findColumn finds the column a --metric names: the whole string as a task (or a task's
// name without its benchmark), else TASK/KEY split at the last slash.
func findColumn(t *Table, ref string) (*Column, string, error) {
	match := func(name string) ([]*Column, error) {
		var exact, suffix []*Column
		for i := range t.Tasks {
			c := &t.Tasks[i]
			switch {
			case c.Task == name:
				exact = append(exact, c)
			case strings.HasSuffix(c.Task, "/"+name):
				suffix = append(suffix, c)
			}
		}
		if len(exact) > 0 {
			return exact, nil
		}
		if len(suffix) > 1 {
			names := make([]string, len(suffix))
			for i, c := range suffix {
				names[i] = c.Task
			}
			return nil, fmt.Errorf("report: --metric %s: ambiguous (%s)", ref, strings.Join(names, ", "))
		}
		return suffix, nil
	}
	cols, err := match(ref)
	if err != nil || len(cols) == 1 {
		if err != nil {
			return nil, "", err
		}
		return cols[0], "", nil
	}
	i := strings.LastIndex(ref, "/")
	if i <= 0 || i == len(ref)-1 {
		return nil, "", nil
	}
	cols, err = match(ref[:i])
	if err != nil || len(cols) == 0 {
		return nil, "", err
	}
	return cols[0], ref[i+1:], nil
}

// chart places a table's rows by one measure against one cost.
func chart(t *Table, m measure, ax Axis, lat map[benchKey]float64) (*Chart, []string) {
	c := &Chart{
		Name:   string(t.Mode) + "-" + m.slug + "-" + string(ax),
		Title:  fmt.Sprintf("%s against %s, %s mode", m.title, axisNoun(ax), t.Mode),
		Axis:   ax,
		YLabel: m.ylabel,
	}
	var left []string
	for i := range t.Rows {
		r := &t.Rows[i]
		q, ok := m.value(r)
		if !ok {
			continue
		}
		var x float64
		switch ax {
		case AxisParams:
			x = float64(r.Params)
		case AxisFLOPs:
			x = r.FLOPsPerToken
		case AxisDecode:
			x, ok = latencyOf(lat, *r)
			if !ok {
				dt := cmp.Or(r.DType, "f32")
				left = append(left, fmt.Sprintf("%s: no batch-1 bench row for shape %s at %s", r.Model, r.Label(), dt))
				continue
			}
		}
		if !(x > 0) || math.IsInf(x, 0) {
			left = append(left, fmt.Sprintf("%s: no %s recorded", r.Model, axisNoun(ax)))
			continue
		}
		c.Points = append(c.Points, Point{Label: r.Label(), Cost: x, Quality: q})
	}
	c.Frontier = Frontier(c.Points)
	return c, left
}

func axisNoun(ax Axis) string {
	switch ax {
	case AxisParams:
		return "parameters"
	case AxisFLOPs:
		return "FLOPs per token"
	case AxisDecode:
		return "decode latency"
	}
	return string(ax)
}

// commonPrefix is the catalog's name prefix, dropped from point labels when every label
// has it (the title says so) so that labels stay short enough not to collide.
const commonPrefix = "t5-efficient-"

// svgFonts names the SVG's font with metric-compatible fallbacks.
const svgFonts = "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;"

// sans is the Liberation variant the plots use (plot's default is the serif).
const sans = font.Variant("Sans")

// Colours (the Tableau 10 blue and red, distinguishable by most colour-blind readers by
// their lightness too).
var (
	pointColor    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	frontierColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// Plot draws the chart: every model as a hollow blue circle labelled by its shape, the
// frontier as a red step line (the best quality available at each budget) through filled
// red circles, log-scale x.
func (c *Chart) Plot() (*plot.Plot, error) {
	p := plot.New()
	labels := make([]string, len(c.Points))
	strip := len(c.Points) > 0
	for i, pt := range c.Points {
		labels[i] = pt.Label
		strip = strip && strings.HasPrefix(pt.Label, commonPrefix) && len(pt.Label) > len(commonPrefix)
	}
	p.Title.Text = c.Title
	if strip {
		for i := range labels {
			labels[i] = strings.TrimPrefix(labels[i], commonPrefix)
		}
		p.Title.Text += "\nshapes " + commonPrefix + "*"
	}
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = c.Axis.label()
	p.Y.Label.Text = c.YLabel
	// x is drawn as log10(cost) on a linear axis, ticks labelled in the cost's units: with
	// plot.LogScale, plot (v0.17.0) centres the axis label's glyph box at the linear
	// midpoint of the range, far right on a log axis, and shrinks the data area to fit it.
	p.X.Tick.Marker = logTicks{format: c.Axis.tick}
	p.Y.Tick.Marker = niceTicks{}

	xs := make(plotter.XYs, len(c.Points))
	minX, maxX := math.Inf(1), math.Inf(-1)
	minY, maxY := math.Inf(1), math.Inf(-1)
	for i, pt := range c.Points {
		xs[i] = plotter.XY{X: math.Log10(pt.Cost), Y: pt.Quality}
		minX, maxX = min(minX, pt.Cost), max(maxX, pt.Cost)
		minY, maxY = min(minY, pt.Quality), max(maxY, pt.Quality)
	}
	if len(xs) == 0 {
		return nil, fmt.Errorf("report: plot %s: no points", c.Name)
	}
	// Room around the points: a quarter of a decade (at least) on x, 8% on y, so that no
	// marker sits on an axis and the labels of the outermost points fit.
	span := math.Log10(maxX / minX)
	padX := max(0.12, span*0.06)
	p.X.Min, p.X.Max = math.Log10(minX)-padX, math.Log10(maxX)+padX
	dy := (maxY - minY) * 0.08
	if dy == 0 {
		dy = 1
	}
	p.Y.Min, p.Y.Max = minY-dy, maxY+dy

	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 0xe0}
	grid.Horizontal.Color = color.Gray{Y: 0xe0}
	p.Add(grid)

	all, err := plotter.NewScatter(xs)
	if err != nil {
		return nil, fmt.Errorf("report: plot %s: %w", c.Name, err)
	}
	all.GlyphStyle = draw.GlyphStyle{Color: pointColor, Radius: vg.Points(3.5), Shape: draw.RingGlyph{}}

	front := make(plotter.XYs, len(c.Frontier))
	for i, k := range c.Frontier {
		front[i] = xs[k]
	}
	step, err := plotter.NewLine(front)
	if err != nil {
		return nil, fmt.Errorf("report: plot %s: %w", c.Name, err)
	}
	step.StepStyle = plotter.PostStep
	step.LineStyle = draw.LineStyle{Color: frontierColor, Width: vg.Points(1.5)}
	marks, err := plotter.NewScatter(front)
	if err != nil {
		return nil, fmt.Errorf("report: plot %s: %w", c.Name, err)
	}
	marks.GlyphStyle = draw.GlyphStyle{Color: frontierColor, Radius: vg.Points(4), Shape: draw.CircleGlyph{}}

	style := text.Style{
		Color:   color.Gray{Y: 0x30},
		Font:    font.From(font.Font{Typeface: "Liberation", Variant: sans}, vg.Points(8)),
		Handler: plot.DefaultTextHandler,
	}
	order := slices.Clone(c.Frontier)
	for i := range c.Points {
		if !slices.Contains(order, i) {
			order = append(order, i)
		}
	}
	names := &pointLabels{xys: xs, labels: labels, order: order, front: front, style: style, marker: vg.Points(4)}

	p.Add(step, all, marks, names)
	p.Legend.Add("model", all)
	p.Legend.Add("Pareto frontier (best quality for the cost)", step, marks)
	// Bottom right: high cost and low quality, the corner a Pareto plot leaves empty.
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), vg.Points(6)
	p.Legend.TextStyle.Font = font.From(p.Legend.TextStyle.Font, vg.Points(9))
	for _, f := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
		&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		f.Variant = sans
	}
	return p, nil
}

// Render draws the chart as "svg" or "png" (at PNGDPI).
func (c *Chart) Render(format string) ([]byte, error) {
	p, err := c.Plot()
	if err != nil {
		return nil, err
	}
	var canvas vg.CanvasWriterTo
	switch format {
	case "svg":
		canvas = vgsvg.New(PlotWidth, PlotHeight)
	case "png":
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(PlotWidth, PlotHeight), vgimg.UseDPI(PNGDPI))}
	default:
		return nil, fmt.Errorf("report: plot format %q: want svg or png", format)
	}
	p.Draw(draw.New(canvas))
	var buf bytes.Buffer
	if _, err := canvas.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("report: draw %s.%s: %w", c.Name, format, err)
	}
	if format == "svg" {
		// The layout was measured with Liberation Sans. A viewer without it would fall
		// back to a wider font and overflow the legend; Arial has the same metrics, and
		// embedding the font instead would add half a megabyte to every plot.
		return bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte(svgFonts)), nil
	}
	return buf.Bytes(), nil
}

// WritePlots writes each chart as <dir>/<name>.svg and .png, creating dir, and returns the
// files written.
func WritePlots(ctx context.Context, dir string, charts []*Chart) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: plots folder: %w", err)
	}
	var files []string
	for _, c := range charts {
		for _, format := range []string{"svg", "png"} {
			if err := ctx.Err(); err != nil {
				return files, err
			}
			data, err := c.Render(format)
			if err != nil {
				return files, err
			}
			f := filepath.Join(dir, c.Name+"."+format)
			if err := writeFileAtomic(f, data); err != nil {
				return files, err
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// writeFileAtomic writes beside the target and renames, so a viewer never opens half a
// plot.
func writeFileAtomic(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("report: write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes 0600; a plot is for everyone to open
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("report: write %s: %w", name, err)
	}
	return nil
}

// logTicks marks an axis of log10 values: every 1–9 × 10^k as a tick, labelled (in
// the values' own units) at the powers of ten, and also at 2 and 5 (or at every tick) when
// the range spans too few decades for fewer to give three labels.
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(min, max float64) []plot.Tick {
	ticks := t.ticks(math.Pow(10, min), math.Pow(10, max))
	for i := range ticks {
		ticks[i].Value = math.Log10(ticks[i].Value)
	}
	return ticks
}

// ticks works in the values' units.
func (t logTicks) ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: t.format(lo)}}
	}
	var vals []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for m := 1.0; m <= 9; m++ {
			if v := m * math.Pow(10, e); v >= lo*(1-1e-9) && v <= hi*(1+1e-9) {
				vals = append(vals, v)
			}
		}
	}
	var ticks []plot.Tick
	for _, mants := range [][]float64{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		ticks = ticks[:0]
		labelled := 0
		for _, v := range vals {
			tk := plot.Tick{Value: v}
			if slices.Contains(mants, math.Round(v/math.Pow(10, math.Floor(math.Log10(v)+1e-9)))) {
				tk.Label = t.format(v)
				labelled++
			}
			ticks = append(ticks, tk)
		}
		if labelled >= 3 {
			return ticks
		}
	}
	// Under half a decade (one model, or close costs): label the ends of the range as
	// well, unless a labelled tick is near.
	for _, end := range []float64{lo, hi} {
		if !slices.ContainsFunc(ticks, func(tk plot.Tick) bool { return math.Abs(math.Log10(tk.Value/end)) < 0.06 }) {
			ticks = append(ticks, plot.Tick{Value: end, Label: t.format(end)})
		}
	}
	return ticks
}

// niceTicks marks a linear axis every 1, 2, 2.5 or 5 × 10^k, whichever gives four to eight
// labels, with a minor tick between labels (plot's DefaultTicks labels the ends of the
// range, 57 / 66 / 75 for a range set from the data).
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	decimals := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	if step/math.Pow(10, math.Floor(math.Log10(step)+1e-9)) == 2.5 {
		decimals++
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / step * 2); i/2*step <= hi; i++ {
		v := i / 2 * step
		if v == 0 {
			v = 0 // not -0, which prints "-0"
		}
		tk := plot.Tick{Value: v}
		if math.Mod(i, 2) == 0 {
			tk.Label = strconv.FormatFloat(v, 'f', decimals, 64)
		}
		ticks = append(ticks, tk)
	}
	return ticks
}
