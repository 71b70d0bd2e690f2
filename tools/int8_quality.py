#!/usr/bin/env python3
"""Perplexity of .sqf files on the exact fp32 path (`Model(exact=True)`), the default path (prompt
batches as the integer GEMM where the CPU has it), the default path fed one token at a time
(`n_batch=1`: the kernels of decoding, lut_matvec_w8a16 where the CPU has it) and the int8 path
(`Model(int8=True)`), on TinyStories and WikiText-2 validation text, printed as a markdown table.

    python tools/int8_quality.py A.sqf B.sqf ... [--windows 40] [--ctx 512] [--threads 2]

All paths score the same windows (non-overlapping, BOS + ctx-1 tokens, as `sqrun --perplexity`).
"""

import argparse
from pathlib import Path

from sqllm.runtime import Model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEXTS = {"TinyStories": DATA / "tinystories_valid.txt", "WikiText-2": DATA / "wikitext2_valid.txt"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--windows", type=int, default=40, help="windows scored per text")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    texts = {name: path.read_text(encoding="utf-8") for name, path in TEXTS.items()}
    print("| file | text | exact PPL | default PPL | default / exact - 1 | default, 1 token at a time | "
          "1 token / exact - 1 | int8 PPL | int8 / exact - 1 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    paths = {"exact": dict(exact=True), "default": {}, "one": dict(n_batch=1), "int8": dict(int8=True)}
    for f in args.files:
        for name, text in texts.items():
            ppl = {p: Model(f, threads=args.threads, **kw).perplexity(text, ctx=args.ctx, max_windows=args.windows)
                   for p, kw in paths.items()}
            exact = ppl["exact"]
            print(f"| {f.name} | {name} | {exact:.4f} | {ppl['default']:.4f} | {ppl['default'] / exact - 1:+.3%} | "
                  f"{ppl['one']:.4f} | {ppl['one'] / exact - 1:+.3%} | "
                  f"{ppl['int8']:.4f} | {ppl['int8'] / exact - 1:+.3%} |", flush=True)


if __name__ == "__main__":
    main()
