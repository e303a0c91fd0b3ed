package task

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// This file ports T5's text preprocessors and postprocessors (t5/data/preprocessors.py,
// t5/data/postprocessors.py at e081111ccd51df425aa7124e8e311ed6d403d767). TensorFlow's
// regex_replace is RE2, and Go's regexp is RE2 too, so the patterns are T5's verbatim.

// feature is one named text feature of an example.
type feature struct{ key, value string }

// glueInputs is T5's preprocessors.glue() inputs: the benchmark name, then "<key>: <value>"
// for each feature, joined by single spaces with no whitespace collapsing. The caller
// passes the features in T5's order: sorted by key (Python code-point order, which is Go's
// byte order on UTF-8) unless the task gives feature_names (MultiRC, WiC). MultiRC's HTML
// cleanup is applied here as glue() applies it to the joined string.
func glueInputs(benchmark string, feats []feature) string {
	parts := make([]string, 0, 1+2*len(feats))
	parts = append(parts, benchmark)
	for _, f := range feats {
		parts = append(parts, f.key+":", f.value)
	}
	joined := strings.Join(parts, " ")
	if benchmark == "multirc" {
		joined = strings.ReplaceAll(joined, "<br>", " ")
		joined = multircBold.ReplaceAllLiteralString(joined, "")
	}
	return joined
}

// multircBold is glue()'s second MultiRC cleanup, regex_replace(joined, '<(/)?b>', ”).
var multircBold = regexp.MustCompile(`<(/)?b>`)

// sortedFeatures orders features by key, as glue() does when given no feature_names.
func sortedFeatures(feats ...feature) []feature {
	slices.SortFunc(feats, func(a, b feature) int { return strings.Compare(a.key, b.key) })
	return feats
}

