#!/usr/bin/env bash
# Tokenizer throughput: ours (Go, one core) against the sentencepiece C++ library on the same
# text and the real T5 vocabulary, in one run. Needs Debian's python3-sentencepiece.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=infer/tokenizer/testdata
echo "== t5zoo tokenizer (go test -bench, -cpu=1, 5 runs)"
go test -run '^$' -bench 'BenchmarkEncode(Lines)?$' -benchmem -count=5 -cpu=1 ./infer/tokenizer/ | grep Benchmark
echo "== sentencepiece $(/usr/bin/python3 -c 'import sentencepiece; print(sentencepiece.__version__)') (median of 15)"
taskset -c 0 /usr/bin/python3 scripts/bench/spm_encode.py "$dir/tokenizer-t5/hf_tokenizer/spiece.model" "$dir/boolq_passages.txt" 15
