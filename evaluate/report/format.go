package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/t5zoo/t5zoo/evaluate"
)

// Marks in the text and Markdown tables; the footnotes under a table explain them.
const (
	partialMark = "*" // an average over some of its benchmark's groups
	limitMark   = "†" // a cell run on a --limit subset
	failedText  = "failed"
	missingText = "-"
)

// column is one column of a rendered table: a benchmark average or a task.
type column struct {
	bench string // the average of this benchmark, or "" for a task
	task  *Column
}

// layout orders a table's columns as T5's tables do: each benchmark's average before its
// tasks (GLUE, then SuperGLUE), then the other tasks.
func layout(t *Table) []column {
	var cols []column
	done := map[string]bool{}
	for _, b := range []string{GLUE, SuperGLUE} {
		if slices.Contains(t.Benchmarks, b) {
			cols = append(cols, column{bench: b})
			done[b] = true
		}
		for i := range t.Tasks {
			if t.Tasks[i].Benchmark == b {
				cols = append(cols, column{task: &t.Tasks[i]})
			}
		}
	}
	for _, b := range t.Benchmarks {
		if !done[b] {
			cols = append(cols, column{bench: b})
		}
	}
	for i := range t.Tasks {
		if b := t.Tasks[i].Benchmark; b != GLUE && b != SuperGLUE {
			cols = append(cols, column{task: &t.Tasks[i]})
		}
	}
	return cols
}

func (c column) header() (name, metrics string) {
	if c.task == nil {
		return benchmarkTitle(c.bench), "avg"
	}
	short := make([]string, len(c.task.Display))
	for i, k := range c.task.Display {
		short[i] = shortMetric(k)
	}
	return c.task.Task, strings.Join(short, "/")
}

// text is the cell of row r in this column, one decimal as T5's tables print.
func (c column) text(r *Row) string {
	if c.task == nil {
		a, ok := r.Averages[c.bench]
		if !ok {
			return missingText
		}
		s := formatValue(float64(a.Value))
		if a.Partial() {
			s += partialMark
		}
		return s
	}
	cell, ok := r.Cells[c.task.Task]
	switch {
	case !ok:
		return missingText
	case cell.Status == evaluate.StatusFailed:
		return failedText
	}
	vals := make([]string, len(c.task.Display))
	for i, k := range c.task.Display {
		v, ok := cell.Metrics[k]
		if !ok {
			vals[i] = missingText
			continue
		}
		vals[i] = formatValue(v)
	}
	s := strings.Join(vals, "/")
	if cell.Limit > 0 {
		s += limitMark
	}
	return s
}

func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// showShape says whether a table needs a shape column: some model is named otherwise
// than its shape (a directory, a fine-tune).
func showShape(t *Table) bool {
	return slices.ContainsFunc(t.Rows, func(r Row) bool { return r.Shape != "" && r.Shape != r.Model })
}

// grid is a table as strings: header rows, then one row per model.
func grid(t *Table) (head [2][]string, body [][]string) {
	cols := layout(t)
	shape := showShape(t)
	head[0] = []string{"MODEL"}
	head[1] = []string{""}
	if shape {
		head[0] = append(head[0], "SHAPE")
		head[1] = append(head[1], "")
	}
	head[0] = append(head[0], "PARAMS")
	head[1] = append(head[1], "")
	for _, c := range cols {
		n, m := c.header()
		head[0] = append(head[0], n)
		head[1] = append(head[1], m)
	}
	for i := range t.Rows {
		r := &t.Rows[i]
		line := []string{r.Model}
		if shape {
			line = append(line, r.Shape)
		}
		line = append(line, humanCount(r.Params))
		for _, c := range cols {
			line = append(line, c.text(r))
		}
		body = append(body, line)
	}
	return head, body
}

// footnotes explain a table's marks and list its failed cells.
func footnotes(t *Table) []string {
	var notes []string
	for _, b := range t.Benchmarks {
		var sets []string // distinct missing lists, in row order
		who := map[string][]string{}
		for _, r := range t.Rows {
			a, ok := r.Averages[b]
			if !ok || !a.Partial() {
				continue
			}
			k := strings.Join(a.Missing, ", ")
			if _, ok := who[k]; !ok {
				sets = append(sets, k)
			}
			who[k] = append(who[k], r.Model)
		}
		for _, k := range sets {
			notes = append(notes, fmt.Sprintf("%s %s average over the groups present; missing %s: %s",
				partialMark, benchmarkTitle(b), k, strings.Join(who[k], ", ")))
		}
	}
	limited := false
	var failed []string
	for _, r := range t.Rows {
		for _, col := range t.Tasks {
			c, ok := r.Cells[col.Task]
			if !ok {
				continue
			}
			limited = limited || (c.Limit > 0 && c.Status == evaluate.StatusOK)
			if c.Status == evaluate.StatusFailed {
				failed = append(failed, fmt.Sprintf("  %s × %s: %s", r.Model, col.Task, oneLine(c.Error)))
			}
		}
	}
	if limited {
		notes = append(notes, limitMark+" run on a --limit subset, not the whole split")
	}
	if len(failed) > 0 {
		notes = append(notes, "failed cells (a rerun retries them):")
		notes = append(notes, failed...)
	}
	return notes
}

// oneLine shortens an error to one line of at most 160 characters for a footnote.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:157]) + "..."
	}
	return cmpOrUnknown(s)
}

func cmpOrUnknown(s string) string {
	if s == "" {
		return "(no error recorded)"
	}
	return s
}

