package fetch_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/t5zoo/t5zoo/catalog"
	"github.com/t5zoo/t5zoo/convert"
	"github.com/t5zoo/t5zoo/fetch"
	"github.com/t5zoo/t5zoo/zoo"
)

const gatedGolden = "../testdata/golden/tiny-gated/checkpoint"

// names lists a directory's entries, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// stale fills dir with an old model's leftovers.
func stale(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"t5zoo.json", "pytorch_model.bin", "config.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("old "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConvertChecked(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	meta, err := fetch.ConvertChecked(t.Context(), golden, dst, convert.Options{Name: "tiny"}, fetch.GateOptions{})
	if err != nil || !meta.Parity.Passed {
		t.Fatalf("%+v, %v", meta, err)
	}
	if err := fetch.CheckDir(dst, fetch.CheckOptions{Tokenizer: true, Deep: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := convert.ReadMeta(dst); err != nil || got == nil || got.Parity == nil || !got.Parity.Passed {
		t.Fatalf("t5zoo.json %+v, %v", got, err)
	}
	// No temporary directory is left beside the target.
	if got := names(t, parent); !slices.Equal(got, []string{"out"}) {
		t.Errorf("parent holds %v", got)
	}

	// An empty directory is a fine target.
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := fetch.ConvertChecked(t.Context(), golden, empty, convert.Options{}, fetch.GateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestConvertCheckedTarget: a non-empty target is refused untouched unless Overwrite, which
// replaces it whole.
func TestConvertCheckedTarget(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	stale(t, dst)
	_, err := fetch.ConvertChecked(t.Context(), golden, dst, convert.Options{}, fetch.GateOptions{Force: true})
	if !errors.Is(err, fetch.ErrTargetExists) {
		t.Fatalf("err = %v, want ErrTargetExists", err)
	}
	if got := names(t, dst); !slices.Equal(got, []string{"config.json", "pytorch_model.bin", "t5zoo.json"}) {
		t.Fatalf("refused target changed: %v", got)
	}
	if _, err := fetch.ConvertChecked(t.Context(), golden, dst, convert.Options{}, fetch.GateOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	got := names(t, dst)
	if slices.Contains(got, "pytorch_model.bin") || !slices.Contains(got, "model.safetensors") {
		t.Fatalf("replaced target holds %v: the old model's files stayed", got)
	}
	if m, err := convert.ReadMeta(dst); err != nil || m == nil {
		t.Fatalf("t5zoo.json: %+v, %v", m, err)
	}
	if got := names(t, filepath.Dir(dst)); !slices.Equal(got, []string{"out"}) {
		t.Errorf("parent holds %v", got)
	}

	// The source itself, a directory holding it, and a file are never targets.
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	for _, f := range []string{"config.json", "model.safetensors", "spiece.model"} {
		b, _ := os.ReadFile(filepath.Join(golden, f))
		os.WriteFile(filepath.Join(src, f), b, 0o644)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for _, bad := range []string{src, filepath.Dir(src), file} {
		if _, err := fetch.ConvertChecked(t.Context(), src, bad, convert.Options{}, fetch.GateOptions{Force: true, Overwrite: true}); err == nil {
			t.Errorf("target %s: no error", bad)
		}
	}
	if got := names(t, src); !slices.Equal(got, []string{"config.json", "model.safetensors", "spiece.model"}) {
		t.Errorf("source changed: %v", got)
	}
}

// TestConvertCheckedParity: a conversion below the gate writes nothing (and leaves an
// existing target as it was) unless Force.
func TestConvertCheckedParity(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "q")
	meta, err := fetch.ConvertChecked(t.Context(), gatedGolden, dst, convert.Options{DType: catalog.Int8}, fetch.GateOptions{})
	if !errors.Is(err, fetch.ErrParity) || meta == nil || meta.Parity == nil || meta.Parity.Passed {
		t.Fatalf("err = %v, meta %+v", err, meta)
	}
	if got := names(t, parent); len(got) != 0 {
		t.Fatalf("a refused conversion left %v", got)
	}
	stale(t, dst)
	if _, err := fetch.ConvertChecked(t.Context(), gatedGolden, dst, convert.Options{DType: catalog.Int8}, fetch.GateOptions{Overwrite: true}); !errors.Is(err, fetch.ErrParity) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "t5zoo.json")); string(b) != "old t5zoo.json" {
		t.Fatalf("a refused conversion changed the target: %q", b)
	}
	meta, err = fetch.ConvertChecked(t.Context(), gatedGolden, dst, convert.Options{DType: catalog.Int8}, fetch.GateOptions{Force: true, Overwrite: true})
	if err != nil || meta.Parity.Passed {
		t.Fatalf("forced: %+v, %v", meta, err)
	}
	if m, _ := convert.ReadMeta(dst); m == nil || m.Parity == nil || m.Parity.Passed || m.Quantization == nil {
		t.Fatalf("forced t5zoo.json %+v", m)
	}
}

func TestCheckDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "spiece.model")
	os.WriteFile(file, []byte("x"), 0o644)
	only := func(files ...string) string {
		d := t.TempDir()
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(golden, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d, f), b, 0o644)
		}
		return d
	}
	mismatched := only("model.safetensors", "spiece.model")
	os.WriteFile(filepath.Join(mismatched, "config.json"), []byte(`{"d_model": 32, "vocab_size": 2176}`), 0o644)
	badSpiece := only("config.json", "model.safetensors")
	os.WriteFile(filepath.Join(badSpiece, "spiece.model"), []byte("not a sentencepiece model"), 0o644)
	badConfig := only("model.safetensors", "spiece.model")
	os.WriteFile(filepath.Join(badConfig, "config.json"), []byte(`{"d_model": `), 0o644)

	for _, tt := range []struct {
		name string
		dir  string
		opts fetch.CheckOptions
		want []string // "" = no error
	}{
		{"missing", filepath.Join(dir, "nope"), fetch.CheckOptions{}, []string{"does not exist"}},
		{"file", file, fetch.CheckOptions{}, []string{"is a file"}},
		{"empty", t.TempDir(), fetch.CheckOptions{Tokenizer: true}, []string{"config.json", "model.safetensors", "pytorch_model.bin", "spiece.model"}},
		{"no config", only("model.safetensors", "spiece.model"), fetch.CheckOptions{Tokenizer: true}, []string{"has no config.json"}},
		{"no weights", only("config.json", "spiece.model"), fetch.CheckOptions{Tokenizer: true}, []string{"has no the weights"}},
		{"no tokenizer", only("config.json", "pytorch_model.bin"), fetch.CheckOptions{Tokenizer: true}, []string{"has no spiece.model"}},
		{"no tokenizer needed", only("config.json", "pytorch_model.bin"), fetch.CheckOptions{Deep: true}, nil},
		{"pytorch weights", only("config.json", "pytorch_model.bin", "spiece.model"), fetch.CheckOptions{Tokenizer: true, Deep: true}, nil},
		{"weights disagree", mismatched, fetch.CheckOptions{Deep: true}, []string{"the config needs"}},
		{"weights disagree, shallow", mismatched, fetch.CheckOptions{}, nil},
		{"bad config", badConfig, fetch.CheckOptions{Deep: true}, []string{"config.json"}},
		{"bad spiece", badSpiece, fetch.CheckOptions{Deep: true}, []string{"spiece.model"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := fetch.CheckDir(tt.dir, tt.opts)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.name != "missing" && !errors.Is(err, fetch.ErrNotModel) {
				t.Errorf("%v does not wrap ErrNotModel", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v lacks %q", err, w)
				}
			}
		})
	}
}

