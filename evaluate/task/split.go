package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The splits LoadSplit reads.
const (
	// SplitTrain is a task's training split: GLUE's train.tsv, SuperGLUE's train.jsonl,
	// SQuAD's train-v1.1.json, made into T5's training examples.
	SplitTrain = "train"
	// SplitValidation is the split Load reads (GLUE's dev.tsv, SuperGLUE's val.jsonl,
	// SQuAD's dev-v1.1.json).
	SplitValidation = "validation"
)

// splitLayout is one way a split's files can lie in the data folder: each file's paths
// relative to it, tried in order (the first is the canonical one), and the reader of the
// files found.
type splitLayout struct {
	files [][]string
	load  func(ctx context.Context, paths []string) ([]Example, error)
}

// Splits lists the splits LoadSplit reads for the task: train and validation for a
// built-in, validation alone for a spec task (its one data file).
func (t *Task) Splits() []string {
	if t.builtin() {
		return []string{SplitTrain, SplitValidation}
	}
	return []string{SplitValidation}
}

// builtin reports whether t is one of Builtin's tasks (a spec task has no T5 name).
func (t *Task) builtin() bool { return t.t5Name != "" && t.dataPath == "" }

// LoadSplit reads one split of the task from dataDir, in its official layout, with the
// preprocessing of T5's task for that split, and returns its examples in file order.
// The validation split is Load's. The train split is read by the same readers, with T5's
// training forms where they differ from evaluation's:
//   - super_glue/wsc is T5's super_glue_wsc_v102_simple_train: only the rows whose
//     candidate is the referent (label True), target the candidate;
//   - super_glue/record keeps every one of T5's per-answer examples (Load keeps the
//     first of each query, the one T5's metric scores);
//   - glue/mrpc is rebuilt as TFDS does from msr_paraphrase_train.txt without the pairs
//     of dev_ids.tsv (IDs are the MSR file's row numbers), or read from GLUE's train.tsv
//     when those two files are absent;
//   - glue/cola also finds CoLA's raw in_domain_train.tsv, the same rows as GLUE's
//     train.tsv; glue/mnli_matched and glue/mnli_mismatched both read MNLI's train.tsv.
//
// A missing file is a *MissingDataError naming every path tried; a malformed row is a
// *LineError. A spec task has only its validation split.
func (t *Task) LoadSplit(ctx context.Context, dataDir, split string) ([]Example, error) {
	switch split {
	case SplitValidation:
		return t.Load(ctx, dataDir)
	case SplitTrain:
	default:
		return nil, fmt.Errorf("%s: unknown split %q (want %q or %q)", t.name, split, SplitTrain, SplitValidation)
	}
	paths, load, err := t.trainSource(dataDir)
	if err != nil {
		return nil, err
	}
	exs, err := load(ctx, paths)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t.name, split, err)
	}
	return exs, nil
}

// SplitPaths returns the data files LoadSplit reads for split under dataDir, as it finds
// them (Paths for the validation split).
func (t *Task) SplitPaths(dataDir, split string) ([]string, error) {
	switch split {
	case SplitValidation:
		return t.Paths(dataDir)
	case SplitTrain:
		paths, _, err := t.trainSource(dataDir)
		return paths, err
	}
	return nil, fmt.Errorf("%s: unknown split %q (want %q or %q)", t.name, split, SplitTrain, SplitValidation)
}

// trainSource finds the train split's files: the first layout whose files all exist.
func (t *Task) trainSource(dataDir string) ([]string, func(context.Context, []string) ([]Example, error), error) {
	layouts, hint := t.trainLayouts()
	if layouts == nil {
		return nil, nil, fmt.Errorf("%s: a spec task has no train split (its data file is its validation split); give training data as a file of input/target pairs", t.name)
	}
	var tried []string
	for _, l := range layouts {
		paths := make([]string, 0, len(l.files))
		for _, alts := range l.files {
			p, err := findFile(dataDir, alts)
			if err != nil {
				var missing *MissingDataError
				if !errors.As(err, &missing) {
					return nil, nil, fmt.Errorf("%s: %w", t.name, err)
				}
				tried = append(tried, missing.Tried...)
				paths = nil
				break
			}
			paths = append(paths, p)
		}
		if paths != nil {
			return paths, l.load, nil
		}
	}
	return nil, nil, &MissingDataError{Task: t.name + " " + SplitTrain, Tried: tried, Hint: hint}
}

// Where the train files come from, for the missing-file error.
const (
	glueTrainHint      = "GLUE's train sets come in the same zips as its dev sets (https://gluebenchmark.com/tasks); download_glue_data.py lays them out as <data>/glue/<TASK>/train.tsv, and MRPC's as msr_paraphrase_train.txt with dev_ids.tsv"
	superGLUETrainHint = "SuperGLUE's train sets are in the same zips as its dev sets (https://dl.fbaipublicfiles.com/glue/superglue/data/v2/<Task>.zip), unzipped as <data>/superglue/<Task>/train.jsonl"
	squadTrainHint     = "SQuAD v1.1's train set comes from https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v1.1.json, saved as <data>/squad/train-v1.1.json"
)

