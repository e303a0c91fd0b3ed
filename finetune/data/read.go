package data

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Limits on what a training file may cost: a hostile or corrupt file fails at these
// instead of filling memory.
const (
	// MaxLineBytes bounds one line (one pair).
	MaxLineBytes = 16 << 20
	// MaxFileBytes bounds a whole file (OpenAI accepts training files up to 512 MB).
	MaxFileBytes = 1 << 30
)

// The formats Read takes.
const (
	FormatJSONL = "jsonl"
	FormatTSV   = "tsv"
)

// FormatOf is the format of a file by its extension: .jsonl and .json are JSON Lines,
// .tsv is TSV (case does not matter).
func FormatOf(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".json":
		return FormatJSONL, nil
	case ".tsv":
		return FormatTSV, nil
	}
	return "", fmt.Errorf("%s: unknown training file format; want .jsonl or .json (JSON Lines) or .tsv", path)
}

// LineError is a malformed line of a training file: the file, its 1-based line and what is
// wrong.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// ReadFile reads a training file of pairs, its format by its extension (FormatOf); the
// Set's Name is path and its Digest the sha256 of the file's bytes. See Read.
func ReadFile(ctx context.Context, path string) (*Set, error) {
	format, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read training data: %w", err)
	}
	defer f.Close()
	return Read(ctx, f, path, format)
}

// Read reads pairs from r in format (FormatJSONL or FormatTSV); name is the Set's Name
// and what errors call the file.
//
// JSON Lines: one object per line, in one of three forms —
//   - {"input": …, "target": …};
//   - {"prompt": …, "completion": …} (OpenAI's legacy fine-tuning format);
//   - {"messages": [{"role": …, "content": …}, …]} (OpenAI's chat format): the input is
//     the system (or developer) messages, then the user messages before the last
//     assistant message, joined by "\n"; the target is the last assistant message.
//     Earlier assistant messages are not part of the input; a message after the last
//     assistant message, a tool or function message, or an unknown role is an error.
//     Content is a string or a list of {"type": "text", "text": …} parts.
//
// Other keys are ignored. TSV: one "input<TAB>target" per line, no quoting or escapes; a
// first line "input<TAB>target" is a header and skipped. In both, a UTF-8 byte-order mark
// at the start is dropped, "\r\n" endings are accepted and blank lines skipped. A line
// that is not one of these forms, a missing or non-string field, an empty target, a NUL
// character, invalid UTF-8, a line over MaxLineBytes, a file over MaxFileBytes and a file
// without pairs are errors; a bad line is a *LineError naming the file and line.
func Read(ctx context.Context, r io.Reader, name, format string) (*Set, error) {
	return read(ctx, r, name, format, MaxFileBytes)
}

