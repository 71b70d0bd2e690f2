#!/usr/bin/env python3
"""Regenerate the KV-cache tables of docs/RESULTS.md: KVQuant against the fp16 cache.

    python tools/kv_report.py --model stories260K                      # whole TinyStories text
    python tools/kv_report.py --model dev --windows 4 --long-ctx 2048   # Qwen2.5-Coder-0.5B, WikiText-2

The model is converted with fp16 weights (`--keep '*'`, so that only the cache differs) and
KV calibration on tinystories_train.txt (never the evaluation text), and once more without KV
calibration for the uniform cache with online key ranges. Every cache setting runs through the
runtime: perplexity at ctx 512 and at --long-ctx, the bytes per
token the cache holds (measured), the longest context a RAM budget holds, and decode tokens/s
after a context of --decode-ctx tokens. The table replaces the block between the model's
markers in docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DATA, ROOT, model_dir
CALIBRATION = DATA / "tinystories_train.txt"
# (label, bits, method, file): "kv" has the KV calibration, "plain" none (uniform then sets the
# key ranges from the sequence: SPEC §7, online key ranges).
SETTINGS = [("fp16 cache", 0, "nuq", "kv"), ("nuq4, 1% outliers", 4, "nuq", "kv"), ("nuq3, 1% outliers", 3, "nuq", "kv"),
            ("nuq2, 1% outliers", 2, "nuq", "kv"), ("int4, 1% outliers", 4, "uniform", "kv"),
            ("int3, 1% outliers", 3, "uniform", "kv"), ("int2, 1% outliers", 2, "uniform", "kv"),
            ("int4, online key ranges", 4, "uniform", "plain"), ("int3, online key ranges", 3, "uniform", "plain"),
            ("int2, online key ranges", 2, "uniform", "plain")]


def decode_speed(model, ids: list[int], n_decode: int) -> float:
    model.reset()
    model.eval(ids)
    logits = model.eval([ids[-1]])
    t0 = time.perf_counter()
    for _ in range(n_decode):
        logits = model.eval([int(np.argmax(logits))])
    return n_decode / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["stories260K", "dev"], default="stories260K")
    ap.add_argument("--windows", type=int, help="score only the first N windows of 512 (default: all)")
    ap.add_argument("--long-ctx", type=int, help="a second, longer window length (default: the model's context)")
    ap.add_argument("--long-windows", type=int, default=1)
    ap.add_argument("--decode-ctx", type=int, help="context filled before timing decode (default: --long-ctx)")
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--budget-gib", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--sqf", type=Path, help="reuse a file this tool converted (fp16 weights + KV calibration)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    from sqllm.formats import constants as C
    from sqllm.runtime import Model

    text_name, text_file = ("TinyStories", DATA / "tinystories_valid.txt") if args.model == "stories260K" else \
        ("WikiText-2", DATA / "wikitext2_valid.txt")
    text = text_file.read_text(encoding="utf-8")
    src = model_dir(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        sqf = args.sqf or Path(tmp) / "kv.sqf"
        t0 = time.perf_counter()
        if args.sqf is None:
            subprocess.run([sys.executable, "-m", "sqllm.converter", str(src), "-o", str(sqf), "--keep", "*", "--kv-bits", "4",
                            "--calib-data", str(CALIBRATION), "--quiet"], check=True)
        convert_s = time.perf_counter() - t0
        files = {"kv": sqf, "plain": Path(tmp) / "plain.sqf"}
        subprocess.run([sys.executable, "-m", "sqllm.converter", str(src), "-o", str(files["plain"]), "--keep", "*",
                        "--quiet"], check=True)
        probe = Model(sqf, kv_bits=0)
        long_ctx = args.long_ctx or probe.context_length
        decode_ctx = args.decode_ctx or long_ctx
        ids = probe.tokenize(text)[:decode_ctx]
        rows = []
        for label, bits, method, file in SETTINGS:
            m = Model(files[file], threads=args.threads, kv_bits=bits, kv_method=method, n_ctx=max(512, long_ctx, decode_ctx + 1 + args.decode_tokens + 1))
            t = time.perf_counter()
            ppl = m.perplexity(text, ctx=512, max_windows=args.windows)
            per_token = m.kv_bytes_per_token()
            ppl_long = m.perplexity(text, ctx=long_ctx, max_windows=args.long_windows) if long_ctx > 512 else ppl
            speed = decode_speed(m, ids, args.decode_tokens) if method == "nuq" else None
            rows.append((label, ppl, ppl_long, per_token, speed))
            print(f"{label}: ppl {ppl:.4f} / {ppl_long:.4f}, {per_token:.0f} B/token, "
                  f"{'' if speed is None else f'{speed:.2f} tok/s, '}{time.perf_counter() - t:.0f} s", flush=True)

    base = rows[0]
    budget = args.budget_gib * 2**30
    windows = "all windows" if args.windows is None else f"first {args.windows} windows"
    lines = [
        f"{text_name} perplexity through the runtime, fp16 weights, KV calibration on 16 x 512 tokens of "
        f"tinystories_train.txt{'' if args.sqf else f' (conversion {convert_s:.0f} s)'}; ctx 512 ({windows})"
        + (f" and ctx {long_ctx} (first {args.long_windows} window{'s' if args.long_windows > 1 else ''})" if long_ctx > 512 else "")
        + f"; bytes/token measured over the "
        f"last ctx-512 window; decode after {len(ids)} tokens of context, {args.decode_tokens} tokens, "
        f"{args.threads or 'all'} threads. Regenerate: `python tools/kv_report.py --model {args.model}"
        f"{'' if args.windows is None else f' --windows {args.windows}'}"
        f"{'' if args.long_ctx is None else f' --long-ctx {args.long_ctx}'}"
        f"{'' if args.decode_tokens == 16 else f' --decode-tokens {args.decode_tokens}'}"
        f"{'' if not args.threads else f' --threads {args.threads}'}`",
        "",
        f"| KV cache | ppl ctx 512 |{f' ppl ctx {long_ctx} |' if long_ctx > 512 else ''} bytes/token | vs fp16 | "
        f"context in {args.budget_gib:g} GiB | decode tok/s | decode vs fp16 |",
        "|---|---|" + ("---|" if long_ctx > 512 else "") + "---|---|---|---|---|",
    ]
    for label, ppl, ppl_long, per_token, speed in rows:
        sp = "" if speed is None else f"{speed:.2f}"
        ratio = "" if speed is None else f"{speed / base[4]:.2f}x"
        lines.append(f"| {label} | {ppl:.4f} |{f' {ppl_long:.4f} |' if long_ctx > 512 else ''} {per_token:.0f} | {base[3] / per_token:.2f}x | "
                     f"{int(budget // per_token)} | {sp} | {ratio} |")
    # The same cache at LLaMA-7B's shapes (32 layers, 4096 channels), at the nominal outlier rate.
    per = {b: C.kv_bytes_per_token(4096, 32, b, 0.0 if b == 16 else 1.0) for b in (16, 4, 3, 2)}
    lines += ["", "At LLaMA-7B shapes (nominal 1% outliers): " + ", ".join(
        f"{'fp16' if b == 16 else f'{b}-bit'} {per[b] / 1024:.0f} KiB/token ({int(budget // per[b])} tokens in {args.budget_gib:g} GiB)"
        for b in (16, 4, 3, 2)) + "."]
    block = "\n".join(lines)
    print(block)
    if not args.no_write:
        path = ROOT / "docs" / "RESULTS.md"
        doc = path.read_text(encoding="utf-8")
        start, end = f"<!-- kv:{args.model} -->", f"<!-- /kv:{args.model} -->"
        new = f"{start}\n{block}\n{end}"
        doc = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: new, doc, flags=re.S) if start in doc else doc + "\n" + new + "\n"
        path.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    main()
