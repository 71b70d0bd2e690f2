"""Sensitivity-weighted 1-D k-means per output row: SqueezeLLM's non-uniform quantizer.

Each row is clustered on its own, minimising sum_j F_ij (W_ij - c_i[a_ij])^2 over its dense
entries (mask True). In one dimension an optimal clustering is a set of runs of the sorted
values, so each row is sorted once (an LSD radix sort of the float bits) and float64 prefix
sums of F, F*W and F*W^2 give the weighted mean and cost of any run in O(1). A Lloyd
assignment step is then k-1 binary searches for the midpoints between consecutive
centroids and an update step is O(k).

exact  The optimum, by dynamic programming over the sorted row:
       D_q(i) = min_t D_{q-1}(t) + cost(t, i). The run cost is a Monge array (it obeys the
       quadrangle inequality; Wang & Song 2011, Gronlund et al. 2017 for weights), so in
       each layer the leftmost best t is non-decreasing in i and divide and conquer finds
       the whole layer in O(n log n): O(k n log n) in all.
fast   (default) Start 0 is that same DP with the boundaries restricted to max(256, 4k)
       bins of bounded weight x width (so the restriction costs little anywhere; shorter
       rows get a bin per value, which makes it exact), which lands in the basin of the
       global optimum; the DP is then rerun exactly inside windows around the boundaries
       until it stops improving ("polish"). Further starts (weighted quantiles, then greedy
       weighted k-means++) run Lloyd to convergence and are polished if they beat the best.
       On heavy-tailed rows of 4096 and 11008 (tools/bench_kmeans.py) this reaches the
       optimum on 95-98% of rows and is within ~1e-5 of it on average, while scikit-learn
       run per row as SqueezeLLM does stays 3-8% above it, at a few hundred times the cost.

Every row is computed from its own data and its own random stream (seed, row, start), so
the results do not depend on the number of threads. Entries outside the mask are not
fitted but still get the code of the nearest centroid. Entries with zero weight do not
count; a row whose dense weights are all zero is clustered unweighted (as SqueezeLLM does).
A row with at most k distinct fitted values gets those values as centroids, the table
padded by repeating the largest (all zeros if nothing is fitted).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

_U64_32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_SIGN32 = np.uint64(0x80000000)

_N_BINS = 256          # bins for the coarse DP of start 0 (at least 4k are used)
_POLISH_RADIUS = 32    # points each boundary may move per windowed-DP round

_BAD_W, _BAD_F = 1, 2

_jit = dict(cache=True, nogil=True, error_model="numpy")


class KMeansResult(NamedTuple):
    centroids: np.ndarray  # float32 [rows, k], ascending: the per-row look-up table
    codes: np.ndarray      # uint8 [rows, cols]: index of the nearest centroid
    objective: np.ndarray  # float64 [rows]: weighted squared error of the dense part


# -- sorting, run costs, random numbers --------------------------------------------------------

@njit(**_jit)
def _radix_sort_row(bits, keys, tmp):
    """Sort a float32 row given as its bits; returns keys (ordered float bits << 32 | column).

    Four 8-bit LSD passes over the 32 value bits: ~10x np.argsort on rows of 4096.
    """
    n = bits.shape[0]
    for i in range(n):
        u = np.uint64(bits[i])
        if u >= _SIGN32:
            u = _LOW32 - u
        else:
            u = u + _SIGN32
        keys[i] = (u << _U64_32) | np.uint64(i)
    count = np.empty(257, np.int64)
    src, dst = keys, tmp
    for p in range(4):
        shift = np.uint64(32 + 8 * p)
        count[:] = 0
        for i in range(n):
            count[np.int64((src[i] >> shift) & np.uint64(255)) + 1] += 1
        if count[np.int64((src[0] >> shift) & np.uint64(255)) + 1] == n:
            continue  # every key has the same byte here: the pass would move nothing
        for b in range(256):
            count[b + 1] += count[b]
        for i in range(n):
            b = np.int64((src[i] >> shift) & np.uint64(255))
            dst[count[b]] = src[i]
            count[b] += 1
        src, dst = dst, src
    return src


@njit(**_jit)
def _run_cost(P0, P1, P2, a, b):
    """Weighted squared deviation from their mean of sorted points a..b-1 (b > a)."""
    s1 = P1[b] - P1[a]
    c = (P2[b] - P2[a]) - s1 * s1 / (P0[b] - P0[a])
    return c if c > 0.0 else 0.0


@njit(**_jit)
def _mass_about(P0, P1, P2, a, b, d):
    """Weighted squared distance of sorted points a..b-1 to the value d."""
    if b <= a:
        return 0.0
    m = (P2[b] - P2[a]) - 2.0 * d * (P1[b] - P1[a]) + d * d * (P0[b] - P0[a])
    return m if m > 0.0 else 0.0


@njit(**_jit)
def _count_le(y, v, lo, hi):
    """Number of the sorted y[0:hi] that are <= v, knowing that it is at least lo."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if y[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(**_jit)
