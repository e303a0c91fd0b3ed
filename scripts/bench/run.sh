#!/usr/bin/env bash
# Runs the engine and the plain-PyTorch reference (torch_t5.py: the same math as HF
# modeling_t5, not transformers itself) on the same workloads in the same run, alternating
# their order round by round, each measurement after a quiet window (quiet.sh), and prints a
# table of medians over the rounds and of the ratios ours / torch.
#
#   scripts/bench/run.sh            env: ROUNDS (3), THREADS (2), REPEAT (5),
#                                        BASELINE=1 to time the engine before the fast
#                                        kernels too (baseline.sh), KERNELS=0 to skip the
#                                        kernel figures, OUT (the JSONL kept)
#
# Workloads (t5-efficient-tiny-kv32: d_model 256, d_ff 1024, d_kv 32, 4 heads, 4+4 layers,
# vocab 32128, random weights): the encoder on 8×128 tokens; greedy decoding of 32 tokens from
# a 64-token input at batch 1 and 8 (encoder included, total / 32). Ours in f32, bf16, int8.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
repeat=${REPEAT:-5}
out=${OUT:-$(mktemp --suffix=.jsonl)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/t5zoo" ./cmd/t5zoo
py=/usr/bin/python3 # Debian's python3-torch
shape=t5-efficient-tiny-kv32
: >"$out"

tag() { # tag ROUND NOISY: adds {"round", "noisy"} to each JSON line of stdin
	"$py" -c 'import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line); d["round"] = int(sys.argv[1]); d["noisy"] = sys.argv[2] == "1"
        print(json.dumps(d))' "$1" "$2" >>"$out"
}
quiet() { if scripts/bench/quiet.sh; then echo 0; else echo 1; fi; }

torch() {
	n=$(quiet)
	"$py" scripts/bench/torch_t5.py --d-model 256 --d-ff 1024 --d-kv 32 --heads 4 --enc-layers 4 --dec-layers 4 \
		--vocab 32128 --threads "$threads" --repeat "$repeat" --enc-batch 8 --enc-len 128 --input-len 64 \
		--new-tokens 32 --batch 1 8 | tag "$1" "$n"
}
ours() {
	for dt in f32 bf16 int8; do
		n=$(quiet)
		"$tmp/t5zoo" bench --shape "$shape" --batch 8 --input-len 128 --new-tokens 32 --dtype "$dt" \
			--threads "$threads" --repeat "$repeat" --json | tag "$1" "$n"
		n=$(quiet)
		"$tmp/t5zoo" bench --shape "$shape" --batch 1,8 --input-len 64 --new-tokens 32 --dtype "$dt" \
			--threads "$threads" --repeat "$repeat" --json | tag "$1" "$n"
	done
}
echo "load average at the start: $(cat /proc/loadavg)" >&2
for r in $(seq 1 "$rounds"); do
	echo "round $r/$rounds" >&2
	if ((r % 2)); then ours "$r"; torch "$r"; else torch "$r"; ours "$r"; fi
	if [ "${BASELINE:-0}" = 1 ]; then
		n=$(quiet)
		THREADS=$threads REPEAT=$repeat scripts/bench/baseline.sh | tag "$r" "$n"
	fi
done
if [ "${KERNELS:-1}" = 1 ]; then
	# Kernel figures beside the machine limits, measured in one process (BenchmarkGoals):
	# FMA peak, read bandwidth, SGEMM on the two reference shapes, decode GEMV from RAM.
	echo "kernels" >&2
	n=$(quiet)
	go test -run '^$' -bench '^BenchmarkGoals$' -count "$repeat" ./backend/cpu/ | "$py" -c 'import json, re, sys
for line in sys.stdin:
    m = re.match(r"BenchmarkGoals/(\S+?)-\d+\s+\d+\s+\S+ ns/op\s+(.*)", line)
    if m:
        vals = dict((u, float(v)) for v, u in re.findall(r"([\d.]+) (\S+)", m.group(2)))
        print(json.dumps({"impl": "goals", "name": m.group(1), **vals}))' | tag 0 "$n"
fi
echo "load average at the end: $(cat /proc/loadavg)" >&2
echo "results: $out" >&2
"$py" scripts/bench/summarize.py "$out"
