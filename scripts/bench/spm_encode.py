#!/usr/bin/env python3
"""Reference timing for the tokenizer benchmark: the sentencepiece C++ library (Debian's
python3-sentencepiece 0.1.97, the version that produced the golden) encoding the same text
with the same real T5 spiece.model as infer/tokenizer's BenchmarkEncode/EncodeLines.
Prints MB/s medians of repeated runs, input bytes as in the Go benchmark."""
import statistics
import sys
import time

import sentencepiece as spm

model, text_path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 15
sp = spm.SentencePieceProcessor(model_file=model)
text = open(text_path, encoding="utf-8").read()
size = len(text.encode("utf-8"))
lines = text.strip().split("\n")


def rate(fn):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return size / statistics.median(times) / 1e6


print(f"spm whole text: {rate(lambda: sp.encode(text)):.1f} MB/s")
print(f"spm line by line: {rate(lambda: [sp.encode(l) for l in lines]):.1f} MB/s")
