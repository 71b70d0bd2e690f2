#!/usr/bin/env python3
"""End-to-end runtime speed: prompt and decode tokens/s of .sqf files, measured in one run.

    python tools/bench_decode.py A.sqf B.sqf ... [--threads 2] [--prompt-tokens 64] [--decode-tokens 32] [--int8]
                                 [--kv-bits 4 [--kv-method uniform]]

Each file is loaded once and warmed up (one short generation, which also pulls the mapping
into the page cache); then a prompt of --prompt-tokens tokens is evaluated and --decode-tokens
tokens are generated greedily, best of --repeat runs. The first file is the baseline of the
"x" column (put the fp16 model first). With --int8, every file is measured a second time with
the runtime's int8 path (a no-op for unquantized linears); with --kv-bits, once more with a
quantized KV cache (the prompt is the context the decode attends to).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from sqllm.runtime import Model


def measure(path: Path, threads: int, prompt_tokens: int, decode_tokens: int, repeat: int,
            int8: bool, kv_bits: int, kv_method: str) -> tuple[float, float]:
    model = Model(path, threads=threads, n_ctx=prompt_tokens + decode_tokens + 8, int8=int8, kv_bits=kv_bits,
                  kv_method=kv_method)
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(3, min(model.vocab_size, 500), prompt_tokens)]
    model.reset()
    model.eval(ids[:8])  # warm-up: page in the weights
    best_prompt = best_decode = 0.0
    for _ in range(repeat):
        model.reset()
        t0 = time.perf_counter()
        logits = model.eval(ids)
        t1 = time.perf_counter()
        for _ in range(decode_tokens):
            logits = model.eval([int(np.argmax(logits))])
        t2 = time.perf_counter()
        best_prompt = max(best_prompt, prompt_tokens / (t1 - t0))
        best_decode = max(best_decode, decode_tokens / (t2 - t1))
    return best_prompt, best_decode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--int8", action="store_true", help="also measure each file with int8=True")
    ap.add_argument("--kv-bits", type=int, choices=[2, 3, 4],
                    help="also measure each file with a quantized KV cache of this width (the fp16 cache otherwise)")
    ap.add_argument("--kv-method", choices=["nuq", "uniform"], default="uniform",
                    help="for --kv-bits: uniform (default; runs on any file, with online key ranges) or nuq")
    args = ap.parse_args()
    variants = [(False, 0)] + ([(True, 0)] if args.int8 else []) + ([(False, args.kv_bits)] if args.kv_bits else [])
    print("| file | path | size (GiB) | prompt tokens/s | decode tokens/s | decode vs first |")
    print("|---|---|---|---|---|---|")
    base = None
    for f in args.files:
        for int8, kv_bits in variants:
            p, d = measure(f, args.threads, args.prompt_tokens, args.decode_tokens, args.repeat, int8, kv_bits,
                           args.kv_method)
            base = base or d
            path = ("int8" if int8 else "default") + (f", {args.kv_method} {kv_bits}-bit KV" if kv_bits else "")
            print(f"| {f.name} | {path} | {f.stat().st_size / 2**30:.2f} | {p:.2f} | {d:.2f} "
                  f"| {d / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
