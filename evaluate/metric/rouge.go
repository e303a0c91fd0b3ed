package metric

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Rouge is T5's rouge_mean: rouge-score's RougeScorer (no stemmer) over each
// (target, prediction) pair, the F-measure of each type averaged over the
// pairs, ×100. Both sides first get T5's " . " → " .\n", so that rougeLsum
// sees one sentence per line. types are "rouge1" … "rouge9", "rougeL" and
// "rougeLsum"; none means T5's default rouge1, rouge2, rougeLsum.
//
// T5's rouge (as opposed to rouge_mean) reports the median of an unseeded
// bootstrap, which scatters around this mean; the deterministic mean is
// what is reproducible. An unknown type is an error; no pairs give NaN for
// every type.
func Rouge(targets, predictions []string, types ...string) (map[string]float64, error) {
	checkLen("Rouge", len(targets), len(predictions))
	if len(types) == 0 {
		types = []string{"rouge1", "rouge2", "rougeLsum"}
	}
	for _, t := range types {
		if _, err := rougeOrder(t); err != nil {
			return nil, err
		}
	}
	sums := make(map[string]float64, len(types))
	uniq := dedup(types)
	for i := range targets {
		p := newRougePair(prepareSummary(targets[i]), prepareSummary(predictions[i]))
		for _, t := range uniq {
			sums[t] += p.score(t).F
		}
	}
	out := make(map[string]float64, len(types))
	for _, t := range types {
		if len(targets) == 0 {
			out[t] = math.NaN()
			continue
		}
		out[t] = sums[t] / float64(len(targets)) * 100
	}
	return out, nil
}

// prepareSummary is T5's _prepare_summary_rouge.
func prepareSummary(s string) string {
	return strings.ReplaceAll(s, " . ", " .\n")
}

func dedup(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// rougeOrder validates a rouge type as RougeScorer.score does: n for
// "rouge<n>" (one digit, n > 0), 0 for "rougeL" and "rougeLsum".
func rougeOrder(t string) (int, error) {
	switch {
	case t == "rougeL" || t == "rougeLsum":
		return 0, nil
	case len(t) == 6 && strings.HasPrefix(t, "rouge") && t[5] >= '1' && t[5] <= '9':
		return int(t[5] - '0'), nil
	}
	return 0, fmt.Errorf("metric: rouge: invalid rouge type %q (want rouge1…rouge9, rougeL or rougeLsum)", t)
}

// rougeScores is rouge-score's Score tuple.
type rougeScores struct{ P, R, F float64 }

// rougePair is one (target, prediction) pair, tokenized once for all the
// types RougeScorer.score computes on it.
type rougePair struct {
	target, prediction string
	tt, pt             []string
}

func newRougePair(target, prediction string) *rougePair {
	return &rougePair{target: target, prediction: prediction,
		tt: rougeTokenize(target), pt: rougeTokenize(prediction)}
}

// score is RougeScorer([t]).score(target, prediction)[t] for a type
// rougeOrder has accepted.
func (p *rougePair) score(t string) rougeScores {
	switch t {
	case "rougeLsum":
		return summaryLevelLCS(rougeSentences(p.target), rougeSentences(p.prediction))
	case "rougeL":
		return scoreLCS(p.tt, p.pt)
	}
	n, _ := rougeOrder(t)
	return scoreNgrams(ngramCounts(p.tt, n), ngramCounts(p.pt, n))
}

// rougeScore scores one pair for one type.
func rougeScore(t, target, prediction string) rougeScores {
	return newRougePair(target, prediction).score(t)
}

// rougeTokenize is rouge-score's tokenize.tokenize without a stemmer: lower
// (Python's), every run of characters outside [a-z0-9] becomes a space, and
// the [a-z0-9]+ tokens are kept. Non-ASCII letters are dropped, as there.
func rougeTokenize(text string) []string {
	return strings.FieldsFunc(pyLower(text), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	})
}

// rougeSentences is rougeLsum's get_sents: lines (split on "\n" only) that
// are not empty, each tokenized.
func rougeSentences(text string) [][]string {
	var out [][]string
	for _, s := range strings.Split(text, "\n") {
		if s != "" {
			out = append(out, rougeTokenize(s))
		}
	}
	return out
}

// ngramCounts is _create_ngrams: n-gram counts, keyed by the tokens joined
// with a space (tokens are [a-z0-9]+).
func ngramCounts(toks []string, n int) map[string]int {
	c := map[string]int{}
	for i := 0; i+n <= len(toks); i++ {
		c[strings.Join(toks[i:i+n], " ")]++
	}
	return c
}

