"""Weighted 1-D k-means per row: against scikit-learn (what SqueezeLLM runs, row by row), against
brute force on tiny rows, determinism across thread counts, masks and degenerate rows."""

import itertools

import numba
import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.cluster import KMeans

from conftest import STORIES
from sqllm.converter.kmeans import kmeans_objective, weighted_kmeans_rows

SLACK = 1e-6  # relative: float32 centroids against scikit-learn's float64 ones


@pytest.fixture(scope="module")
def stories():
    return load_file(STORIES / "model.safetensors")


def real_rows(stories, rng):
    """Rows of every shape in the bundled model (64 and 172 columns) with two synthetic Fishers."""
    out = []
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.2.mlp.down_proj.weight",
                 "model.layers.4.mlp.up_proj.weight"):
        W = stories[name][:4]
        out.append((W, W.astype(np.float64) ** 2 + 1e-6))
        out.append((W, rng.lognormal(0.0, 1.5, W.shape)))
    return out


def heavy_rows(rng, rows=6, cols=4096):
    """Student-t (3 dof) rows, the shape of LLaMA linears, with lognormal Fisher weights."""
    W = (rng.standard_t(3, (rows, cols)) * 0.02).astype(np.float32)
    return W, rng.lognormal(0.0, 1.0, W.shape).astype(np.float32)


def sklearn_objective(x, w, k, n_init, max_iter=300):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=0).fit(x[:, None], sample_weight=w)
    return float(np.sum(w * (x - km.cluster_centers_[km.labels_, 0]) ** 2))


