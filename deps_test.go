package t5zoo

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/t5zoo/t5zoo"

// allowedImports is the dependency direction of DESIGN.md as a table: for each top-level
// folder, the in-module folders its non-test code may import (itself always allowed).
// cmd → serve → (finetune, evaluate) → infer → t5 → backend → convert → catalog: infer is
// decoding on the one T5 definition (t5), which runs on the backends (backend, backend/cpu,
// backend/plain); zoo depends on catalog only; fetch (run by name) sits between cmd/serve and
// zoo/evaluate.
func allowedImports() map[string][]string {
	lower := []string{"catalog", "convert", "backend", "t5", "infer", "finetune", "evaluate"}
	return map[string][]string{
		".":        {},
		"catalog":  {},
		"convert":  {"catalog"},
		"zoo":      {"catalog"},
		"internal": {"catalog"}, // test harnesses (internal/miniotest, internal/gradoracle): the catalog's shapes at most
		"backend":  {"catalog", "convert"},
		"t5":       {"catalog", "convert", "backend"},
		"infer":    {"catalog", "convert", "backend", "t5"},
		"finetune": {"catalog", "convert", "backend", "t5", "infer", "evaluate"}, // evaluate: tasks' train splits and metrics during training
		"evaluate": {"catalog", "convert", "backend", "t5", "infer"},
		"fetch":    {"catalog", "convert", "infer", "evaluate", "zoo"}, // get a model by name: cache, registry, Hub import
		"serve":    append(slices.Clone(lower), "zoo", "fetch"),
		"cmd":      append(slices.Clone(lower), "zoo", "fetch", "serve", "."),
		"scripts":  {".", "catalog", "convert", "serve"}, // scripts/load: a client of the server
	}
}

func topDir(importPath string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
	if rel == "" {
		return "."
	}
	return strings.SplitN(rel, "/", 2)[0]
}

// TestDependencyDirection fails when a package imports against the direction of DESIGN.md
// (the depcheck idea of go-containerregistry's internal/depcheck).
func TestDependencyDirection(t *testing.T) {
	allowed := allowedImports()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); ok {
				return nil
			}
			return err
		}
		checked++
		from := topDir(module + "/" + filepath.ToSlash(path))
		ok, known := allowed[from]
		if !known {
			t.Errorf("%s: top-level folder %q is not in the dependency table of deps_test.go", path, from)
			return nil
		}
		for _, imp := range pkg.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := topDir(imp)
			if to != from && !slices.Contains(ok, to) {
				t.Errorf("%s imports %s: %s may import only %v", path, imp, from, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 3 {
		t.Fatalf("checked only %d packages", checked)
	}
}

// TestLayers holds packages within a top-level folder to their layering. Evaluation: the
// metrics are pure functions, the tasks know the metrics and nothing of models, the report
// reads results without the engine. The seam: the interface knows nothing in the module,
// each backend knows the interface (and its own kernels) but no other backend, the
// conformance suite knows only the interface, and the model definition knows backends only
// through the interface.
func TestLayers(t *testing.T) {
	for pkg, ok := range map[string][]string{
		"evaluate/metric":     {},
		"evaluate/task":       {"evaluate/metric"},
		"evaluate/report":     {"evaluate", "evaluate/task", "evaluate/metric", "catalog"},
		"backend":             {},
		"backend/cpu":         {"backend", "backend/cpu/kernels", "convert"},
		"backend/cpu/kernels": {},
		"backend/plain":       {"backend", "convert"},
		"backend/backendtest": {"backend", "convert"},
		"t5":                  {"backend", "catalog"},
	} {
		p, err := build.ImportDir(pkg, 0)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		for _, imp := range p.Imports {
			rel, in := strings.CutPrefix(imp, module+"/")
			if in && !slices.Contains(ok, rel) {
				t.Errorf("%s imports %s: it may import only %v", pkg, imp, ok)
			}
		}
	}
}