// scoreNgrams is _score_ngrams: clipped overlap over max(count, 1).
func scoreNgrams(target, prediction map[string]int) rougeScores {
	inter, tc, pc := 0, 0, 0
	for g, c := range target {
		inter += min(c, prediction[g])
		tc += c
	}
	for _, c := range prediction {
		pc += c
	}
	p := float64(inter) / float64(max(pc, 1))
	r := float64(inter) / float64(max(tc, 1))
	return rougeScores{p, r, fmeasure(p, r)}
}

// fmeasure is rouge-score's scoring.fmeasure.
func fmeasure(p, r float64) float64 {
	if p+r > 0 {
		return 2 * p * r / (p + r)
	}
	return 0
}

// scoreLCS is _score_lcs: the longest common subsequence over whole texts.
func scoreLCS(target, prediction []string) rougeScores {
	if len(target) == 0 || len(prediction) == 0 {
		return rougeScores{}
	}
	ids := interner{}
	ref, can := ids.all(target), ids.all(prediction)
	l := lcsTable(ref, can).at(len(ref), len(can))
	p := float64(l) / float64(len(prediction))
	r := float64(l) / float64(len(target))
	return rougeScores{p, r, fmeasure(p, r)}
}

// summaryLevelLCS is _summary_level_lcs (ROUGE paper §3.2 with 1.5.5's
// accounting): per reference sentence, the union of its LCS index sets
// with every candidate sentence; a union token is a hit only while both
// sides still have an unused occurrence of it, so no token counts twice.
func summaryLevelLCS(refSents, canSents [][]string) rougeScores {
	if len(refSents) == 0 || len(canSents) == 0 {
		return rougeScores{}
	}
	ids := interner{}
	refs := make([][]int32, len(refSents))
	cans := make([][]int32, len(canSents))
	m, n := 0, 0
	cntR, cntC := map[int32]int{}, map[int32]int{}
	for i, s := range refSents {
		refs[i] = ids.all(s)
		m += len(s)
		for _, t := range refs[i] {
			cntR[t]++
		}
	}
	for i, s := range canSents {
		cans[i] = ids.all(s)
		n += len(s)
		for _, t := range cans[i] {
			cntC[t]++
		}
	}
	if m == 0 || n == 0 {
		return rougeScores{}
	}
	hits := 0
	for _, r := range refs {
		union := map[int]bool{}
		for _, c := range cans {
			for _, i := range lcsIndices(r, c) {
				union[i] = true
			}
		}
		idx := make([]int, 0, len(union))
		for i := range union {
			idx = append(idx, i)
		}
		slices.Sort(idx)
		for _, i := range idx {
			t := r[i]
			if cntC[t] > 0 && cntR[t] > 0 {
				hits++
				cntC[t]--
				cntR[t]--
			}
		}
	}
	rec := float64(hits) / float64(m)
	prec := float64(hits) / float64(n)
	return rougeScores{prec, rec, fmeasure(prec, rec)}
}

// interner numbers tokens so that the LCS tables compare ints.
type interner map[string]int32

func (in interner) all(toks []string) []int32 {
	out := make([]int32, len(toks))
	for i, t := range toks {
		id, ok := in[t]
		if !ok {
			id = int32(len(in))
			in[t] = id
		}
		out[i] = id
	}
	return out
}

// lcs is _lcs_table's (rows+1)×(cols+1) table, flat.
type lcs struct {
	cols int
	t    []int32
}

func (l lcs) at(i, j int) int32 { return l.t[i*(l.cols+1)+j] }

// lcsTable is rouge-score's _lcs_table.
func lcsTable(ref, can []int32) lcs {
	l := lcs{cols: len(can), t: make([]int32, (len(ref)+1)*(len(can)+1))}
	w := len(can) + 1
	for i := 1; i <= len(ref); i++ {
		for j := 1; j <= len(can); j++ {
			if ref[i-1] == can[j-1] {
				l.t[i*w+j] = l.t[(i-1)*w+j-1] + 1
			} else {
				l.t[i*w+j] = max(l.t[(i-1)*w+j], l.t[i*w+j-1])
			}
		}
	}
	return l
}

// lcsIndices is lcs_ind: the indices into ref of one LCS, read back by
// _backtrack_norec's tie rule (step left only when that cell is strictly
// greater than the one above), which decides which LCS rougeLsum unions.
func lcsIndices(ref, can []int32) []int {
	t := lcsTable(ref, can)
	i, j := len(ref), len(can)
	var out []int
	for i > 0 && j > 0 {
		switch {
		case ref[i-1] == can[j-1]:
			out = append(out, i-1)
			i--
			j--
		case t.at(i, j-1) > t.at(i-1, j):
			j--
		default:
			i--
		}
	}
	slices.Reverse(out)
	return out
}
