package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// spaceSymbol is U+2581 LOWER ONE EIGHTH BLOCK, which stands for a space in
// pieces.
const spaceSymbol = "\u2581"

// errCharsMap is returned when a charsmap rule points outside its string blob.
var errCharsMap = errors.New("tokenizer: corrupt precompiled charsmap")

// charsMap is a precompiled normalization rule set (NormalizerSpec.
// precompiled_charsmap), e.g. nmt_nfkc. Its layout, from sentencepiece's
// Normalizer::EncodePrecompiledCharsMap:
//
//	<trie size: uint32 LE><darts-clone double array: size bytes><replacements>
//
// The double array maps the UTF-8 bytes of a source sequence to an offset in
// replacements, where the normalized form is stored NUL-terminated.
// Normalization takes the longest source sequence that matches at each
// position.
type charsMap struct {
	units  []uint32 // darts-clone DoubleArrayUnit
	blob   string   // NUL-terminated replacement strings
	ascii  [128]bool
	hasAny bool
}

func parseCharsMap(data []byte) (*charsMap, error) {
	if len(data) <= 4 {
		return nil, fmt.Errorf("%w: %d bytes", errCharsMap, len(data))
	}
	size := binary.LittleEndian.Uint32(data)
	if uint64(size) > uint64(len(data)-4) {
		return nil, fmt.Errorf("%w: trie size %d exceeds the blob (%d bytes)", errCharsMap, size, len(data))
	}
	trie := data[4 : 4+size]
	m := &charsMap{units: make([]uint32, len(trie)/4), blob: string(data[4+size:])}
	for i := range m.units {
		m.units[i] = binary.LittleEndian.Uint32(trie[4*i:])
	}
	m.hasAny = len(m.units) > 0
	if err := m.check(); err != nil {
		return nil, err
	}
	// Which ASCII bytes can start a rule: the others are copied as they are
	// without a trie walk.
	for c := range m.ascii {
		_, _, step := m.lookup(string(rune(c)))
		m.ascii[c] = step
	}
	return m, nil
}

// check walks every transition reachable from the root and makes sure each
// rule's replacement offset lies inside the blob, so that a corrupt charsmap
// fails at load time rather than on some later input. The walk marks the
// units it has taken, so a corrupt array with cycles still terminates.
func (m *charsMap) check() error {
	if !m.hasAny {
		return nil
	}
	units := m.units
	seen := make([]bool, len(units))
	stack := []uint32{dartsOffset(units[0])}
	for len(stack) > 0 {
		base := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for c := uint32(0); c < 256; c++ {
			q := base ^ c
			if uint64(q) >= uint64(len(units)) || seen[q] || dartsLabel(units[q]) != c {
				continue
			}
			seen[q] = true
			next := q ^ dartsOffset(units[q])
			if dartsHasLeaf(units[q]) {
				if uint64(next) >= uint64(len(units)) {
					return fmt.Errorf("%w: leaf %d out of range", errCharsMap, next)
				}
				if v := dartsValue(units[next]); uint64(v) >= uint64(len(m.blob)) {
					return fmt.Errorf("%w: replacement offset %d out of range", errCharsMap, v)
				}
			}
			stack = append(stack, next)
		}
	}
	return nil
}

// darts-clone unit accessors (darts.h DoubleArrayUnit).
func dartsHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func dartsValue(u uint32) uint32  { return u & (1<<31 - 1) }
func dartsLabel(u uint32) uint32  { return u & (1<<31 | 0xFF) }
func dartsOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }

// kMaxTrieResultsSize in normalizer.h: only the first 32 matches are kept.
const maxCharsMapResults = 32

// lookup walks the double array along s (darts-clone commonPrefixSearch) and
// returns the longest of the first 32 matches: its length and value. walked
// reports whether the first byte had a transition at all.
func (m *charsMap) lookup(s string) (length int, value uint32, walked bool) {
	if !m.hasAny {
		return 0, 0, false
	}
	units := m.units
	pos := dartsOffset(units[0])
	results := 0
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if uint64(pos) >= uint64(len(units)) {
			break
		}
		u := units[pos]
		if dartsLabel(u) != c {
			break
		}
		walked = true
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			if uint64(pos) >= uint64(len(units)) {
				break
			}
			if results < maxCharsMapResults {
				length, value = i+1, dartsValue(units[pos])
			}
			results++
		}
	}
	return length, value, walked
}

// normalizer implements sentencepiece's Normalizer::Normalize for one
// NormalizerSpec.
type normalizer struct {
	spec     normalizerSpec
	chars    *charsMap // nil: no rules
	userDefs *daTrie   // USER_DEFINED pieces, kept as they are; nil if none
}

const replacementChar = "\uFFFD"

// prefix returns the normalized form of the longest rule that matches at the
// start of s and the number of bytes of s it consumes (NormalizePrefix).
// s must not be empty.
func (n *normalizer) prefix(s string) (string, int, error) {
	if n.userDefs != nil {
		if l, _ := n.userDefs.longestPrefix(s); l > 0 {
			return s[:l], l, nil
		}
	}
	c := s[0]
	if c < utf8.RuneSelf {
		if n.chars == nil || !n.chars.ascii[c] {
			return s[:1], 1, nil
		}
	}
	if n.chars != nil {
		if l, v, _ := n.chars.lookup(s); l > 0 {
			if uint64(v) >= uint64(len(n.chars.blob)) {
				return "", 0, fmt.Errorf("%w: replacement offset %d out of range", errCharsMap, v)
			}
			rep := n.chars.blob[v:]
			if z := strings.IndexByte(rep, 0); z >= 0 {
				rep = rep[:z]
			}
			return rep, l, nil
		}
	}
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size == 1 {
		// Malformed UTF-8: sentencepiece emits U+FFFD and consumes one byte.
		return replacementChar, 1, nil
	}
	return s[:size], size, nil
}

// normalize appends the normalized form of input to dst: rules applied,
// leading, trailing and repeated spaces removed, a dummy-prefix space added,
// and spaces escaped as U+2581, each as the spec says.
func (n *normalizer) normalize(dst []byte, input string) ([]byte, error) {
	spec := &n.spec
	if input == "" {
		return dst, nil
	}
	if spec.removeExtraWhitespaces {
		for input != "" {
			rep, l, err := n.prefix(input)
			if err != nil {
				return dst, err
			}
			if rep != " " {
				break
			}
			input = input[l:]
		}
	}
	if input == "" {
		return dst, nil
	}
	start := len(dst)
	space := " "
	if spec.escapeWhitespaces {
		space = spaceSymbol
	}
	if spec.addDummyPrefix {
		dst = append(dst, space...)
	}
	prevSpace := spec.removeExtraWhitespaces
	for input != "" {
		rep, l, err := n.prefix(input)
		if err != nil {
			return dst, err
		}
		if prevSpace {
			rep = strings.TrimLeft(rep, " ")
		}
		if rep != "" {
			if len(rep) == 1 && rep[0] != ' ' {
				dst = append(dst, rep[0])
			} else {
				for i := 0; i < len(rep); i++ {
					if rep[i] == ' ' {
						dst = append(dst, space...)
					} else {
						dst = append(dst, rep[i])
					}
				}
			}
			prevSpace = rep[len(rep)-1] == ' '
		}
		input = input[l:]
		if !spec.removeExtraWhitespaces {
			prevSpace = false
		}
	}
	if spec.removeExtraWhitespaces {
		for len(dst)-start >= len(space) && string(dst[len(dst)-len(space):]) == space {
			dst = dst[:len(dst)-len(space)]
		}
	}
	return dst, nil
}
