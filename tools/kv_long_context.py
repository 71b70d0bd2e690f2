"""Perplexity of one long window with the fp16 KV cache and with KVQuant caches.

    python tools/kv_long_context.py --model dev --ctx 16384                 # fp16, nuq4, nuq3
    python tools/kv_long_context.py --model dev --ctx 32768 --settings fp16,nuq4,nuq3,nuq2,int4,int3

The file is converted as kv_report.py converts it (fp16 weights, KV calibration on
tinystories_train.txt), or reused with --sqf. Each setting scores the first window of --ctx
tokens of the evaluation text (WikiText-2 for dev, TinyStories for stories260K) through the
runtime, and the tool prints a Markdown table with the time each row took.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kv_report import CALIBRATION, DATA, model_dir

# name: (label, bits, method); uniform uses the file's calibrated key ranges, as in kv_report.py.
SETTINGS = {"fp16": ("fp16 cache", 0, "nuq"), "nuq4": ("nuq4, 1% outliers", 4, "nuq"),
            "nuq3": ("nuq3, 1% outliers", 3, "nuq"), "nuq2": ("nuq2, 1% outliers", 2, "nuq"),
            "int4": ("int4, 1% outliers", 4, "uniform"), "int3": ("int3, 1% outliers", 3, "uniform")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["stories260K", "dev"], default="dev")
    ap.add_argument("--ctx", type=int, required=True, help="window length in tokens")
    ap.add_argument("--settings", default="fp16,nuq4,nuq3", help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--sqf", type=Path, help="reuse a file kv_report.py or this tool converted")
    args = ap.parse_args()
    names = args.settings.split(",")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        ap.error(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")

    from sqllm.runtime import Model

    text_file = DATA / ("tinystories_valid.txt" if args.model == "stories260K" else "wikitext2_valid.txt")
    text = text_file.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        sqf = args.sqf or Path(tmp) / "kv.sqf"
        if args.sqf is None:
            subprocess.run([sys.executable, "-m", "sqllm.converter", str(model_dir(args.model)), "-o", str(sqf),
                            "--keep", "*", "--kv-bits", "4", "--calib-data", str(CALIBRATION), "--quiet"], check=True)
        rows = []
        for name in names:
            label, bits, method = SETTINGS[name]
            m = Model(sqf, threads=args.threads, kv_bits=bits, kv_method=method, n_ctx=args.ctx)
            if m.context_length < args.ctx:
                sys.exit(f"error: {sqf}: the model's context is {m.context_length} tokens, below --ctx {args.ctx}")
            t = time.perf_counter()
            ppl = m.perplexity(text, ctx=args.ctx, max_windows=1)
            rows.append((label, ppl, time.perf_counter() - t))
            print(f"{label}: ppl {ppl:.4f}, {rows[-1][2]:.0f} s", flush=True)
    print(f"\n| KV cache | ppl, first window of {args.ctx} | time (s) |\n|---|---|---|")
    for label, ppl, secs in rows:
        print(f"| {label} | {ppl:.4f} | {secs:.0f} |")


if __name__ == "__main__":
    main()
