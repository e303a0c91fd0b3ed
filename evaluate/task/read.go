package task

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// MaxLineBytes bounds one line of a TSV or JSONL file (a hostile or corrupt file costs at
// most this much memory per line). The longest line of the real GLUE/SuperGLUE dev files
// is a MultiRC passage of about 40 KB.
const MaxLineBytes = 16 << 20

// MaxFileBytes bounds a file read whole (SQuAD's JSON: dev-v1.1.json is 4.9 MB, the
// training set 30 MB) and a spec's CSV data.
const MaxFileBytes = 256 << 20

// limitedReader reads at most max bytes and then fails, where io.LimitReader would end
// the file quietly.
type limitedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func newLimitedReader(r io.Reader) *limitedReader { return &limitedReader{r: r, max: MaxFileBytes} }

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, fmt.Errorf("task: file larger than %d bytes", l.max)
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, fmt.Errorf("task: file larger than %d bytes", l.max)
	}
	return n, err
}

// checkEvery is how many rows a reader goes between looks at its context.
const checkEvery = 1024

// LineError is a malformed row: the file, its 1-based line and what is wrong.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// lineErr builds a *LineError with a formatted message.
func lineErr(file string, line int, format string, args ...any) error {
	return &LineError{File: file, Line: line, Err: fmt.Errorf(format, args...)}
}

// scanLines calls fn for each line of r split at "\n" (the way TFDS's GFile iterates a
// file), without the terminator, with its 1-based number. A UTF-8 byte-order mark at the
// start is dropped (GLUE's MRPC files carry one); "\r\n" endings are accepted; invalid
// UTF-8 and lines over MaxLineBytes are errors, as is a context that ends.
func scanLines(ctx context.Context, r io.Reader, file string, fn func(line int, text string) error) error {
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
			if len(buf)+len(chunk) > MaxLineBytes {
				return lineErr(file, n, "line longer than %d bytes", MaxLineBytes)
			}
			buf = append(buf, chunk...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", file, err)
		}
		if len(buf) == 0 && err != nil { // EOF after the last terminator
			return nil
		}
		line := bytes.TrimSuffix(buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		if !utf8.Valid(line) {
			return lineErr(file, n, "invalid UTF-8")
		}
		if ferr := fn(n, string(line)); ferr != nil {
			return ferr
		}
		if err != nil {
			return nil
		}
	}
}

// tsvRecord is one row of a tab-separated file read as Python's
// csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) reads it: fields split at every tab,
// quotes literal, no escapes. A blank line is a record with no fields.
type tsvRecord struct {
	Line   int
	Fields []string
}

// scanTSV calls fn with each record of r. A carriage return inside a line is an error, as
// Python's csv reader raises one ("new-line character seen in unquoted field").
func scanTSV(ctx context.Context, r io.Reader, file string, fn func(rec tsvRecord) error) error {
	return scanLines(ctx, r, file, func(line int, text string) error {
		if strings.ContainsRune(text, '\r') {
			return lineErr(file, line, "carriage return inside a row")
		}
		var fields []string
		if text != "" {
			fields = strings.Split(text, "\t")
		}
		return fn(tsvRecord{Line: line, Fields: fields})
	})
}

// dictRow is a row of csv.DictReader: fields by header name. A name the row is too short
// to have is missing (DictReader's None), and a repeated header name maps to its last
// column, as dict(zip(fieldnames, row)) does.
type dictRow struct {
	Line   int
	N      int // 0-based row number among the non-blank data rows (TFDS's idx)
	header map[string]int
	fields []string
}

// Get returns the field under name and whether the row has it.
func (r dictRow) Get(name string) (string, bool) {
	i, ok := r.header[name]
	if !ok || i >= len(r.fields) {
		return "", false
	}
	return r.fields[i], true
}

