package infer

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/t5zoo/t5zoo"

// TestDependencies checks DESIGN.md's direction for the engine: infer depends on the model
// definition (t5), the backends, convert and catalog within the module, never on zoo, serve
// or cmd.
func TestDependencies(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var visit func(pkg string)
	visit = func(pkg string) {
		if seen[pkg] {
			return
		}
		seen[pkg] = true
		dir := filepath.Join(root, strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/"))
		p, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			rel := strings.TrimPrefix(imp, module+"/")
			top, _, _ := strings.Cut(rel, "/")
			switch top {
			case "infer", "t5", "backend", "convert", "catalog":
				visit(imp)
			default:
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
	visit(module + "/infer")

}