func TestLooksLikePath(t *testing.T) {
	t.Chdir(t.TempDir())
	os.MkdirAll("models/tiny", 0o755)
	os.WriteFile("spiece.model", nil, 0o644)
	for _, tt := range []struct {
		arg  string
		path bool
	}{
		{"./nope", true},
		{"../nope", true},
		{"/nope", true},
		{".", true},
		{"~/models/tiny", true},
		{"nope/", true},        // no valid name ends with "/"
		{"models/nope", true},  // its first element is a local directory
		{"models", true},       // exists
		{"spiece.model", true}, // exists
		{"Acme/Tiny", true},    // no valid name
		{"acme/tiny", false},   // a name: no directory acme here
		{"google/t5-efficient-tiny", false},
		{"t5-efficient-tiny", false},
		{"tiny:v1", false},
		{"nope", false},
		{"", false},
	} {
		if got := fetch.LooksLikePath(tt.arg); got != tt.path {
			t.Errorf("LooksLikePath(%q) = %v, want %v", tt.arg, got, tt.path)
		}
	}
}

// FuzzLooksLikePath: any argument is classified without panicking, what starts like a path
// is one, and what it calls a name parses as one.
func FuzzLooksLikePath(f *testing.F) {
	for _, s := range []string{"./nope", "/x", "acme/tiny", "t5-efficient-tiny:v1", "~/m", "a\\b", "", "x/", "base-nl36"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		path := fetch.LooksLikePath(arg)
		if (strings.HasPrefix(arg, ".") || strings.HasPrefix(arg, "/")) && !path {
			t.Errorf("%q: not a path", arg)
		}
		if !path && arg != "" {
			if _, err := zoo.ParseRef(arg); err != nil && strings.Contains(arg, "/") {
				t.Errorf("%q: a name that does not parse: %v", arg, err)
			}
		}
	})
}
