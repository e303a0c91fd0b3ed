#!/usr/bin/env python3
"""Summarizes the JSONL of scripts/bench/run.sh: medians over rounds, ratios ours / torch."""
import json
import statistics
import sys


def main(path):
    recs = [json.loads(l) for l in open(path) if l.strip()]
    goals(recs)
    recs = [r for r in recs if r.get("impl") != "goals"]
    print()
    rounds = sorted({r["round"] for r in recs})
    noisy = sum(1 for r in recs if r.get("noisy"))

    def series(pred, key):
        return [r[key] for r in recs if pred(r)]

    rows = []  # (workload, {impl: [values]})
    torch_enc = series(lambda r: r.get("impl") == "torch" and r["workload"] == "encoder", "median_ms")
    base_enc = series(lambda r: r.get("impl") == "go-base" and r["workload"] == "encoder", "median_ms")
    ours = lambda dt, b, L, key: series(lambda r: r.get("dtype") == dt and r["batch"] == b and r["input_len"] == L, key)
    rows.append(("encoder 8×128 (ms)", torch_enc, base_enc,
                 {dt: ours(dt, 8, 128, "encoder_ms") for dt in ("f32", "bf16", "int8")}))
    for b in (1, 8):
        t = series(lambda r: r.get("impl") == "torch" and r["workload"] == "decode" and r["batch"] == b, "median_ms_per_step")
        g = series(lambda r: r.get("impl") == "go-base" and r["workload"] == "decode" and r["batch"] == b, "median_ms_per_step")
        rows.append((f"decode batch {b}, 32 tokens from 64 (ms/token)", t, g,
                     {dt: ours(dt, b, 64, "decode_ms_per_token") for dt in ("f32", "bf16", "int8")}))

    def fmt(v):
        if not v:
            return "–"
        m = statistics.median(v)
        return f"{m:.3g} ({min(v):.3g}–{max(v):.3g})" if len(v) > 1 else f"{m:.3g}"

    def ratio(a, b):
        return f"{statistics.median(a) / statistics.median(b):.2f}×" if a and b else "–"

    print(f"{len(rounds)} rounds, {noisy} of {len(recs)} measurements started without a quiet window; "
          "median (min–max over rounds); ratio = ours / torch")
    print()
    print("| workload | torch 1.13.1 | pure-Go engine before | ours f32 | ours bf16 | ours int8 | before/torch | f32/torch | bf16/torch | int8/torch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, t, g, o in rows:
        print(f"| {name} | {fmt(t)} | {fmt(g)} | {fmt(o['f32'])} | {fmt(o['bf16'])} | {fmt(o['int8'])} | "
              f"{ratio(g, t)} | {ratio(o['f32'], t)} | {ratio(o['bf16'], t)} | {ratio(o['int8'], t)} |")
    print()
    # Token rate by weight type, batch 1: decoding alone (the steps) and with the input's
    # encoding spread over the 32 tokens; each round's ratio comes from the runs of that round,
    # so that the host's drift between rounds cancels.
    def per_round(dt, key):
        out = []
        for rnd in rounds:
            a = [r[key] for r in recs if r.get("dtype") == "f32" and r["batch"] == 1 and r["input_len"] == 64 and r["round"] == rnd]
            b = [r[key] for r in recs if r.get("dtype") == dt and r["batch"] == 1 and r["input_len"] == 64 and r["round"] == rnd]
            if a and b:
                out.append(a[0] / b[0])
        return out
    for dt in ("bf16", "int8"):
        st, tot = per_round(dt, "decode_step_ms"), per_round(dt, "decode_ms_per_token")
        if st:
            print(f"decode batch 1 token rate, {dt} / f32 (per-round ratios, median (min–max)): "
                  f"decoding {fmt(st)}×, with the input's encoding {fmt(tot)}×")
    mach = [r["machine"] for r in recs if "machine" in r]
    if mach:
        peak = [m["peak_gflops"] for m in mach]
        bw = [m["read_gbps"] for m in mach]
        print(f"machine (measured by each bench run): FMA peak {fmt(peak)} GFLOP/s, read bandwidth {fmt(bw)} GB/s")
        for dt in ("f32", "bf16", "int8"):
            rs = [r for r in recs if r.get("dtype") == dt and r["batch"] == 1 and r["input_len"] == 64]
            if rs:
                floor = [r["decode_step_weight_bytes"] / r["machine"]["read_gbps"] / 1e6 for r in rs]
                step = [r["decode_step_ms"] for r in rs]
                enc = [r["encoder_peak_fraction"] for r in recs if r.get("dtype") == dt and r["batch"] == 8 and r["input_len"] == 128]
                ratio_rss = [r["resident_ratio"] for r in rs]
                peak_rss = [(r["peak_rss_bytes"] - r["base_rss_bytes"]) / (r["weight_bytes"] + r["kv_cache_bytes"]) for r in rs]
                model_rss = [r["model_rss_bytes"] / r["weight_bytes"] for r in rs]
                print(f"{dt}: decode step {fmt(step)} ms, bandwidth floor (step weights / read bandwidth) {fmt(floor)} ms; "
                      f"encoder 8×128 at {fmt([100 * e for e in enc])} % of FMA peak; "
                      f"model RSS / weight bytes {fmt(model_rss)}, (run anon - base anon) / (weights + KV) {fmt(ratio_rss)}, "
                      f"(peak RSS - base RSS) / (weights + KV) {fmt(peak_rss)}")


def goals(recs):
    g = [r for r in recs if r.get("impl") == "goals"]
    if not g:
        return
    by = {}
    for r in g:
        by.setdefault(r["name"], []).append(r)
    med = lambda name, unit: statistics.median(r[unit] for r in by[name]) if name in by else None
    peak, read = med("peak", "GFLOP/s"), med("read", "GB/s")
    n = len(by.get("peak", []))
    print()
    print(f"kernels (BenchmarkGoals, 2 threads, median of {n}): FMA peak {peak:.0f} GFLOP/s, read bandwidth {read:.1f} GB/s")
    print()
    print("| kernel | measured (median, min–max) | vs limit |")
    print("|---|---|---|")
    for name in sorted(by):
        if name.startswith("sgemm"):
            v = [r["GFLOP/s"] for r in by[name]]
            print(f"| SGEMM (M,K,N)=({name.split('/')[1]}), hot packed weights | {statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f}) GFLOP/s | {100 * statistics.median(v) / peak:.0f}% of FMA peak |")
    for name in sorted(by):
        if name.startswith("gemv"):
            _, dt, m = name.split("/")
            v = [r["GB/s"] for r in by[name]]
            pct = [r["%read"] for r in by[name]]
            bw = [r["readGB/s"] for r in by[name]]
            print(f"| GEMV {dt} {m.replace('m', 'M=')}, weights from RAM (768×3072) | {statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f}) GB/s | "
                  f"{statistics.median(pct):.0f}% ({min(pct):.0f}–{max(pct):.0f}%) of the read bandwidth measured around it, {statistics.median(bw):.1f} ({min(bw):.1f}–{max(bw):.1f}) GB/s |")


if __name__ == "__main__":
    main(sys.argv[1])
