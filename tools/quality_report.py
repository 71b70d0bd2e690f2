#!/usr/bin/env python3
"""Regenerate the quality tables of docs/RESULTS.md and docs/quality_<model>.png, end to end.

    python tools/quality_report.py --model stories260K            # the bundled model, whole texts
    python tools/quality_report.py --model dev --windows 8        # Qwen2.5-Coder-0.5B, first 8 windows

For each recipe: convert (timed) with a gradient Fisher computed on training text
(tinystories_train.txt, never the evaluation text), count bits per weight over the quantized
linears and the whole file, and measure perplexity through the runtime (`sqrun --perplexity`
definition, ctx 512) on tinystories_valid.txt and wikitext2_valid.txt. The table replaces the
block between the model's markers in docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, ROOT, model_dir
TEXTS = {"TinyStories": DATA / "tinystories_valid.txt", "WikiText-2": DATA / "wikitext2_valid.txt"}
CALIBRATION = DATA / "tinystories_train.txt"

# (label, method for the plot, sqconvert options)
RECIPES = [
    ("fp16 (unquantized linears)", "fp16", ["--keep", "*"]),
    ("rtn per-row 3-bit", "rtn per-row", ["--method", "rtn", "--bits", "3"]),
    ("rtn per-row 3-bit + clip", "rtn per-row + clip", ["--method", "rtn", "--bits", "3", "--clip-search"]),
    ("rtn g128 3-bit", "rtn g128", ["--method", "rtn", "--bits", "3", "--group-size", "128"]),
    ("rtn g128 3-bit + clip", "rtn g128 + clip", ["--method", "rtn", "--bits", "3", "--group-size", "128", "--clip-search"]),
    ("kmeans 3-bit (unweighted, dense)", "kmeans", ["--method", "kmeans", "--bits", "3", "--outliers", "0", "--sensitive", "0"]),
    ("squeezellm 3-bit dense-only", "squeezellm dense", ["--bits", "3", "--outliers", "0", "--sensitive", "0"]),
    ("squeezellm 3-bit + 0.45% sparse", "squeezellm + sparse", ["--bits", "3"]),
    ("rtn per-row 4-bit", "rtn per-row", ["--method", "rtn", "--bits", "4"]),
    ("rtn per-row 4-bit + clip", "rtn per-row + clip", ["--method", "rtn", "--bits", "4", "--clip-search"]),
    ("rtn g128 4-bit", "rtn g128", ["--method", "rtn", "--bits", "4", "--group-size", "128"]),
    ("rtn g128 4-bit + clip", "rtn g128 + clip", ["--method", "rtn", "--bits", "4", "--group-size", "128", "--clip-search"]),
    ("kmeans 4-bit (unweighted, dense)", "kmeans", ["--method", "kmeans", "--bits", "4", "--outliers", "0", "--sensitive", "0"]),
    ("squeezellm 4-bit dense-only", "squeezellm dense", ["--bits", "4", "--outliers", "0", "--sensitive", "0"]),
    ("squeezellm 4-bit + 0.45% sparse", "squeezellm + sparse", ["--bits", "4"]),
    ("rtn g128 2-bit + clip", "rtn g128 + clip", ["--method", "rtn", "--bits", "2", "--group-size", "128", "--clip-search"]),
    ("squeezellm 2-bit + 0.45% sparse", "squeezellm + sparse", ["--bits", "2"]),
    ("squeezellm 3-bit, nearest rounding", "squeezellm nearest", ["--bits", "3", "--rounding", "nearest"]),
    ("squeezellm 3-bit, fp16 embedding", "squeezellm fp16 embedding", ["--bits", "3", "--keep", "model.embed_tokens.weight", "--keep", "lm_head.weight"]),
]
# Size budgets (--target-bpw) per model: stories260K's 64-column rows make its LUTs dear.
BUDGETS = {"stories260K": [5.0, 5.5, 6.0, 7.0], "dev": [3.5, 4.0, 4.5, 5.0]}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stories260K", help="stories260K, dev, or a Hugging Face folder")
    ap.add_argument("--windows", type=int, default=None, help="score only the first N windows of each text")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--fisher-samples", type=int, default=64)
    ap.add_argument("--fisher-seq-len", type=int, default=512)
    ap.add_argument("--only", nargs="*", help="run only recipes whose label contains one of these")
    ap.add_argument("--fisher", type=Path, default=None, help="use this Fisher file instead of computing one")
    ap.add_argument("--budgets", type=float, nargs="*", default=None,
                    help="--target-bpw values to add as recipes (default per model: " + str(BUDGETS) + ")")
    ap.add_argument("--work", type=Path, default=None, help="folder for the converted files (default: temporary)")
    args = ap.parse_args()

    model = model_dir(args.model)
    name = model.name if args.model not in ("stories260K", "dev") else args.model
    work = args.work or Path(tempfile.mkdtemp(prefix="sqllm-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    fisher = args.fisher or work / f"{name}.fisher.safetensors"
    if args.fisher:  # the table describes the Fisher file used, not the defaults
        from safetensors import safe_open

        with safe_open(str(args.fisher), "np") as f:
            meta = f.metadata() or {}
        args.fisher_samples = int(meta.get("samples", 0)) or "?"
        args.fisher_seq_len = int(meta.get("seq_len", 0)) or "?"
    if not fisher.exists():
        t0 = time.perf_counter()
        run("-m", "sqllm.converter", "fisher", str(model), "--data", str(CALIBRATION), "-o", str(fisher),
            "--samples", str(args.fisher_samples), "--seq-len", str(args.fisher_seq_len), "--quiet")
        print(f"fisher: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows = []
    from sqllm.runtime import Model

    texts = {k: v.read_text(encoding="utf-8") for k, v in TEXTS.items()}
    budgets = args.budgets if args.budgets is not None else BUDGETS.get(args.model, [])
    recipes = RECIPES + [(f"budget {b} bpw", "budget", ["--target-bpw", str(b)]) for b in budgets]
    from sqllm.converter.checkpoint import open_checkpoint

    names = set(open_checkpoint(model).names)
    for label, method, opts in recipes:
        if args.only and not any(o in label for o in args.only):
            continue
        # A tied model has no lm_head.weight: its embedding is the head, kept by keeping the embedding.
        absent = {j for i in range(len(opts) - 1) if opts[i] == "--keep" and not set("*?[") & set(opts[i + 1])
                  and opts[i + 1] not in names for j in (i, i + 1)}
        opts = [o for i, o in enumerate(opts) if i not in absent]
        out = work / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".sqf")
        t0 = time.perf_counter()
        run("-m", "sqllm.converter", str(model), "-o", str(out), "--fisher", str(fisher), "--force", "--quiet", *opts)
        seconds = time.perf_counter() - t0
        info = json.loads(run("-m", "sqllm.converter", "inspect", str(out), "--json").stdout)
        m = Model(out, exact=True)
        ppl = {k: m.perplexity(t, ctx=args.ctx, max_windows=args.windows) for k, t in texts.items()}
        del m
        bpw = info["bits_per_weight"]
        rows.append({"label": label, "method": method, "bpw_linears": bpw["layer_linears"] or 16.0,
                     "bpw_file": bpw["whole_file"], "size": info["totals"]["file"], "seconds": seconds, "ppl": ppl})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        write_report(name, args, rows)  # after every recipe, so a long run leaves its partial table


def write_report(name: str, args, rows: list[dict]) -> None:
    base = next((r["ppl"] for r in rows if r["method"] == "fp16"), None)
    windows = f"first {args.windows} windows" if args.windows else "whole texts"
    lines = [
        f"Perplexity through the runtime, ctx {args.ctx}, {windows}; Fisher from {args.fisher_samples} x "
        f"{args.fisher_seq_len} tokens of tinystories_train.txt. Regenerate: "
        f"`python tools/quality_report.py --model {args.model}" + (f" --windows {args.windows}" if args.windows else "")
        + (" --only " + " ".join(repr(o) for o in args.only) if args.only else "")
        + (f" --fisher FISHER_FILE` (`sqconvert fisher MODEL --data tinystories_train.txt --samples {args.fisher_samples}"
           f" --seq-len {args.fisher_seq_len}`)" if args.fisher else "`"),
        "",
        "| recipe | bits/weight (decoder linears) | bits/weight (file) | file | TinyStories PPL | WikiText-2 PPL | ratio to fp16 (TS / Wiki) | convert (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = (f"{r['ppl']['TinyStories'] / base['TinyStories']:.3f} / {r['ppl']['WikiText-2'] / base['WikiText-2']:.3f}"
                 if base else "")
        lines.append(f"| {r['label']} | {r['bpw_linears']:.3f} | {r['bpw_file']:.3f} | {r['size'] / 2**20:.2f} MiB | "
                     f"{r['ppl']['TinyStories']:.4f} | {r['ppl']['WikiText-2']:.4f} | {ratio} | {r['seconds']:.1f} |")
    lines += ["", f"![perplexity against bits per weight](quality_{name}.png)"]
    results = ROOT / "docs" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Results\n"
    start, end = f"<!-- quality:{name} -->", f"<!-- /quality:{name} -->"
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text += f"\n### Quality: {name}\n\n{block}\n"
    results.write_text(text)
    plot(name, rows, ROOT / "docs" / f"quality_{name}.png")


def plot(name: str, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, text in zip(axes, TEXTS):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = sorted((r["bpw_file"], r["ppl"][text]) for r in rows if r["method"] == method)
            if method == "fp16":
                ax.axhline(pts[0][1], color="k", ls=":", label="fp16")
                continue
            ax.plot(*zip(*pts), marker="o", label=method)
        ax.set_xlabel("bits per weight (whole file)")
        ax.set_ylabel(f"perplexity ({text})")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{name}: perplexity against bits per weight")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
