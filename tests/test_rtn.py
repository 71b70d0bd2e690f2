"""Round-to-nearest baselines as LUTs: against a direct numpy transcription of the formula, the
clipping search never worse than no clipping, and groups with a short last group."""

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import STORIES
from sqllm.converter.rtn import CLIP_RATIOS, rtn_rows


def reference(W, bits, group_size=None, sym=False, ratio=1.0):
    """The formula of DESIGN.md, group by group: q = clamp(rint(w/s) + z, 0, 2^b-1), LUT = s(q-z)."""
    rows, cols = W.shape
    gs = cols if group_size is None else min(group_size, cols)
    qmax = 2**bits - 1
    luts, codes = [], np.zeros(W.shape, np.uint8)
    for a in range(0, cols, gs):
        w = W[:, a:a + gs].astype(np.float64)
        lo, hi = ratio * w.min(1, keepdims=True), ratio * w.max(1, keepdims=True)
        amax = np.maximum(np.abs(lo), np.abs(hi))
        if sym:
            s = 2 * amax / qmax
            s = np.where(s > 0, s, 1.0)
            z = np.full_like(s, 2 ** (bits - 1))
        else:
            s = (hi - lo) / qmax
            s = np.where(s > amax * 2.0**-50, s, np.where(amax > 0, amax, 1.0))
            z = np.rint(-lo / s)
        codes[:, a:a + gs] = np.clip(np.rint(w / s) + z, 0, qmax)
        luts.append((s * (np.arange(qmax + 1) - z)).astype(np.float32))
    return np.stack(luts, axis=1), codes


def dequant(lut, codes, group_size):
    rows, cols = codes.shape
    return lut[np.arange(rows)[:, None], (np.arange(cols) // group_size)[None, :], codes]


def group_errors(W, lut, codes, group_size, F=None):
    err = (W.astype(np.float64) - dequant(lut, codes, group_size)) ** 2
    if F is not None:
        err *= F
    rows, cols = W.shape
    return np.add.reduceat(err, np.arange(0, cols, group_size), axis=1)


@pytest.fixture(scope="module")
def matrices():
    st = load_file(STORIES / "model.safetensors")
    rng = np.random.default_rng(0)
    heavy = (rng.standard_t(3, (16, 200)) * 0.02).astype(np.float32)
    return [st["model.layers.0.self_attn.q_proj.weight"], st["model.layers.3.mlp.down_proj.weight"], heavy]


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("group_size", [None, 32, 48])
def test_matches_the_formula(matrices, bits, sym, group_size):
    for W in matrices:
        lut, codes = rtn_rows(W, bits, group_size=group_size, sym=sym)
        ref_lut, ref_codes = reference(W, bits, group_size, sym)
        assert lut.dtype == np.float32 and codes.dtype == np.uint8
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(lut, ref_lut)


def test_short_last_group_uses_only_its_own_columns():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 200)).astype(np.float32)  # groups of 64: 64, 64, 64, 8 columns
    lut, codes = rtn_rows(W, 4, group_size=64)
    assert lut.shape == (5, 4, 16)
    W2 = W.copy()
    W2[:, :192] *= 100  # the first three groups change, the last one must not
    lut2, codes2 = rtn_rows(W2, 4, group_size=64)
    np.testing.assert_array_equal(lut2[:, 3], lut[:, 3])
    np.testing.assert_array_equal(codes2[:, 192:], codes[:, 192:])
    tail = W[:, 192:].astype(np.float64)
    step = (tail.max(1) - tail.min(1)) / 15
    assert (np.abs(lut[:, 3, 0] - tail.min(1)) <= step / 2 + 1e-6).all()
    assert (np.abs(lut[:, 3, 15] - tail.max(1)) <= step / 2 + 1e-6).all()
    one_group, _ = rtn_rows(W, 4, group_size=1000)
    assert one_group.shape == (5, 1, 16)


@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_clip_search_never_worse_and_from_the_grid(matrices, sym, weighted):
    rng = np.random.default_rng(2)
    improved = 0
    for W in matrices:
        F = rng.lognormal(0, 1, W.shape) if weighted else None
        for gs in (32, W.shape[1]):
            base_lut, base_codes = rtn_rows(W, 3, group_size=gs, sym=sym)
            lut, codes = rtn_rows(W, 3, group_size=gs, sym=sym, clip_search=True, F=F)
            base_err = group_errors(W, base_lut, base_codes, gs, F)
            err = group_errors(W, lut, codes, gs, F)
            assert (err <= base_err * (1 + 1e-9)).all()
            improved += int((err < base_err * (1 - 1e-3)).sum())
            # the chosen table is the formula at the grid's best ratio, group by group
            cands = [reference(W, 3, gs, sym, r) for r in CLIP_RATIOS]
            cand_err = np.stack([group_errors(W, l, c, gs, F) for l, c in cands])
            best = cand_err.min(0)
            np.testing.assert_allclose(err, best, rtol=1e-9, atol=1e-30)
    assert improved > 0  # heavy tails make clipping pay off somewhere


def test_constant_groups_are_exact():
    W = np.zeros((4, 64), np.float32)
    W[1] = 0.37
    W[2] = -2.5
    W[3, :32] = 1.0  # a constant first group, a zero second group
    for gs in (None, 32):
        lut, codes = rtn_rows(W, 3, group_size=gs)
        assert np.isfinite(lut).all()
        np.testing.assert_array_equal(dequant(lut, codes, gs or 64), W)
        lut, codes = rtn_rows(W[:1], 3, group_size=gs, sym=True)  # zero is on every symmetric grid
        np.testing.assert_array_equal(dequant(lut, codes, gs or 64), W[:1])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="bits"):
        rtn_rows(np.ones((2, 4), np.float32), 0)
    with pytest.raises(ValueError, match="NaN"):
        rtn_rows(np.full((2, 4), np.inf, np.float32), 3)
    with pytest.raises(ValueError, match="group_size"):
        rtn_rows(np.ones((2, 4), np.float32), 3, group_size=0)
