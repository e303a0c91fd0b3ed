package task

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
)

// builtinVersion is each built-in's version: T5's task version (v002 GLUE, v102
// SuperGLUE, v010 SQuAD) and t5zoo's revision after the dot. Bump a task's revision when
// its examples, postprocessing or metrics change; TestGoldenVersions fails until you do.
func builtinVersion(name string) string {
	switch name {
	case "glue/cola", "glue/sst2", "glue/mrpc", "glue/qqp", "glue/stsb", "glue/mnli_matched",
		"glue/mnli_mismatched", "glue/qnli", "glue/rte", "glue/wnli":
		return "v002.1"
	case "super_glue/boolq", "super_glue/cb", "super_glue/copa", "super_glue/multirc",
		"super_glue/record", "super_glue/rte", "super_glue/wic", "super_glue/wsc":
		return "v102.1"
	case "squad":
		return "v010.1"
	}
	panic("task: no version for built-in " + name)
}

// Builtin returns every built-in task, sorted by name. Each call builds fresh values.
func Builtin() []*Task {
	var out []*Task
	for _, g := range glueTasks() {
		out = append(out, newGLUETask(g))
	}
	for _, g := range superGLUETasks() {
		out = append(out, newSuperGLUETask(g))
	}
	out = append(out, newSQuADTask())
	slices.SortFunc(out, func(a, b *Task) int { return strings.Compare(a.name, b.name) })
	return out
}

// Benchmarks lists, for each benchmark name Resolve accepts, the tasks it stands for: the
// tasks T5 averages ("glue" leaves WNLI out, as T5's GLUE average does).
func Benchmarks() map[string][]string {
	return map[string][]string{
		"glue": {"glue/cola", "glue/sst2", "glue/mrpc", "glue/qqp", "glue/stsb", "glue/mnli_matched",
			"glue/mnli_mismatched", "glue/qnli", "glue/rte"},
		"super_glue": {"super_glue/boolq", "super_glue/cb", "super_glue/copa", "super_glue/multirc",
			"super_glue/record", "super_glue/rte", "super_glue/wic", "super_glue/wsc"},
	}
}

// aliases maps every accepted spelling of each built-in (lower-cased) to its name: the
// name, T5's task name ("glue_sst2_v002"), "superglue/…" for "super_glue/…", and the
// short name ("sst2") when only one benchmark has it.
func aliases(tasks []*Task) map[string]string {
	out := make(map[string]string)
	short := make(map[string][]string)
	for _, t := range tasks {
		out[t.name] = t.name
		out[t.t5Name] = t.name
		if rest, ok := strings.CutPrefix(t.name, "super_glue/"); ok {
			out["superglue/"+rest] = t.name
			out["super_glue_"+rest] = t.name
			short[rest] = append(short[rest], t.name)
		} else if rest, ok := strings.CutPrefix(t.name, "glue/"); ok {
			out["glue_"+rest] = t.name
			short[rest] = append(short[rest], t.name)
		}
	}
	out["squad_v010"] = "squad"
	out["squad_v1.1"] = "squad"
	for s, names := range short {
		if len(names) == 1 {
			if _, taken := out[s]; !taken {
				out[s] = names[0]
			}
		}
	}
	return out
}

// UnknownTaskError is a task name Lookup does not know, with the closest names (or, when
// none is close, every built-in's).
type UnknownTaskError struct {
	Name    string
	Suggest []string
	Known   []string
}

func (e *UnknownTaskError) Error() string {
	msg := fmt.Sprintf("task: unknown task %q", e.Name)
	switch len(e.Suggest) {
	case 0:
		return msg + "; the built-in tasks are " + strings.Join(e.Known, ", ") + ", and a spec file is a path ending .json, .yaml or .yml"
	case 1:
		return msg + "; did you mean " + e.Suggest[0] + "?"
	}
	return msg + "; did you mean one of " + strings.Join(e.Suggest, ", ") + "?"
}

// Lookup returns the built-in task of a name: "glue/sst2", T5's "glue_sst2_v002",
// "superglue/cb", or a short name that only one benchmark has ("sst2", "cb"; "rte" is
// both GLUE's and SuperGLUE's, so it is refused with both names). Case does not matter.
// An unknown name is an *UnknownTaskError with the closest names.
func Lookup(name string) (*Task, error) {
	tasks := Builtin()
	al := aliases(tasks)
	key := strings.ToLower(strings.TrimSpace(name))
	if full, ok := al[key]; ok {
		for _, t := range tasks {
			if t.name == full {
				return t, nil
			}
		}
	}
	known := make([]string, len(tasks))
	for i, t := range tasks {
		known[i] = t.name
	}
	return nil, &UnknownTaskError{Name: name, Suggest: suggest(key, al), Known: known}
}

// suggest returns the built-in names closest to key: those with a name or alias that
// contains it, else those within the fewest edits (at most max(2, len/3)); ties all kept,
// sorted, at most five.
func suggest(key string, al map[string]string) []string {
	if key == "" {
		return nil
	}
	best := make(map[string]int)
	for alias, full := range al {
		d := levenshtein.ComputeDistance(key, alias)
		if strings.Contains(alias, key) && len(key) >= 2 {
			d = 0 // a name that contains the key beats any edit
		}
		if d > max(2, len(key)/3) {
			continue
		}
		if cur, ok := best[full]; !ok || d < cur {
			best[full] = d
		}
	}
	nearest := -1
	for _, d := range best {
		if nearest < 0 || d < nearest {
			nearest = d
		}
	}
	out := make([]string, 0, len(best))
	for full, d := range best {
		if d == nearest {
			out = append(out, full)
		}
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// isSpecPath reports whether a Resolve argument names a spec file rather than a task.
func isSpecPath(arg string) bool {
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// Expand returns the built-in tasks a name stands for: a benchmark's ("glue": the nine GLUE
// tasks T5 averages; "super_glue" or "superglue": the eight SuperGLUE ones) or the one task
// Lookup finds. It never reads a file, so a server can take the names of its requests.
func Expand(name string) ([]*Task, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if key == "superglue" {
		key = "super_glue"
	}
	if names, ok := Benchmarks()[key]; ok {
		out := make([]*Task, len(names))
		for i, n := range names {
			t, err := Lookup(n)
			if err != nil {
				panic(err) // the benchmark table names only built-ins
			}
			out[i] = t
		}
		return out, nil
	}
	t, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	return []*Task{t}, nil
}

// Resolve turns command-line task arguments into tasks, in order, each once: built-in task
// and benchmark names (Expand) and spec files (a path ending .json, .yaml or .yml;
// LoadSpec). Every bad argument is reported, joined into one error.
func Resolve(args []string) ([]*Task, error) {
	var out []*Task
	seen := make(map[string]bool)
	add := func(t *Task) {
		if !seen[t.name] {
			seen[t.name] = true
			out = append(out, t)
		}
	}
	var errs []error
	for _, arg := range args {
		if isSpecPath(arg) {
			t, err := LoadSpec(arg)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if seen[t.name] {
				errs = append(errs, fmt.Errorf("task: spec %s: name %q is already taken by another task", arg, t.name))
				continue
			}
			add(t)
			continue
		}
		ts, err := Expand(arg)
		if err != nil {
			if st, serr := os.Stat(arg); serr == nil && !st.IsDir() {
				err = fmt.Errorf("task: %s: a spec file must end in .json, .yaml or .yml", arg)
			}
			errs = append(errs, err)
			continue
		}
		for _, t := range ts {
			add(t)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
