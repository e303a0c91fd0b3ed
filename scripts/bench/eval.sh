#!/usr/bin/env bash
# Evaluation speed: `t5zoo eval` against the same scoring and generation done with Hugging Face
# transformers on PyTorch (eval_hf.py), on the same random checkpoints, in the same run, SST-2
# dev in rank and predict mode; then the cost of a GLUE sweep (t5zoo only). See BENCHMARKS.md,
# section "Evaluation (evaluate)".
#
#   scripts/bench/eval.sh DATA_DIR
#
# DATA_DIR holds the GLUE dev files in their official layout (DATA_DIR/glue/SST-2/dev.tsv, ...).
# Needs /usr/bin/python3 (or $PY) with torch, sentencepiece and transformers 4.30.2 importable
# (PYTHONPATH as the caller sets it).
# env: SHAPES (t5-efficient-tiny; comma-separated catalog shapes), ROUNDS (3), THREADS (2),
#      BATCH (32, t5zoo eval's default), MODES ("rank predict"), SWEEP (1: the GLUE sweep on the
#      first shape; 0: skip), SWEEP_MODES ("rank predict"), SPIECE (the real T5 vocabulary in
#      the repo's testdata), CHECK (1: the greedy agreement check on the golden tiny-gated
#      model, round 0), HF_VARIANTS (1: HF also at 1 thread and with passive OpenMP waits),
#      DECODE (128: HF's max_new_tokens; T5's GLUE decode length, which t5zoo eval takes from
#      the task), OUT (the JSONL kept), QUIET_MAX (quiet.sh's wait, 300 s)
#
# Models: t5-efficient-tiny is scripts/load's writer (convert.WriteRandom, seed 42, the model
# of the Serve section); any other shape is HF's own initialisation (eval_hf.py write-random,
# seed 42), both with the real T5 vocabulary. Every measurement starts after a quiet window
# (quiet.sh); the two sides alternate their order round by round. Each t5zoo run is a fresh
# process with a fresh --out (eval resumes finished cells otherwise); each HF run too.
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${1:?usage: scripts/bench/eval.sh DATA_DIR}
data=$(cd "$data" && pwd)
shapes=${SHAPES:-t5-efficient-tiny}
rounds=${ROUNDS:-3}
threads=${THREADS:-2}
batch=${BATCH:-32}
modes=${MODES:-rank predict}
sweep_modes=${SWEEP_MODES:-rank predict}
spiece=${SPIECE:-infer/tokenizer/testdata/tokenizer-t5/hf_tokenizer/spiece.model}
py=${PY:-/usr/bin/python3} # Debian's python3-torch
hf=scripts/bench/eval_hf.py
out=${OUT:-$(mktemp --suffix=.jsonl)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
: >"$out"

go build -o "$tmp/t5zoo" ./cmd/t5zoo
t5zoo=$tmp/t5zoo
help=$("$t5zoo" eval --help)
# Flags of `t5zoo eval` this script passes when the CLI has them.
evalflags=()
if grep -q -- '--batch' <<<"$help"; then evalflags+=(--batch "$batch"); fi
if grep -q -- '--threads' <<<"$help"; then evalflags+=(--threads "$threads"); fi
export GOMAXPROCS=$threads # the engine's workers follow it where there is no --threads
"$py" -c 'import torch, transformers; assert transformers.__version__ == "4.30.2", transformers.__version__' ||
	{ echo "eval.sh: $py cannot import torch and transformers 4.30.2 (PYTHONPATH?)" >&2; exit 1; }

emit() { # emit JSON...: one line into $out
	"$py" -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])))' "$1" >>"$out"
}
quiet() { if scripts/bench/quiet.sh; then echo 0; else echo 1; fi; }

# HF's decode budget: the one t5zoo eval takes from the task (Task.DecodeLength, T5's eval
# max_decode_length 128 for GLUE); predict mode decodes at most this many tokens.
decode=${DECODE:-128}

