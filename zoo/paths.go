package zoo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
)

// tagsDir separates a name from its tags in every tree below. No name component can be
// "_tags" (components start with a letter or digit), so "a/_tags/x" (a:x) and "a/b/_tags/x"
// (a/b:x) never collide, whatever the names; "<name>/<tag>" would (a/b:c against a:b holding
// a file c).
const tagsDir = "_tags"

// Path specs name the objects of the trees that pathFor lays out.
type (
	blobPathSpec          struct{ digest Digest }
	manifestPathSpec      struct{ ref Ref }
	manifestsRootPathSpec struct{}
	modelDirPathSpec      struct{ ref Ref }
	partialDirPathSpec    struct{ manifest Digest }
	lockPathSpec          struct{ ref Ref }
	partialLockPathSpec   struct{ manifest Digest }
	registryDirPathSpec   struct{}
)

// pathFor is the single place that maps objects to slash-separated paths, relative to the
// root of their tree (the layout of distribution's registry/storage/paths.go). Both trees are
// specified in docs/registry.md.
//
// A registry (a LocalStore directory, or the prefix of an S3Store bucket):
//
//	<root>/
//	├── blobs/sha256/<hex>            one chunk of a file: a zstd stream of the chunk's bytes;
//	│                                 <hex> is the sha256 of the uncompressed bytes
//	└── manifests/<name>/_tags/<tag>  the manifest (JSON) of NAME:TAG; <name> may hold "/"
//
// The local cache ($T5ZOO_HOME, default ~/.t5zoo):
//
//	$T5ZOO_HOME/
//	├── registry/                        the default LocalStore (the registry tree above)
//	├── models/<name>/_tags/<tag>/       a model directory: config.json, model.safetensors,
//	│                                    spiece.model, ...; what infer loads (mmap)
//	├── manifests/<name>/_tags/<tag>     the pulled manifest, written last: present ⇔ whole
//	├── partial/<manifest-hex>/          a pull in progress, keyed by the manifest's digest:
//	│   ├── files/                       the model directory being filled (renamed into models/)
//	│   ├── journal                      one line per chunk written: "<path> <offset> <digest>"
//	│   └── ref                          NAME:TAG, for cleaning up superseded partial pulls
//	└── locks/
//	    ├── <sha256(NAME:TAG)>.lock      flock(2) held while pulling or removing NAME:TAG
//	    └── partial-<manifest-hex>.lock  flock(2) held while using partial/<manifest-hex>/
//
// Every component comes from a validated Ref or Digest, so no path escapes its root.
func pathFor(spec any) string {
	switch s := spec.(type) {
	case blobPathSpec:
		return path.Join("blobs", "sha256", s.digest.Hex())
	case manifestPathSpec:
		return path.Join("manifests", s.ref.Name, tagsDir, s.ref.Tag)
	case manifestsRootPathSpec:
		return "manifests"
	case modelDirPathSpec:
		return path.Join("models", s.ref.Name, tagsDir, s.ref.Tag)
	case partialDirPathSpec:
		return path.Join("partial", s.manifest.Hex())
	case lockPathSpec:
		sum := sha256.Sum256([]byte(s.ref.String()))
		return path.Join("locks", hex.EncodeToString(sum[:])+".lock")
	case partialLockPathSpec:
		return path.Join("locks", "partial-"+s.manifest.Hex()+".lock")
	case registryDirPathSpec:
		return "registry"
	}
	panic(fmt.Sprintf("zoo: pathFor: unknown spec %T", spec))
}

// BlobKey returns the path of blob d relative to a registry's root ("blobs/sha256/<hex>"),
// for Store implementations outside this package.
func BlobKey(d Digest) string { return pathFor(blobPathSpec{d}) }

// ManifestKey returns the path of ref's manifest relative to a registry's root
// ("manifests/<name>/_tags/<tag>").
func ManifestKey(ref Ref) string { return pathFor(manifestPathSpec{ref}) }

// refFromManifestKey inverts ManifestKey for a key below "manifests/"; ok is false for keys
// that are not manifests of a valid, canonical Ref.
func refFromManifestKey(key string) (Ref, bool) {
	rest, ok := cutPrefixDir(key, pathFor(manifestsRootPathSpec{}))
	if !ok {
		return Ref{}, false
	}
	dir, tag := path.Split(rest)
	name, ok := cutSuffixDir(path.Clean(dir), tagsDir)
	if !ok {
		return Ref{}, false
	}
	r := Ref{Name: name, Tag: tag}
	if r.Validate() != nil {
		return Ref{}, false
	}
	return r, true
}

func cutPrefixDir(s, dir string) (string, bool) {
	if len(s) > len(dir)+1 && s[:len(dir)] == dir && s[len(dir)] == '/' {
		return s[len(dir)+1:], true
	}
	return "", false
}

func cutSuffixDir(s, base string) (string, bool) {
	if len(s) > len(base)+1 && s[len(s)-len(base):] == base && s[len(s)-len(base)-1] == '/' {
		return s[:len(s)-len(base)-1], true
	}
	return "", false
}