// trainLayouts are the ways the task's train split can lie in the data folder, tried in
// order, and the hint for when none is there; nil for a spec task.
func (t *Task) trainLayouts() ([]splitLayout, string) {
	if !t.builtin() {
		return nil, ""
	}
	for _, g := range glueTasks() {
		if "glue/"+g.name != t.name {
			continue
		}
		src := g.src
		in := func(name string) []string { return []string{"glue/" + g.dir + "/" + name, g.dir + "/" + name} }
		read := func(ctx context.Context, paths []string) ([]Example, error) {
			f, err := openData(paths[0])
			if err != nil {
				return nil, err
			}
			defer f.Close()
			return readGLUE(ctx, f, paths[0], src)
		}
		tsv := in("train.tsv")
		var layouts []splitLayout
		switch g.name {
		case "mrpc":
			layouts = append(layouts, splitLayout{
				files: [][]string{in("msr_paraphrase_train.txt"), append(in("dev_ids.tsv"), in("mrpc_dev_ids.tsv")...)},
				load: func(ctx context.Context, paths []string) ([]Example, error) {
					return readMRPCTrain(ctx, paths[0], paths[1], src)
				},
			})
		case "cola":
			tsv = append(tsv, append(in("original/raw/in_domain_train.tsv"), in("in_domain_train.tsv")...)...)
		}
		return append(layouts, splitLayout{files: [][]string{tsv}, load: read}), glueTrainHint
	}
	for _, g := range superGLUETasks() {
		if "super_glue/"+g.name != t.name {
			continue
		}
		read := g.read
		switch g.name {
		case "record":
			read = func(ctx context.Context, r io.Reader, file string) ([]Example, error) {
				return readReCoRDExamples(ctx, r, file, true)
			}
		case "wsc":
			read = readWSCTrain
		}
		return []splitLayout{{
			files: [][]string{{"superglue/" + g.dir + "/train.jsonl", g.dir + "/train.jsonl"}},
			load: func(ctx context.Context, paths []string) ([]Example, error) {
				f, err := openData(paths[0])
				if err != nil {
					return nil, err
				}
				defer f.Close()
				return read(ctx, f, paths[0])
			},
		}}, superGLUETrainHint
	}
	if t.name == "squad" {
		return []splitLayout{{
			files: [][]string{{"squad/train-v1.1.json", "train-v1.1.json"}},
			load: func(ctx context.Context, paths []string) ([]Example, error) {
				f, err := openData(paths[0])
				if err != nil {
					return nil, err
				}
				defer f.Close()
				return readSQuAD(ctx, f, paths[0])
			},
		}}, squadTrainHint
	}
	panic("task: no train split for built-in " + t.name)
}

// readWSCTrain is T5's super_glue_wsc_v102_simple_train: wsc_simple with
// correct_referent_only, so only the rows whose candidate (span1) is the pronoun's
// referent, as training examples of generating it.
func readWSCTrain(ctx context.Context, r io.Reader, file string) ([]Example, error) {
	all, err := readWSC(ctx, r, file)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, ex := range all {
		if ex.gold == 1 {
			out = append(out, ex)
		}
	}
	return out, nil
}

// readMRPCTrain rebuilds GLUE's MRPC train split as TFDS's glue.py does: the rows of the
// MSR training file (csv.DictReader, its byte-order mark skipped) whose (#1 ID, #2 ID) pair
// is not in dev_ids.tsv, idx being the row's number in the MSR file.
func readMRPCTrain(ctx context.Context, msrPath, devIDsPath string, src glueSource) ([]Example, error) {
	dev, err := readMRPCDevIDs(ctx, devIDsPath)
	if err != nil {
		return nil, err
	}
	f, err := openData(msrPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	inDev := make(map[string]bool)
	err = scanDictTSV(ctx, f, msrPath, []string{"#1 ID", "#2 ID"}, func(row dictRow) error {
		a, okA := row.Get("#1 ID")
		b, okB := row.Get("#2 ID")
		if okA && okB && dev[[2]string{a, b}] {
			inDev[strconv.Itoa(row.N)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s: %w", msrPath, err)
	}
	all, err := readGLUE(ctx, f, msrPath, src)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, ex := range all {
		if !inDev[ex.ID] {
			out = append(out, ex)
		}
	}
	return out, nil
}

// readMRPCDevIDs reads dev_ids.tsv (no header; each row "#1 ID<TAB>#2 ID") as TFDS's
// [row[0], row[1]]; a blank line is skipped, a row with one field is an error.
func readMRPCDevIDs(ctx context.Context, path string) (map[[2]string]bool, error) {
	f, err := openData(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids := make(map[[2]string]bool)
	err = scanTSV(ctx, f, path, func(rec tsvRecord) error {
		switch len(rec.Fields) {
		case 0:
			return nil
		case 1:
			return lineErr(path, rec.Line, "dev id row has 1 field, want 2 (#1 ID, #2 ID)")
		}
		ids[[2]string{rec.Fields[0], rec.Fields[1]}] = true
		return nil
	})
	return ids, err
}
