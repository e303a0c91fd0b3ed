#!/usr/bin/env python3
"""SST-2 evaluation with Hugging Face transformers, for the same-run comparison with `t5zoo eval`.

scripts/bench/eval.sh drives it; see BENCHMARKS.md, section "Evaluation (evaluate)". Needs
torch and transformers 4.30.2 (on a networked machine `pip install torch transformers==4.30.2
sentencepiece`; here Debian's python3-torch and the transformers sources on PYTHONPATH).

Subcommands:
  run           time rank or predict mode on SST-2 dev; one JSON summary line on stdout, the
                predictions (and rank scores) in --out
  compare       agreement of these predictions with t5zoo's per-example JSONL
  write-random  an HF-initialised random checkpoint of any config, in the layout t5zoo reads
                (config.json, model.safetensors, spiece.model)
  summarize     medians and ratios of the JSON lines eval.sh collected
  meter         run a command; how many cores the rest of the machine kept busy meanwhile

What `run` does, as T5 and `t5zoo eval` do it:
  inputs     "sst2 sentence: " + sentence (the TSV read as TFDS reads it: tab-separated, no
             quoting), tokenized by T5Tokenizer from the checkpoint's spiece.model (</s>
             appended, trimmed to --max-input-tokens with </s> kept), in file order, batches of
             --batch padded to their longest input
  rank       one encoder pass per batch (model.encoder), shared by both choices "negative" and
             "positive" (each + </s>); for each choice the decoder with those labels; the sum
             of the labels' log-probabilities; the first maximum wins
  predict    model.generate greedy (num_beams=1, do_sample=False, max_new_tokens=--max-new-tokens),
             decoded with skip_special_tokens=True
The wall time covers tokenization, the model and decoding of every batch, not loading the
model (t5zoo's wall_seconds covers the same span).
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import struct
import sys
import time

SST2_CHOICES = ["negative", "positive"]  # T5 glue_sst2_v002 label names, index = label


def read_sst2(path):
    """Rows of SST-2 dev.tsv as TFDS reads them: csv.DictReader, tab, QUOTE_NONE."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if None not in r.values()]
    return [{"input": "sst2 sentence: " + r["sentence"], "label": int(r["label"])} for r in rows]


# safetensors, read and written here: the real package is a Rust extension that may be missing.
_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32"}


def load_safetensors(path):
    import torch

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        dtype = getattr(torch, _ST_DTYPES[t["dtype"]])
        buf = bytearray(data[base + lo : base + hi])
        out[name] = torch.frombuffer(buf, dtype=dtype).reshape(t["shape"]).clone() if hi > lo else torch.zeros(t["shape"], dtype=dtype)
    return out


