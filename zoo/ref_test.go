package zoo

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" for an error
	}{
		{"base-nl36", "t5-efficient-base-nl36:latest"},
		{"google/t5-efficient-base-nl36", "t5-efficient-base-nl36:latest"},
		{"T5-Efficient-Base-NL36:v2", "t5-efficient-base-nl36:v2"},
		{"t5-efficient-tiny:bf16_q8", "t5-efficient-tiny:bf16_q8"},
		{"tiny:_x", "t5-efficient-tiny:_x"},
		{"acme/base-nl36-sst2", "acme/base-nl36-sst2:latest"},
		{"acme/team/flan-t5.base_v1:2024.01-rc1", "acme/team/flan-t5.base_v1:2024.01-rc1"},
		{"google/flan-t5-base", "google/flan-t5-base:latest"},
		{"a/b/c/d", "a/b/c/d:latest"},
		{"a/b/c/d/e", ""},              // five components
		{"t5-efficient-bsae", ""},      // the shape namespace follows the grammar
		{"google/t5-efficient-xx", ""}, // likewise
		{"Acme/model", ""},             // upper case outside shape names
		{"acme/../etc", ""},            // traversal
		{"../etc/passwd", ""},          //
		{"/abs", ""},                   // leading slash
		{"acme/", ""},                  // empty component
		{"acme//x", ""},                //
		{"acme/.hidden", ""},           // separator first
		{"acme/x.", ""},                // separator last
		{"acme/_tags", ""},             // the tag marker cannot be a component
		{"acme/a--b", ""},              // touching separators
		{"acme/x y", ""},               // space
		{" base", ""},                  // the catalog would trim it; a ref must not
		{"acme\\x", ""},                // backslash
		{"acme/x:", ""},                // empty tag
		{"acme/x:-v", ""},              // tag starting with '-'
		{"acme/x:.v", ""},              // tag starting with '.'
		{"acme/x:a/b", ""},             // '/' in a tag
		{"acme/x:a:b", ""},             // ':' in a name
		{"acme/x:" + strings.Repeat("v", 128), "acme/x:" + strings.Repeat("v", 128)},
		{"acme/x:" + strings.Repeat("v", 129), ""},
		{strings.Repeat("a", 255), strings.Repeat("a", 255) + ":latest"},
		{strings.Repeat("a", 256), ""},
		{"", ""},
		{":v1", ""},
		{"acme/x\x00", ""},
		{"acme/é", ""},
	} {
		r, err := ParseRef(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseRef(%q) = %v, want an error", tc.in, r)
			} else if !errors.Is(err, ErrBadRef) {
				t.Errorf("ParseRef(%q) error %v does not wrap ErrBadRef", tc.in, err)
			}
			continue
		}
		if err != nil || r.String() != tc.want {
			t.Errorf("ParseRef(%q) = %v, %v; want %s", tc.in, r, err, tc.want)
		}
	}
}

// FuzzParseRef checks that every accepted reference is canonical, round-trips, and is safe
// as a path and object key.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"base-nl36", "google/t5-efficient-base-nl36:v1", "acme/x/y:z", "a/../b", "a:b:c", "tiny:_", "..", "acme/_tags:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrBadRef) {
				t.Fatalf("error %v does not wrap ErrBadRef", err)
			}
			return
		}
		again, err := ParseRef(r.String())
		if err != nil || again != r {
			t.Fatalf("%q → %v does not round-trip: %v, %v", s, r, again, err)
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{ManifestKey(r), pathFor(modelDirPathSpec{r})} {
			if strings.HasPrefix(key, "/") || strings.Contains(key, "//") {
				t.Fatalf("%v: key %q", r, key)
			}
			for _, c := range strings.Split(key, "/") {
				if c == "" || c == "." || c == ".." {
					t.Fatalf("%v: key %q has component %q", r, key, c)
				}
			}
		}
		if back, ok := refFromManifestKey(ManifestKey(r)); !ok || back != r {
			t.Fatalf("%v: manifest key %q reads back as %v, %v", r, ManifestKey(r), back, ok)
		}
	})
}

func TestPathFor(t *testing.T) {
	d := DigestOf([]byte("x"))
	r := MustParseRef("acme/sst2:v1")
	for _, tc := range []struct {
		spec any
		want string
	}{
		{blobPathSpec{d}, "blobs/sha256/" + d.Hex()},
		{manifestPathSpec{r}, "manifests/acme/sst2/_tags/v1"},
		{modelDirPathSpec{r}, "models/acme/sst2/_tags/v1"},
		{partialDirPathSpec{d}, "partial/" + d.Hex()},
		{partialLockPathSpec{d}, "locks/partial-" + d.Hex() + ".lock"},
		{registryDirPathSpec{}, "registry"},
	} {
		if got := pathFor(tc.spec); got != tc.want {
			t.Errorf("pathFor(%#v) = %q, want %q", tc.spec, got, tc.want)
		}
	}
	if got := pathFor(lockPathSpec{r}); !strings.HasPrefix(got, "locks/") || !strings.HasSuffix(got, ".lock") {
		t.Errorf("lock path %q", got)
	}
	for _, key := range []string{"manifests/_tags/x", "manifests/a/x", "blobs/x", "manifests/a/_tags/..", "manifests/A/_tags/x"} {
		if r, ok := refFromManifestKey(key); ok {
			t.Errorf("refFromManifestKey(%q) = %v, want not a manifest", key, r)
		}
	}
}
