#!/usr/bin/env bash
# Old engine against new in the same run (issue 14, the backend seam): builds `t5zoo` for OLD
# (a commit, exported with `git archive` into a temporary directory) and for NEW (the working
# tree, or a commit), runs `t5zoo bench --json` on both, alternating which goes first round by
# round so that the machine's drift hits both alike, and compares the decoder step's
# allocations (BenchmarkDecodeStep -benchmem, TestStepAllocs) of the two trees. The working
# tree is only read. Prints a markdown table of medians over the rounds and of new / old,
# flagging ratios above 1.03; writes everything as JSON to $OUT.
#
#   scripts/bench/seam.sh [OLD [NEW]]     OLD: 11e6d92 (the last commit before the seam)
#                                         NEW: the working tree ("." says so too)
#   env: ROUNDS (3), THREADS (2), REPEAT (5, timed runs per figure, median reported),
#        SHAPES ("t5-efficient-tiny-kv32 t5-efficient-base"), DTYPES ("f32 bf16 int8"),
#        BATCHES ("1,8"), INPUT_LEN (128), TOKENS_TINY (64), TOKENS_BASE (32; new tokens
#        for every other shape), READ_MIB (64), QUIET (1: wait for a quiet machine before
#        each old/new pair, scripts/bench/quiet.sh, up to QUIET_MAX=60 s, else mark the pair
#        noisy), ALLOCS (1: run the allocation comparison), ALLOC_PKG (./infer/),
#        BENCHTIME (200x), OUT (/tmp/seam-bench.json)
#
# Figures per shape, dtype and batch: encoder_ms (the encoder on BATCH inputs of INPUT_LEN
# tokens, so b8 is the 8×128 encoder), decode_ms_per_token (greedy decode of the new tokens,
# encoder included, total / tokens) and decode_step_ms (one decoder pass for the batch).
#
# Duration (2 vCPUs, ROUNDS=3, defaults): about 11 minutes plus the quiet waits, from parts
# timed under a load average of 2-3: t5-efficient-base 32 s (f32), 22 s (bf16), ~18 s (int8)
# per side and round; tiny, all rounds and dtypes, 37 s; the builds 20 s; the two allocation
# runs about a minute each. The noise: the same commit against itself under that load gave
# new/old 0.86-1.23 on tiny (rounds' spread 16-49%), so run it on a quiet machine. A check of
# the script itself (20 s):
#   ROUNDS=1 SHAPES=t5-efficient-tiny-kv32 DTYPES=f32 TOKENS_TINY=8 REPEAT=1 BENCHTIME=2x \
#     QUIET=0 scripts/bench/seam.sh 11e6d92 11e6d92
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
old=${1:-11e6d92}
new=${2:-.}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
repeat=${REPEAT:-5}
shapes=${SHAPES:-t5-efficient-tiny-kv32 t5-efficient-base}
dtypes=${DTYPES:-f32 bf16 int8}
batches=${BATCHES:-1,8}
input_len=${INPUT_LEN:-128}
read_mib=${READ_MIB:-64}
out=${OUT:-/tmp/seam-bench.json}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# tree SIDE REV: the source tree of REV ("." is the working tree, used in place).
tree() {
	if [ "$2" = . ]; then
		echo "$root"
		return
	fi
	mkdir -p "$tmp/src-$1"
	git archive "$2" | tar -x -C "$tmp/src-$1"
	echo "$tmp/src-$1"
}
describe() { # the commit, and "+dirty" for a working tree with changes
	if [ "$1" = . ]; then
		echo "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo +dirty) (working tree)"
	else
		git rev-parse --short "$1^{commit}"
	fi
}
old_tree=$(tree old "$old")
new_tree=$(tree new "$new")
for side in old new; do
	t=${side}_tree
	echo "build $side: ${!t}" >&2
	(cd "${!t}" && go build -o "$tmp/$side" ./cmd/t5zoo)
done

tokens_for() { if [ "$1" = t5-efficient-tiny-kv32 ]; then echo "${TOKENS_TINY:-64}"; else echo "${TOKENS_BASE:-32}"; fi; }
# bench SIDE ROUND SHAPE DTYPE NOISY: one `t5zoo bench` invocation, its JSON lines tagged.
bench() {
	"$tmp/$1" bench --shape "$3" --batch "$batches" --input-len "$input_len" --new-tokens "$(tokens_for "$3")" \
		--dtype "$4" --threads "$threads" --repeat "$repeat" --read-mib "$read_mib" --json |
		python3 -c 'import json, sys
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line)
        d.update(side=sys.argv[1], round=int(sys.argv[2]), noisy=sys.argv[3] == "1")
        print(json.dumps(d))' "$1" "$2" "$5" >>"$tmp/runs.jsonl"
}
quiet() {
	if [ "${QUIET:-1}" = 1 ] && ! QUIET_MAX=${QUIET_MAX:-60} scripts/bench/quiet.sh 2>/dev/null; then echo 1; else echo 0; fi
}

: >"$tmp/runs.jsonl"
start=$SECONDS
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at the start: $load0" >&2
for r in $(seq 1 "$rounds"); do
	if ((r % 2)); then order="old new"; else order="new old"; fi
	for shape in $shapes; do
		for dt in $dtypes; do
			echo "round $r/$rounds: $shape $dt ($order)" >&2
			n=$(quiet)
			for side in $order; do bench "$side" "$r" "$shape" "$dt" "$n"; done
		done
	done
done

# Allocations: the decoder-step benchmark and test of each tree, once each (the counts do not
# depend on the machine's load). A tree without them, or whose tests do not build, is
# reported as such, not as a failure of the script.
alloc_pkg=${ALLOC_PKG:-./infer/}
for side in old new; do
	t=${side}_tree
	: >"$tmp/$side.allocs.txt"
	[ "${ALLOCS:-1}" = 1 ] || continue
	echo "allocations $side: $alloc_pkg" >&2
	(cd "${!t}" && GOMAXPROCS=$threads go test -count=1 -run '^TestStepAllocs$' -v \
		-bench 'BenchmarkDecodeStep' -benchmem -benchtime "${BENCHTIME:-200x}" "$alloc_pkg") \
		>"$tmp/$side.allocs.txt" 2>&1 || echo "(go test exited $?)" >>"$tmp/$side.allocs.txt"
	# The benchmark's steps per iteration, for allocations per step.
	grep -ho 'const steps = [0-9]*' "${!t}/${alloc_pkg%/}"/*_test.go 2>/dev/null | head -1 >"$tmp/$side.steps" || true
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at the end: $load1" >&2

python3 scripts/bench/seam_summary.py --dir "$tmp" --out "$out" \
	--old "$(describe "$old")" --new "$(describe "$new")" --seconds $((SECONDS - start)) \
	--load "$load0 → $load1" --settings "rounds=$rounds threads=$threads repeat=$repeat batches=$batches input_len=$input_len tokens_tiny=${TOKENS_TINY:-64} tokens_base=${TOKENS_BASE:-32} benchtime=${BENCHTIME:-200x}"
echo "JSON: $out" >&2