def check_result(W, F, mask, bits, res):
    rows, cols = W.shape
    k = 1 << bits
    assert res.centroids.shape == (rows, k) and res.centroids.dtype == np.float32
    assert res.codes.shape == (rows, cols) and res.codes.dtype == np.uint8
    assert res.objective.shape == (rows,) and res.objective.dtype == np.float64
    assert np.isfinite(res.centroids).all()
    assert (np.diff(res.centroids, axis=1) >= 0).all()
    assert (res.codes < k).all()
    # every entry, masked or not, holds the code of a nearest centroid
    dist = np.abs(W.astype(np.float64)[:, :, None] - res.centroids.astype(np.float64)[:, None, :])
    chosen = np.take_along_axis(dist, res.codes[:, :, None].astype(np.int64), axis=2)[:, :, 0]
    assert (chosen <= dist.min(axis=2)).all()
    np.testing.assert_allclose(res.objective, kmeans_objective(W, F, mask, res.centroids, res.codes),
                               rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_never_worse_than_sklearn_on_model_rows(stories, bits):
    rng = np.random.default_rng(bits)
    k = 1 << bits
    for W, F in real_rows(stories, rng):
        fast = weighted_kmeans_rows(W, F, bits=bits)
        exact = weighted_kmeans_rows(W, F, bits=bits, exact=True)
        check_result(W, F, None, bits, fast)
        check_result(W, F, None, bits, exact)
        for i in range(W.shape[0]):
            for n_init, max_iter in (("auto", 50), (10, 300)):  # SqueezeLLM's settings, then sklearn's best
                ref = sklearn_objective(W[i], F[i], k, n_init, max_iter)
                assert fast.objective[i] <= ref * (1 + SLACK)
                assert exact.objective[i] <= ref * (1 + SLACK)
            assert exact.objective[i] <= fast.objective[i] * (1 + SLACK)


@pytest.mark.parametrize("bits, rows, cols", [(3, 4, 4096), (4, 4, 4096), (8, 2, 1500)])
def test_never_worse_than_sklearn_on_heavy_tailed_rows(bits, rows, cols):
    W, F = heavy_rows(np.random.default_rng(10 + bits), rows, cols)
    k = 1 << bits
    fast = weighted_kmeans_rows(W, F, bits=bits)
    exact = weighted_kmeans_rows(W, F, bits=bits, exact=True)
    check_result(W, F, None, bits, fast)
    gaps = []
    for i in range(W.shape[0]):
        ref = min(sklearn_objective(W[i], F[i], k, "auto", 50), sklearn_objective(W[i], F[i], k, 3))
        assert fast.objective[i] <= ref * (1 + SLACK)
        assert exact.objective[i] <= fast.objective[i] * (1 + SLACK)
        gaps.append(ref / exact.objective[i] - 1)
    assert np.mean(gaps) > 1e-3  # the rows are hard enough for Lloyd to miss the optimum


def brute_force(x, w, k):
    """Optimum over every split of the sorted values into k contiguous runs."""
    order = np.argsort(x, kind="stable")
    x, w = x[order].astype(np.float64), w[order].astype(np.float64)
    best = np.inf
    for cuts in itertools.combinations(range(1, len(x)), k - 1):
        cost = 0.0
        for a, b in zip((0, *cuts), (*cuts, len(x))):
            c = np.sum(w[a:b] * x[a:b]) / np.sum(w[a:b])
            cost += np.sum(w[a:b] * (x[a:b] - c) ** 2)
        best = min(best, cost)
    return best


@pytest.mark.parametrize("bits", [1, 2])
def test_exact_equals_brute_force_on_tiny_rows(bits):
    rng = np.random.default_rng(bits)
    k = 1 << bits
    rows = []
    for n in range(k + 1, 11):
        for _ in range(12):
            rows.append((rng.standard_t(2, n) * rng.choice([0.01, 1, 100]), rng.lognormal(0, 2, n)))
    for x, w in rows:
        W, F = x.astype(np.float32)[None], w.astype(np.float32)[None]
        ref = brute_force(W[0], F[0], k)
        for exact in (True, False):  # rows this short are solved exactly by the fast path too
            got = weighted_kmeans_rows(W, F, bits=bits, exact=exact).objective[0]
            assert got <= ref * (1 + SLACK) + 1e-12 * np.sum(F * W.astype(np.float64) ** 2)
            assert got >= ref * (1 - SLACK)


def quadratic_dp(x, w, k):
    """The textbook O(k n^2) dynamic program over the sorted row, without any monotonicity."""
    order = np.argsort(x, kind="stable")
    x, w = x[order].astype(np.float64), w[order].astype(np.float64)
    P0, P1, P2 = (np.concatenate([[0.0], np.cumsum(v)]) for v in (w, w * x, w * x * x))
    n = len(x)
    D = P2[1:] - P1[1:] ** 2 / P0[1:]  # one run over the first i + 1 points
    for q in range(2, k + 1):
        new = np.full(n, np.inf)
        for i in range(q - 1, n):
            t = np.arange(q - 1, i + 1)  # the last run is points t..i
            s0, s1 = P0[i + 1] - P0[t], P1[i + 1] - P1[t]
            new[i] = np.min(D[t - 1] + (P2[i + 1] - P2[t]) - s1 * s1 / s0)
        D = new
    return D[-1]


@pytest.mark.parametrize("bits", [2, 3])
def test_exact_equals_quadratic_dp_on_longer_rows(bits):
    rng = np.random.default_rng(20 + bits)
    k = 1 << bits
    for n in (300, 517):
        x = (rng.standard_t(3, n) * 0.02).astype(np.float32)
        x[rng.random(n) < 0.2] = x[0]  # duplicated values too
        w = rng.lognormal(0, 2, n).astype(np.float32)
        ref = quadratic_dp(x, w, k)
        exact = weighted_kmeans_rows(x[None], w[None], bits=bits, exact=True).objective[0]
        fast = weighted_kmeans_rows(x[None], w[None], bits=bits).objective[0]
        assert exact == pytest.approx(ref, rel=1e-7)
        assert fast >= exact * (1 - SLACK)


def test_deterministic_for_a_seed_and_any_thread_count():
    W, F = heavy_rows(np.random.default_rng(7), rows=24, cols=1024)
    threads = numba.get_num_threads()
    try:
        results = []
        for n in (1, 2, 1):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            results.append(weighted_kmeans_rows(W, F, bits=3, seed=5, n_init=4))
    finally:
        numba.set_num_threads(threads)
    for res in results[1:]:
        for got, want in zip(res, results[0]):
            np.testing.assert_array_equal(got, want)


def test_mask_excludes_entries_from_the_fit():
    rng = np.random.default_rng(3)
    W, F = heavy_rows(rng, rows=5, cols=600)
    mask = rng.random(W.shape) > 0.1
    W[~mask] *= 1000  # huge values outside the dense part must not pull any centroid
    res = weighted_kmeans_rows(W, F, mask, bits=3, n_init=2)  # starts that do not depend on the row index
    check_result(W, F, mask, 3, res)
    for i in range(W.shape[0]):
        alone = weighted_kmeans_rows(W[i, mask[i]][None], F[i, mask[i]][None], bits=3, n_init=2)
        np.testing.assert_array_equal(res.centroids[i], alone.centroids[0])
        assert res.objective[i] == pytest.approx(alone.objective[0], rel=1e-12)
    assert np.abs(res.centroids).max() < np.abs(W[mask]).max() + 1e-6


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_all_widths_including_fewer_values_than_centroids(stories, bits):
    W = stories["model.layers.1.self_attn.k_proj.weight"]  # rows of 64: fewer than 256 values at 8 bits
    F = W.astype(np.float64) ** 2 + 1e-8
    for exact in (False, True):
        res = weighted_kmeans_rows(W, F, bits=bits, exact=exact)
        check_result(W, F, None, bits, res)
        if bits == 8:
            assert (res.objective == 0).all()
            for i in range(W.shape[0]):
                assert set(np.unique(W[i])) <= set(res.centroids[i])


def test_degenerate_rows():
    cols = 40
    W = np.zeros((7, cols), np.float32)
    F = np.ones_like(W)
    W[0] = 0.25                                           # constant row
    W[1] = np.tile([-1.0, 0.5, 2.0], cols)[:cols]         # 3 distinct values < k = 8
    W[2] = np.linspace(-1, 1, cols)                       # all-zero weights: falls back to unweighted
    F[2] = 0
    W[3] = np.linspace(-1, 1, cols)                       # empty dense part (mask all False)
    W[4] = np.linspace(-1, 1, cols) ** 3                  # some zero weights: they do not count
    F[4, ::2] = 0
    W[5] = np.linspace(-1, 1, cols)                       # ordinary row
    W[6, 0] = 3.0                                         # one non-zero value among zeros
    mask = np.ones(W.shape, bool)
    mask[3] = False
    res = weighted_kmeans_rows(W, F, mask, bits=3, n_init=2)
    check_result(W, F, mask, 3, res)
    assert (res.centroids[0] == 0.25).all() and res.objective[0] == 0
    assert set(res.centroids[1]) == {-1.0, 0.5, 2.0} and res.objective[1] == 0
    unweighted = weighted_kmeans_rows(W[2:3], None, bits=3, n_init=2)
    np.testing.assert_array_equal(res.centroids[2], unweighted.centroids[0])
    assert res.objective[2] == pytest.approx(unweighted.objective[0], rel=1e-12)
    assert (res.centroids[3] == 0).all() and res.objective[3] == 0
    odd = weighted_kmeans_rows(W[4:5, 1::2], F[4:5, 1::2], bits=3, n_init=2)
    np.testing.assert_array_equal(res.centroids[4], odd.centroids[0])
    assert set(res.centroids[6]) == {0.0, 3.0} and res.objective[6] == 0
    one = weighted_kmeans_rows(np.array([[1.5]], np.float32), bits=2)
    assert (one.centroids == 1.5).all() and one.codes[0, 0] == 0
    empty = weighted_kmeans_rows(np.zeros((3, 0), np.float32), bits=2)
    assert empty.centroids.shape == (3, 4) and empty.codes.shape == (3, 0)


def test_float64_input_is_used_as_float32():
    W, F = heavy_rows(np.random.default_rng(4), rows=3, cols=300)
    a = weighted_kmeans_rows(W.astype(np.float64), F.astype(np.float64), bits=3)
    b = weighted_kmeans_rows(W, F, bits=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_bad_input_raises():
    W = np.ones((2, 8), np.float32)
    with pytest.raises(ValueError, match="bits"):
        weighted_kmeans_rows(W, bits=9)
    with pytest.raises(ValueError, match="NaN"):
        weighted_kmeans_rows(np.where(np.eye(2, 8) > 0, np.nan, W), bits=2)
    with pytest.raises(ValueError, match=">= 0"):
        weighted_kmeans_rows(W, -np.ones_like(W), bits=2)
    with pytest.raises(ValueError, match="shape"):
        weighted_kmeans_rows(W, np.ones((2, 7), np.float32), bits=2)