for shape in ${shapes//,/ }; do
	m=$tmp/models/$shape
	if [ "$shape" = t5-efficient-tiny ]; then
		go run ./scripts/load -write-model "$m" -spiece "$spiece"
	else
		"$t5zoo" catalog show "$shape" --json >"$tmp/$shape.json"
		"$py" "$hf" write-random --config "$tmp/$shape.json" --out "$m" --seed 42 --spiece "$spiece"
	fi
done

ours() { # ours SHAPE MODE ROUND
	local m=$tmp/models/$1 o=$tmp/out/$1/$2/$3 n
	n=$(quiet)
	"$py" "$hf" meter --out "$tmp/meter.json" -- \
		"$t5zoo" eval "$m" --task glue/sst2 --mode "$2" --data "$data" --out "$o" "${evalflags[@]}" >"$tmp/log" 2>&1 ||
		{ cat "$tmp/log" >&2; exit 1; }
	local res
	res=$(find "$o" -name "$2.json" | head -1)
	"$py" -c 'import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok", r
print(json.dumps({"kind": "speed", "impl": "t5zoo", "model": sys.argv[2], "mode": r["mode"], "round": int(sys.argv[3]),
    "noisy": sys.argv[4] == "1", "examples": r["examples"], "wall_seconds": r["wall_seconds"],
    "examples_per_second": r["examples_per_second"], "metrics": r["metrics"], "kernels": r.get("kernels"),
    "dtype": r["model"]["dtype"], "meter": json.load(open(sys.argv[5]))}))' "$res" "$1" "$3" "$n" "$tmp/meter.json" >>"$out"
	tail -1 "$out" >&2
}
theirs() { # theirs SHAPE MODE ROUND [LABEL THREADS [VAR=VALUE...]]: impl "hf", or "hf-LABEL"
	local m=$tmp/models/$1 n impl=hf th=$threads pred=$tmp/hf-$1-$2-$3.json
	if [ $# -gt 3 ]; then impl=hf-$4 th=$5 pred=$tmp/hf-$1-$2-$3-$4.json; fi
	local vars=("${@:6}")
	n=$(quiet)
	env "${vars[@]}" "$py" "$hf" meter --out "$tmp/meter.json" -- \
		"$py" "$hf" run --model "$m" --data "$data/glue/SST-2/dev.tsv" --mode "$2" --batch "$batch" --threads "$th" \
		--max-new-tokens "$decode" --out "$pred" 2>"$tmp/log" >"$tmp/hf.json" ||
		{ cat "$tmp/log" >&2; exit 1; }
	"$py" -c 'import json, sys
d = json.load(open(sys.argv[1]))
d.update(kind="speed", impl=sys.argv[6], model=sys.argv[2], round=int(sys.argv[3]), noisy=sys.argv[4] == "1",
         meter=json.load(open(sys.argv[5])), env=sys.argv[7:])
print(json.dumps(d))' "$tmp/hf.json" "$1" "$3" "$n" "$tmp/meter.json" "$impl" "${vars[@]}" >>"$out"
	tail -1 "$out" >&2
}
# HF is also timed in two other settings of the same 2 cores, because torch's default is fragile
# on small models: Debian's torch runs its element-wise ops on an OpenMP pool whose threads
# spin while they wait, and its matrix products in OpenBLAS's own pthread pool, so at
# set_num_threads(2) the two pools fight over the cores (and any other process makes it
# worse). "threads1" is set_num_threads(1) (OpenBLAS keeps its threads); "passive" is
# set_num_threads(2) with OMP_WAIT_POLICY=PASSIVE. The ratio is also given against the
# fastest of the three in each round. HF_VARIANTS=0 times the default only.
theirs_all() { # theirs_all SHAPE MODE ROUND
	theirs "$@"
	if [ "${HF_VARIANTS:-1}" = 1 ]; then
		theirs "$@" threads1 1
		theirs "$@" passive "$threads" OMP_WAIT_POLICY=PASSIVE
	fi
}
agree() { # agree SHAPE MODE ROUND: the two sides' predictions, example by example
	local ex
	ex=$(find "$tmp/out/$1/$2/$3" -name "$2.examples.jsonl" | head -1)
	"$py" "$hf" compare --hf "$tmp/hf-$1-$2-$3.json" --t5zoo "$ex" | "$py" -c 'import json, sys
d = json.loads(sys.stdin.read()); d.update(kind="agreement", model=sys.argv[1], round=int(sys.argv[2]))
print(json.dumps(d))' "$1" "$3" >>"$out"
	tail -1 "$out" >&2
}

echo "load average at the start: $(cat /proc/loadavg)" >&2
emit "{\"kind\": \"load\", \"when\": \"start\", \"loadavg\": \"$(cat /proc/loadavg)\", \"threads\": $threads, \"batch\": $batch, \"decode\": $decode}"
for r in $(seq 1 "$rounds"); do
	for shape in ${shapes//,/ }; do
		for mode in $modes; do
			echo "round $r/$rounds: $shape $mode" >&2
			if ((r % 2)); then ours "$shape" "$mode" "$r"; theirs_all "$shape" "$mode" "$r"
			else theirs_all "$shape" "$mode" "$r"; ours "$shape" "$mode" "$r"; fi
			agree "$shape" "$mode" "$r"
		done
	done
done
emit "{\"kind\": \"load\", \"when\": \"after SST-2\", \"loadavg\": \"$(cat /proc/loadavg)\"}"

# Greedy agreement where it means something: a random tied model repeats <pad> (its decoder
# start token) for the whole budget, so both sides print "" for every example. The golden
# untied v1.1 model of the repo's testdata (tiny-gated, HF-made) generates varied tokens.
if [ "${CHECK:-1}" = 1 ]; then
	cp -r testdata/golden/tiny-gated/checkpoint "$tmp/models/golden-tiny-gated"
	for mode in $modes; do
		echo "agreement check: golden-tiny-gated $mode" >&2
		ours golden-tiny-gated "$mode" 0; theirs golden-tiny-gated "$mode" 0; agree golden-tiny-gated "$mode" 0
	done
fi

if [ "${SWEEP:-1}" = 1 ]; then
	shape=${shapes%%,*}
	for mode in $sweep_modes; do
		echo "GLUE sweep: $shape $mode" >&2
		o=$tmp/sweep/$mode
		n=$(quiet)
		start=$(date +%s.%N)
		# Cells whose files are missing (MNLI, QQP here) fail and are recorded as failed.
		"$t5zoo" eval "$tmp/models/$shape" --task glue,glue/wnli --mode "$mode" --data "$data" --out "$o" "${evalflags[@]}" >"$tmp/log" 2>&1 ||
			echo "t5zoo eval --task glue --mode $mode exited $? (failed cells, see below)" >&2
		end=$(date +%s.%N)
		tail -5 "$tmp/log" >&2
		find "$o" -name "$mode.json" | sort | "$py" -c 'import json, sys
for p in sys.stdin.read().split():
    r = json.load(open(p))
    print(json.dumps({"kind": "sweep", "model": sys.argv[1], "mode": r["mode"], "task": r["task"], "status": r["status"],
        "error": r.get("error"), "examples": r.get("examples"), "wall_seconds": r.get("wall_seconds"),
        "examples_per_second": r.get("examples_per_second"), "metrics": r.get("metrics"), "noisy": sys.argv[2] == "1"}))
' "$shape" "$n" >>"$out"
		emit "{\"kind\": \"sweep_process\", \"model\": \"$shape\", \"mode\": \"$mode\", \"seconds\": $("$py" -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$start" "$end")}"
	done
fi
echo "load average at the end: $(cat /proc/loadavg)" >&2
emit "{\"kind\": \"load\", \"when\": \"end\", \"loadavg\": \"$(cat /proc/loadavg)\"}"
echo "results: $out" >&2
"$py" "$hf" summarize "$out"
