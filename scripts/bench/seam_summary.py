#!/usr/bin/env python3
"""Summarizes a run of scripts/bench/seam.sh: medians over the rounds of each `t5zoo bench`
figure for the old and the new engine, new / old, flagged above the threshold (1.03); the
decoder step's allocations of both trees (BenchmarkDecodeStep -benchmem, TestStepAllocs).
Prints markdown tables and writes everything as JSON to --out."""
import argparse
import json
import os
import re
import statistics

FIGURES = ("encoder_ms", "decode_ms_per_token", "decode_step_ms")
BENCH_LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$")
ALLOC_SLACK = 0.5  # allocations per step that count as more
STEP_ALLOCS = re.compile(r"([\d.]+) allocations per step")


def spread(v):
    """(max - min) / median, the rounds' disagreement: the noise the ratio has to beat."""
    return (max(v) - min(v)) / statistics.median(v) if len(v) > 1 and statistics.median(v) else 0.0


def speed(runs, threshold):
    keys = sorted({(r["shape"], r["dtype"], r["batch"]) for r in runs},
                  key=lambda k: (k[0] != "t5-efficient-tiny-kv32", k[0], ("f32", "bf16", "int8").index(k[1])
                                 if k[1] in ("f32", "bf16", "int8") else 9, k[2]))
    rows = []
    for shape, dt, b in keys:
        for fig in FIGURES:
            vals = {}
            for side in ("old", "new"):
                sel = sorted((r for r in runs if r["side"] == side and (r["shape"], r["dtype"], r["batch"]) == (shape, dt, b)
                              and r.get(fig) is not None), key=lambda r: r["round"])
                vals[side] = [r[fig] for r in sel]
            if not vals["old"] or not vals["new"]:
                rows.append(dict(shape=shape, dtype=dt, batch=b, figure=fig, old=vals["old"], new=vals["new"],
                                 missing=[s for s in ("old", "new") if not vals[s]]))
                continue
            mo, mn = statistics.median(vals["old"]), statistics.median(vals["new"])
            ratio = mn / mo if mo else float("nan")
            rows.append(dict(shape=shape, dtype=dt, batch=b, figure=fig, old=vals["old"], new=vals["new"],
                             old_median=mo, new_median=mn, ratio=ratio, ratio_min=min(vals["new"]) / min(vals["old"]),
                             spread_old=spread(vals["old"]),
                             spread_new=spread(vals["new"]), slower=ratio > threshold))
    return rows


def parse_allocs(text):
    """Benchmark lines' metrics by name (the -N GOMAXPROCS suffix dropped), TestStepAllocs' count."""
    benches = {}
    for line in text.splitlines():
        m = BENCH_LINE.match(line.strip())
        if m:
            metrics = {u: float(v) for v, u in re.findall(r"([-\d.e+]+) (\S+)", m.group(3))}
            benches[m.group(1)] = dict(n=int(m.group(2)), **metrics)
    m = STEP_ALLOCS.search(text)
    test = float(m.group(1)) if m else None
    status = "ok"
    if "--- FAIL" in text or "FAIL\t" in text or "(go test exited" in text:
        status = "failed"
    elif "[build failed]" in text or "setup failed" in text:
        status = "build failed"
    return benches, test, status


def allocs(d):
    out = {}
    for side in ("old", "new"):
        path = os.path.join(d, side + ".allocs.txt")
        text = open(path).read() if os.path.exists(path) else ""
        benches, test, status = parse_allocs(text)
        steps = None
        sp = os.path.join(d, side + ".steps")
        if os.path.exists(sp):
            m = re.search(r"(\d+)", open(sp).read())
            steps = int(m.group(1)) if m else None
        out[side] = dict(benchmarks=benches, test_step_allocs=test, steps_per_op=steps, status=status if text else "not run",
                         tail=text.splitlines()[-15:] if status != "ok" else [])
    names = sorted(set(out["old"]["benchmarks"]) | set(out["new"]["benchmarks"]))
    rows = []
    for n in names:
        row = dict(benchmark=n)
        for side in ("old", "new"):
            bm = out[side]["benchmarks"].get(n)
            row[side + "_allocs_per_op"] = bm.get("allocs/op") if bm else None
            row[side + "_bytes_per_op"] = bm.get("B/op") if bm else None
            row[side + "_ms_per_step"] = bm.get("ms/step") if bm else None
            st = out[side]["steps_per_op"]
            row[side + "_allocs_per_step"] = bm["allocs/op"] / st if bm and st and "allocs/op" in bm else None
        # More means at least one more allocation per step: the key/value slices' growth
        # now and then moves the per-op count by a few between runs of the same tree.
        o, n_ = row["old_allocs_per_op"], row["new_allocs_per_op"]
        if row["old_allocs_per_step"] is not None and row["new_allocs_per_step"] is not None:
            row["more"] = row["new_allocs_per_step"] - row["old_allocs_per_step"] >= ALLOC_SLACK
        else:  # steps per op unknown: more than 1% more per op
            row["more"] = o is not None and n_ is not None and n_ > 1.01 * o
        rows.append(row)
    return out, rows


