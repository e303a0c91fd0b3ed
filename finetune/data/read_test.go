package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestRead reads well-formed files of every form.
func TestRead(t *testing.T) {
	cases := []struct {
		name, format, body string
		want               []Pair
	}{
		{"input/target", FormatJSONL,
			`{"input": "sst2 sentence: fine", "target": "positive"}` + "\n" + `{"target": "b", "input": "a", "id": 7}`,
			[]Pair{{"sst2 sentence: fine", "positive"}, {"a", "b"}}},
		{"prompt/completion", FormatJSONL,
			`{"prompt": "Translate: cat", "completion": " Katze"}` + "\n",
			[]Pair{{"Translate: cat", " Katze"}}},
		{"chat", FormatJSONL,
			`{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello", "weight": 0}, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}]}`,
			[]Pair{{"Be brief.\nHi\nCapital of France?", "Paris"}}},
		{"chat, system after user and content parts", FormatJSONL,
			`{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "developer", "content": "sys"}, {"role": "assistant", "content": [{"type": "text", "text": "c"}]}]}`,
			[]Pair{{"sys\nab", "c"}}},
		{"chat without user", FormatJSONL,
			`{"messages": [{"role": "assistant", "content": "only"}]}`,
			[]Pair{{"", "only"}}},
		{"BOM, CRLF, blank lines, empty input, unicode", FormatJSONL,
			"\ufeff{\"input\": \"\", \"target\": \"x\"}\r\n\r\n   \n{\"input\": \"Zoë \\u00e9 \\\"q\\\"\", \"target\": \"日本\"}\r\n",
			[]Pair{{"", "x"}, {"Zoë é \"q\"", "日本"}}},
		{"tsv with header", FormatTSV,
			"input\ttarget\nhide new secretions \tnegative\n\nloves its characters\tpositive",
			[]Pair{{"hide new secretions ", "negative"}, {"loves its characters", "positive"}}},
		{"tsv without header, quotes literal", FormatTSV,
			"\"a\"\tb\r\nInput\tTarget x\n",
			[]Pair{{`"a"`, "b"}, {"Input", "Target x"}}},
		{"tsv header in capitals, later header-like row kept", FormatTSV,
			"Input\tTARGET\nx\ty\ninput\ttarget\n",
			[]Pair{{"x", "y"}, {"input", "target"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Read(t.Context(), strings.NewReader(c.body), "f", c.format)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Pairs, c.want) {
				t.Errorf("pairs %q, want %q", s.Pairs, c.want)
			}
			sum := sha256.Sum256([]byte(c.body))
			if s.Digest != "sha256:"+hex.EncodeToString(sum[:]) || s.Name != "f" || s.Len() != len(c.want) {
				t.Errorf("name %q digest %s, want the sha256 of the bytes", s.Name, s.Digest)
			}
		})
	}
}

// TestReadErrors feeds malformed and hostile files: each is an error naming the line.
func TestReadErrors(t *testing.T) {
	good := `{"input": "a", "target": "b"}` + "\n"
	cases := []struct {
		name, format, body string
		line               int // 0: not a *LineError
		want               string
	}{
		{"bad JSON", FormatJSONL, good + `{"input": "a", "target": }`, 2, "bad JSON"},
		{"truncated JSON", FormatJSONL, good + `{"input": "a", "targ`, 2, "bad JSON"},
		{"missing target", FormatJSONL, `{"input": "a"}`, 1, `missing "target"`},
		{"missing input", FormatJSONL, `{"target": "a"}`, 1, `missing "input"`},
		{"missing completion", FormatJSONL, `{"prompt": "a"}`, 1, `missing "completion"`},
		{"number target", FormatJSONL, `{"input": "a", "target": 1}`, 1, `"target": want a string, got 1`},
		{"null input", FormatJSONL, `{"input": null, "target": "b"}`, 1, `"input": want a string, got null`},
		{"empty target", FormatJSONL, good + good + `{"input": "a", "target": ""}`, 3, "empty target"},
		{"blank target", FormatJSONL, `{"input": "a", "target": " \t\n"}`, 1, "empty target"},
		{"escaped NUL", FormatJSONL, `{"input": "a\u0000", "target": "b"}`, 1, "NUL character"},
		{"raw NUL", FormatJSONL, "{\"input\": \"a\x00\", \"target\": \"b\"}", 1, "NUL byte"},
		{"invalid UTF-8", FormatJSONL, good + "{\"input\": \"\xff\xfe\", \"target\": \"b\"}", 2, "invalid UTF-8"},
		{"not an object", FormatJSONL, `"input"`, 1, "bad JSON"},
		{"null line", FormatJSONL, `null`, 1, "not a JSON object"},
		{"trailing data", FormatJSONL, good[:len(good)-1] + ` {"x": 1}`, 1, "data after the JSON object"},
		{"JSON array file", FormatJSONL, `[{"input": "a", "target": "b"}]`, 1, "JSON array"},
		{"no known keys", FormatJSONL, `{"text": "a", "label": "b"}`, 1, `want "input" and "target"`},
		{"two forms", FormatJSONL, `{"input": "a", "target": "b", "prompt": "c"}`, 1, "more than one"},
		{"messages not an array", FormatJSONL, `{"messages": {"role": "user"}}`, 1, "want an array"},
		{"messages without assistant", FormatJSONL, `{"messages": [{"role": "user", "content": "a"}]}`, 1, "no assistant message"},
		{"user after the last assistant", FormatJSONL, `{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}`, 1, "after the last assistant"},
		{"tool message", FormatJSONL, `{"messages": [{"role": "tool", "content": "a"}, {"role": "assistant", "content": "b"}]}`, 1, "tool messages are not supported"},
		{"unknown role", FormatJSONL, `{"messages": [{"role": "narrator", "content": "a"}, {"role": "assistant", "content": "b"}]}`, 1, `unknown role "narrator"`},
		{"missing role", FormatJSONL, `{"messages": [{"content": "a"}, {"role": "assistant", "content": "b"}]}`, 1, `missing "role"`},
		{"null content", FormatJSONL, `{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": null}]}`, 1, `"content": want a string`},
		{"image part", FormatJSONL, `{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, {"role": "assistant", "content": "b"}]}`, 1, `got type "image_url"`},
		{"empty assistant", FormatJSONL, `{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}`, 1, "empty target"},
		{"no pairs", FormatJSONL, "\n  \n\r\n", 0, "no training pairs"},
		{"empty file", FormatTSV, "", 0, "no training pairs"},
		{"header only", FormatTSV, "input\ttarget\n", 0, "no training pairs"},
		{"tsv one field", FormatTSV, "a\tb\nno tab here\n", 2, "1 tab-separated fields, want 2"},
		{"tsv three fields", FormatTSV, "a\tb\tc\n", 1, "3 tab-separated fields"},
		{"tsv empty target", FormatTSV, "a\t\n", 1, "empty target"},
		{"tsv tab only", FormatTSV, "\t\n", 1, "empty target"},
		{"tsv carriage return", FormatTSV, "a\rb\tc\n", 1, "carriage return"},
		{"tsv NUL", FormatTSV, "a\x00\tb\n", 1, "NUL byte"},
		{"tsv binary", FormatTSV, "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, "invalid UTF-8"},
		{"unknown format", "csv", "a,b\n", 0, "unknown format"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(t.Context(), strings.NewReader(c.body), "train.x", c.format)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %q, want it to say %q", err, c.want)
			}
			var le *LineError
			if c.line > 0 && (!errors.As(err, &le) || le.Line != c.line || le.File != "train.x" ||
				!strings.HasPrefix(err.Error(), "train.x:"+strconv.Itoa(c.line)+": ")) {
				t.Errorf("err = %q, want a *LineError at train.x:%d", err, c.line)
			}
		})
	}
}

