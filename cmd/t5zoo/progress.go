package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/dustin/go-humanize"
	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/t5zoo/t5zoo/zoo"
)

// plainQuarterMin is the file size from which plain progress reports every quarter.
const plainQuarterMin = 64 << 20

// progressUI shows zoo.Progress reports: a bar per file in a terminal, and otherwise a line
// per file when it is done (and at every quarter for large files), so that logs stay
// readable.
type progressUI struct {
	w    io.Writer
	verb string // "pull", "push", "verify"

	mu      sync.Mutex
	bars    *mpb.Progress // nil when w is not a terminal
	bar     map[string]*mpb.Bar
	quarter map[string]int64 // plain mode: the last step reported per file
}

// newProgressUI writes to w, with bars when w is a terminal.
func newProgressUI(w io.Writer, verb string) *progressUI {
	u := &progressUI{w: w, verb: verb, bar: map[string]*mpb.Bar{}, quarter: map[string]int64{}}
	if f, ok := w.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		u.bars = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	}
	return u
}

// logger returns the slog logger for the operation: above the bars in a terminal.
func (u *progressUI) logger(verbose bool) *slog.Logger {
	var w io.Writer = u.w
	if u.bars != nil {
		w = u.bars
	}
	level := slog.LevelInfo
	if !verbose {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// update is the zoo.Progress callback.
func (u *progressUI) update(p zoo.Progress) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if p.Total == 0 {
		return
	}
	if u.bars != nil {
		b, ok := u.bar[p.File]
		if !ok {
			b = u.bars.AddBar(p.Total,
				mpb.PrependDecorators(
					decor.Name(p.File, decor.WC{C: decor.DindentRight | decor.DextraSpace, W: 24}),
					decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WC{W: 22}),
				),
				mpb.AppendDecorators(
					decor.Percentage(decor.WC{W: 5}),
					decor.OnComplete(decor.AverageSpeed(decor.SizeB1024(0), " % .1f", decor.WC{W: 12}), " done"),
				),
			)
			u.bar[p.File] = b
		}
		b.SetCurrent(p.Completed)
		return
	}
	// Plain lines: a file's quarters when it is large enough to take a while, else only
	// its completion.
	steps := int64(1)
	if p.Total >= plainQuarterMin {
		steps = 4
	}
	step := p.Completed * steps / p.Total
	if step <= u.quarter[p.File] {
		return
	}
	u.quarter[p.File] = step
	if step == steps {
		fmt.Fprintf(u.w, "%s %s: done (%s)\n", u.verb, p.File, humanize.IBytes(uint64(p.Total)))
		return
	}
	fmt.Fprintf(u.w, "%s %s: %d%% (%s of %s)\n", u.verb, p.File, step*100/steps,
		humanize.IBytes(uint64(p.Completed)), humanize.IBytes(uint64(p.Total)))
}

// finish stops the bars: they complete on success and are dropped on failure.
func (u *progressUI) finish(ok bool) {
	if u.bars == nil {
		return
	}
	u.mu.Lock()
	for _, b := range u.bar {
		if !b.Completed() {
			b.Abort(!ok)
		}
	}
	u.mu.Unlock()
	u.bars.Wait()
}
