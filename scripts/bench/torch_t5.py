#!/usr/bin/env python3
"""Plain-PyTorch T5 v1.0 forward for comparison benchmarks (see BENCHMARKS.md).

This is NOT Hugging Face transformers (it cannot be installed here: no PyPI). It is the same
math as transformers v4.30.2 modeling_t5.py for a relu, tied-embedding (v1.0) T5, written with
the same torch ops: T5LayerNorm (RMS, variance in float32), unscaled attention with the
relative position bias of each stack's layer 0 (bidirectional buckets in the encoder, causal in
the decoder, none in cross-attention), softmax in float32, relu FFN, d_model**-0.5 before the
tied LM head, a self-attention KV cache and cross-attention K/V computed once per request.
Weights are random (shape only matters for speed).

Workloads (timed with time.perf_counter, median of --repeat runs after one warm-up):
  encoder  the encoder stack on --enc-batch x --enc-len tokens (no padding)
  decode   greedy decoding of --new-tokens tokens from a --input-len-token input at each
           --batch: the encoder once, then one decoder step per token (argmax, no early stop);
           reported as total time / new tokens (ms per step)

Prints one JSON object per workload on stdout.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    # transformers v4.30.2 T5Attention._relative_position_bucket
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        torch.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    relative_position_if_large = torch.min(
        relative_position_if_large, torch.full_like(relative_position_if_large, num_buckets - 1)
    )
    relative_buckets += torch.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets


class T5:
    def __init__(self, d_model, d_ff, d_kv, heads, enc_layers, dec_layers, vocab, seed=0):
        g = torch.Generator().manual_seed(seed)
        inner = heads * d_kv
        self.d_model, self.d_kv, self.heads, self.inner = d_model, d_kv, heads, inner
        self.buckets, self.max_distance, self.eps = 32, 128, 1e-6

        def lin(out, inp):  # nn.Linear weight layout [out, in]
            return torch.randn(out, inp, generator=g) / math.sqrt(inp)

        def ln():
            return 0.5 + torch.rand(d_model, generator=g)

        def attn():
            return {"q": lin(inner, d_model), "k": lin(inner, d_model), "v": lin(inner, d_model), "o": lin(d_model, inner)}

        self.shared = torch.randn(vocab, d_model, generator=g)
        self.enc_bias = 0.5 * torch.randn(self.buckets, heads, generator=g)
        self.dec_bias = 0.5 * torch.randn(self.buckets, heads, generator=g)
        self.enc = [{"ln1": ln(), "sa": attn(), "ln2": ln(), "wi": lin(d_ff, d_model), "wo": lin(d_model, d_ff)} for _ in range(enc_layers)]
        self.enc_final = ln()
        self.dec = [{"ln1": ln(), "sa": attn(), "ln2": ln(), "ca": attn(), "ln3": ln(), "wi": lin(d_ff, d_model), "wo": lin(d_model, d_ff)} for _ in range(dec_layers)]
        self.dec_final = ln()

    def norm(self, w, h):  # T5LayerNorm
        variance = h.to(torch.float32).pow(2).mean(-1, keepdim=True)
        return w * (h * torch.rsqrt(variance + self.eps))

    def shape(self, x):  # (B, L, inner) -> (B, H, L, d_kv)
        return x.view(x.shape[0], -1, self.heads, self.d_kv).transpose(1, 2)

    def unshape(self, x):
        return x.transpose(1, 2).contiguous().view(x.shape[0], -1, self.inner)

    def position_bias(self, table, q_len, k_len, bidirectional, offset=0):
        ctx = torch.arange(offset, offset + q_len, dtype=torch.long)[:, None]
        mem = torch.arange(k_len, dtype=torch.long)[None, :]
        buckets = relative_position_bucket(mem - ctx, bidirectional, self.buckets, self.max_distance)
        return F.embedding(buckets, table).permute([2, 0, 1]).unsqueeze(0)  # (1, H, q, k)

    def attend(self, q, k, v, bias):
        scores = torch.matmul(q, k.transpose(3, 2))
        if bias is not None:
            scores = scores + bias
        w = F.softmax(scores.float(), dim=-1).type_as(scores)
        return torch.matmul(w, v)

    def encoder(self, ids):
        h = F.embedding(ids, self.shared)
        L = ids.shape[1]
        bias = self.position_bias(self.enc_bias, L, L, True)
        for l in self.enc:
            x = self.norm(l["ln1"], h)
            a = l["sa"]
            q, k, v = self.shape(F.linear(x, a["q"])), self.shape(F.linear(x, a["k"])), self.shape(F.linear(x, a["v"]))
            h = h + F.linear(self.unshape(self.attend(q, k, v, bias)), a["o"])
            x = self.norm(l["ln2"], h)
            h = h + F.linear(F.relu(F.linear(x, l["wi"])), l["wo"])
        return self.norm(self.enc_final, h)

    def decode_step(self, tok, pos, cache, cross):
        """One decoder step for a (B, 1) token batch at position pos; cache holds [k, v] per layer."""
        h = F.embedding(tok, self.shared)
        bias = self.position_bias(self.dec_bias, 1, pos + 1, False, offset=pos)
        for i, l in enumerate(self.dec):
            x = self.norm(l["ln1"], h)
            a = l["sa"]
            q = self.shape(F.linear(x, a["q"]))
            k, v = self.shape(F.linear(x, a["k"])), self.shape(F.linear(x, a["v"]))
            if cache[i] is not None:
                k = torch.cat([cache[i][0], k], dim=2)
                v = torch.cat([cache[i][1], v], dim=2)
            cache[i] = [k, v]
            h = h + F.linear(self.unshape(self.attend(q, k, v, bias)), a["o"])
            x = self.norm(l["ln2"], h)
            c = l["ca"]
            q = self.shape(F.linear(x, c["q"]))
            h = h + F.linear(self.unshape(self.attend(q, cross[i][0], cross[i][1], None)), c["o"])
            x = self.norm(l["ln3"], h)
            h = h + F.linear(F.relu(F.linear(x, l["wi"])), l["wo"])
        h = self.norm(self.dec_final, h) * (self.d_model ** -0.5)
        return F.linear(h, self.shared)  # tied LM head

    def generate(self, ids, new_tokens):
        enc = self.encoder(ids)
        cross = [(self.shape(F.linear(enc, l["ca"]["k"])), self.shape(F.linear(enc, l["ca"]["v"]))) for l in self.dec]
        cache = [None] * len(self.dec)
        tok = torch.zeros(ids.shape[0], 1, dtype=torch.long)  # decoder_start_token_id 0
        out = []
        for pos in range(new_tokens):
            logits = self.decode_step(tok, pos, cache, cross)
            tok = logits[:, -1, :].argmax(-1, keepdim=True)
            out.append(tok)
        return torch.cat(out, dim=1)


def timed(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--d-kv", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--enc-layers", type=int, default=4)
    p.add_argument("--dec-layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--enc-batch", type=int, default=8)
    p.add_argument("--enc-len", type=int, default=128)
    p.add_argument("--input-len", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--workload", choices=["all", "encoder", "decode"], default="all")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    m = T5(a.d_model, a.d_ff, a.d_kv, a.heads, a.enc_layers, a.dec_layers, a.vocab)
    g = torch.Generator().manual_seed(1)
    meta = {"impl": "torch", "torch": torch.__version__, "threads": torch.get_num_threads()}
    with torch.no_grad():
        if a.workload in ("all", "encoder"):
            ids = torch.randint(3, a.vocab, (a.enc_batch, a.enc_len), generator=g)
            t = timed(lambda: m.encoder(ids), a.repeat)
            print(json.dumps({**meta, "workload": "encoder", "batch": a.enc_batch, "len": a.enc_len,
                              "median_ms": 1e3 * statistics.median(t), "runs_ms": [1e3 * x for x in t]}), flush=True)
        if a.workload in ("all", "decode"):
            for b in a.batch:
                ids = torch.randint(3, a.vocab, (b, a.input_len), generator=g)
                t = timed(lambda: m.generate(ids, a.new_tokens), a.repeat)
                per = [1e3 * x / a.new_tokens for x in t]
                print(json.dumps({**meta, "workload": "decode", "batch": b, "input_len": a.input_len,
                                  "new_tokens": a.new_tokens, "median_ms_per_step": statistics.median(per),
                                  "runs_ms_per_step": per}), flush=True)


if __name__ == "__main__":
    main()