// read is Read with the file-size bound as a parameter (for the tests).
func read(ctx context.Context, r io.Reader, name, format string, maxFile int64) (*Set, error) {
	var parse func(line []byte) (Pair, error)
	switch format {
	case FormatJSONL:
		parse = parseJSONLine
	case FormatTSV:
		parse = parseTSVLine
	default:
		return nil, fmt.Errorf("%s: unknown format %q (want %q or %q)", name, format, FormatJSONL, FormatTSV)
	}
	h := sha256.New()
	lr := &limitedReader{r: io.TeeReader(r, h), max: maxFile}
	var pairs []Pair
	first := true
	err := scanLines(ctx, lr, name, func(n int, line []byte) error {
		// Blank: nothing but spaces (for TSV a tab is a field separator, not blank).
		if len(bytes.TrimSpace(line)) == 0 && (format == FormatJSONL || bytes.IndexByte(line, '\t') < 0) {
			return nil
		}
		if first {
			first = false
			if format == FormatTSV && isTSVHeader(line) {
				return nil
			}
			if format == FormatJSONL && bytes.HasPrefix(bytes.TrimSpace(line), []byte("[")) {
				return &LineError{File: name, Line: n, Err: errors.New("a JSON array: write one JSON object per line (JSON Lines)")}
			}
		}
		p, err := parse(line)
		if err != nil {
			return &LineError{File: name, Line: n, Err: err}
		}
		pairs = append(pairs, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("%s: no training pairs", name)
	}
	return &Set{Name: name, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Pairs: pairs}, nil
}

// limitedReader reads at most max bytes and then fails, where io.LimitReader would end the
// file quietly.
type limitedReader struct {
	r      io.Reader
	n, max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n >= l.max {
		// One byte more tells a file of exactly max bytes from a longer one.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("file larger than %d bytes", l.max)
		}
		return 0, err
	}
	if int64(len(p)) > l.max-l.n {
		p = p[:l.max-l.n]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	return n, err
}

// checkEvery is how many lines a reader goes between looks at its context.
const checkEvery = 1024

// scanLines calls fn with each line of r (split at "\n", without "\n" or a "\r" before it)
// and its 1-based number. A byte-order mark at the start is dropped; a NUL byte, invalid
// UTF-8 and a line over MaxLineBytes are *LineErrors; a context that ends stops it.
func scanLines(ctx context.Context, r io.Reader, file string, fn func(n int, line []byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("read %s: %w", file, err)
			}
		}
		buf = buf[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if len(buf)+len(chunk) > MaxLineBytes+1 { // +1: the "\n"
				return &LineError{File: file, Line: n, Err: fmt.Errorf("line longer than %d bytes", MaxLineBytes)}
			}
			buf = append(buf, chunk...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", file, err)
		}
		if len(buf) == 0 && err != nil { // EOF after the last "\n"
			return nil
		}
		line := bytes.TrimSuffix(buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return &LineError{File: file, Line: n, Err: errors.New("NUL byte (a binary file?)")}
		}
		if !utf8.Valid(line) {
			return &LineError{File: file, Line: n, Err: errors.New("invalid UTF-8")}
		}
		if ferr := fn(n, line); ferr != nil {
			return ferr
		}
		if err != nil {
			return nil
		}
	}
}

// isTSVHeader reports whether a TSV line is the header "input<TAB>target".
func isTSVHeader(line []byte) bool {
	in, tgt, ok := strings.Cut(string(line), "\t")
	return ok && strings.EqualFold(strings.TrimSpace(in), "input") && strings.EqualFold(strings.TrimSpace(tgt), "target")
}

// parseTSVLine reads "input<TAB>target".
func parseTSVLine(line []byte) (Pair, error) {
	s := string(line)
	if strings.ContainsRune(s, '\r') {
		return Pair{}, errors.New("carriage return inside a line")
	}
	fields := strings.Split(s, "\t")
	if len(fields) != 2 {
		return Pair{}, fmt.Errorf("%d tab-separated fields, want 2 (input, target)", len(fields))
	}
	return checkPair(Pair{Input: fields[0], Target: fields[1]})
}

// checkPair refuses an empty target and NUL characters (which JSON can spell \u0000).
func checkPair(p Pair) (Pair, error) {
	if strings.IndexByte(p.Input, 0) >= 0 {
		return Pair{}, errors.New("the input holds a NUL character")
	}
	if strings.IndexByte(p.Target, 0) >= 0 {
		return Pair{}, errors.New("the target holds a NUL character")
	}
	if strings.TrimSpace(p.Target) == "" {
		return Pair{}, errors.New("empty target")
	}
	return p, nil
}

// parseJSONLine reads one JSON Lines object in any of Read's three forms.
func parseJSONLine(line []byte) (Pair, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return Pair{}, fmt.Errorf("bad JSON: %w", err)
	}
	if obj == nil {
		return Pair{}, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Pair{}, errors.New("data after the JSON object")
	}
	has := func(k string) bool { _, ok := obj[k]; return ok }
	forms := 0
	for _, f := range [][2]string{{"input", "target"}, {"prompt", "completion"}, {"messages", ""}} {
		if has(f[0]) || (f[1] != "" && has(f[1])) {
			forms++
		}
	}
	if forms > 1 {
		return Pair{}, errors.New(`more than one of "input"/"target", "prompt"/"completion" and "messages"`)
	}
	var p Pair
	var err error
	switch {
	case has("input") || has("target"):
		p, err = stringPair(obj, "input", "target")
	case has("prompt") || has("completion"):
		p, err = stringPair(obj, "prompt", "completion")
	case has("messages"):
		p, err = chatPair(obj["messages"])
	default:
		return Pair{}, errors.New(`want "input" and "target", "prompt" and "completion", or "messages"`)
	}
	if err != nil {
		return Pair{}, err
	}
	return checkPair(p)
}

