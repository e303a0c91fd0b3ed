package report

import (
	"cmp"
	"slices"
	"strings"
)

// T5's task order in its GLUE and SuperGLUE tables (T5 eval_utils METRIC_NAMES), with the
// tasks T5 leaves out of the averages after them.
var (
	glueOrder      = []string{"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli", "ax"}
	superGLUEOrder = []string{"boolq", "cb", "copa", "multirc", "record", "rte", "wic", "wsc", "wsc_simple", "axb", "axg"}
)

// Benchmark names as evaluate.CellResult.Benchmark and task.Average spell them.
const (
	GLUE      = "glue"
	SuperGLUE = "super_glue"
)

// taskRank places a task: GLUE tasks in T5's order, then SuperGLUE's, then every other
// task (by name, from compareTasks).
func taskRank(name string) (group, idx int) {
	if rest, ok := strings.CutPrefix(name, GLUE+"/"); ok {
		if i := slices.Index(glueOrder, rest); i >= 0 {
			return 0, i
		}
		return 0, len(glueOrder)
	}
	if rest, ok := strings.CutPrefix(name, SuperGLUE+"/"); ok {
		if i := slices.Index(superGLUEOrder, rest); i >= 0 {
			return 1, i
		}
		return 1, len(superGLUEOrder)
	}
	return 2, 0
}

func compareTasks(a, b string) int {
	ga, ia := taskRank(a)
	gb, ib := taskRank(b)
	return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(ia, ib), strings.Compare(a, b))
}

// benchmarkOf is the benchmark a task name belongs to by its prefix ("" for others).
func benchmarkOf(name string) string {
	switch {
	case strings.HasPrefix(name, GLUE+"/"):
		return GLUE
	case strings.HasPrefix(name, SuperGLUE+"/"):
		return SuperGLUE
	}
	return ""
}

// reported are the metric keys T5's tables show for a task, in T5's order (MRPC "F1 /
// accuracy", STS-B "Pearson / Spearman", ...), by the task's last name element. Tasks
// not listed show their single metric, or all their metrics by key.
var reported = map[string][]string{
	"cola":    {"matthews_corrcoef"},
	"mrpc":    {"f1", "accuracy"},
	"qqp":     {"f1", "accuracy"},
	"stsb":    {"pearson_corrcoef", "spearman_corrcoef"},
	"cb":      {"mean_3class_f1", "accuracy"},
	"multirc": {"f1", "exact_match"},
	"record":  {"f1", "em"},
	"squad":   {"em", "f1"},
}

// reportedMetrics orders a task's metric keys: the ones T5 reports first, in its order,
// then any others by key. display is the T5-reported subset present, or all keys when the
// task has no T5 list (or none of its keys is present).
func reportedMetrics(task string, keys []string) (all, display []string) {
	want := reported[task[strings.LastIndex(task, "/")+1:]]
	for _, k := range want {
		if slices.Contains(keys, k) {
			display = append(display, k)
		}
	}
	rest := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return slices.Contains(display, k) })
	slices.Sort(rest)
	all = append(slices.Clone(display), rest...)
	if len(display) == 0 {
		display = all
	}
	return all, display
}

// shortMetric is a metric key as a column header says it.
func shortMetric(key string) string {
	switch key {
	case "accuracy":
		return "acc"
	case "matthews_corrcoef":
		return "mcc"
	case "pearson_corrcoef":
		return "pearson"
	case "spearman_corrcoef":
		return "spearman"
	case "mean_3class_f1":
		return "f1"
	case "exact_match":
		return "em"
	case "sequence_accuracy":
		return "seq_acc"
	}
	return key
}

// benchmarkTitle is how a header names a benchmark's average.
func benchmarkTitle(b string) string {
	switch b {
	case GLUE:
		return "GLUE"
	case SuperGLUE:
		return "SuperGLUE"
	}
	return b
}
