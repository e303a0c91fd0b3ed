package metric

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
)

// bleuMaxOrder is sacrebleu's MAX_NGRAM_ORDER.
const bleuMaxOrder = 4

// BLEU is sacrebleu's corpus_bleu(predictions, references) with
// smooth_method="exp", use_effective_order=False, lowercase=False, as T5's
// bleu calls it (T5 passes tokenize="intl"). references holds sacrebleu's
// reference streams: references[k][i] is the k-th reference of segment i,
// and "" marks a segment with fewer references. tokenize is "13a"
// (sacrebleu's default), "intl" or "none".
//
// It returns an error for an unknown tokenizer, no reference streams, or a
// segment whose references are all empty (sacrebleu raises on each), and NaN
// for no predictions. Streams of a length other than len(predictions)
// panic.
func BLEU(predictions []string, references [][]string, tokenize string) (float64, error) {
	tok, err := bleuTokenizer(tokenize)
	if err != nil {
		return 0, err
	}
	if len(references) == 0 {
		return 0, errors.New("metric: bleu: no reference streams")
	}
	for _, s := range references {
		checkLen("BLEU", len(s), len(predictions))
	}
	if len(predictions) == 0 {
		return math.NaN(), nil
	}
	var correct, total [bleuMaxOrder]int
	sysLen, refLen := 0, 0
	refs := make([]string, 0, len(references))
	for i, hyp := range predictions {
		refs = refs[:0]
		for _, s := range references {
			if s[i] != "" {
				refs = append(refs, s[i])
			}
		}
		if len(refs) == 0 {
			return 0, fmt.Errorf("metric: bleu: segment %d: every reference is empty", i)
		}
		// _extract_reference_info: n-gram counts merged by max over the
		// references; their lengths kept for the closest-length rule.
		var refCounts map[ngram]int
		refLens := make([]int, len(refs))
		for k, r := range refs {
			counts, n := wordNgrams(tok(pyRStrip(r)))
			refLens[k] = n
			if refCounts == nil {
				refCounts = counts
				continue
			}
			for g, c := range counts {
				refCounts[g] = max(refCounts[g], c)
			}
		}
		hypCounts, hypLen := wordNgrams(tok(pyRStrip(hyp)))
		sysLen += hypLen
		refLen += closestRefLen(hypLen, refLens)
		for g, c := range hypCounts {
			total[g.n-1] += c
			correct[g.n-1] += min(c, refCounts[g])
		}
	}
	return computeBLEU(correct, total, sysLen, refLen), nil
}

// computeBLEU is sacrebleu's BLEU.compute_bleu with exp smoothing and no
// effective order: the brevity penalty times the geometric mean of the n-gram
// precisions (in percent), a zero-match order getting 100/(2^k·total) for the
// k-th such order, and an order with no n-grams at all zeroing the score.
func computeBLEU(correct, total [bleuMaxOrder]int, sysLen, refLen int) float64 {
	bp := 1.0
	if sysLen < refLen {
		bp = 0
		if sysLen > 0 {
			bp = math.Exp(1 - float64(refLen)/float64(sysLen))
		}
	}
	matched := false
	for _, c := range correct {
		matched = matched || c != 0
	}
	if !matched {
		return 0
	}
	var precisions [bleuMaxOrder]float64
	smooth := 1.0
	for n := range bleuMaxOrder {
		if total[n] == 0 {
			break
		}
		if correct[n] == 0 {
			smooth *= 2
			precisions[n] = 100. / (smooth * float64(total[n]))
		} else {
			precisions[n] = 100. * float64(correct[n]) / float64(total[n])
		}
	}
	sum := 0.0
	for _, p := range precisions {
		sum += myLog(p)
	}
	return bp * math.Exp(sum/bleuMaxOrder)
}

// myLog is sacrebleu's utils.my_log: log, with −9999999999 for 0.
func myLog(x float64) float64 {
	if x == 0 {
		return -9999999999
	}
	return math.Log(x)
}

// closestRefLen is BLEU._get_closest_ref_len: the reference length nearest
// the hypothesis length, the shorter one on a tie.
func closestRefLen(hypLen int, refLens []int) int {
	bestDiff, best := -1, -1
	for _, r := range refLens {
		d := hypLen - r
		if d < 0 {
			d = -d
		}
		if bestDiff == -1 || d < bestDiff {
			bestDiff, best = d, r
		} else if d == bestDiff && r < best {
			best = r
		}
	}
	return best
}

// ngram is an n-gram: its tokens joined by one space (tokens never hold
// whitespace), and n.
type ngram struct {
	s string
	n int
}

// wordNgrams is sacrebleu's extract_all_word_ngrams(line, 1, 4): counts of
// the 1- to 4-grams of line.split(), and the token count. The keys are
// substrings of one space-joined copy of the line, so counting allocates
// only the map.
func wordNgrams(line string) (map[ngram]int, int) {
	toks := pySplit(line)
	joined := strings.Join(toks, " ")
	starts := make([]int, len(toks)+1)
	for i, t := range toks {
		starts[i+1] = starts[i] + len(t) + 1
	}
	counts := make(map[ngram]int, 4*len(toks))
	for n := 1; n <= bleuMaxOrder; n++ {
		for i := 0; i+n <= len(toks); i++ {
			counts[ngram{joined[starts[i] : starts[i+n]-1], n}]++
		}
	}
	return counts, len(toks)
}

