package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/evaluate"
)

var testBench = []BenchRow{
	{Shape: "t5-efficient-tiny", DType: "f32", Batch: 1, DecodeMSPerToken: 2.1},
	{Shape: "t5-efficient-mini", DType: "f32", Batch: 1, DecodeMSPerToken: 3.5},
	{Shape: "t5-efficient-mini", DType: "f32", Batch: 8, DecodeMSPerToken: 0.5},
	// small has bench rows at another dtype only: it is left out of the latency plots.
	{Shape: "t5-efficient-small", DType: "int8", Batch: 1, DecodeMSPerToken: 4},
}

func chartNames(cs []*Chart) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestCharts(t *testing.T) {
	_, tables := loadTables(t, synthetic(), "")
	charts, warns, err := Charts(tables, ChartOptions{Metrics: []string{"glue/mrpc/accuracy", "sst2"}, Bench: testBench})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"predict-glue-params", "predict-glue-flops", "predict-glue-decode-ms",
		"predict-super_glue-params", "predict-super_glue-flops", "predict-super_glue-decode-ms",
		"predict-glue_mrpc.accuracy-params", "predict-glue_mrpc.accuracy-flops", "predict-glue_mrpc.accuracy-decode-ms",
		"predict-glue_sst2.accuracy-params", "predict-glue_sst2.accuracy-flops", "predict-glue_sst2.accuracy-decode-ms",
		"rank-glue-params", "rank-glue-flops", "rank-glue-decode-ms",
		"rank-glue_sst2.accuracy-params", "rank-glue_sst2.accuracy-flops", "rank-glue_sst2.accuracy-decode-ms",
	}
	if got := chartNames(charts); !slices.Equal(got, want) {
		t.Errorf("charts %q\nwant %q", got, want)
	}
	byName := func(n string) *Chart { return charts[slices.Index(chartNames(charts), n)] }

	// sst2 against params: all three models, all on the frontier (quality rises with size).
	c := byName("predict-glue_sst2.accuracy-params")
	wantPts := []Point{{tiny.shape, float64(tiny.params), 80.5}, {mini.shape, float64(mini.params), 85}, {small.shape, float64(small.params), 88}}
	if !slices.Equal(c.Points, wantPts) || !slices.Equal(c.Frontier, []int{0, 1, 2}) {
		t.Errorf("sst2 params chart %+v %v", c.Points, c.Frontier)
	}
	if c.Axis != AxisParams || !strings.Contains(c.Title, "glue/sst2 accuracy") || c.YLabel != "glue/sst2 accuracy" {
		t.Errorf("sst2 chart labels %q %q", c.Title, c.YLabel)
	}
	// MRPC accuracy: small failed, so two points.
	if c := byName("predict-glue_mrpc.accuracy-flops"); len(c.Points) != 2 || c.Points[1].Cost != mini.flops {
		t.Errorf("mrpc flops chart %+v", c.Points)
	}
	// decode latency: small has no f32 bench row.
	if c := byName("predict-glue_sst2.accuracy-decode-ms"); len(c.Points) != 2 || c.Points[0].Cost != 2.1 || c.Points[1].Cost != 3.5 {
		t.Errorf("sst2 decode chart %+v", c.Points)
	}
	// The GLUE averages cover different groups per model (tiny lacks CoLA, small's MRPC
	// failed): only mini's, the largest set, is plotted, and the others are reported.
	if c := byName("predict-glue-params"); len(c.Points) != 1 || c.Points[0].Label != mini.shape || c.YLabel != "GLUE average over CoLA, SST-2, MRPC (3 of 8 groups)" {
		t.Errorf("GLUE chart %+v %q", c.Points, c.YLabel)
	}
	// SuperGLUE: mini's average is NaN (its CB F1 is), so tiny and small.
	if c := byName("predict-super_glue-params"); len(c.Points) != 2 {
		t.Errorf("SuperGLUE chart %+v", c.Points)
	}
	var msgs []string
	for _, w := range warns {
		msgs = append(msgs, w.String())
	}
	for _, frag := range []string{
		"predict-glue: report: plot leaves out t5-efficient-tiny: its GLUE average covers SST-2, MRPC",
		"predict-glue_sst2.accuracy-decode-ms: report: plot leaves out t5-efficient-small: no batch-1 bench row for shape t5-efficient-small at f32",
	} {
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, frag) }) {
			t.Errorf("no warning %q in\n%s", frag, strings.Join(msgs, "\n"))
		}
	}

	// No bench rows: no latency plots.
	charts, _, err = Charts(tables[:1], ChartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := chartNames(charts); !slices.Equal(got, []string{"predict-glue-params", "predict-glue-flops", "predict-super_glue-params", "predict-super_glue-flops"}) {
		t.Errorf("without bench: %q", got)
	}
}

func TestChartsMetricErrors(t *testing.T) {
	_, tables := loadTables(t, append(synthetic(),
		cell(tiny, "glue/rte", evaluate.Predict, "accuracy", 60.0),
		cell(tiny, "super_glue/rte", evaluate.Predict, "accuracy", 61.0)), "")
	for _, c := range []struct{ metric, err string }{
		{"glue/qnli", "no such task in the results (tasks: glue/cola, glue/sst2, glue/mrpc, glue/rte, super_glue/cb, super_glue/rte, squad)"},
		{"glue/mrpc/auc", `glue/mrpc has no metric "auc" (metrics: f1, accuracy)`},
		{"rte", "ambiguous (glue/rte, super_glue/rte)"},
	} {
		if _, _, err := Charts(tables, ChartOptions{Metrics: []string{c.metric}}); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("--metric %s: %v, want %q", c.metric, err, c.err)
		}
	}
	// The full name is never ambiguous; squad/f1 picks a key.
	charts, _, err := Charts(tables, ChartOptions{Metrics: []string{"super_glue/rte", "squad/f1"}})
	if err != nil {
		t.Fatal(err)
	}
	names := chartNames(charts)
	if !slices.Contains(names, "predict-super_glue_rte.accuracy-params") || !slices.Contains(names, "predict-squad.f1-flops") {
		t.Errorf("charts %q", names)
	}
}

