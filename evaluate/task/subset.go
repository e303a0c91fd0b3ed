package task

import (
	"hash/fnv"
	"slices"
	"strings"
)

// Limit returns a deterministic subset of about n examples, in their original order,
// keeping groups whole (a MultiRC question's answers, a ReCoRD query): the units (a Group,
// or an ungrouped example's ID) are ranked by an FNV-1a hash of the task name and the unit
// and taken in that order until n examples are reached, so the last group taken may carry
// the count past n. The same task, examples and n give the same subset on every machine
// and run; a larger n gives a superset. n <= 0 or n >= len(examples) returns all.
func Limit(t *Task, examples []Example, n int) []Example {
	if n <= 0 || n >= len(examples) {
		return examples
	}
	unitOf := func(i int) string {
		if g := examples[i].Group; g != "" {
			return "g\x00" + g
		}
		return "i\x00" + examples[i].ID
	}
	size := make(map[string]int)
	var units []string
	for i := range examples {
		u := unitOf(i)
		if size[u] == 0 {
			units = append(units, u)
		}
		size[u]++
	}
	name := ""
	if t != nil {
		name = t.name
	}
	rank := make(map[string]uint64, len(units))
	for _, u := range units {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(u))
		rank[u] = h.Sum64()
	}
	slices.SortStableFunc(units, func(a, b string) int {
		switch ra, rb := rank[a], rank[b]; {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		return strings.Compare(a, b)
	})
	keep := make(map[string]bool)
	total := 0
	for _, u := range units {
		if total >= n {
			break
		}
		keep[u] = true
		total += size[u]
	}
	out := make([]Example, 0, total)
	for i, ex := range examples {
		if keep[unitOf(i)] {
			out = append(out, ex)
		}
	}
	return out
}

// Average is a benchmark average computed by T5's rules over the task groups present.
type Average struct {
	Benchmark string   // "glue" or "super_glue"
	Value     float64  // the mean over present groups of each group's mean metric
	Groups    []string // the groups averaged, in T5's order ("CoLA", "SST-2", "MRPC", …)
	Missing   []string // the groups left out because a metric of theirs is absent
}

// avgGroup is one of T5's METRIC_NAMES groups: its name and its (task, metric key) pairs.
type avgGroup struct {
	name    string
	metrics [][2]string
}

// avgGroups are t5/evaluation/eval_utils.py's METRIC_NAMES groups per benchmark, in its
// order. WNLI and the diagnostic sets are in neither average.
func avgGroups() map[string][]avgGroup {
	one := func(name, task, key string) avgGroup { return avgGroup{name, [][2]string{{task, key}}} }
	two := func(name, task, k1, k2 string) avgGroup {
		return avgGroup{name, [][2]string{{task, k1}, {task, k2}}}
	}
	return map[string][]avgGroup{
		"glue": {
			one("CoLA", "glue/cola", "matthews_corrcoef"),
			one("SST-2", "glue/sst2", "accuracy"),
			two("MRPC", "glue/mrpc", "f1", "accuracy"),
			two("STSB", "glue/stsb", "pearson_corrcoef", "spearman_corrcoef"),
			two("QQP", "glue/qqp", "f1", "accuracy"),
			{"MNLI", [][2]string{{"glue/mnli_matched", "accuracy"}, {"glue/mnli_mismatched", "accuracy"}}},
			one("QNLI", "glue/qnli", "accuracy"),
			one("GLUE RTE", "glue/rte", "accuracy"),
		},
		"super_glue": {
			one("BoolQ", "super_glue/boolq", "accuracy"),
			two("CB", "super_glue/cb", "mean_3class_f1", "accuracy"),
			one("CoPA", "super_glue/copa", "accuracy"),
			two("MultiRC", "super_glue/multirc", "f1", "exact_match"),
			two("ReCoRD", "super_glue/record", "f1", "em"),
			one("SuperGLUE RTE", "super_glue/rte", "accuracy"),
			one("WiC", "super_glue/wic", "accuracy"),
			one("WSC", "super_glue/wsc", "accuracy"),
		},
	}
}

// Averages computes the GLUE and SuperGLUE averages of T5's eval_utils.compute_avg_glue
// from metrics by task name ("glue/cola" → {"matthews_corrcoef": 61.2}): each group's
// metrics are averaged, then the group means. T5 computes an average only when every group
// is there; here it is computed over the groups whose metrics are all present, and the
// others are listed as Missing, so a partial sweep still reads. A NaN metric is present
// and makes the average NaN, as in T5. A benchmark with no group present is left out.
func Averages(metrics map[string]map[string]float64) []Average {
	groups := avgGroups()
	var out []Average
	for _, bench := range []string{"glue", "super_glue"} {
		avg := Average{Benchmark: bench}
		sum := 0.0
		for _, g := range groups[bench] {
			gs, ok := 0.0, true
			for _, tm := range g.metrics {
				v, has := metrics[tm[0]][tm[1]]
				if !has {
					ok = false
					break
				}
				gs += v
			}
			if !ok {
				avg.Missing = append(avg.Missing, g.name)
				continue
			}
			avg.Groups = append(avg.Groups, g.name)
			sum += gs / float64(len(g.metrics))
		}
		if len(avg.Groups) == 0 {
			continue
		}
		avg.Value = sum / float64(len(avg.Groups))
		out = append(out, avg)
	}
	return out
}
