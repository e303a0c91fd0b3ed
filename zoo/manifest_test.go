package zoo

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func goldenManifest(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseManifest(t *testing.T) {
	data := goldenManifest(t)
	m, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ref() != MustParseRef("tiny-nl2:golden") || len(m.Files) != 6 || m.Size() != 1759637 {
		t.Fatalf("golden manifest: %v, %d files, %d bytes", m.Ref(), len(m.Files), m.Size())
	}
	again, err := m.Marshal()
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("Marshal does not reproduce the stored bytes (%v)", err)
	}
	sp := DigestOf([]byte("x"))
	for _, tc := range []struct {
		name   string
		mutate func(m *Manifest)
	}{
		{"SchemaVersion", func(m *Manifest) { m.SchemaVersion = 2 }},
		{"MediaType", func(m *Manifest) { m.MediaType = "application/json" }},
		{"NameNotCanonical", func(m *Manifest) { m.Name = "tiny-nl2" }},
		{"NameTraversal", func(m *Manifest) { m.Name = "../x" }},
		{"TagBad", func(m *Manifest) { m.Tag = "a/b" }},
		{"NoCreated", func(m *Manifest) { m.Created = time.Time{} }},
		{"NoFiles", func(m *Manifest) { m.Files = nil }},
		{"PathTraversal", func(m *Manifest) { m.Files[0].Path = "../config.json" }},
		{"PathDir", func(m *Manifest) { m.Files[0].Path = "sub/config.json" }},
		{"PathAbsolute", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }},
		{"PathDot", func(m *Manifest) { m.Files[0].Path = ".config.json" }},
		{"PathEmpty", func(m *Manifest) { m.Files[0].Path = "" }},
		{"PathLong", func(m *Manifest) { m.Files[0].Path = "a" + strings.Repeat("b", 128) }},
		{"Duplicate", func(m *Manifest) { m.Files[1] = m.Files[0] }},
		{"Unsorted", func(m *Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] }},
		{"NegativeSize", func(m *Manifest) { m.Files[0].Size = -1 }},
		{"HugeSize", func(m *Manifest) { m.Files[0].Size = MaxFileSize + 1 }},
		{"FileDigest", func(m *Manifest) { m.Files[0].Digest = "sha256:abc" }},
		{"FileDigestUpper", func(m *Manifest) { m.Files[0].Digest = Digest(strings.ToUpper(string(m.Files[0].Digest))) }},
		{"ChunkDigest", func(m *Manifest) { m.Files[0].Chunks[0].Digest = "md5:x" }},
		{"ChunkGap", func(m *Manifest) { m.Files[2].Chunks[1].Offset++ }},
		{"ChunkOverlap", func(m *Manifest) { m.Files[2].Chunks[0].Length++ }},
		{"ChunkShort", func(m *Manifest) { f := &m.Files[2]; f.Chunks = f.Chunks[:len(f.Chunks)-1] }},
		{"ChunkPastEnd", func(m *Manifest) { m.Files[0].Size-- }},
		{"ChunkEmpty", func(m *Manifest) {
			m.Files[0].Chunks = append(m.Files[0].Chunks, Chunk{Digest: sp, Offset: m.Files[0].Size, Length: 0})
		}},
		{"ChunkTooLong", func(m *Manifest) {
			m.Files[0].Size = MaxChunkLength + 1
			m.Files[0].Chunks = []Chunk{{Digest: sp, Offset: 0, Length: MaxChunkLength + 1}}
		}},
		{"EmptyFileWithChunk", func(m *Manifest) { m.Files[0].Size = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := ParseManifest(data)
			tc.mutate(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseManifest(b); !errors.Is(err, ErrBadManifest) {
				t.Fatalf("ParseManifest accepted it (%v)", err)
			}
			if _, err := m.Marshal(); err == nil {
				t.Fatal("Marshal accepted it")
			}
		})
	}
	for name, raw := range map[string][]byte{
		"UnknownField": bytes.Replace(data, []byte(`"tag"`), []byte(`"extra": 1, "tag"`), 1),
		"Trailing":     append(append([]byte{}, data...), []byte("{}")...),
		"NotJSON":      []byte("nope"),
		"Null":         []byte("null"),
		"TooBig":       append(append([]byte{}, data...), bytes.Repeat([]byte(" "), MaxManifestSize)...),
	} {
		if _, err := ParseManifest(raw); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: ParseManifest = %v, want ErrBadManifest", name, err)
		}
	}
}

// FuzzParseManifest checks that the parser never panics, that whatever it accepts is valid
// and round-trips through Marshal, and that accepted paths stay inside a directory.
func FuzzParseManifest(f *testing.F) {
	data := goldenManifest(f)
	f.Add(data)
	f.Add(bytes.Replace(data, []byte("config.json"), []byte("../config.json"), 1))
	f.Add([]byte(`{"schemaVersion":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("marshalled manifest does not parse: %v", err)
		}
		out2, _ := m2.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatal("Marshal is not stable")
		}
		for _, f := range m.Files {
			if strings.ContainsAny(f.Path, "/\\") || f.Path == "." || f.Path == ".." || f.Path[0] == '.' {
				t.Fatalf("accepted path %q", f.Path)
			}
		}
	})
}
