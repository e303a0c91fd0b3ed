#!/usr/bin/env bash
# Checks that two commits' engines give the same bits: the harness samebits_test.go.txt (a
# fixed random model; greedy decoding of 70 tokens with top log-probabilities, beam search
# with 4 beams, Score and Encode, in f32, bf16 and int8) is copied into the infer/ of OLD
# (exported with `git archive`) and of the working tree, and run on every kernel path this CPU
# runs; it prints a hash of the bits of every result, which must match line for line.
#   scripts/bench/samebits.sh [OLD]      OLD: 11e6d92 (the last commit before the backend seam)
set -euo pipefail
cd "$(dirname "$0")/../.."
old=${1:-11e6d92}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; rm -f infer/zz_samebits_test.go' EXIT
git archive "$old" | tar -x -C "$tmp"
cp scripts/bench/samebits_test.go.txt "$tmp/infer/zz_samebits_test.go"
cp scripts/bench/samebits_test.go.txt infer/zz_samebits_test.go
status=0
for k in generic avx2 avx512; do
	a=$(cd "$tmp" && T5ZOO_KERNEL=$k go test -count=1 -run '^TestZZBits$' -v ./infer/ 2>&1 | grep '^BITS' || true)
	b=$(T5ZOO_KERNEL=$k go test -count=1 -run '^TestZZBits$' -v ./infer/ 2>&1 | grep '^BITS' || true)
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo "$k: not run on this CPU or build"
		continue
	fi
	if [ "$a" = "$b" ]; then
		echo "$k: same bits"; echo "$b"
	else
		echo "$k: DIFFERENT"; echo "old:"; echo "$a"; echo "new:"; echo "$b"; status=1
	fi
done
exit $status
