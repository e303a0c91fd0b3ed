package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sinkIDs keeps the benchmarked results alive.
var sinkIDs []int

func benchTokenizer(b *testing.B) (*Tokenizer, string) {
	b.Helper()
	tok, err := Open(filepath.Join("testdata", "tokenizer-t5", "hf_tokenizer"))
	if err != nil {
		b.Fatal(err)
	}
	// ~257 KB of English Wikipedia passages (testdata/README.md).
	text, err := os.ReadFile(filepath.Join("testdata", "boolq_passages.txt"))
	if err != nil {
		b.Fatal(err)
	}
	return tok, string(text)
}

// BenchmarkEncode encodes the whole passage file as one text with the real
// T5 vocabulary; MB/s is input bytes.
func BenchmarkEncode(b *testing.B) {
	tok, text := benchTokenizer(b)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		ids, err := tok.Encode(text)
		if err != nil {
			b.Fatal(err)
		}
		sinkIDs = ids
	}
}

// BenchmarkEncodeLines encodes the passages one by one, as requests would.
func BenchmarkEncodeLines(b *testing.B) {
	tok, text := benchTokenizer(b)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			ids, err := tok.Encode(l)
			if err != nil {
				b.Fatal(err)
			}
			sinkIDs = ids
		}
	}
}

// BenchmarkParse loads the real T5 spiece.model.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "tokenizer-t5", "hf_tokenizer", "spiece.model"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
