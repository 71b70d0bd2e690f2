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
    """Best wall time of repeat runs and the CPU time (all threads) of that run, with the result.

    On a shared machine the wall time grows with the load while the CPU time barely does, so
    both are reported; CPU time / threads is what an idle machine would take."""
    best, cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        t, c = time.perf_counter() - t, time.process_time() - c
        if t < best:
            best, cpu = t, c
    return best, cpu, out


def sklearn_rows(W, F, k, n_init, max_iter):
    from sklearn.cluster import KMeans

    def run():
        obj = np.empty(W.shape[0])
        for i in range(W.shape[0]):
            x, w = W[i].astype(np.float64), F[i].astype(np.float64)
            km = KMeans(n_clusters=k, random_state=0, n_init=n_init, max_iter=max_iter).fit(x[:, None], sample_weight=w)
            obj[i] = np.sum(w * (x - km.cluster_centers_[km.labels_, 0]) ** 2)
        return obj

    return timed(run)


def bench(bits, rows, cols, sk_rows, seed, exact, repeat, n_init):
    k = 1 << bits
    W, F = heavy_rows(rows, cols, seed)
    t, c, fast = timed(lambda: weighted_kmeans_rows(W, F, bits=bits, n_init=n_init), repeat)
    r = {"bits": bits, "cols": cols, "rows": rows, "fast_s_row": t / rows, "fast_cpu_row": c / rows,
         "fast_obj": fast.objective}
    if exact:
        t, c, ex = timed(lambda: weighted_kmeans_rows(W, F, bits=bits, exact=True), repeat)
        r.update(exact_s_row=t / rows, exact_cpu_row=c / rows, exact_obj=ex.objective)
    if sk_rows:
        t, c, sk = sklearn_rows(W[:sk_rows], F[:sk_rows], k, "auto", 50)
        r.update(sk_s_row=t / sk_rows, sk_cpu_row=c / sk_rows, sk_obj=sk)
    return r


def speed(r, name):
    wall, cpu = r[name + "_s_row"], r[name + "_cpu_row"]
    return (f"{wall * 1e3:8.3f} ms/row {r['cols'] / wall / 1e6:8.3f} M weights/s   "
            f"CPU {cpu * 1e3:8.3f} ms/row {r['cols'] / cpu / 1e6:8.3f} M weights/CPU-s")


def report(r):
    print(f"\n{r['bits']}-bit, {r['rows']} rows of {r['cols']}:")
    print(f"  fast     {speed(r, 'fast')}")
    if "exact_obj" in r:
        gap = r["fast_obj"] / r["exact_obj"] - 1
        print(f"  exact    {speed(r, 'exact')}")
        print(f"  fast vs exact: mean objective ratio {r['fast_obj'].mean() / r['exact_obj'].mean():.8f}, "
              f"rows at the optimum (1e-9) {np.mean(gap <= 1e-9):.1%}, worst row +{gap.max():.2e}")
    if "sk_obj" in r:
        m = len(r["sk_obj"])
        print(f"  sklearn  {speed(r, 'sk')}  (first {m} rows)")
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
    ap.add_argument("--n-init", type=int, default=3, help="starts of the fast k-means (default 3)")
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
    print(f"numba threads: {numba.get_num_threads()}; fast with n_init={args.n_init}; "
          "rows: Student-t(3) x 0.02, Fisher lognormal(0, 1)")
    projected = {}
    for bits in args.bits:
        results = {}
        shapes = ((4096, args.rows, args.sklearn_rows), (11008, max(args.rows // 4, 1), args.sklearn_rows // 8))
        for cols, rows, sk in shapes:
            results[cols] = bench(bits, rows, cols, min(sk, rows), args.seed + cols, not args.no_exact, args.repeat,
                                  args.n_init)
            report(results[cols])
        for name in ("fast", "exact", "sk"):
            if all(name + "_s_row" in results[c] for c in LLAMA7B_ROWS):
                projected[bits, name] = [sum(LLAMA7B_ROWS[c] * results[c][name + key] for c in LLAMA7B_ROWS)
                                         for key in ("_s_row", "_cpu_row")]
    total = sum(c * n for c, n in LLAMA7B_ROWS.items())
    threads = numba.get_num_threads()
    print(f"\nprojected k-means time for LLaMA-7B ({total / 1e9:.2f}e9 weights in linears), "
          f"as measured (wall) and for an idle machine (CPU time / {threads} threads):")
    for (bits, name), (wall, cpu) in projected.items():
        label = {"fast": "fast", "exact": "exact", "sk": "sklearn (SqueezeLLM's way)"}[name]
        idle = cpu / threads
        print(f"  {bits}-bit {label:28s} {wall / 60:9.1f} min wall  {idle / 60:9.1f} min idle"
              f"  ({total / wall / 1e6:.1f} / {total / idle / 1e6:.1f} M weights/s)")


if __name__ == "__main__":
    main()