// pyRStrip is Python's str.rstrip(): BLEU._preprocess_segment strips
// trailing whitespace before tokenizing.
func pyRStrip(s string) string {
	return strings.TrimRightFunc(s, pyIsSpace)
}

// bleuTokenizer returns sacrebleu's tokenizer of that name.
func bleuTokenizer(name string) (func(string) string, error) {
	switch name {
	case "13a":
		return tokenize13a, nil
	case "intl":
		return tokenizeIntl, nil
	case "none":
		return func(s string) string { return s }, nil
	}
	return nil, fmt.Errorf("metric: bleu: unknown tokenizer %q (want 13a, intl or none)", name)
}

// tokenize13a is sacrebleu's Tokenizer13a (mteval-v13a): strip <skipped>,
// join "-\n" hyphenations, newlines to spaces, unescape four HTML entities,
// pad with spaces, then TokenizerRegexp's four substitutions and a
// whitespace collapse. The substitutions are rune loops equivalent to the
// source's regexps (bleu_test.go cross-checks them against Go regexps of
// the same patterns); invalid UTF-8 reads as U+FFFD.
func tokenize13a(line string) string {
	// Sequential replaces, in the source's order (a strings.Replacer would
	// apply them in one pass, which differs for e.g. "&amp;quot;").
	for _, p := range [...][2]string{
		{"<skipped>", ""}, {"-\n", ""}, {"\n", " "},
		{"&quot;", `"`}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
	} {
		line = strings.ReplaceAll(line, p[0], p[1])
	}
	rs := []rune(" " + line + " ")
	// ([\{-\~\[-\` -\&\(-\+\:-\@\/]) → " \1 "
	rs = padEach(rs, is13aPunct)
	// ([^0-9])([\.,]) → "\1 \2 "
	rs = splitPairs(rs, notDigit, isPeriodComma, false)
	// ([\.,])([^0-9]) → " \1 \2"
	rs = splitPairs(rs, isPeriodComma, notDigit, true)
	// ([0-9])(-) → "\1 \2 "
	rs = splitPairs(rs, isDigit, func(r rune) bool { return r == '-' }, false)
	return strings.Join(pySplit(string(rs)), " ")
}

// tokenizeIntl is sacrebleu's TokenizerV14International (mteval-v14
// --international-tokenization): (\P{N})(\p{P}) → "\1 \2 ",
// (\p{P})(\P{N}) → " \1 \2", (\p{S}) → " \1 ", then a whitespace
// collapse. Go's unicode.P, S and N are the general categories the regex
// module's \p{P}, \p{S}, \p{N} name.
func tokenizeIntl(line string) string {
	rs := []rune(line)
	notNumber := func(r rune) bool { return !unicode.IsNumber(r) }
	rs = splitPairs(rs, notNumber, unicode.IsPunct, false)
	rs = splitPairs(rs, unicode.IsPunct, notNumber, true)
	rs = padEach(rs, unicode.IsSymbol)
	return strings.Join(pySplit(string(rs)), " ")
}

// is13aPunct is 13a's first class, [\{-\~\[-\` -\&\(-\+\:-\@\/], byte for
// byte: { | } ~, [ \ ] ^ _ `, space ! " # $ % &, ( ) * +, : ; < = > ? @,
// and / (so not ' - . , which the later rules handle).
func is13aPunct(r rune) bool {
	return (r >= 0x7b && r <= 0x7e) || (r >= 0x5b && r <= 0x60) || (r >= 0x20 && r <= 0x26) ||
		(r >= 0x28 && r <= 0x2b) || (r >= 0x3a && r <= 0x40) || r == 0x2f
}

func isDigit(r rune) bool       { return r >= '0' && r <= '9' }
func notDigit(r rune) bool      { return !isDigit(r) }
func isPeriodComma(r rune) bool { return r == '.' || r == ',' }

// padEach is re.sub("(C)", r" \1 ", s) for a one-rune class C.
func padEach(rs []rune, in func(rune) bool) []rune {
	out := make([]rune, 0, len(rs)+len(rs)/2)
	for _, r := range rs {
		if in(r) {
			out = append(out, ' ', r, ' ')
		} else {
			out = append(out, r)
		}
	}
	return out
}

// splitPairs is re.sub("(A)(B)", r"\1 \2 ", s), or r" \1 \2" when before is
// set, for one-rune classes A and B: matches are leftmost and do not
// overlap, so after one the scan resumes past its second rune.
func splitPairs(rs []rune, a, b func(rune) bool, before bool) []rune {
	out := make([]rune, 0, len(rs)+len(rs)/2)
	for i := 0; i < len(rs); i++ {
		if i+1 < len(rs) && a(rs[i]) && b(rs[i+1]) {
			if before {
				out = append(out, ' ', rs[i], ' ', rs[i+1])
			} else {
				out = append(out, rs[i], ' ', rs[i+1], ' ')
			}
			i++
			continue
		}
		out = append(out, rs[i])
	}
	return out
}
