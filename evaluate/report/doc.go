// Package report turns a store of evaluation cells (evaluate.CellResult JSON, one per model ×
// task × mode) into what a researcher reads: a models × tasks table per mode, with T5's
// metrics and GLUE / SuperGLUE averages, written as aligned text, CSV, JSON or Markdown, and
// Pareto plots of quality against parameters, FLOPs per token and measured decode latency
// (from `t5zoo bench --json` results), drawn with gonum.org/v1/plot as SVG and PNG.
//
// It reads results only; it never runs a model. docs/eval-report.md describes the outputs.
package report
