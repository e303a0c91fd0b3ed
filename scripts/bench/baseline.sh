#!/usr/bin/env bash
# Times the engine of a past commit (default: the last one before the fast kernels, 2862c39)
# on the same workloads as torch_t5.py, through its public API: the commit is exported with
# `git archive` into a temporary directory (the working tree is not touched), the harness
# baseline_test.go.txt is copied into its infer/ and run. Prints JSON lines.
#   scripts/bench/baseline.sh [COMMIT]      env: THREADS (2), REPEAT (7)
set -euo pipefail
cd "$(dirname "$0")/../.."
commit=${1:-2862c39}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive "$commit" | tar -x -C "$tmp"
cp scripts/bench/baseline_test.go.txt "$tmp/infer/zz_baseline_test.go"
cd "$tmp"
GOMAXPROCS=${THREADS:-2} go test -count=1 -run '^TestBaselineEngine$' ./infer/ -v 2>&1 | grep '^{'