def fmt(v, p=None):
    """v with p decimals; by default 3, 1 from 100 up."""
    if v is None:
        return "—"
    if not isinstance(v, float):
        return str(v)
    if p is None:
        p = 1 if abs(v) >= 100 else 3
    return f"{v:.{p}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--old", default="")
    ap.add_argument("--new", default="")
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--load", default="")
    ap.add_argument("--settings", default="")
    ap.add_argument("--threshold", type=float, default=1.03)
    a = ap.parse_args()

    runs = [json.loads(l) for l in open(os.path.join(a.dir, "runs.jsonl")) if l.strip()]
    rows = speed(runs, a.threshold)
    alloc_sides, alloc_rows = allocs(a.dir)
    noisy = sorted({(r["round"], r["shape"], r["dtype"]) for r in runs if r.get("noisy")})
    mach = next((r["machine"] for r in runs if r.get("machine")), {})

    print(f"old {a.old} against new {a.new}; {a.settings}")
    print(f"machine: {mach.get('kernels', '?')}, {mach.get('threads', '?')} threads; load average {a.load}; "
          f"{a.seconds} s; {len(noisy)} old/new pairs after no quiet window")
    print()
    # new/old of the rounds' minimums beside that of the medians: on a loaded machine the
    # fastest round is the one least disturbed.
    print("| shape | dtype | batch | figure | old | new | new/old | new/old (min) | spread old | spread new | |")
    print("|---|---|--:|---|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        if "missing" in r:
            print(f"| {r['shape']} | {r['dtype']} | {r['batch']} | {r['figure']} | | | | | | | missing in {', '.join(r['missing'])} |")
            continue
        flag = f"**> {a.threshold:.2f}**" if r["slower"] else ""
        print(f"| {r['shape']} | {r['dtype']} | {r['batch']} | {r['figure']} | {fmt(r['old_median'])} | {fmt(r['new_median'])} "
              f"| {r['ratio']:.3f} | {r['ratio_min']:.3f} | {100 * r['spread_old']:.1f}% | {100 * r['spread_new']:.1f}% | {flag} |")
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    slower = [r for r in rows if r.get("slower")]
    print()
    if ratios:
        print(f"new/old: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}–{max(ratios):.3f}; "
              f"rounds' spread (median of figures): old {100 * statistics.median(r['spread_old'] for r in rows if 'ratio' in r):.1f}%, "
              f"new {100 * statistics.median(r['spread_new'] for r in rows if 'ratio' in r):.1f}%")
    print(f"slower than {a.threshold:.2f}×: {len(slower)} of {len(ratios)} figures"
          + "".join(f"\n  {r['shape']} {r['dtype']} b{r['batch']} {r['figure']}: {r['ratio']:.3f}" for r in slower))

    print()
    for side in ("old", "new"):
        s = alloc_sides[side]
        print(f"allocations {side}: {s['status']}; TestStepAllocs: "
              f"{fmt(s['test_step_allocs'], 1) if s['test_step_allocs'] is not None else 'absent or skipped'} per step; "
              f"BenchmarkDecodeStep steps per op: {s['steps_per_op'] or '?'}")
        for line in s["tail"]:
            print("    " + line)
    if alloc_rows:
        print()
        print("(ms/step here is one short run each, not compared: the speed table above is the comparison)")
        print("| benchmark | old allocs/op | new allocs/op | old allocs/step | new allocs/step | old B/op | new B/op | old ms/step | new ms/step | |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for r in alloc_rows:
            print(f"| {r['benchmark']} | {fmt(r['old_allocs_per_op'], 0)} | {fmt(r['new_allocs_per_op'], 0)} "
                  f"| {fmt(r['old_allocs_per_step'], 2)} | {fmt(r['new_allocs_per_step'], 2)} "
                  f"| {fmt(r['old_bytes_per_op'], 0)} | {fmt(r['new_bytes_per_op'], 0)} "
                  f"| {fmt(r['old_ms_per_step'])} | {fmt(r['new_ms_per_step'])} | {'**more**' if r['more'] else ''} |")
    missing_new = [r["benchmark"] for r in alloc_rows if r["new_allocs_per_op"] is None]
    if missing_new:
        print(f"absent in new: {', '.join(missing_new)}")
    more = [r["benchmark"] for r in alloc_rows if r["more"]]
    to, tn = alloc_sides["old"]["test_step_allocs"], alloc_sides["new"]["test_step_allocs"]
    if to is not None and tn is not None and tn - to >= ALLOC_SLACK:
        more.append("TestStepAllocs")
    unknown = [f"{side}: {alloc_sides[side]['status']}" for side in ("old", "new") if alloc_sides[side]["status"] != "ok"]
    if missing_new or not alloc_rows:
        unknown.append("new lacks " + (", ".join(missing_new) if missing_new else "BenchmarkDecodeStep"))
    if more:
        print(f"more allocations in new: {', '.join(more)}")
    elif unknown:
        print(f"more allocations in new: undetermined ({'; '.join(unknown)})")
    else:
        print("more allocations in new: none")

    with open(a.out, "w") as f:
        json.dump(dict(old=a.old, new=a.new, settings=a.settings, seconds=a.seconds, load=a.load, machine=mach,
                       threshold=a.threshold, figures=rows, slower=len(slower), allocations=alloc_rows,
                       allocation_runs=alloc_sides, more_allocations=more,
                       noisy_pairs=[dict(round=r, shape=s, dtype=d) for r, s, d in noisy], runs=runs), f, indent=1)


if __name__ == "__main__":
    main()