// stringPair reads two string fields.
func stringPair(obj map[string]json.RawMessage, in, tgt string) (Pair, error) {
	a, err := jsonString(obj, in)
	if err != nil {
		return Pair{}, err
	}
	b, err := jsonString(obj, tgt)
	if err != nil {
		return Pair{}, err
	}
	return Pair{Input: a, Target: b}, nil
}

// jsonString returns the string under key: missing or not a string is an error naming it.
func jsonString(obj map[string]json.RawMessage, key string) (string, error) {
	raw, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("missing %q", key)
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%q: want a string, got %s", key, abbrev(raw))
	}
	return s, nil
}

// chatMessage is one message of OpenAI's chat format.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// chatPair turns a chat conversation into a pair (see Read).
func chatPair(raw json.RawMessage) (Pair, error) {
	var msgs []chatMessage
	if err := json.Unmarshal(raw, &msgs); err != nil || len(raw) == 0 || raw[0] != '[' {
		return Pair{}, fmt.Errorf(`"messages": want an array of {"role", "content"} objects, got %s`, abbrev(raw))
	}
	last := -1
	for i, m := range msgs {
		switch m.Role {
		case "system", "developer", "user":
		case "assistant":
			last = i
		case "tool", "function":
			return Pair{}, fmt.Errorf("messages[%d]: %s messages are not supported (a T5 pair is one input and one target)", i, m.Role)
		case "":
			return Pair{}, fmt.Errorf(`messages[%d]: missing "role"`, i)
		default:
			return Pair{}, fmt.Errorf("messages[%d]: unknown role %q (want system, developer, user or assistant)", i, m.Role)
		}
	}
	if last < 0 {
		return Pair{}, errors.New(`"messages": no assistant message (its content is the target)`)
	}
	if last != len(msgs)-1 {
		return Pair{}, fmt.Errorf("messages[%d]: a %s message after the last assistant message", last+1, msgs[last+1].Role)
	}
	var system, user []string
	for i, m := range msgs[:last] {
		if m.Role == "assistant" {
			continue
		}
		text, err := chatContent(m.Content)
		if err != nil {
			return Pair{}, fmt.Errorf("messages[%d]: %w", i, err)
		}
		if m.Role == "user" {
			user = append(user, text)
		} else {
			system = append(system, text)
		}
	}
	target, err := chatContent(msgs[last].Content)
	if err != nil {
		return Pair{}, fmt.Errorf("messages[%d]: %w", last, err)
	}
	return Pair{Input: strings.Join(append(system, user...), "\n"), Target: target}, nil
}

// chatContent is a message's text: a string, or the concatenated text parts of a list.
func chatContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New(`missing "content"`)
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if raw[0] != '[' || json.Unmarshal(raw, &parts) != nil {
		return "", fmt.Errorf(`"content": want a string or a list of text parts, got %s`, abbrev(raw))
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", fmt.Errorf(`content[%d]: want {"type": "text", "text": …}, got type %q`, i, p.Type)
		}
		b.WriteString(*p.Text)
	}
	return b.String(), nil
}

// abbrev shows at most 40 bytes of a JSON value in a message.
func abbrev(raw json.RawMessage) string {
	s := string(raw)
	if s == "" {
		return "nothing"
	}
	if len(s) > 40 {
		cut := 40
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