// scanDictTSV reads r as csv.DictReader with the TSV dialect: the first record is the
// header, blank records are skipped without counting, and fn gets each data row. required
// lists the header names the caller reads: a header without one is an error naming it.
func scanDictTSV(ctx context.Context, r io.Reader, file string, required []string, fn func(row dictRow) error) error {
	var header map[string]int
	n := 0
	return scanTSV(ctx, r, file, func(rec tsvRecord) error {
		if header == nil {
			if len(rec.Fields) == 0 {
				return lineErr(file, rec.Line, "empty header line")
			}
			header = make(map[string]int, len(rec.Fields))
			for i, name := range rec.Fields {
				header[name] = i
			}
			for _, name := range required {
				if _, ok := header[name]; !ok {
					return lineErr(file, rec.Line, "header has no %q column (columns: %s)", name, strings.Join(rec.Fields, ", "))
				}
			}
			return nil
		}
		if len(rec.Fields) == 0 {
			return nil
		}
		row := dictRow{Line: rec.Line, N: n, header: header, fields: rec.Fields}
		n++
		return fn(row)
	})
}

// jsonObject is one decoded JSON object with its keys matched exactly (encoding/json's
// struct decoding matches keys case-insensitively, Python's dict does not).
type jsonObject map[string]json.RawMessage

// decodeObject parses data as one JSON object, refusing trailing data.
func decodeObject(data []byte) (jsonObject, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var obj jsonObject
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	return obj, nil
}

// has reports whether the object has key (a JSON null counts as present).
func (o jsonObject) has(key string) bool { _, ok := o[key]; return ok }

// str returns the string under key: missing or not a string is an error naming the key.
func (o jsonObject) str(key string) (string, error) {
	raw, ok := o[key]
	if !ok {
		return "", fmt.Errorf("missing %q", key)
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%q: want a string, got %s", key, abbrev(raw))
	}
	return s, nil
}

// integer returns the integer under key (a JSON number without fraction or exponent).
func (o jsonObject) integer(key string) (int64, error) {
	raw, ok := o[key]
	if !ok {
		return 0, fmt.Errorf("missing %q", key)
	}
	var v int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("%q: want an integer, got %s", key, abbrev(raw))
	}
	return v, nil
}

// object returns the object under key.
func (o jsonObject) object(key string) (jsonObject, error) {
	raw, ok := o[key]
	if !ok {
		return nil, fmt.Errorf("missing %q", key)
	}
	var v jsonObject
	if err := json.Unmarshal(raw, &v); err != nil || v == nil {
		return nil, fmt.Errorf("%q: want an object, got %s", key, abbrev(raw))
	}
	return v, nil
}

// objects returns the array of objects under key.
func (o jsonObject) objects(key string) ([]jsonObject, error) {
	raw, ok := o[key]
	if !ok {
		return nil, fmt.Errorf("missing %q", key)
	}
	var v []jsonObject
	if err := json.Unmarshal(raw, &v); err != nil || (v == nil && string(raw) == "null") {
		return nil, fmt.Errorf("%q: want an array of objects, got %s", key, abbrev(raw))
	}
	for i, e := range v {
		if e == nil {
			return nil, fmt.Errorf("%q[%d]: want an object", key, i)
		}
	}
	return v, nil
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

// pyTruthy is Python's bool() of a decoded JSON value: false, 0, "", [], {} and null are
// false, everything else true.
func pyTruthy(raw json.RawMessage) (bool, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, err
	}
	switch x := v.(type) {
	case nil:
		return false, nil
	case bool:
		return x, nil
	case float64:
		return x != 0, nil
	case string:
		return x != "", nil
	case []any:
		return len(x) > 0, nil
	case map[string]any:
		return len(x) > 0, nil
	}
	return false, fmt.Errorf("unexpected JSON value %s", abbrev(raw))
}

// scanJSONL calls fn with each non-blank line of r decoded as a JSON object. TFDS's
// json.loads would fail on a blank line; skipping one (an editor's trailing newline) loses
// nothing.
func scanJSONL(ctx context.Context, r io.Reader, file string, fn func(line int, obj jsonObject) error) error {
	return scanLines(ctx, r, file, func(line int, text string) error {
		if strings.TrimSpace(text) == "" {
			return nil
		}
		obj, err := decodeObject([]byte(text))
		if err != nil {
			return &LineError{File: file, Line: line, Err: err}
		}
		return fn(line, obj)
	})
}

// openData opens a data file for reading; the caller closes it.
func openData(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open data: %w", err)
	}
	return f, nil
}