func TestWritePlots(t *testing.T) {
	_, tables := loadTables(t, synthetic(), evaluate.Predict)
	charts, _, err := Charts(tables, ChartOptions{Metrics: []string{"sst2"}, Bench: testBench})
	if err != nil {
		t.Fatal(err)
	}
	// One chart with a frontier of three, one with a single point (the GLUE average).
	i := slices.Index(chartNames(charts), "predict-glue_sst2.accuracy-params")
	j := slices.Index(chartNames(charts), "predict-glue-flops")
	dir := filepath.Join(t.TempDir(), "plots")
	files, err := WritePlots(t.Context(), dir, []*Chart{charts[i], charts[j]})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"predict-glue_sst2.accuracy-params.svg", "predict-glue_sst2.accuracy-params.png", "predict-glue-flops.svg", "predict-glue-flops.png"}
	for k, f := range files {
		if filepath.Base(f) != want[k] {
			t.Errorf("file %d %s, want %s", k, f, want[k])
		}
	}
	if len(files) != len(want) {
		t.Fatalf("files %q", files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(f) {
		case ".svg":
			checkSVG(t, f, data, "glue/sst2 accuracy against parameters")
		case ".png":
			checkPNG(t, f, data)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil || len(left) != 4 {
		t.Errorf("plots folder holds %d entries (temporary files left?): %v", len(left), err)
	}
}

// checkSVG parses the SVG as XML: the root is <svg>, and it draws text.
func checkSVG(t *testing.T, name string, data []byte, title string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root string
	texts := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not XML: %v", name, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "text" {
				texts++
			}
		}
	}
	if bytes.Contains(data, []byte("font-family:Liberation Sans;")) || !bytes.Contains(data, []byte(svgFonts)) {
		t.Errorf("%s: the font has no fallbacks", name)
	}
	if root != "svg" || texts < 5 {
		t.Errorf("%s: root <%s>, %d texts", name, root, texts)
	}
	if strings.Contains(filepath.Base(name), "sst2") && !bytes.Contains(data, []byte(title)) {
		t.Errorf("%s: no title %q", name, title)
	}
}

// checkPNG decodes the PNG: its size, and that it draws the frontier's red and the points'
// blue on white.
func checkPNG(t *testing.T, name string, data []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b := img.Bounds()
	wantW, wantH := 1200, 825 // 8×5.5 inches at 150 dpi
	if b.Dx() != wantW || b.Dy() != wantH {
		t.Errorf("%s: %d×%d, want %d×%d", name, b.Dx(), b.Dy(), wantW, wantH)
	}
	var white, red, ink int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			switch {
			case r > 250 && g > 250 && bl > 250:
				white++
			case r > 200 && g < 60 && bl < 60:
				red++
			default:
				ink++
			}
		}
	}
	total := b.Dx() * b.Dy()
	if white < total/2 || red < 200 || ink < 2000 {
		t.Errorf("%s: %d white, %d red, %d other pixels of %d: not a drawn plot", name, white, red, ink, total)
	}
}

func TestLogTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (logTicks{format: AxisParams.tick}).ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	for _, c := range []struct {
		lo, hi float64
		want   []string
	}{
		{1e7, 2e10, []string{"10M", "100M", "1B", "10B"}},
		{1.2e7, 3e8, []string{"20M", "50M", "100M", "200M"}},
		{2.1e7, 6e7, []string{"30M", "40M", "50M", "60M"}},
		// One model: the range is narrow; its ends are labelled too.
		{1.2e8, 1.6e8, []string{"120M", "160M"}},
	} {
		if got := labels(c.lo, c.hi); !slices.Equal(got, c.want) {
			t.Errorf("[%g, %g]: %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
	// Ticks of the plotted axis are log10 of the values.
	for _, tk := range (logTicks{format: AxisParams.tick}).Ticks(7, 9) {
		if tk.Value < 7 || tk.Value > 9 {
			t.Errorf("tick %v outside [7, 9]", tk.Value)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	labels := func(lo, hi float64) []string {
		var out []string
		for _, tk := range (niceTicks{}).Ticks(lo, hi) {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	for _, c := range []struct {
		lo, hi float64
		want   []string
	}{
		{56.6, 76.4, []string{"60", "65", "70", "75"}},
		{79.4, 93.1, []string{"80.0", "82.5", "85.0", "87.5", "90.0", "92.5"}},
		{79.4, 91.1, []string{"80", "82", "84", "86", "88", "90"}},
		{-0.2, 0.9, []string{"-0.2", "0.0", "0.2", "0.4", "0.6", "0.8"}},
		{0, 10, []string{"0", "2", "4", "6", "8", "10"}},
		{-40, 40, []string{"-40", "-20", "0", "20", "40"}},
		{-0.3, 5.2, []string{"0", "1", "2", "3", "4", "5"}},
	} {
		if got := labels(c.lo, c.hi); !slices.Equal(got, c.want) {
			t.Errorf("[%g, %g]: %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}