def save_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().to("cpu").float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_model(model_dir):
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    config = T5Config.from_pretrained(model_dir)
    model = T5ForConditionalGeneration(config)
    st = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(st):
        state = load_safetensors(st)
    else:
        state = torch.load(os.path.join(model_dir, "pytorch_model.bin"), map_location="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    if config.tie_word_embeddings:
        tied.add("lm_head.weight")
    if set(missing) - tied or unexpected:
        sys.exit(f"eval_hf: {model_dir}: missing weights {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    model.eval()
    tok = T5Tokenizer(os.path.join(model_dir, "spiece.model"))
    return model, tok


def encode_inputs(tok, texts, max_input_tokens):
    return tok(texts, padding=True, truncation=max_input_tokens > 0, max_length=max_input_tokens or None, return_tensors="pt")


def rank_batch(model, tok, texts, choice_ids, max_input_tokens):
    """log p(choice | input) for every choice of every text; the encoder once per batch."""
    import torch

    enc = encode_inputs(tok, texts, max_input_tokens)
    enc_out = model.encoder(input_ids=enc.input_ids, attention_mask=enc.attention_mask, return_dict=True)
    scores = []
    for ids in choice_ids:
        labels = torch.tensor([ids] * len(texts), dtype=torch.long)
        logits = model(encoder_outputs=enc_out, attention_mask=enc.attention_mask, labels=labels, return_dict=True).logits
        lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        scores.append(lp.double().sum(-1))
    return torch.stack(scores, dim=1).tolist()


def predict_batch(model, tok, texts, max_new_tokens, max_input_tokens):
    enc = encode_inputs(tok, texts, max_input_tokens)
    out = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, max_new_tokens=max_new_tokens,
                         num_beams=1, do_sample=False)
    gen = out[:, 1:]  # drop the decoder start token
    # Tokens each sequence decoded: up to and including its </s>, or the whole budget.
    eos = tok.eos_token_id
    counts = []
    for row in gen.tolist():
        counts.append(row.index(eos) + 1 if eos in row else len(row))
    return tok.batch_decode(out, skip_special_tokens=True), counts


def cmd_run(a):
    import torch
    import transformers

    torch.set_num_threads(a.threads)
    exs = read_sst2(a.data)
    if a.limit > 0:
        exs = exs[: a.limit]
    t0 = time.perf_counter()
    model, tok = load_model(a.model)
    load_s = time.perf_counter() - t0
    choice_ids = [tok(c).input_ids for c in SST2_CHOICES]
    preds, scores, tokens = [], [], []
    with torch.inference_mode():
        start = time.perf_counter()
        for lo in range(0, len(exs), a.batch):
            texts = [e["input"] for e in exs[lo : lo + a.batch]]
            if a.mode == "rank":
                for sc in rank_batch(model, tok, texts, choice_ids, a.max_input_tokens):
                    best = 0
                    for j, v in enumerate(sc):
                        if v > sc[best]:
                            best = j
                    preds.append(SST2_CHOICES[best])
                    scores.append(sc)
            else:
                texts_out, counts = predict_batch(model, tok, texts, a.max_new_tokens, a.max_input_tokens)
                preds.extend(texts_out)
                tokens.extend(counts)
        wall = time.perf_counter() - start
    correct = sum(p == SST2_CHOICES[e["label"]] for p, e in zip(preds, exs))
    summary = {
        "impl": "hf", "mode": a.mode, "examples": len(exs), "wall_seconds": wall,
        "examples_per_second": len(exs) / wall, "load_seconds": load_s, "accuracy": 100 * correct / len(exs),
        "batch": a.batch, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if a.mode == "predict":
        summary.update(max_new_tokens=a.max_new_tokens, generated_tokens=sum(tokens),
                       full_budget=sum(n == a.max_new_tokens for n in tokens))
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({**summary, "predictions": preds, "scores": scores or None, "tokens": tokens or None}, f, ensure_ascii=False)
    print(json.dumps(summary), flush=True)


def cmd_compare(a):
    """Agreement of HF's predictions (run --out) with t5zoo's examples JSONL, same order."""
    with open(a.hf, encoding="utf-8") as f:
        hf = json.load(f)
    with open(a.t5zoo, encoding="utf-8") as f:
        ours = [json.loads(line) for line in f if line.strip()]
    if len(ours) != len(hf["predictions"]):
        sys.exit(f"eval_hf: compare: {len(ours)} t5zoo examples, {len(hf['predictions'])} HF predictions")
    same = [o["prediction"] == p for o, p in zip(ours, hf["predictions"])]
    out = {"mode": hf["mode"], "examples": len(ours), "agree": sum(same), "agreement": sum(same) / len(ours),
           "first_differences": [{"index": i, "t5zoo": o["prediction"], "hf": p}
                                 for i, (o, p, s) in enumerate(zip(ours, hf["predictions"], same)) if not s][:5]}
    if hf.get("scores"):
        d = [abs(x - y) for o, s in zip(ours, hf["scores"]) for x, y in zip(o["scores"], s)]
        out["max_abs_score_diff"] = max(d)
        # How close the two choices are where the sides disagree: a near-tie or a real bug.
        out["margins_where_different"] = [abs(s[0] - s[1]) for s, ok in zip(hf["scores"], same) if not ok][:10]
    print(json.dumps(out), flush=True)


def cmd_write_random(a):
    """HF's own initialisation (T5PreTrainedModel._init_weights) for a config; tensors named as t5zoo writes them."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    with open(a.config, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg = cfg.get("config", cfg)  # `t5zoo catalog show --json` nests it
    torch.manual_seed(a.seed)
    model = T5ForConditionalGeneration(T5Config(**cfg))
    skip = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    if cfg.get("tie_word_embeddings", True):
        skip.add("lm_head.weight")
    os.makedirs(a.out, exist_ok=True)
    save_safetensors(os.path.join(a.out, "model.safetensors"), {k: v for k, v in model.state_dict().items() if k not in skip})
    with open(os.path.join(a.out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    shutil.copyfile(a.spiece, os.path.join(a.out, "spiece.model"))


def _cpu_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]  # total, idle + iowait


def cmd_meter(a):
    """Runs a command and reports how busy the machine was meanwhile without it: the CPU the
    whole machine used less the command's own (its children's rusage), over wall × cores."""
    import resource
    import subprocess

    hz = os.sysconf("SC_CLK_TCK")
    t0, i0 = _cpu_jiffies()
    w0 = time.perf_counter()
    rc = subprocess.call(a.command)
    wall = time.perf_counter() - w0
    t1, i1 = _cpu_jiffies()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = ru.ru_utime + ru.ru_stime
    busy = ((t1 - t0) - (i1 - i0)) / hz
    cores = os.cpu_count() or 1
    with open(a.out, "w") as f:
        json.dump({"wall_s": wall, "own_cpu_s": own, "others_cores": max(0.0, busy - own) / wall,
                   "cores": cores, "loadavg_after": open("/proc/loadavg").read().split()[0]}, f)
    sys.exit(rc)


def cmd_summarize(a):
    """Medians over rounds of eval.sh's JSON lines, and the ratios t5zoo / HF per round."""
    with open(a.jsonl, encoding="utf-8") as f:
        recs = [json.loads(line) for line in f if line.strip()]
    rows, others = {}, {}
    for r in recs:
        if r.get("kind") == "speed":
            rows.setdefault((r["model"], r["mode"]), {}).setdefault(r["impl"], {})[r["round"]] = r["examples_per_second"]
            if "meter" in r:
                others.setdefault((r["model"], r["mode"]), []).append(r["meter"]["others_cores"])

    def med(xs):
        xs = list(xs)
        return f"{statistics.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})" if xs else "-"

    def ratio(ours, theirs):
        rs = [ours[k] / theirs[k] for k in sorted(set(ours) & set(theirs))]
        return (f"**{statistics.median(rs):.2f}×** ({min(rs):.2f}–{max(rs):.2f})" if rs else "-"), len(rs)

    print("Medians (min–max) over rounds; ratios are medians of the per-round ratios t5zoo ÷ HF. "
          "\"HF best\" is, per round, the faster of HF's thread settings.")
    print("| model | mode | t5zoo examples/s | HF examples/s (same threads) | others | t5zoo / HF | t5zoo / HF best | rounds | others' cores busy during the runs (mean, max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (model, mode), d in sorted(rows.items()):
        ours, hf = d.get("t5zoo", {}), d.get("hf", {})
        alts = {k: v for k, v in d.items() if k.startswith("hf-")}
        best = {k: max([hf[k]] + [v[k] for v in alts.values() if k in v]) for k in hf}
        alt_s = "; ".join(f"{k}: {med(v.values())}" for k, v in sorted(alts.items())) or "-"
        r1, n = ratio(ours, hf)
        r2, _ = ratio(ours, best)
        ot = others.get((model, mode), [])
        ots = f"{statistics.mean(ot):.2f}, {max(ot):.2f}" if ot else "-"
        print(f"| {model} | {mode} | {med(ours.values())} | {med(hf.values())} | {alt_s} | {r1} | {r2} | {n} | {ots} |")
    for r in recs:
        if r.get("kind") == "agreement":
            extra = f", max |Δ log p| {r['max_abs_score_diff']:.2e}" if "max_abs_score_diff" in r else ""
            print(f"agreement {r['model']} {r['mode']} round {r['round']}: {r['agree']}/{r['examples']}{extra}")
    for r in recs:
        if r.get("kind") in ("load", "sweep_process"):
            print(json.dumps(r))
    sweep = [r for r in recs if r.get("kind") == "sweep"]
    for mode in sorted({r["mode"] for r in sweep}):
        cells = [r for r in sweep if r["mode"] == mode]
        print(f"\nGLUE sweep, {cells[0]['model']}, {mode} mode")
        print("| task | examples | wall (s) | examples/s | s per 1,000 examples |")
        print("|---|---|---|---|---|")
        total = 0.0
        for r in cells:
            if r["status"] != "ok":
                print(f"| {r['task']} | {r['status']}: {(r.get('error') or '')[:80]} | | | |")
                continue
            total += r["wall_seconds"]
            print(f"| {r['task']} | {r['examples']:,} | {r['wall_seconds']:.1f} | {r['examples_per_second']:.1f} | "
                  f"{1000 * r['wall_seconds'] / r['examples']:.1f} |")
        # MNLI and QQP: their official dev sizes × the per-example cost of the measured
        # sentence-pair tasks with 2–3 choices (an estimate; their files are not here).
        pairs = [r for r in cells if r["status"] == "ok" and r["task"].split("/")[-1] in ("mrpc", "qnli", "rte", "wnli")]
        if pairs:
            per = sum(r["wall_seconds"] for r in pairs) / sum(r["examples"] for r in pairs)
            est = 0.0
            for name, n in (("glue/mnli_matched + mismatched", 9815 + 9832), ("glue/qqp", 40430)):
                est += n * per
                print(f"| {name} (estimate) | {n:,} | ≈{n * per:.0f} | ≈{1 / per:.1f} | {1000 * per:.1f} |")
            print(f"| **all of GLUE** | | **{total:.0f} measured + ≈{est:.0f} estimated = ≈{total + est:.0f}** | | |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", required=True, help="checkpoint dir: config.json, model.safetensors or pytorch_model.bin, spiece.model")
    r.add_argument("--data", required=True, help="SST-2 dev.tsv")
    r.add_argument("--mode", choices=["rank", "predict"], required=True)
    r.add_argument("--batch", type=int, default=32, help="examples per batch (t5zoo eval's default)")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--max-new-tokens", type=int, default=128, help="predict mode's decode budget (T5's eval: 128)")
    r.add_argument("--max-input-tokens", type=int, default=512)
    r.add_argument("--limit", type=int, default=0, help="first N examples only (0: all)")
    r.add_argument("--out", help="write the predictions here (JSON)")
    c = sub.add_parser("compare")
    c.add_argument("--hf", required=True, help="run --out file")
    c.add_argument("--t5zoo", required=True, help="t5zoo eval's <mode>.examples.jsonl")
    w = sub.add_parser("write-random")
    w.add_argument("--config", required=True, help="HF config JSON (or `t5zoo catalog show NAME --json`)")
    w.add_argument("--out", required=True)
    w.add_argument("--seed", type=int, default=42)
    w.add_argument("--spiece", required=True, help="the SentencePiece model to copy")
    s = sub.add_parser("summarize")
    s.add_argument("jsonl")
    m = sub.add_parser("meter")
    m.add_argument("--out", required=True, help="write the JSON here")
    m.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    a = p.parse_args()
    if a.cmd == "meter" and a.command[:1] == ["--"]:
        a.command = a.command[1:]
    cmds = {"run": cmd_run, "compare": cmd_compare, "write-random": cmd_write_random, "summarize": cmd_summarize,
            "meter": cmd_meter}
    cmds[a.cmd](a)


if __name__ == "__main__":
    main()
