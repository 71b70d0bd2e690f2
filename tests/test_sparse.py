"""The dense-and-sparse split: exact counts, the right entries, disjoint parts, CSR round trips."""

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import STORIES
from sqllm.converter import sparse
from sqllm.converter.sparse import select_sparse, to_csr


@pytest.fixture(scope="module")
def cases():
    st = load_file(STORIES / "model.safetensors")
    rng = np.random.default_rng(0)
    out = []
    for name in ("model.layers.0.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight"):
        W = st[name]
        out.append((W, (W.astype(np.float64) ** 2 * rng.lognormal(0, 1, W.shape)).astype(np.float32)))
    W = (rng.standard_t(3, (1024, 1536)) * 0.02).astype(np.float32)  # big enough for the sampled threshold
    out.append((W, rng.lognormal(0, 2, W.shape).astype(np.float32)))
    W = np.round(rng.standard_normal((300, 200)) * 2).astype(np.float32)  # few values: ties at every threshold
    out.append((W, np.round(rng.random(W.shape) * 3).astype(np.float32)))
    return out


def check_split(W, F, out_pct, sens_pct):
    n = W.size
    n_out, n_sens = round(out_pct / 100 * n), round(sens_pct / 100 * n)
    outliers = select_sparse(W, None, out_pct, 0)
    both = select_sparse(W, F, out_pct, sens_pct)
    assert outliers.dtype == np.bool_ and outliers.shape == W.shape
    assert outliers.sum() == n_out
    assert both.sum() == n_out + n_sens
    assert (both | outliers).sum() == both.sum()  # the outliers are the same inside the split
    sensitive = both & ~outliers
    assert sensitive.sum() == n_sens and not (sensitive & outliers).any()
    a = np.abs(W)
    if 0 < n_out < n:
        assert a[outliers].min() >= a[~outliers].max()
        # ties at the threshold go to the lowest flat indices
        t = a[outliers].min()
        tied = np.flatnonzero((a == t).ravel())
        chosen = np.flatnonzero((outliers & (a == t)).ravel())
        np.testing.assert_array_equal(chosen, tied[:chosen.size])
    rest = ~both
    if n_sens and rest.any():
        assert F[sensitive].min() >= F[rest].max()
    return both


@pytest.mark.parametrize("out_pct, sens_pct", [(0.4, 0.05), (0.45, 0.0), (0.0, 0.5), (3.0, 1.5), (12.5, 20.0),
                                               (0.0, 0.0), (0.01, 0.001)])
def test_counts_and_choice(cases, out_pct, sens_pct):
    for W, F in cases:
        both = check_split(W, F, out_pct, sens_pct)
        if out_pct == sens_pct == 0:
            assert not both.any()


def test_unlucky_sample_falls_back_to_an_exact_answer(monkeypatch):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((400, 500)).astype(np.float32)
    F = rng.random(W.shape).astype(np.float32)
    samples, passes = [], []

    def largest_only(n, m):  # a sample of the very largest scores puts the threshold too high
        samples.append(n)
        scores = F if len(samples) == 3 else np.abs(W)  # |W| for both outlier calls, then F
        return np.argsort(scores.ravel())[-m:]

    def counting_passes(flat, threshold, absolute, excluded):
        passes.append(absolute)
        return collect(flat, threshold, absolute, excluded)

    collect = sparse.scores_at_least
    monkeypatch.setattr(sparse, "_SAMPLE", 1000)
    monkeypatch.setattr(sparse, "_sample_positions", largest_only)
    monkeypatch.setattr(sparse, "scores_at_least", counting_passes)
    check_split(W, F, 0.2, 0.1)
    assert len(samples) == 3 and len(passes) == 6  # every selection needed its second pass


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_csr_round_trip(cases, dtype):
    for W, F in cases:
        mask = select_sparse(W, F, 1.0, 0.5)
        mask[0] = True   # a full row
        mask[-1] = False  # an empty row
        values = W.astype(dtype)
        rowptr, cols, vals = to_csr(mask, values)
        assert rowptr.dtype == np.int32 and cols.dtype == np.int32 and vals.dtype == np.float16
        assert rowptr[0] == 0 and rowptr[-1] == mask.sum() == cols.size == vals.size
        assert (np.diff(rowptr) >= 0).all()
        rebuilt = np.zeros(W.shape, bool)
        dense = np.zeros(W.shape, np.float16)
        for i in range(W.shape[0]):
            c = cols[rowptr[i]:rowptr[i + 1]]
            assert (np.diff(c) > 0).all() and (c >= 0).all() and (c < W.shape[1]).all()
            rebuilt[i, c] = True
            dense[i, c] = vals[rowptr[i]:rowptr[i + 1]]
        np.testing.assert_array_equal(rebuilt, mask)
        np.testing.assert_array_equal(dense[mask].view(np.uint16), W.astype(np.float16)[mask].view(np.uint16))


def test_empty_split():
    W = np.ones((3, 5), np.float32)
    mask = select_sparse(W, None, 0.0, 0.0)
    rowptr, cols, vals = to_csr(mask, W)
    assert not mask.any() and rowptr.tolist() == [0, 0, 0, 0] and cols.size == vals.size == 0


def test_bad_input_raises():
    W = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="Fisher"):
        select_sparse(W, None, 0.5, 0.05)
    with pytest.raises(ValueError, match="percentage"):
        select_sparse(W, None, -1, 0)
    with pytest.raises(ValueError, match="exceeds 100"):
        select_sparse(W, W, 60, 50)
    with pytest.raises(ValueError, match="NaN"):
        select_sparse(np.full((4, 4), np.nan, np.float32), None, 10, 0)
    with pytest.raises(ValueError, match=">= 0"):
        select_sparse(W, -W, 0, 10)
    with pytest.raises(ValueError, match="shape"):
        to_csr(np.zeros((4, 4), bool), np.zeros((4, 3), np.float16))