// WriteText writes each table aligned (text/tabwriter) under a "mode:" line, with its
// footnotes.
func WriteText(w io.Writer, tables []*Table) error {
	for i, t := range tables {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "mode: %s\n", t.Mode); err != nil {
			return err
		}
		head, body := grid(t)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, line := range append([][]string{head[0], head[1]}, body...) {
			if _, err := fmt.Fprintln(tw, strings.Join(line, "\t")); err != nil {
				return err
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, n := range footnotes(t) {
			if _, err := fmt.Fprintln(w, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteMarkdown writes each table as a GitHub-flavoured Markdown table under a "###"
// heading naming its mode, numbers right-aligned, footnotes below as a list.
func WriteMarkdown(w io.Writer, tables []*Table) error {
	esc := strings.NewReplacer("|", `\|`, "*", `\*`)
	for i, t := range tables {
		if i > 0 {
			if _, err := fmt.Fprintln(w); err != nil {
				return err
			}
		}
		head, body := grid(t)
		named := 1 // model (and shape) columns are left-aligned
		if showShape(t) {
			named = 2
		}
		hdr := make([]string, len(head[0]))
		align := make([]string, len(head[0]))
		for j := range head[0] {
			hdr[j] = esc.Replace(strings.ToLower(head[0][j]))
			if j >= named+1 && head[1][j] != "" { // task and average columns
				hdr[j] = esc.Replace(head[0][j] + " " + head[1][j])
			}
			align[j] = "---:"
			if j < named {
				align[j] = "---"
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "### %s\n\n", t.Mode)
		fmt.Fprintf(&b, "| %s |\n| %s |\n", strings.Join(hdr, " | "), strings.Join(align, " | "))
		for _, line := range body {
			cells := make([]string, len(line))
			for j, c := range line {
				cells[j] = esc.Replace(c)
			}
			fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
		}
		if notes := footnotes(t); len(notes) > 0 {
			b.WriteString("\n")
			for _, n := range notes {
				// A list, so that a renderer keeps one note a line; failed cells nest.
				if strings.HasPrefix(n, "  ") {
					b.WriteString("  - " + esc.Replace(strings.TrimSpace(n)) + "\n")
					continue
				}
				b.WriteString("- " + esc.Replace(n) + "\n")
			}
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes all tables as one CSV (encoding/csv): a mode column, the model's facts,
// then per benchmark its average and its missing groups, and one column per task metric
// ("glue/mrpc:f1"), at full precision. A failed cell's metric columns say "failed"; a
// missing cell's are empty. Tables of different modes share the header when their columns
// agree; otherwise each table gets its own header row.
func WriteCSV(w io.Writer, tables []*Table) error {
	cw := csv.NewWriter(w)
	var prev []string
	for _, t := range tables {
		cols := layout(t)
		head := []string{"mode", "model", "shape", "digest", "dtype", "params", "flops_per_token"}
		for _, c := range cols {
			if c.task == nil {
				head = append(head, c.bench+":average", c.bench+":missing")
				continue
			}
			for _, k := range c.task.Metrics {
				head = append(head, c.task.Task+":"+k)
			}
		}
		if !slices.Equal(head, prev) {
			if err := cw.Write(head); err != nil {
				return err
			}
			prev = head
		}
		for _, r := range t.Rows {
			line := []string{string(t.Mode), r.Model, r.Shape, r.Digest, r.DType,
				strconv.FormatInt(r.Params, 10), strconv.FormatFloat(r.FLOPsPerToken, 'g', -1, 64)}
			for _, c := range cols {
				if c.task == nil {
					a, ok := r.Averages[c.bench]
					if !ok {
						line = append(line, "", "")
						continue
					}
					line = append(line, fullPrecision(float64(a.Value)), strings.Join(a.Missing, ";"))
					continue
				}
				cell, ok := r.Cells[c.task.Task]
				for _, k := range c.task.Metrics {
					switch {
					case !ok:
						line = append(line, "")
					case cell.Status == evaluate.StatusFailed:
						line = append(line, failedText)
					default:
						v, ok := cell.Metrics[k]
						if !ok {
							line = append(line, "")
							continue
						}
						line = append(line, fullPrecision(v))
					}
				}
			}
			if err := cw.Write(line); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func fullPrecision(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// JSONReport is what WriteJSON writes: the --json output of `t5zoo eval report`.
type JSONReport struct {
	// Schema is TableSchema.
	Schema string `json:"schema"`
	// Store says where the results came from.
	Store string `json:"store"`
	// Tables has one table per mode, predict before rank.
	Tables []*Table `json:"tables"`
	// Warnings are the results files that were skipped, with why.
	Warnings []JSONWarning `json:"warnings,omitempty"`
}

// JSONWarning is a Warning in JSON.
type JSONWarning struct {
	Key   string `json:"key"`
	Error string `json:"error"`
}

// WriteJSON writes the tables and warnings as one indented JSONReport.
func WriteJSON(w io.Writer, store string, tables []*Table, warnings []Warning) error {
	out := JSONReport{Schema: TableSchema, Store: store, Tables: tables}
	if out.Tables == nil {
		out.Tables = []*Table{}
	}
	for _, wn := range warnings {
		out.Warnings = append(out.Warnings, JSONWarning{Key: wn.Key, Error: wn.Err.Error()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("report: write JSON: %w", err)
	}
	return nil
}

// humanCount prints a parameter count the way the model cards do: 222.9M, 11.3B; "?"
// when unknown.
func humanCount(n int64) string {
	switch {
	case n <= 0:
		return "?"
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}
