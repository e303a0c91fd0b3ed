package data

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkPairs is what every successful read promises of its pairs.
func checkPairs(t *testing.T, s *Set) {
	t.Helper()
	if len(s.Pairs) == 0 {
		t.Fatal("a read without error returned no pairs")
	}
	for i, p := range s.Pairs {
		if strings.TrimSpace(p.Target) == "" || !utf8.ValidString(p.Input) || !utf8.ValidString(p.Target) ||
			strings.IndexByte(p.Input, 0) >= 0 || strings.IndexByte(p.Target, 0) >= 0 {
			t.Fatalf("pair %d breaks Read's promises: %q", i, p)
		}
	}
}

// FuzzReadJSONL: the JSON Lines parser never panics, and what it accepts is valid pairs
// that survive the canonical round trip.
func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"input": "a", "target": "b"}`))
	f.Add([]byte("{\"prompt\": \"p\", \"completion\": \"c\"}\r\n\n"))
	f.Add([]byte(`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "u"}]}, {"role": "assistant", "content": "a"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Read(t.Context(), bytes.NewReader(body), "f.jsonl", FormatJSONL)
		if err != nil {
			return
		}
		checkPairs(t, s)
		var buf bytes.Buffer
		if err := WriteJSONL(&buf, s.Pairs); err != nil {
			t.Fatal(err)
		}
		back, err := Read(t.Context(), &buf, "canonical.jsonl", FormatJSONL)
		if err != nil {
			t.Fatalf("the canonical form of accepted pairs does not read back: %v", err)
		}
		if !slices.Equal(back.Pairs, s.Pairs) || back.Digest != PairsDigest(s.Pairs) {
			t.Fatalf("round trip changed the pairs: %q → %q", s.Pairs, back.Pairs)
		}
	})
}

// FuzzReadTSV: the TSV parser never panics, and what it accepts is valid pairs without
// tabs or line breaks that, written back as TSV, read back the same.
func FuzzReadTSV(f *testing.F) {
	f.Add([]byte("input\ttarget\na\tb\n"))
	f.Add([]byte("\ufeffx\ty\r\n\n z \t w "))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := Read(t.Context(), bytes.NewReader(body), "f.tsv", FormatTSV)
		if err != nil {
			return
		}
		checkPairs(t, s)
		var buf bytes.Buffer
		buf.WriteString("input\ttarget\n") // a header, so that a first pair that looks like one survives
		for _, p := range s.Pairs {
			if strings.ContainsAny(p.Input+p.Target, "\t\n\r") {
				t.Fatalf("a TSV field holds a separator: %q", p)
			}
			buf.WriteString(p.Input + "\t" + p.Target + "\n")
		}
		back, err := Read(t.Context(), &buf, "again.tsv", FormatTSV)
		if err != nil {
			t.Fatalf("accepted pairs written as TSV do not read back: %v", err)
		}
		if !slices.Equal(back.Pairs, s.Pairs) {
			t.Fatalf("TSV round trip changed the pairs: %q → %q", s.Pairs, back.Pairs)
		}
	})
}
