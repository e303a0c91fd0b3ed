package zoo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// The manifest format (docs/registry.md, "Manifests").
const (
	// ManifestSchemaVersion is the only schemaVersion this package reads and writes.
	ManifestSchemaVersion = 1
	// ManifestMediaType identifies the format, as in OCI manifests.
	ManifestMediaType = "application/vnd.t5zoo.manifest.v1+json"

	// MaxManifestSize bounds the bytes read for one manifest.
	MaxManifestSize = 4 << 20
	// MaxFiles bounds the files of one model.
	MaxFiles = 256
	// MaxFileSize bounds one file (1 TiB; the largest published checkpoint, xxl in f32, is
	// 44 GB).
	MaxFileSize = 1 << 40
	// MaxChunkLength bounds one chunk's uncompressed length, and so the memory a reader
	// needs per chunk in flight.
	MaxChunkLength = 256 << 20
	maxPathLen     = 128
)

// Manifest lists the files of one model version and, for each, the chunks it is made of.
type Manifest struct {
	SchemaVersion int       `json:"schemaVersion"` // ManifestSchemaVersion
	MediaType     string    `json:"mediaType"`     // ManifestMediaType
	Name          string    `json:"name"`          // the Ref's Name, canonical
	Tag           string    `json:"tag"`           // the tag it was pushed under
	Created       time.Time `json:"created"`       // push time, UTC
	Files         []File    `json:"files"`         // sorted by Path, unique
}

// File is one file of a model directory.
type File struct {
	Path   string  `json:"path"`   // a plain file name, see checkFilePath
	Size   int64   `json:"size"`   // bytes
	Digest Digest  `json:"digest"` // sha256 of the whole file
	Chunks []Chunk `json:"chunks"` // contiguous, covering [0, Size); none when Size is 0
}

// Chunk is the byte range [Offset, Offset+Length) of a file, stored as blob Digest (the
// sha256 of exactly those bytes). Readers take each chunk's offset and length from the
// manifest and never assume a chunk size.
type Chunk struct {
	Digest Digest `json:"digest"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// Ref returns the reference the manifest was pushed under.
func (m *Manifest) Ref() Ref { return Ref{Name: m.Name, Tag: m.Tag} }

// Size is the total bytes of the model's files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Chunks is the number of chunks over all files.
func (m *Manifest) Chunks() int {
	n := 0
	for _, f := range m.Files {
		n += len(f.Chunks)
	}
	return n
}

// Blobs lists the distinct blob digests the manifest refers to, in first-use order.
func (m *Manifest) Blobs() []Digest {
	seen := map[Digest]bool{}
	var ds []Digest
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !seen[c.Digest] {
				seen[c.Digest] = true
				ds = append(ds, c.Digest)
			}
		}
	}
	return ds
}

// File returns the file named p.
func (m *Manifest) File(p string) (File, bool) {
	i := slices.IndexFunc(m.Files, func(f File) bool { return f.Path == p })
	if i < 0 {
		return File{}, false
	}
	return m.Files[i], true
}

// Marshal validates m and encodes it as the registry stores it: indented JSON ending in a
// newline. The manifest's digest is the sha256 of these bytes.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("zoo: encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes and validates manifest bytes strictly: unknown fields, trailing data,
// more than MaxManifestSize bytes and every rule of Validate are errors wrapping
// ErrBadManifest.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadManifest, len(data), MaxManifestSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrBadManifest)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the rules of docs/registry.md: known schema and media type, a canonical
// name and tag, 1 to MaxFiles files with distinct plain names, sizes within MaxFileSize,
// well-formed digests, and chunks of 1 to MaxChunkLength bytes that run contiguously from 0
// to the file's size.
func (m *Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadManifest, fmt.Sprintf(format, args...))
	}
	if m.SchemaVersion != ManifestSchemaVersion {
		return bad("schemaVersion %d, want %d", m.SchemaVersion, ManifestSchemaVersion)
	}
	if m.MediaType != ManifestMediaType {
		return bad("mediaType %q, want %q", m.MediaType, ManifestMediaType)
	}
	if err := m.Ref().Validate(); err != nil {
		return bad("%v", err)
	}
	if m.Created.IsZero() {
		return bad("no created time")
	}
	if len(m.Files) == 0 || len(m.Files) > MaxFiles {
		return bad("%d files, want 1 to %d", len(m.Files), MaxFiles)
	}
	for i, f := range m.Files {
		if err := checkFilePath(f.Path); err != nil {
			return bad("file %d: %v", i, err)
		}
		if i > 0 && m.Files[i-1].Path >= f.Path {
			return bad("files not sorted by path or %q listed twice", f.Path)
		}
		if f.Size < 0 || f.Size > MaxFileSize {
			return bad("%s: size %d outside [0, %d]", f.Path, f.Size, int64(MaxFileSize))
		}
		if _, err := ParseDigest(string(f.Digest)); err != nil {
			return bad("%s: %v", f.Path, err)
		}
		var next int64
		for j, c := range f.Chunks {
			if _, err := ParseDigest(string(c.Digest)); err != nil {
				return bad("%s chunk %d: %v", f.Path, j, err)
			}
			if c.Offset != next {
				return bad("%s chunk %d: offset %d, want %d (chunks must be contiguous)", f.Path, j, c.Offset, next)
			}
			if c.Length < 1 || c.Length > MaxChunkLength || c.Length > f.Size-next {
				return bad("%s chunk %d: length %d outside [1, min(%d, %d)]", f.Path, j, c.Length, MaxChunkLength, f.Size-next)
			}
			next += c.Length
		}
		if next != f.Size {
			return bad("%s: chunks cover %d of %d bytes", f.Path, next, f.Size)
		}
	}
	return nil
}

// checkFilePath allows a plain file name: [A-Za-z0-9._-]+, not starting with '.', at most
// 128 bytes. No directories, so a manifest can only write inside its model directory.
func checkFilePath(p string) error {
	if p == "" || len(p) > maxPathLen {
		return fmt.Errorf("path %q: want 1 to %d bytes", p, maxPathLen)
	}
	if p[0] == '.' {
		return fmt.Errorf("path %q starts with '.'", p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("path %q: want [A-Za-z0-9._-] only", p)
		}
	}
	return nil
}
