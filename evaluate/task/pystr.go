package task

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The helpers here replicate the Python built-ins the T5 and TFDS code calls on strings,
// where Go's nearest function differs: str.isspace/strip/split(), float() and int().

// pyIsSpace is Python 3's str.isspace for one character: bidirectional class WS, B or S,
// or general category Zs. Beyond Go's unicode.IsSpace it holds U+001C–U+001F (the
// information separators, bidi B/S).
func pyIsSpace(r rune) bool {
	switch {
	case r >= 0x09 && r <= 0x0d, r >= 0x1c && r <= 0x20, r == 0x85:
		return true
	case r < 0x80:
		return false
	}
	return unicode.Is(unicode.Zs, r) || r == 0x2028 || r == 0x2029
}

// pyStrip is Python's str.strip() with no argument.
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }

// pySplit is Python's str.split() with no argument: runs of whitespace separate, leading
// and trailing whitespace yields no empty field.
func pySplit(s string) []string { return strings.FieldsFunc(s, pyIsSpace) }

// pyDigit returns the value of a Unicode decimal digit (category Nd), as Python's float()
// and int() accept them ("١٢" is 12). Unicode encodes every Nd digit in runs of ten
// ascending from zero, so the value is the distance from the start of its run, modulo 10
// when runs abut (the mathematical digits U+1D7CE–U+1D7FF are five runs in a row).
func pyDigit(r rune) (int, bool) {
	if r >= '0' && r <= '9' {
		return int(r - '0'), true
	}
	if r < 0x80 || !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	start := r
	for start > 0 && unicode.Is(unicode.Nd, start-1) {
		start--
	}
	return int(r-start) % 10, true
}

// errPySyntax is returned for a string Python's float() or int() would refuse.
var errPySyntax = errors.New("task: not a Python number")

// pyDigits copies a run of digits with single underscores between them (PEP 515) from s
// as ASCII into b, and returns the rest of s. It fails on a leading, trailing or doubled
// underscore; an empty run is not an error (the caller decides).
func pyDigits(b *strings.Builder, s string) (rest string, n int, ok bool) {
	prevUnderscore := false
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == '_' {
			if n == 0 || prevUnderscore {
				return s, n, false
			}
			prevUnderscore = true
			s = s[size:]
			continue
		}
		d, isDigit := pyDigit(r)
		if !isDigit {
			break
		}
		b.WriteByte(byte('0' + d))
		n++
		prevUnderscore = false
		s = s[size:]
	}
	if prevUnderscore {
		return s, n, false
	}
	return s, n, true
}

// pyFloat is Python 3's float(str): surrounding whitespace is ignored; "inf", "infinity"
// and "nan" (any case, optionally signed) are accepted; digits may be any Unicode decimal
// digits with single underscores between them; an exponent is optional; an out-of-range
// value is ±inf or 0 as in Python. Hexadecimal, a lone ".", and anything else fail.
func pyFloat(s string) (float64, error) {
	t := pyStrip(s)
	sign := ""
	if t != "" && (t[0] == '+' || t[0] == '-') {
		sign, t = t[:1], t[1:]
	}
	switch strings.ToLower(t) {
	case "inf", "infinity":
		if sign == "-" {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	case "nan":
		return math.NaN(), nil
	}
	var b strings.Builder
	b.WriteString(sign)
	rest, intDigits, ok := pyDigits(&b, t)
	if !ok {
		return 0, errPySyntax
	}
	fracDigits := 0
	if strings.HasPrefix(rest, ".") {
		b.WriteByte('.')
		rest, fracDigits, ok = pyDigits(&b, rest[1:])
		if !ok {
			return 0, errPySyntax
		}
	}
	if intDigits+fracDigits == 0 {
		return 0, errPySyntax
	}
	if rest != "" && (rest[0] == 'e' || rest[0] == 'E') {
		b.WriteByte('e')
		rest = rest[1:]
		if rest != "" && (rest[0] == '+' || rest[0] == '-') {
			b.WriteByte(rest[0])
			rest = rest[1:]
		}
		var expDigits int
		rest, expDigits, ok = pyDigits(&b, rest)
		if !ok || expDigits == 0 {
			return 0, errPySyntax
		}
	}
	if rest != "" {
		return 0, errPySyntax
	}
	v, err := strconv.ParseFloat(b.String(), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errPySyntax
	}
	// ParseFloat's ±Inf (overflow) and 0 (underflow) on ErrRange are Python's values too.
	return v, nil
}

// pyInt is Python 3's int(str) in base 10: whitespace around, an optional sign, Unicode
// decimal digits with single underscores between them. Values beyond int64 fail (TFDS
// would reject them as class labels anyway).
func pyInt(s string) (int64, error) {
	t := pyStrip(s)
	var b strings.Builder
	if t != "" && (t[0] == '+' || t[0] == '-') {
		b.WriteByte(t[0])
		t = t[1:]
	}
	rest, n, ok := pyDigits(&b, t)
	if !ok || n == 0 || rest != "" {
		return 0, errPySyntax
	}
	v, err := strconv.ParseInt(b.String(), 10, 64)
	if err != nil {
		return 0, errPySyntax
	}
	return v, nil
}

// pySlice is Python's s[start:stop] on a sequence of length n, returning the clamped
// bounds: negative indices count from the end, out-of-range ones are clamped, and an
// empty or reversed range gives lo == hi.
func pySlice(n, start, stop int) (lo, hi int) {
	norm := func(i int) int {
		if i < 0 {
			i += n
			if i < 0 {
				return 0
			}
		}
		return min(i, n)
	}
	lo, hi = norm(start), norm(stop)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}