// TestReadLimits checks the bounds on a line and a file.
func TestReadLimits(t *testing.T) {
	huge := "a\t" + strings.Repeat("b", MaxLineBytes) + "\n" // one byte over
	_, err := Read(t.Context(), strings.NewReader("x\ty\n"+huge), "big.tsv", FormatTSV)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "line longer than") {
		t.Errorf("huge line: err = %v", err)
	}
	atLimit := "a\t" + strings.Repeat("b", MaxLineBytes-2) + "\n"
	if s, err := Read(t.Context(), strings.NewReader(atLimit), "big.tsv", FormatTSV); err != nil || len(s.Pairs[0].Target) != MaxLineBytes-2 {
		t.Errorf("line of MaxLineBytes: %v", err)
	}

	body := strings.Repeat("a\tb\n", 25) // 100 bytes
	if _, err := read(t.Context(), strings.NewReader(body), "f.tsv", FormatTSV, 100); err != nil {
		t.Errorf("file of exactly the limit: %v", err)
	}
	if _, err := read(t.Context(), strings.NewReader(body+"c\td\n"), "f.tsv", FormatTSV, 100); err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("file over the limit: err = %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	many := strings.Repeat("a\tb\n", 2*checkEvery)
	if _, err := Read(ctx, strings.NewReader(many), "f.tsv", FormatTSV); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled read: err = %v", err)
	}
}

// TestReadFile checks formats by extension, the file digest and the canonical round trip.
func TestReadFile(t *testing.T) {
	for path, want := range map[string]string{"a.jsonl": FormatJSONL, "a.JSON": FormatJSONL, "dir.x/b.Tsv": FormatTSV} {
		if got, err := FormatOf(path); err != nil || got != want {
			t.Errorf("FormatOf(%s) = %q, %v", path, got, err)
		}
	}
	if _, err := FormatOf("a.csv"); err == nil {
		t.Error("FormatOf(a.csv): no error")
	}
	dir := t.TempDir()
	if _, err := ReadFile(t.Context(), filepath.Join(dir, "missing.jsonl")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}

	pairs := []Pair{{"a <b> & c", "d\ne"}, {"", "\u2028 \"q\" \\ \t"}, {"日本語", "x"}}
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, pairs); err != nil {
		t.Fatal(err)
	}
	if want := `{"input":"a <b> & c","target":"d\ne"}` + "\n"; !strings.HasPrefix(buf.String(), want) {
		t.Errorf("canonical form %q, want it to start %q", buf.String(), want)
	}
	path := filepath.Join(dir, "pairs.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadFile(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Pairs, pairs) || s.Name != path {
		t.Errorf("round trip: %q", s.Pairs)
	}
	sum := sha256.Sum256(buf.Bytes())
	if s.Digest != "sha256:"+hex.EncodeToString(sum[:]) || s.Digest != PairsDigest(pairs) {
		t.Errorf("digest %s, PairsDigest %s: a canonical file's digests must agree", s.Digest, PairsDigest(pairs))
	}
	if PairsDigest(pairs[:2]) == PairsDigest(pairs) || PairsDigest([]Pair{{"ab", "c"}}) == PairsDigest([]Pair{{"a", "bc"}}) {
		t.Error("PairsDigest does not tell different pairs apart")
	}
}
