// Package data is the data side of fine-tuning: training pairs read from a user's file
// (JSON Lines or TSV of input/target text, OpenAI's prompt/completion and chat formats) or
// from an evaluate task's split, a seeded held-out split, tokenization into t5.Examples
// with T5's end-of-sequence handling, and a Batcher that yields length-bucketed batches by
// example count or token budget, reshuffled each epoch from a seed, with a cursor that a
// checkpoint can store and a resumed run can seek to.
//
// Every step is deterministic: the same file or task, seed and settings give the same
// pairs, digests, tokens and batches on every machine and Go release (the shuffles use a
// generator specified here, not math/rand, whose outputs Go does not promise to keep).
package data

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Pair is one training example as text: Input is the encoder's text and Target the text
// the decoder learns to produce (neither with </s>; Tokenize adds it).
type Pair struct{ Input, Target string }

// Set is a named, digested list of pairs.
type Set struct {
	// Name is the file's path, or "task:<name>/<split>" for a task's split.
	Name string
	// Digest is "sha256:<hex>" of the file's bytes, or of the canonical JSON Lines form of
	// the pairs (WriteJSONL) for a task's split or a part of a held-out split; a file that
	// WriteJSONL wrote has the same digest both ways.
	Digest string
	// Pairs are the pairs in file order.
	Pairs []Pair
}

// Len is the number of pairs.
func (s *Set) Len() int { return len(s.Pairs) }

// canonicalPair is a pair's line in the canonical form.
type canonicalPair struct {
	Input  string `json:"input"`
	Target string `json:"target"`
}

// WriteJSONL writes pairs in the canonical form: one {"input": …, "target": …} object per
// line, keys in that order, no HTML escaping, "\n" after each line. ReadFile reads it back
// to the same pairs.
func WriteJSONL(w io.Writer, pairs []Pair) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw) // Encode ends each value with "\n"
	enc.SetEscapeHTML(false)
	for i, p := range pairs {
		if err := enc.Encode(canonicalPair{p.Input, p.Target}); err != nil {
			return fmt.Errorf("write pair %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write pairs: %w", err)
	}
	return nil
}

// PairsDigest is "sha256:<hex>" of the canonical form of pairs (WriteJSONL).
func PairsDigest(pairs []Pair) string {
	h := sha256.New()
	if err := WriteJSONL(h, pairs); err != nil {
		// A hash never fails to write, and every string encodes.
		panic(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