// stsbTarget is preprocessors.stsb's target: tf.as_string(tf.round(label*5)/5, precision=1)
// on TFDS's float32 label. tf.round rounds half to even; the product is float32 as in TF.
func stsbTarget(label float32) string {
	v := math.RoundToEven(float64(label*5)) / 5
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// stsbChoices are the 26 targets stsbTarget can produce, "0.0" to "5.0": STS-B's rank
// mode candidates.
func stsbChoices() []string {
	out := make([]string, 26)
	for i := range out {
		out[i] = strconv.FormatFloat(float64(i)/5, 'f', 1, 64)
	}
	return out
}

var (
	// recordHighlightPunct and recordHighlight are preprocessors.record's passage rewrites.
	recordHighlightPunct = regexp.MustCompile(`(\.|\?|\!|\"|\')\n@highlight\n`)
	recordHighlight      = regexp.MustCompile(`\n@highlight\n`)
)

// recordInputs is preprocessors.record's inputs for a query: "record query: <query>
// entities: <e1>, <e2>, … passage: <passage>", the passage's "@highlight" lines turned
// into sentences.
func recordInputs(query string, entities []string, passage string) string {
	passage = recordHighlightPunct.ReplaceAllString(passage, "${1} ")
	passage = recordHighlight.ReplaceAllLiteralString(passage, ". ")
	return strings.Join([]string{"record query:", query, "entities:", strings.Join(entities, ", "), "passage:", passage}, " ")
}

var (
	// punct and spaces are _pad_punctuation's and _string_join's patterns. RE2's [:punct:]
	// and \s are ASCII-only in TensorFlow and in Go alike.
	punct  = regexp.MustCompile(`([[:punct:]])`)
	spaces = regexp.MustCompile(`\s+`)
)

// padPunctuation is preprocessors._pad_punctuation: a space either side of each ASCII
// punctuation mark, then runs of whitespace collapsed to one space (no trimming).
func padPunctuation(s string) string {
	s = punct.ReplaceAllString(s, " ${1} ")
	return spaces.ReplaceAllLiteralString(s, " ")
}

// stringJoin is preprocessors._string_join: join on spaces, collapse whitespace runs.
func stringJoin(parts ...string) string {
	return spaces.ReplaceAllLiteralString(strings.Join(parts, " "), " ")
}

// squadInputs is preprocessors.squad's inputs for padded question and context.
func squadInputs(question, context string) string {
	return stringJoin("question:", question, "context:", context)
}

// wscSpecialInput returns the blanked text _wsc_inputs writes by hand for the two texts
// whose span2_index does not point at the pronoun.
func wscSpecialInput(text string) (string, bool) {
	switch text {
	case `The boy continued to whip the pony , and eventually the pony threw him over. John laughed out quite loud. "Good for him," he said. `:
		return `The boy continued to whip the pony , and eventually the pony threw him over. John laughed out quite loud. "Good for X ," he said.`, true
	case `When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in an iron safe . Some day they might want to use it , but really for now, what more could they wish for?`:
		return `When they had eventually calmed down a bit , and had gotten home, Mr. Farley put the magic pebble in an iron safe . Some day they might want to use X , but really for now, what more could they wish for?`, true
	}
	return "", false
}

// wscInputs is preprocessors.wsc_simple's inputs: _wsc_inputs blanks the word at
// span2Index (words split at single spaces) to "X", then every " X " becomes
// " *<span2Text>* " and "wsc:" is prepended. T5 asserts 0 < span2Index < len(words) and
// that the word is span2Text; those failures are errors here.
func wscInputs(text string, span2Index int64, span2Text string) (string, error) {
	blanked, ok := wscSpecialInput(text)
	if !ok {
		words := strings.Split(text, " ")
		if span2Index <= 0 || span2Index >= int64(len(words)) {
			return "", fmt.Errorf("span2_index %d outside the %d words of the text (T5 asserts 0 < index < words)", span2Index, len(words))
		}
		i := int(span2Index)
		if words[i] != span2Text {
			return "", fmt.Errorf("word %d is %q, not span2_text %q", i, words[i], span2Text)
		}
		blanked = strings.Join(words[:i], " ") + " X " + strings.Join(words[i+1:], " ")
	}
	return "wsc: " + strings.ReplaceAll(blanked, " X ", " *"+span2Text+"* "), nil
}

// classID is postprocessors.string_label_to_class_id: the index of s in classes, or −1.
// The comparison is exact: no trimming, no case folding.
func classID(s string, classes []string) int {
	return slices.Index(classes, s)
}

// stringToFloat is postprocessors.string_to_float: Python's float(s), or −1.0 when it
// fails; ok reports which.
func stringToFloat(s string) (v float64, ok bool) {
	v, err := pyFloat(s)
	if err != nil {
		return -1, false
	}
	return v, true
}

// wscDeterminer reports whether postprocessors.wsc_simple ignores a word.
func wscDeterminer(w string) bool {
	switch w {
	case "a", "an", "few", "her", "his", "each", "every", "many", "much", "my", "our", "some",
		"that", "the", "their", "these", "this", "those", "which", "whose", "your":
		return true
	}
	return false
}

// wscClean is wsc_simple's clean(): strip, lower-case, drop determiners from the words
// split at single spaces (empty words from doubled spaces stay, as in Python).
func wscClean(s string) string {
	words := strings.Split(strings.ToLower(pyStrip(s)), " ")
	kept := words[:0]
	for _, w := range words {
		if !wscDeterminer(w) {
			kept = append(kept, w)
		}
	}
	return strings.Join(kept, " ")
}

// wscSimple is postprocessors.wsc_simple for a prediction: 1 when the cleaned prediction's
// words are a subset or superset of the cleaned referent's, 0 when not or when exactly one
// of them has an apostrophe ("Bob" is not "Bob's hat"), −1 when the prediction is empty
// after cleaning.
func wscSimple(prediction, referent string) int {
	p := wscClean(prediction)
	if p == "" {
		return -1
	}
	r := wscClean(referent)
	if strings.Contains(p, "'") != strings.Contains(r, "'") {
		return 0
	}
	pw, rw := wordSet(p), wordSet(r)
	if subset(pw, rw) || subset(rw, pw) {
		return 1
	}
	return 0
}

func wordSet(s string) map[string]bool {
	set := make(map[string]bool)
	for _, w := range strings.Split(s, " ") {
		set[w] = true
	}
	return set
}

func subset(a, b map[string]bool) bool {
	for w := range a {
		if !b[w] {
			return false
		}
	}
	return true
}

// labelIndex turns a TSV label into a class index as TFDS's GLUE reader does: a class
// name is its index; anything else goes through Python's int() and must be a valid
// ClassLabel value (−1 for "no label" up to len(classes)−1). ok is false for an empty
// label, a row TFDS drops.
func labelIndex(label string, classes []string) (idx int, ok bool, err error) {
	if i := classID(label, classes); i >= 0 {
		return i, true, nil
	}
	if label == "" {
		return 0, false, nil
	}
	v, err := pyInt(label)
	if err != nil {
		return 0, false, fmt.Errorf("label %q is neither a class (%s) nor an integer", label, strings.Join(classes, ", "))
	}
	if v < -1 || v >= int64(len(classes)) {
		return 0, false, fmt.Errorf("label %d out of range for %d classes", v, len(classes))
	}
	return int(v), true, nil
}

// targetName is glue()'s target for a class index: the class name, or "<unk>" for −1.
func targetName(idx int, classes []string) string {
	if idx < 0 {
		return "<unk>"
	}
	return classes[idx]
}

// errNoGold is Evaluate's error for WSC examples not built by Load.
var errNoGold = errors.New("example has no gold label (build WSC examples with Load)")
