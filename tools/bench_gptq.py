#!/usr/bin/env python3
"""What GPTQ-style rounding adds to a conversion: factoring each distinct input's H and rounding
each matrix with error feedback, per matrix shape of a LLaMA-7B layer and its output head.

    python tools/bench_gptq.py                 # 7B shapes, --repeat 1
    python tools/bench_gptq.py --threads 2 --repeat 3

Random heavy-tailed weights, a 3-bit sorted LUT per row, and H = X^T X / n of correlated random
inputs (the cost does not depend on the values). For each step: wall and CPU seconds (the best
of --repeat); then the projected extra time of a whole 32-layer model with an untied head
(one factorisation per distinct input: q/k/v share one, gate/up share one, the head has one). Nearest rounding,
which the conversion does anyway, is not counted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sqllm.converter.gptq import assign_codes_gptq, factor_hessian

HIDDEN, INTERMEDIATE, VOCAB, LAYERS = 4096, 11008, 32000, 32
# (what, rows, cols, how many per layer); the head is counted once.
MATRICES = [("q/k/v/o", HIDDEN, HIDDEN, 4), ("gate/up", INTERMEDIATE, HIDDEN, 2), ("down", HIDDEN, INTERMEDIATE, 1)]
FACTORS = [("H 4096 (attention in, o in, mlp in)", HIDDEN, 3), ("H 11008 (down in)", INTERMEDIATE, 1)]


def timed(fn, repeat):
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def hessian(cols, rng):
    X = rng.standard_normal((2 * cols, cols), dtype=np.float32)
    X[:, 1:] += 0.5 * X[:, :-1]  # neighbouring inputs correlate
    return X.T @ X / X.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="numba threads (BLAS follows its own settings)")
    args = ap.parse_args()
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    factors = {}
    per_layer = [0.0, 0.0]
    print("| step | shape | wall (s) | CPU (s) | per layer |")
    print("|---|---|---|---|---|")
    for what, cols, count in FACTORS:
        H = hessian(cols, rng)
        wall, cpu = timed(lambda: factors.__setitem__(cols, factor_hessian(H)), args.repeat)
        per_layer[0] += count * wall
        per_layer[1] += count * cpu
        if cols == HIDDEN:
            factor_cost = (wall, cpu)
        print(f"| factor {what} | {cols}x{cols} | {wall:.2f} | {cpu:.2f} | x{count} |")
    head = None
    for what, rows, cols, count in [*MATRICES, ("lm_head", VOCAB, HIDDEN, 0)]:
        W = rng.standard_normal((rows, cols), dtype=np.float32)
        W[rng.random(W.shape) < 0.005] *= 8
        lut = np.sort(rng.standard_normal((rows, 8), dtype=np.float32), axis=1).astype(np.float16).astype(np.float32)
        wall, cpu = timed(lambda: assign_codes_gptq(W, factors[cols], lut), args.repeat)
        if count:
            per_layer[0] += count * wall
            per_layer[1] += count * cpu
        else:  # the head's input (the final norm's output) is one more 4096 factorisation
            head = (wall + factor_cost[0], cpu + factor_cost[1])
        print(f"| round {what} | {rows}x{cols} | {wall:.2f} | {cpu:.2f} | x{count or 'once'} |")
        del W
    total = (LAYERS * per_layer[0] + head[0], LAYERS * per_layer[1] + head[1])
    print(f"\nper layer: {per_layer[0]:.1f} s wall, {per_layer[1]:.1f} s CPU; "
          f"{LAYERS} layers + head: {total[0] / 60:.1f} min wall, {total[1] / 60:.1f} min CPU")


if __name__ == "__main__":
    main()