def _count_le_near(y, v, g, lo, hi):
    """_count_le(y, v, lo, hi), galloping out from a guess g (Lloyd's boundaries move little)."""
    g = min(max(g, lo), hi)
    step = 1
    if g < hi and y[g] <= v:
        a = g + 1  # the answer is >= a
        while True:
            b = a + step - 1
            if b >= hi:
                return _count_le(y, v, a, hi)
            if y[b] > v:
                return _count_le(y, v, a, b)
            a = b + 1
            step *= 2
    b = g  # the answer is <= b
    while True:
        a = b - step
        if a < lo:
            return _count_le(y, v, lo, b)
        if y[a] <= v:
            return _count_le(y, v, a + 1, b)
        b = a
        step *= 2


@njit(**_jit)
def _next_uniform(state):
    """splitmix64 step on state[0]; a float in [0, 1)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(**_jit)
def _seed_state(state, seed, row, start):
    state[0] = ((np.uint64(seed) * np.uint64(0xD1B54A32D192ED03))
                ^ (np.uint64(row) * np.uint64(0x8CB92BA72F3D8DD7))
                ^ (np.uint64(start) * np.uint64(0xABC98388FB8FAC03)))
    for _ in range(4):
        _next_uniform(state)


@njit(**_jit)
def _means_and_cost(P0, P1, P2, s, k, c):
    """Centroids c of the runs s (c is relative to the row mean, like y); returns the cost."""
    total = 0.0
    for j in range(k):
        a, b = s[j], s[j + 1]
        c[j] = (P1[b] - P1[a]) / (P0[b] - P0[a])
        total += _run_cost(P0, P1, P2, a, b)
    return total


# -- the exact DP and its windowed form -------------------------------------------------------

@njit(**_jit)
def _dp_runs(P0, P1, P2, k, lo, hi, s):
    """Best k runs of the points with prefix sums P0..P2 when run q must start in [lo[q], hi[q]].

    D_q(i) = min over t in window q-1, t < i, of D_{q-1}(t) + cost(t, i). The leftmost best
    t is non-decreasing in i (Monge), so divide and conquer finds a layer in
    O(width log width). Full windows (_full_windows) give the global optimum. Windows must
    keep every run non-empty (_fix_windows); the boundaries go to s (s[0] = 0, s[k] = n).
    """
    n = P0.shape[0] - 1
    width = 1
    for q in range(1, k):
        width = max(width, hi[q] - lo[q] + 1)
    prev = np.empty(width)
    cur = np.empty(width)
    base = np.empty(width)
    arg = np.empty((k, width), np.int32)
    for i in range(lo[1], hi[1] + 1):
        prev[i - lo[1]] = _run_cost(P0, P1, P2, 0, i)
    stack = np.empty((128, 4), np.int64)
    for q in range(2, k):
        plo, phi, qlo = lo[q - 1], hi[q - 1], lo[q]
        for t in range(plo, phi + 1):
            base[t - plo] = prev[t - plo] - P2[t]  # cost(t, i) = P2[i] - P2[t] - S1^2 / S0
        top = 0
        stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = qlo, hi[q], plo, phi
        while top >= 0:
            a, b, olo, ohi = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
            top -= 1
            if a > b:
                continue
            i = (a + b) >> 1
            p0, p1 = P0[i], P1[i]
            best, best_t = np.inf, olo
            for t in range(olo, min(ohi, i - 1) + 1):
                s1 = p1 - P1[t]
                v = base[t - plo] - s1 * s1 / (p0 - P0[t])
                if v < best:
                    best, best_t = v, t
            cur[i - qlo] = best + P2[i]
            arg[q, i - qlo] = best_t
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = a, i - 1, olo, best_t
            top += 1
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = i + 1, b, best_t, ohi
        prev, cur = cur, prev
    best, best_t = np.inf, lo[k - 1]
    for t in range(lo[k - 1], hi[k - 1] + 1):
        v = prev[t - lo[k - 1]] + _run_cost(P0, P1, P2, t, n)
        if v < best:
            best, best_t = v, t
    s[0] = 0
    s[k] = n
    s[k - 1] = best_t
    for q in range(k - 1, 1, -1):
        s[q - 1] = arg[q, s[q] - lo[q]]


@njit(**_jit)
def _full_windows(n, k, lo, hi):
    for q in range(k + 1):
        lo[q] = q
        hi[q] = n - k + q


@njit(**_jit)
def _fix_windows(n, k, lo, hi):
    """Clamp boundary windows so that any choice within them leaves every run non-empty."""
    lo[0], hi[k] = 0, n
    for q in range(1, k):
        lo[q] = max(max(lo[q], q), lo[q - 1] + 1)
    for q in range(k - 1, 0, -1):
        hi[q] = min(min(hi[q], n - k + q), hi[q + 1] - 1)
    lo[k], hi[0] = n, 0


@njit(**_jit)
def _polish(P0, P1, P2, k, s, lo, hi, radius, eps):
    """Exact DP inside windows around the boundaries s, re-centred until it stops improving.

    The first round uses the windows lo/hi given (they must contain s), later rounds
    +-radius around the current boundaries. Never worse than s, and optimal against every
    simultaneous move of the boundaries within the windows (so in particular Lloyd- and
    Hartigan-stable). Returns the cost of s.
    """
    n = P0.shape[0] - 1
    t = np.empty(k + 1, np.int64)
    cur = 0.0
    for j in range(k):
        cur += _run_cost(P0, P1, P2, s[j], s[j + 1])
    for _round in range(1 << 10):
        _fix_windows(n, k, lo, hi)
        _dp_runs(P0, P1, P2, k, lo, hi, t)
        new = 0.0
        for j in range(k):
            new += _run_cost(P0, P1, P2, t[j], t[j + 1])
        if not new < cur - eps:
            break
        s[:] = t
        cur = new
        for q in range(k + 1):
            lo[q] = s[q] - radius
            hi[q] = s[q] + radius
    return cur


# -- starts ----------------------------------------------------------------------------------

@njit(**_jit)
def _weight_width_bins(y, P0, eps, cand):
    """Greedy bins whose weight x value width stays <= eps; their starts (and n) go to cand."""
    n = y.shape[0]
    cand[0] = 0
    m = 1
    a = 0
    for i in range(1, n):
        if y[i] != y[i - 1] and (P0[i + 1] - P0[a]) * (y[i] - y[a]) > eps:
            cand[m] = i
            m += 1
            a = i
    cand[m] = n
    return m + 1


@njit(**_jit)
def _init_coarse_dp(y, P0, P1, P2, k, n_bins, s, lo, hi):
    """Optimal runs when boundaries may only fall between ~n_bins bins of the sorted row.

    Moving the part of a bin beyond an optimal boundary (the midpoint m of centroids c < c')
    to the other side costs sum w (c' - c) 2 |x - m| <= 2 (c' - c) weight(bin) width(bin),
    so bins of equal weight x width bound every boundary's error alike, and heavy points get
    bins of their own. Rows of at most n_bins points get one bin per distinct value, which
    makes this the exact optimum. lo/hi get windows spanning the two bins around each
    boundary, for _polish. Returns False when there are not more bins than k.
    """
    n = y.shape[0]
    cand = np.empty(n + 1, np.int64)
    eps = 0.0 if n <= n_bins else P0[n] * (y[n - 1] - y[0]) / (n_bins * n_bins)
    m = _weight_width_bins(y, P0, eps, cand)
    for _ in range(8):
        bins = m - 1
        if eps == 0.0 or 3 * n_bins <= 4 * bins <= 5 * n_bins:
            break
        eps *= (bins / n_bins) ** 2  # the number of bins goes like eps^(-1/2)
        m = _weight_width_bins(y, P0, eps, cand)
    if m - 1 <= k:
        return False
    sub = cand[:m]
    _full_windows(m - 1, k, lo, hi)
    _dp_runs(P0[sub], P1[sub], P2[sub], k, lo, hi, s)
    for j in range(k + 1):
        lo[j] = sub[max(s[j] - 1, 0)]
        hi[j] = sub[min(s[j] + 1, m - 1)]
        s[j] = sub[s[j]]
    return True


@njit(**_jit)
def _init_quantiles(y, P0, k, c):
    n = y.shape[0]
    i = 0
    for j in range(k):
        target = (j + 0.5) / k * P0[n]
        while i < n - 1 and P0[i + 1] < target:
            i += 1
        c[j] = y[i]


@njit(**_jit)
def _sample_in_run(P0, P1, P2, a, b, d, u):
    """Smallest p in a..b-1 with mass(a..p) about d >= u (inverse CDF by bisection)."""
    lo, hi = a, b - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if _mass_about(P0, P1, P2, a, mid + 1, d) >= u:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(**_jit)
def _gain_of(y, P0, P1, P2, d, split, t, x):
    """Decrease of the k-means++ potential when x joins the t sorted centres d."""
    n = y.shape[0]
    p = 0
    while p < t and d[p] < x:
        p += 1
    if p == 0:
        m = _count_le(y, 0.5 * (x + d[0]), 0, split[1])
        return _mass_about(P0, P1, P2, 0, m, d[0]) - _mass_about(P0, P1, P2, 0, m, x)
    if p == t:
        m = _count_le(y, 0.5 * (d[t - 1] + x), split[t - 1], n)
        return _mass_about(P0, P1, P2, m, n, d[t - 1]) - _mass_about(P0, P1, P2, m, n, x)
    lo, mo, hi = split[p - 1], split[p], split[p + 1]
    m1 = _count_le(y, 0.5 * (d[p - 1] + x), lo, mo)
    m2 = _count_le(y, 0.5 * (x + d[p]), mo, hi)
    old = _mass_about(P0, P1, P2, m1, mo, d[p - 1]) + _mass_about(P0, P1, P2, mo, m2, d[p])
    return old - _mass_about(P0, P1, P2, m1, m2, x)


@njit(**_jit)
def _init_kmeanspp(y, P0, P1, P2, k, state, d, split, mass):
    """Greedy weighted k-means++ (as scikit-learn: 2 + log k candidates per centre).

    The centres d are kept sorted with the run of points nearest to each (split) and its
    potential (mass), so drawing and scoring a candidate is O(log n), not O(n).
    """
    n = y.shape[0]
    i = _count_le(P0, _next_uniform(state) * P0[n], 1, n + 1) - 1
    d[0] = y[min(i, n - 1)]
    split[0], split[1] = 0, n
    mass[0] = _mass_about(P0, P1, P2, 0, n, d[0])
    trials = 2 + int(np.log(k))
    for t in range(1, k):
        total = 0.0
        for j in range(t):
            total += mass[j]
        best_gain, best_x = -1.0, d[t - 1]
        if total > 0.0:
            for _ in range(trials):
                u = _next_uniform(state) * total
                j = 0
                while j < t - 1 and u >= mass[j]:
                    u -= mass[j]
                    j += 1
                if split[j + 1] <= split[j]:
                    continue
                x = y[_sample_in_run(P0, P1, P2, split[j], split[j + 1], d[j], u)]
                g = _gain_of(y, P0, P1, P2, d, split, t, x)
                if g > best_gain:
                    best_gain, best_x = g, x
        p = 0
        while p < t and d[p] < best_x:
            p += 1
        for j in range(t, p, -1):
            d[j] = d[j - 1]
            mass[j] = mass[j - 1]
        for j in range(t + 1, p + 1, -1):
            split[j] = split[j - 1]
        d[p] = best_x
        split[t + 1] = n
        for j in range(max(p, 1), min(p + 2, t + 1)):
            split[j] = _count_le(y, 0.5 * (d[j - 1] + d[j]), split[j - 1], n)
        for j in range(max(p - 1, 0), min(p + 2, t + 1)):
            mass[j] = _mass_about(P0, P1, P2, split[j], split[j + 1], d[j])


# -- Lloyd ------------------------------------------------------------------------------------

@njit(**_jit)
def _fill_empty_runs(y, P0, P1, P2, s, k):
    """Give every empty run points: split the costliest run at its best 2-means split.

    The caller guarantees more distinct values than k, so some run always holds two
    distinct values and can be split between them.
    """
    while True:
        empty = -1
        for j in range(k):
            if s[j + 1] == s[j]:
                empty = j
                break
        if empty < 0:
            return
        for j in range(empty, k):
            s[j] = s[j + 1]
        worst, worst_cost = -1, -1.0
        for j in range(k - 1):
            a, b = s[j], s[j + 1]
            if b - a >= 2 and y[a] != y[b - 1]:
                cst = _run_cost(P0, P1, P2, a, b)
                if cst > worst_cost:
                    worst, worst_cost = j, cst
        if worst < 0:
            return
        a, b = s[worst], s[worst + 1]
        best_t, best = a + 1, np.inf
        for t in range(a + 1, b):
            if y[t] != y[t - 1]:
                cst = _run_cost(P0, P1, P2, a, t) + _run_cost(P0, P1, P2, t, b)
                if cst < best:
                    best, best_t = cst, t
        for j in range(k, worst + 1, -1):
            s[j] = s[j - 1]
        s[worst + 1] = best_t


@njit(**_jit)
def _lloyd(y, P0, P1, P2, c, s, k, max_iter, tol):
    """Lloyd from the sorted centroids c; leaves the runs s and their means c; returns the cost.

    Stops when the assignment no longer changes or the cost improves by <= tol (relative).
    """
    n = y.shape[0]
    prev = np.inf
    total = np.inf
    s[:] = -1
    for it in range(max_iter):
        changed = it == 0
        lo = 0
        for j in range(1, k):
            v = _count_le_near(y, 0.5 * (c[j - 1] + c[j]), s[j], lo, n)
            if v != s[j]:
                s[j] = v
                changed = True
            lo = v
        s[0] = 0
        s[k] = n
        if not changed:
            break
        _fill_empty_runs(y, P0, P1, P2, s, k)
        total = _means_and_cost(P0, P1, P2, s, k, c)
        if prev < np.inf and prev - total <= tol * prev:
            break
        prev = total
    return total


# -- one row ---------------------------------------------------------------------------------

@njit(**_jit)
def _kmeans_fast(y, P0, P1, P2, k, n_init, max_iter, tol, seed, row, n_bins, radius, best_c):
    """Best of n_init starts (coarse DP, weighted quantiles, k-means++...), each polished."""
    n = y.shape[0]
    c = np.empty(k)
    s = np.empty(k + 1, np.int64)
    lo = np.empty(k + 1, np.int64)
    hi = np.empty(k + 1, np.int64)
    split = np.empty(k + 1, np.int64)
    mass = np.empty(k)
    state = np.zeros(1, np.uint64)
    eps = 1e-13 * _run_cost(P0, P1, P2, 0, n)
    best = np.inf
    best_s = np.empty(k + 1, np.int64)
    coarse = _init_coarse_dp(y, P0, P1, P2, k, max(n_bins, 4 * k), s, lo, hi)
    for start in range(n_init):
        kind = start if coarse else start + 1
        if kind == 0:
            for q in range(k + 1):
                lo[q] = min(lo[q], s[q] - radius)
                hi[q] = max(hi[q], s[q] + radius)
            total = _polish(P0, P1, P2, k, s, lo, hi, radius, eps)
        else:
            if kind == 1:
                _init_quantiles(y, P0, k, c)
            else:
                _seed_state(state, seed, row, kind)
                _init_kmeanspp(y, P0, P1, P2, k, state, c, split, mass)
            total = _lloyd(y, P0, P1, P2, c, s, k, max_iter, tol)
            if total < best:  # polishing a worse local optimum rarely pays for itself
                for q in range(k + 1):
                    lo[q] = s[q] - radius
                    hi[q] = s[q] + radius
                total = _polish(P0, P1, P2, k, s, lo, hi, radius, eps)
        if total < best:
            best = total
            best_s[:] = s
    return _means_and_cost(P0, P1, P2, best_s, k, best_c)


@njit(**_jit)
def _kmeans_exact(y, P0, P1, P2, k, best_c):
    n = y.shape[0]
    s = np.empty(k + 1, np.int64)
    lo = np.empty(k + 1, np.int64)
    hi = np.empty(k + 1, np.int64)
    _full_windows(n, k, lo, hi)
    _dp_runs(P0, P1, P2, k, lo, hi, s)
    return _means_and_cost(P0, P1, P2, s, k, best_c)


@njit(**_jit)
def _cluster_row(r, W, Wbits, F, has_F, mask, has_mask, k, exact, seed, n_init, max_iter, tol,
                 n_bins, radius, centroids, codes, objective, status):
    """Row r: fit, then code every entry and measure the objective."""
    cols = W.shape[1]
    keys = _radix_sort_row(Wbits[r], np.empty(cols, np.uint64), np.empty(cols, np.uint64))
    # the fitted points in sorted order; zero weights do not count
    x = np.empty(cols)
    w = np.empty(cols)
    m = 0
    wsum = 0.0
    for p in range(cols):
        j = np.int64(keys[p] & _LOW32)
        v = np.float64(W[r, j])
        if not np.isfinite(v):
            status[r] = _BAD_W
        f = np.float64(F[r, j]) if has_F else 1.0
        if not (f >= 0.0 and f < np.inf):
            status[r] = _BAD_F
        if has_mask and not mask[r, j]:
            continue
        x[m] = v
        w[m] = f
        wsum += f
        m += 1
    if status[r] != 0:
        centroids[r, :] = 0.0
        codes[r, :] = 0
        objective[r] = np.nan
        return
    unweighted = not wsum > 0.0
    n = 0
    for i in range(m):
        wi = 1.0 if unweighted else w[i]
        if wi > 0.0:
            x[n] = x[i]
            w[n] = wi
            n += 1
    distinct = 0
    for i in range(n):
        if i == 0 or x[i] != x[i - 1]:
            distinct += 1
    c = np.zeros(k)
    if distinct <= k:
        j = 0
        for i in range(n):
            if i == 0 or x[i] != x[i - 1]:
                c[j] = x[i]
                j += 1
        for jj in range(j, k):
            c[jj] = c[j - 1] if j > 0 else 0.0
        for jj in range(k):
            centroids[r, jj] = np.float32(c[jj])
    else:
        # centred on the weighted mean, so the prefix sums cancel less
        mean = 0.0
        for i in range(n):
            mean += w[i] * x[i]
        total_w = 0.0
        for i in range(n):
            total_w += w[i]
        mean /= total_w
        y = np.empty(n)
        P0 = np.empty(n + 1)
        P1 = np.empty(n + 1)
        P2 = np.empty(n + 1)
        P0[0] = P1[0] = P2[0] = 0.0
        for i in range(n):
            y[i] = x[i] - mean
            P0[i + 1] = P0[i] + w[i]
            P1[i + 1] = P1[i] + w[i] * y[i]
            P2[i + 1] = P2[i] + w[i] * y[i] * y[i]
        if exact:
            _kmeans_exact(y, P0, P1, P2, k, c)
        else:
            _kmeans_fast(y, P0, P1, P2, k, n_init, max_iter, tol, seed, r, n_bins, radius, c)
        for jj in range(k):
            centroids[r, jj] = np.float32(c[jj] + mean)
        for jj in range(1, k):  # rounding to float32 keeps the order, but make sure
            v32 = centroids[r, jj]
            ii = jj - 1
            while ii >= 0 and centroids[r, ii] > v32:
                centroids[r, ii + 1] = centroids[r, ii]
                ii -= 1
            centroids[r, ii + 1] = v32
    # every entry (masked ones too) gets its nearest float32 centroid, by one walk over
    # the sorted row; the objective is measured on exactly these codes and centroids
    mids = np.empty(max(k - 1, 1))
    for jj in range(k - 1):
        mids[jj] = 0.5 * (np.float64(centroids[r, jj]) + np.float64(centroids[r, jj + 1]))
    j = 0
    obj = 0.0
    for p in range(cols):
        col = np.int64(keys[p] & _LOW32)
        v = np.float64(W[r, col])
        while j < k - 1 and v > mids[j]:
            j += 1
        codes[r, col] = j
        if not has_mask or mask[r, col]:
            e = v - np.float64(centroids[r, j])
            obj += (1.0 if (unweighted or not has_F) else np.float64(F[r, col])) * e * e
    objective[r] = obj


@njit(parallel=True, **_jit)
def _kmeans_rows(W, Wbits, F, has_F, mask, has_mask, k, exact, seed, n_init, max_iter, tol,
                 n_bins, radius, centroids, codes, objective, status):
    for r in prange(W.shape[0]):
        _cluster_row(r, W, Wbits, F, has_F, mask, has_mask, k, exact, seed, n_init, max_iter, tol,
                     n_bins, radius, centroids, codes, objective, status)


@njit(parallel=True, **_jit)
def _objective_rows(W, F, has_F, mask, has_mask, centroids, codes, out):
    rows, cols = W.shape
    for r in prange(rows):
        wsum = 0.0
        if has_F:
            for j in range(cols):
                if not has_mask or mask[r, j]:
                    wsum += F[r, j]
        unweighted = not has_F or not wsum > 0.0
        obj = 0.0
        for j in range(cols):
            if not has_mask or mask[r, j]:
                e = np.float64(W[r, j]) - np.float64(centroids[r, codes[r, j]])
                obj += (1.0 if unweighted else np.float64(F[r, j])) * e * e
        out[r] = obj


# -- public API ------------------------------------------------------------------------------

def _prepare(W, F, mask):
    W = np.ascontiguousarray(W, dtype=np.float32)
    if W.ndim != 2:
        raise ValueError(f"W must be a 2-D matrix, got shape {W.shape}")
    if W.shape[1] >= 1 << 32:
        raise ValueError("rows of 2^32 or more columns are not supported")
    if F is None:
        Fa, has_F = np.zeros((0, 0), np.float32), False
    else:
        Fa, has_F = np.ascontiguousarray(F, dtype=np.float32), True
        if Fa.shape != W.shape:
            raise ValueError(f"F has shape {Fa.shape}, W has {W.shape}")
    if mask is None:
        Ma, has_mask = np.zeros((0, 0), np.bool_), False
    else:
        Ma, has_mask = np.ascontiguousarray(mask, dtype=np.bool_), True
        if Ma.shape != W.shape:
            raise ValueError(f"mask has shape {Ma.shape}, W has {W.shape}")
    return W, Fa, has_F, Ma, has_mask


def weighted_kmeans_rows(W: np.ndarray, F: np.ndarray | None = None, mask: np.ndarray | None = None,
                         bits: int = 3, *, seed: int = 0, n_init: int = 3, max_iter: int = 100,
                         tol: float = 1e-7, exact: bool = False) -> KMeansResult:
    """Per-row weighted k-means with k = 2^bits centroids (see the module docstring).

    W: [rows, cols] weights, used as float32 (no float64 copy is made). F: sensitivities of
    the same shape (finite, >= 0), or None for unweighted. mask: True where the entry is
    fitted (the dense part), or None for all. n_init starts: the coarse DP, weighted
    quantiles, then greedy weighted k-means++ seeded by (seed, row, start); Lloyd runs at
    most max_iter rounds and stops early when the cost improves by <= tol (relative).
    exact=True ignores seed, n_init, max_iter and tol and returns the optimum.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    if n_init < 1 or max_iter < 1 or not tol >= 0:
        raise ValueError("n_init and max_iter must be >= 1 and tol >= 0")
    W, Fa, has_F, Ma, has_mask = _prepare(W, F, mask)
    rows, cols = W.shape
    k = 1 << bits
    centroids = np.zeros((rows, k), np.float32)
    codes = np.zeros((rows, cols), np.uint8)
    objective = np.zeros(rows, np.float64)
    status = np.zeros(rows, np.int8)
    if rows and cols:
        _kmeans_rows(W, W.view(np.uint32), Fa, has_F, Ma, has_mask, k, bool(exact), int(seed) & (2**63 - 1),
                     int(n_init), int(max_iter), float(tol), _N_BINS, _POLISH_RADIUS,
                     centroids, codes, objective, status)
    bad = np.flatnonzero(status)
    if bad.size:
        what = "W has NaN or infinite entries" if status[bad[0]] == _BAD_W else \
            "F (the sensitivities) must be finite and >= 0"
        raise ValueError(f"{what} (row {bad[0]}, {bad.size} rows in all)")
    return KMeansResult(centroids, codes, objective)


def kmeans_objective(W: np.ndarray, F: np.ndarray | None, mask: np.ndarray | None,
                     centroids: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per row, the sum over the dense entries of F * (W - centroids[row, code])^2 (float64).

    Same conventions as weighted_kmeans_rows: with F None, or in a row whose dense F sums to
    zero, every dense entry has weight 1.
    """
    W, Fa, has_F, Ma, has_mask = _prepare(W, F, mask)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.shape != W.shape or centroids.ndim != 2 or centroids.shape[0] != W.shape[0]:
        raise ValueError("codes must have W's shape and centroids must be [rows, k]")
    if codes.size and int(codes.max()) >= centroids.shape[1]:
        raise ValueError("a code is out of the range of the centroid table")
    out = np.zeros(W.shape[0], np.float64)
    if W.size:
        _objective_rows(W, Fa, has_F, Ma, has_mask, centroids, codes, out)
    return out
