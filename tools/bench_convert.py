#!/usr/bin/env python3
"""End-to-end conversion benchmark: wall time and peak RSS of `sqconvert` on a checkpoint.

    python tools/make_synthetic_model.py /tmp/syn7b --fisher        # LLaMA-7B shapes, bf16
    python tools/bench_convert.py /tmp/syn7b --bits 3 4 [--threads 2] [-- EXTRA SQCONVERT ARGS]

Each conversion runs in its own process; its peak resident set is read from the kernel's
accounting of that child (ru_maxrss), and the largest tensor of the checkpoint is printed
beside it, since the target is a small multiple of that tensor in fp32.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def largest_tensor_bytes_fp32(model: Path) -> tuple[str, int]:
    from sqllm.converter.checkpoint import open_checkpoint

    ckpt = open_checkpoint(model)
    name = max(ckpt.names, key=lambda n: int(np.prod(ckpt.shape(n))))
    return name, int(np.prod(ckpt.shape(name))) * 4


def run_one(model: Path, bits: int, threads: int | None, extra: list[str], out_dir: Path) -> dict:
    out = out_dir / f"bench-{bits}.sqf"
    cmd = [sys.executable, "-m", "sqllm.converter", str(model), "-o", str(out), "--bits", str(bits), "--force", "--quiet",
           *(["--threads", str(threads)] if threads else []), *extra]
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # a fresh child whose rusage holds only this conversion
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"conversion failed: {' '.join(cmd)}")
    info = json.loads(subprocess.run([sys.executable, "-m", "sqllm.converter", "inspect", str(out), "--json"],
                                     check=True, capture_output=True, text=True).stdout)
    size = out.stat().st_size
    out.unlink()
    # ru_maxrss is in KiB on Linux.
    return {"bits": bits, "wall_s": wall, "peak_rss_gib": usage.ru_maxrss / 2**20, "file_gib": size / 2**30,
            "bpw_linears": info["bits_per_weight"]["quantized_linears"], "sparse": info["totals"]["sparse"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("extra", nargs="*", help="more sqconvert options, after --")
    args = ap.parse_args()
    name, nbytes = largest_tensor_bytes_fp32(args.model)
    print(f"largest tensor: {name}, {nbytes / 2**30:.3f} GiB in fp32; {os.cpu_count()} cores")
    print("| bits | wall (s) | peak RSS (GiB) | RSS / largest fp32 tensor | file (GiB) | bits/weight (linears) |")
    print("|---|---|---|---|---|---|")
    for bits in args.bits:
        r = run_one(args.model, bits, args.threads, args.extra, args.out_dir)
        print(f"| {bits} | {r['wall_s']:.0f} | {r['peak_rss_gib']:.2f} | {r['peak_rss_gib'] * 2**30 / nbytes:.1f} | "
              f"{r['file_gib']:.2f} | {r['bpw_linears']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
