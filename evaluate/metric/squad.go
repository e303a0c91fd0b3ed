package metric

import (
	"math"
	"strings"
	"unicode"
)

// squadPunct is Python's string.punctuation: the 32 ASCII punctuation
// characters, nothing else (‘ and ’ are kept by SQuAD's normalization).
const squadPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// triviaQAPunct is T5's normalize_trivia_qa set: string.punctuation plus
// ‘ ’ ´ ` _ (qa_utils.py; ` and _ repeat, harmlessly, as in the source).
const triviaQAPunct = squadPunct + "‘’´`_"

// NormalizeSQuAD is the official SQuAD v1.1 normalize_answer (T5's
// normalize_squad): Python 3 str.lower(), drop string.punctuation, replace
// the words a, an, the by a space (\b as Python's Unicode-aware re sees
// it), then " ".join(s.split()) with Python's whitespace set.
func NormalizeSQuAD(s string) string {
	return normalizeAnswer(s, squadPunct, "")
}

// NormalizeTriviaQA is T5's normalize_trivia_qa: as NormalizeSQuAD, but the
// punctuation (string.punctuation plus ‘ ’ ´ ` _) becomes a space rather
// than vanishing.
func NormalizeTriviaQA(s string) string {
	return normalizeAnswer(s, triviaQAPunct, " ")
}

// SQuAD is T5's squad metric: both sides go through NormalizeSQuAD, then the
// exact match and token F1 of each prediction against its best answer are
// averaged over examples, ×100. An example with no answers scores 0 (T5
// would raise on max() of nothing).
func SQuAD(answers [][]string, predictions []string) (em, f1 float64) {
	return qaMetrics("SQuAD", answers, predictions, NormalizeSQuAD)
}

// TriviaQA is T5's trivia_qa metric: SQuAD's scoring with NormalizeTriviaQA.
func TriviaQA(answers [][]string, predictions []string) (em, f1 float64) {
	return qaMetrics("TriviaQA", answers, predictions, NormalizeTriviaQA)
}

// qaMetrics is T5's qa_utils.qa_metrics over normalized text.
func qaMetrics(fn string, answers [][]string, predictions []string, norm func(string) string) (em, f1 float64) {
	checkLen(fn, len(answers), len(predictions))
	if len(answers) == 0 {
		return math.NaN(), math.NaN()
	}
	ems := make([]float64, len(answers))
	f1s := make([]float64, len(answers))
	for i, golds := range answers {
		p := norm(predictions[i])
		ptoks := pySplit(p)
		for _, g := range golds {
			g = norm(g)
			if g == p {
				ems[i] = 1
			}
			f1s[i] = math.Max(f1s[i], tokenF1(pySplit(g), ptoks))
		}
	}
	return 100 * npMean(ems), 100 * npMean(f1s)
}

// tokenF1 is qa_utils._f1_score: the F1 of the multiset overlap of
// whitespace tokens, 0 when nothing overlaps (even if both are empty).
func tokenF1(target, prediction []string) float64 {
	counts := make(map[string]int, len(target))
	for _, t := range target {
		counts[t]++
	}
	same := 0
	for _, p := range prediction {
		if counts[p] > 0 {
			counts[p]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	precision := 1.0 * float64(same) / float64(len(prediction))
	recall := 1.0 * float64(same) / float64(len(target))
	return (2 * precision * recall) / (precision + recall)
}

// normalizeAnswer is qa_utils._normalize_answer: lower, replace each rune of
// punct by repl, remove articles, fix whitespace. Invalid UTF-8 reads as
// U+FFFD (a Python str cannot hold it).
func normalizeAnswer(s, punct, repl string) string {
	rs := []rune(pyLower(s))
	out := make([]rune, 0, len(rs))
	for _, r := range rs {
		if strings.ContainsRune(punct, r) {
			out = append(out, []rune(repl)...)
			continue
		}
		out = append(out, r)
	}
	return strings.Join(pySplit(string(removeArticles(out))), " ")
}

// removeArticles is re.sub(r"\b(a|an|the)\b", " ", s) with Python 3's
// Unicode word characters. Go's regexp \b is ASCII-only: it would see a
// boundary inside "éthe" and strip "the", which Python does not.
func removeArticles(rs []rune) []rune {
	out := make([]rune, 0, len(rs))
	wordAt := func(i int) bool { return i >= 0 && i < len(rs) && pyIsWord(rs[i]) }
	for i := 0; i < len(rs); {
		if !wordAt(i - 1) {
			// The alternatives in the pattern's order: a, an, the.
			n := 0
			switch {
			case rs[i] == 'a' && !wordAt(i+1):
				n = 1
			case rs[i] == 'a' && i+1 < len(rs) && rs[i+1] == 'n' && !wordAt(i+2):
				n = 2
			case rs[i] == 't' && i+2 < len(rs) && rs[i+1] == 'h' && rs[i+2] == 'e' && !wordAt(i+3):
				n = 3
			}
			if n > 0 {
				out = append(out, ' ')
				i += n
				continue
			}
		}
		out = append(out, rs[i])
		i++
	}
	return out
}

// pyIsWord is Python re's Unicode \w: str.isalnum() (letters Lu Ll Lt Lm Lo
// and characters with a numeric value) or '_'. Combining marks are not word
// characters.
func pyIsWord(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// pyIsSpace is Python's str.isspace for one character: Go's unicode.IsSpace
// plus the ASCII separators U+001C–U+001F, which Python splits on.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pySplit is Python's str.split() with no arguments.
func pySplit(s string) []string {
	return strings.FieldsFunc(s, pyIsSpace)
}

// pyLower is Python 3's str.lower(): the full lowercase mapping, which
// differs from unicode.ToLower in two places. U+0130 (İ) lowers to "i̇"
// (i + U+0307), and a capital sigma at the end of a word lowers to final ς
// (the Final_Sigma condition of Unicode's SpecialCasing, as CPython's
// handle_capital_sigma tests it).
func pyLower(s string) string {
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s))
	for i, r := range rs {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			if finalSigma(rs, i) {
				b.WriteRune(0x3c2)
			} else {
				b.WriteRune(0x3c3)
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is Final_Sigma: a cased letter before (skipping case-ignorable
// characters) and no cased letter after (likewise).
func finalSigma(rs []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(rs[j]) {
		j--
	}
	if j < 0 || !cased(rs[j]) {
		return false
	}
	j = i + 1
	for j < len(rs) && caseIgnorable(rs[j]) {
		j++
	}
	return j == len(rs) || !cased(rs[j])
}

// cased is Unicode's Cased property: Lowercase, Uppercase or Lt.
func cased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk,
// or Word_Break MidLetter, MidNumLet or Single_Quote (listed here).
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xb7, 0x387, 0x55f, 0x5f4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
