#!/usr/bin/env python3
"""Hugging Face transformers' T5 training step, the same-run comparison of `t5zoo bench --train`
(see BENCHMARKS.md, "Fine-tuning").

One step = forward + backward + optimizer update of T5ForConditionalGeneration (transformers
v4.30.2, torch CPU, float32) on a random batch: --batch examples of --input-len input tokens and
--target-len label tokens, every token a label (no padding), dropout --dropout, HF's Adafactor
with T5's fine-tuning settings (lr 1e-3, scale_parameter/relative_step/warmup_init False) or
torch's AdamW. The model is HF's own initialisation of the shape in --config (an HF config JSON,
e.g. `t5zoo catalog show NAME --json`'s config). Timed with time.perf_counter: --warmup steps,
then --steps timed steps; prints one JSON object: the median and all step times, tokens/s,
peak RSS (ru_maxrss) and the memory of params, grads and optimizer state.
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration
from transformers.optimization import Adafactor


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="HF config JSON file")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--target-len", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--optimizer", choices=["adafactor", "adamw"], default="adafactor")
    p.add_argument("--lora", action="store_true", help="LoRA r 8 alpha 8 on q and v (hand-written like PEFT's defaults; PEFT is not installed)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.config) as f:
        cfg = json.load(f)
    cfg = cfg.get("config", cfg)
    cfg["dropout_rate"] = a.dropout
    model = T5ForConditionalGeneration(T5Config(**cfg))
    model.train()
    params = [q for q in model.parameters()]
    if a.lora:
        params = add_lora(model, r=8, alpha=8)
    if a.optimizer == "adafactor":
        opt = Adafactor(params, lr=1e-3, scale_parameter=False, relative_step=False, warmup_init=False)
    else:
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(3, min(V, 32000), (a.batch, a.input_len), generator=g)
    labels = torch.randint(3, min(V, 32000), (a.batch, a.target_len), generator=g)
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
        dt = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(dt)
    n_params = sum(q.numel() for q in params)
    state = 0
    for st in opt.state.values():
        for v in st.values():
            if torch.is_tensor(v):
                state += v.numel() * v.element_size()
    med = statistics.median(times)
    print(json.dumps({
        "impl": "hf", "optimizer": a.optimizer, "lora": a.lora, "threads": a.threads,
        "batch": a.batch, "input_len": a.input_len, "target_len": a.target_len, "dropout": a.dropout,
        "step_s_median": med, "step_s": times,
        "tokens_per_s": a.batch * (a.input_len + a.target_len) / med,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "trainable_params": n_params, "param_bytes": 4 * sum(q.numel() for q in model.parameters()),
        "grad_bytes": 4 * n_params, "optimizer_state_bytes": state,
        "loss_last": float(out.loss),
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
    }))


class LoRALinear(torch.nn.Module):
    """W·x + (alpha/r)·B·(A·x) with A kaiming-uniform and B zero, as PEFT's LoRA Linear."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        self.lora_A = torch.nn.Linear(base.in_features, r, bias=False)
        self.lora_B = torch.nn.Linear(r, base.out_features, bias=False)
        torch.nn.init.kaiming_uniform_(self.lora_A.weight, a=5 ** 0.5)
        torch.nn.init.zeros_(self.lora_B.weight)
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale


def add_lora(model, r, alpha):
    for q in model.parameters():
        q.requires_grad_(False)
    trainable = []
    for name, mod in list(model.named_modules()):
        for attr in ("q", "v"):
            lin = getattr(mod, attr, None)
            if isinstance(lin, torch.nn.Linear) and type(mod).__name__ == "T5Attention":
                l = LoRALinear(lin, r, alpha)
                setattr(mod, attr, l)
                trainable += [l.lora_A.weight, l.lora_B.weight]
    return trainable


if __name__ == "__main__":
    main()
