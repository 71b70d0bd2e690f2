"""Benchmark the per-row weighted k-means against scikit-learn, as SqueezeLLM runs it.

SqueezeLLM (quantization/nuq.py) fits every output row on its own with
KMeans(n_clusters=2^bits, random_state=0, n_init="auto", max_iter=50).fit(row, sample_weight=F)
(n_init="auto" is a single k-means++ start). This script times that and
sqllm.converter.kmeans.weighted_kmeans_rows (fast and exact) on the same heavy-tailed rows
(Student-t with 3 degrees of freedom, lognormal Fisher weights), compares the weighted
objectives, and projects the k-means time of a LLaMA-7B (6.5e9 weights in linears: per
layer q, k, v, o, gate and up have rows of 4096, down has rows of 11008; 32 layers).

    python tools/bench_kmeans.py --rows 256 --bits 3 4
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from sqllm.converter.kmeans import weighted_kmeans_rows

LLAMA7B_ROWS = {4096: 32 * (4 * 4096 + 2 * 11008), 11008: 32 * 4096}  # rows of each length


def heavy_rows(rows, cols, seed):
    rng = np.random.default_rng(seed)
    W = (rng.standard_t(3, (rows, cols)) * 0.02).astype(np.float32)
    return W, rng.lognormal(0.0, 1.0, W.shape).astype(np.float32)


def timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def sklearn_rows(W, F, k, n_init, max_iter):
    from sklearn.cluster import KMeans

    obj = np.empty(W.shape[0])
    t = time.perf_counter()
    for i in range(W.shape[0]):
        x, w = W[i].astype(np.float64), F[i].astype(np.float64)
        km = KMeans(n_clusters=k, random_state=0, n_init=n_init, max_iter=max_iter).fit(x[:, None], sample_weight=w)
        obj[i] = np.sum(w * (x - km.cluster_centers_[km.labels_, 0]) ** 2)
    return time.perf_counter() - t, obj


def bench(bits, rows, cols, sk_rows, seed, exact, repeat):
    k = 1 << bits
    W, F = heavy_rows(rows, cols, seed)
    t_fast, fast = timed(lambda: weighted_kmeans_rows(W, F, bits=bits), repeat)
    t_exact, ex = timed(lambda: weighted_kmeans_rows(W, F, bits=bits, exact=True), repeat) if exact else (np.nan, None)
    t_sk, sk = sklearn_rows(W[:sk_rows], F[:sk_rows], k, "auto", 50) if sk_rows else (np.nan, None)
    r = {"bits": bits, "cols": cols, "rows": rows, "fast_s_row": t_fast / rows, "fast_obj": fast.objective}
    if ex is not None:
        r.update(exact_s_row=t_exact / rows, exact_obj=ex.objective)
    if sk is not None:
        r.update(sk_s_row=t_sk / sk_rows, sk_obj=sk)
    return r


def report(r):
    print(f"\n{r['bits']}-bit, {r['rows']} rows of {r['cols']}:")
    print(f"  fast     {r['fast_s_row'] * 1e3:8.3f} ms/row  {r['cols'] / r['fast_s_row'] / 1e6:7.1f} M weights/s")
    if "exact_obj" in r:
        gap = r["fast_obj"] / r["exact_obj"] - 1
        print(f"  exact    {r['exact_s_row'] * 1e3:8.3f} ms/row  {r['cols'] / r['exact_s_row'] / 1e6:7.1f} M weights/s")
        print(f"  fast vs exact: mean objective ratio {r['fast_obj'].mean() / r['exact_obj'].mean():.8f}, "
              f"rows at the optimum (1e-9) {np.mean(gap <= 1e-9):.1%}, worst row +{gap.max():.2e}")
    if "sk_obj" in r:
        m = len(r["sk_obj"])
        print(f"  sklearn  {r['sk_s_row'] * 1e3:8.3f} ms/row  {r['cols'] / r['sk_s_row'] / 1e6:7.3f} M weights/s"
              f"  (first {m} rows)")
        print(f"  time ratio sklearn / fast: {r['sk_s_row'] / r['fast_s_row']:.0f}x"
              + (f", sklearn / exact: {r['sk_s_row'] / r['exact_s_row']:.1f}x" if "exact_obj" in r else ""))
        ratio = r["fast_obj"][:m].mean() / r["sk_obj"].mean()
        line = f"  mean objective ratio fast / sklearn: {ratio:.4f}"
        if "exact_obj" in r:
            line += f", exact / sklearn: {r['exact_obj'][:m].mean() / r['sk_obj'].mean():.4f}"
        line += f"; rows where sklearn is better than fast: {int(np.sum(r['sk_obj'] < r['fast_obj'][:m] * (1 - 1e-9)))}"
        print(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=256, help="rows of 4096 to cluster (default 256)")
    ap.add_argument("--bits", type=int, nargs="+", default=[3, 4])
    ap.add_argument("--sklearn-rows", type=int, default=64,
                    help="rows given to scikit-learn (it is slow; its time is per row), 0 to skip")
    ap.add_argument("--no-exact", action="store_true", help="skip the exact DP")
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    ap.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    warm = heavy_rows(4, 512, 1)
    for exact in (False, True):
        weighted_kmeans_rows(*warm, bits=3, exact=exact)  # compile, or load numba's cache
    print(f"numba threads: {numba.get_num_threads()}; rows: Student-t(3) x 0.02, Fisher lognormal(0, 1)")
    projected = {}
    for bits in args.bits:
        results = {}
        for cols, rows, sk in ((4096, args.rows, args.sklearn_rows), (11008, max(args.rows // 4, 1), args.sklearn_rows // 8)):
            results[cols] = bench(bits, rows, cols, min(sk, rows), args.seed + cols, not args.no_exact, args.repeat)
            report(results[cols])
        for key in ("fast_s_row", "exact_s_row", "sk_s_row"):
            if all(key in results[c] for c in LLAMA7B_ROWS):
                projected[bits, key] = sum(LLAMA7B_ROWS[c] * results[c][key] for c in LLAMA7B_ROWS)
    total = sum(c * n for c, n in LLAMA7B_ROWS.items())
    print(f"\nprojected k-means time for LLaMA-7B ({total / 1e9:.2f}e9 weights in linears, "
          f"{numba.get_num_threads()} threads):")
    for (bits, key), seconds in projected.items():
        name = {"fast_s_row": "fast", "exact_s_row": "exact", "sk_s_row": "sklearn (SqueezeLLM's way)"}[key]
        print(f"  {bits}-bit {name:28s} {seconds / 60:9.1f} min  ({total / seconds / 1e6:.1f} M weights/s)")


if __name__ == "__main__":
    main()
