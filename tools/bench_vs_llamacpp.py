#!/usr/bin/env python3
"""Speed against llama.cpp on the same machine: alternating rounds of llama-bench and sqllm.

    python tools/bench_vs_llamacpp.py --model dev [--rounds 3] [--threads 2] [--pp 512] [--tg 64]
    python tools/bench_vs_llamacpp.py --pair Q3_K_M.gguf model.sqf [--pair ...]

Each pair is a llama.cpp file and an sqllm file of equal or better quality (for --model dev:
the files tools/compare_llamacpp.py made and scored, each llama.cpp type against the smallest
sqllm file whose ratio is at or below its own). Every round runs, one after another on the same
idle machine: llama-bench (pp and tg), sqllm's default path (`Model(path)`: on AVX-512 the
integer GEMM for prompt batches and lut_matvec_w8a16 for single tokens, on other CPUs the fp32 LUT
kernels), sqllm's int8 path; each in its own process, warmed up. prompt = tokens/s evaluating a PP-token prompt from an empty context; decode =
tokens/s generating TG tokens after it. The table gives the best and median over the rounds and
sqllm / llama.cpp of the medians, with the machine's ISA and its measured copy bandwidth; the
"GB/s" columns are file bytes x decode tokens/s (the weights each tool streams per token).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PEER_BIN = Path.home() / ".cache" / "sqllm-peer" / "llama.cpp" / "build" / "bin"
COMPARE = Path.home() / ".cache" / "sqllm-compare"


def isa() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    have = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vbmi", "avx512_vnni") if f in flags]
    return " ".join(have) or "no AVX2"


def copy_bandwidth() -> float:
    """GB/s of a 512 MiB numpy copy (read + write), best of 5."""
    import numpy as np

    a = np.ones(64 * 2**20, dtype=np.float64)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t) / 1e9)
    return best


def run_sqllm(path: Path, threads: int, pp: int, tg: int, int8: bool) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(path), "--threads", str(threads), "--pp", str(pp), "--tg", str(tg)]
    out = subprocess.run(cmd + (["--int8"] if int8 else []), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_llama_bench(path: Path, threads: int, pp: int, tg: int) -> dict:
    cmd = [str(PEER_BIN / "llama-bench"), "-m", str(path), "-t", str(threads), "-p", str(pp), "-n", str(tg), "-r", "1",
           "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    return {"pp": next(r["avg_ts"] for r in rows if r["n_prompt"] > 0),
            "tg": next(r["avg_ts"] for r in rows if r["n_gen"] > 0)}


def dev_pairs() -> list[tuple[Path, Path]]:
    """llama.cpp's Q3_K_M and Q4_K_M from the dev comparison, each with the smallest sqllm file
    that scored at or below its perplexity (scores of files as they are now: name and size match)."""
    folder = COMPARE / "dev"
    results = folder / "results.json"
    if not results.exists():
        raise SystemExit(f"{results} is missing: run tools/compare_llamacpp.py --model dev first")
    ppl = {}
    for key, value in json.loads(results.read_text())["scores"].items():
        name, size = key.split("|")[:2]
        path = folder / name
        if path.exists() and path.stat().st_size == int(size):
            ppl[path] = value
    sqllm_files = sorted((p for p in ppl if p.suffix == ".sqf"), key=lambda p: p.stat().st_size)
    pairs = []
    for kind in ("Q3_K_M", "Q4_K_M"):
        gguf = next((p for p in ppl if p.name.startswith(f"llamacpp-{kind}-")), None)
        match = gguf and next((p for p in sqllm_files if ppl[p] <= ppl[gguf]), None)
        if not match:
            raise SystemExit(f"{folder}: no scored {kind} file, or no sqllm file scored at or below it")
        pairs.append((gguf, match))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["dev"], help="pairs from tools/compare_llamacpp.py's files for this model")
    ap.add_argument("--pair", nargs=2, action="append", type=Path, metavar=("GGUF", "SQF"), default=[])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512, help="prompt tokens")
    ap.add_argument("--tg", type=int, default=64, help="generated tokens")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--int8", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        from bench_decode import measure

        pp, tg = measure(args.measure, args.threads, args.pp, args.tg, 1, args.int8, 0, "uniform")
        print(json.dumps({"pp": pp, "tg": tg}))
        return
    pairs = [tuple(p) for p in args.pair] + (dev_pairs() if args.model == "dev" else [])
    if not pairs:
        ap.error("give --model dev or --pair GGUF SQF")
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        for gguf, sqf in pairs:
            for label, fn in ((f"llama.cpp {gguf.name}", lambda: run_llama_bench(gguf, args.threads, args.pp, args.tg)),
                              (f"sqllm {sqf.name}", lambda: run_sqllm(sqf, args.threads, args.pp, args.tg, False)),
                              (f"sqllm {sqf.name} --int8", lambda: run_sqllm(sqf, args.threads, args.pp, args.tg, True))):
                runs.setdefault((str(gguf), label), []).append(fn())
                print(f"round {r + 1}: {label}: {runs[(str(gguf), label)][-1]}", file=sys.stderr, flush=True)
    bandwidth = copy_bandwidth()
    print(f"Machine: {isa()}; numpy copy bandwidth {bandwidth:.1f} GB/s; {args.threads} threads; "
          f"{args.rounds} alternating rounds; pp{args.pp}, tg{args.tg}.\n")
    print("| file | size (MiB) | prompt tokens/s best / median | decode tokens/s best / median | "
          "decode GB/s (median) | prompt vs llama.cpp | decode vs llama.cpp |")
    print("|---|---|---|---|---|---|---|")
    for gguf, sqf in pairs:
        base = runs[(str(gguf), f"llama.cpp {gguf.name}")]
        base_pp = statistics.median(x["pp"] for x in base)
        base_tg = statistics.median(x["tg"] for x in base)
        for label, path in ((f"llama.cpp {gguf.name}", gguf), (f"sqllm {sqf.name}", sqf), (f"sqllm {sqf.name} --int8", sqf)):
            xs = runs[(str(gguf), label)]
            pp = [x["pp"] for x in xs]
            tg = [x["tg"] for x in xs]
            size = path.stat().st_size
            print(f"| {label} | {size / 2**20:.1f} | {max(pp):.1f} / {statistics.median(pp):.1f} | "
                  f"{max(tg):.1f} / {statistics.median(tg):.1f} | {size * statistics.median(tg) / 1e9:.2f} | "
                  f"{statistics.median(pp) / base_pp:.2f}x | {statistics.median(tg) / base_tg:.2f}x |")


if __name__ == "__main__":
    main()
