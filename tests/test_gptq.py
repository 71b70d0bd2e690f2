"""GPTQ-style code assignment on real rows of the bundled model with a real H from its activations."""

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import STORIES, TRAIN_TEXT
from sqllm.converter.fisher import compute_fisher
from sqllm.converter.gptq import DAMP, assign_codes_gptq, factor_hessian, hessian_name
from sqllm.converter.kmeans import weighted_kmeans_rows
from sqllm.converter.sparse import select_sparse

LAYERS = ["model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.v_proj.weight",
          "model.layers.2.self_attn.o_proj.weight", "model.layers.3.mlp.up_proj.weight",
          "model.layers.3.mlp.down_proj.weight", "model.embed_tokens.weight"]


@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    """The model's weights, and a gradient Fisher with H from 4 x 64 tokens of training text."""
    out = tmp_path_factory.mktemp("gptq") / "fisher.safetensors"
    compute_fisher(STORIES, TRAIN_TEXT, out, samples=4, seq_len=64, progress=False)
    return load_file(STORIES / "model.safetensors"), load_file(out)


def setup(tensors, name, bits):
    """W, its H, the SqueezeLLM split and Fisher-weighted LUT as the converter would store them."""
    W, F = tensors[0][name], tensors[1][name]
    fixed = select_sparse(W, F, 0.40, 0.05)
    lut = weighted_kmeans_rows(W, F, ~fixed, bits).centroids.astype(np.float16).astype(np.float32)
    return W, tensors[1][hessian_name(name)], lut, fixed


def objective(W, H, Q):
    E = (W - Q).astype(np.float64)
    return np.einsum("ij,jk,ik->i", E, H.astype(np.float64), E)


def nearest(W, lut, fixed):
    Q = np.take_along_axis(lut, np.abs(W[:, :, None] - lut[:, None, :]).argmin(-1), 1)
    return np.where(fixed, W.astype(np.float16).astype(np.float32), Q)


def test_hessian_name():
    assert hessian_name("model.layers.3.self_attn.k_proj.weight") == "model.layers.3.self_attn.q_proj.hessian"
    assert hessian_name("model.layers.3.self_attn.v_proj.weight") == "model.layers.3.self_attn.q_proj.hessian"
    assert hessian_name("model.layers.3.self_attn.o_proj.weight") == "model.layers.3.self_attn.o_proj.hessian"
    assert hessian_name("model.layers.12.mlp.up_proj.weight") == "model.layers.12.mlp.gate_proj.hessian"
    assert hessian_name("model.layers.12.mlp.down_proj.weight") == "model.layers.12.mlp.down_proj.hessian"
    assert hessian_name("lm_head.weight") == hessian_name("model.embed_tokens.weight") == "lm_head.hessian"


@pytest.mark.parametrize("bits", [3, 4])
def test_never_worse_than_nearest_and_consistent(tensors, bits):
    total, total_nearest = 0.0, 0.0
    for name in LAYERS:
        W, H, lut, fixed = setup(tensors, name, bits)
        res = assign_codes_gptq(W, H, lut, fixed)
        obj, obj_n = objective(W, H, res.dequant), objective(W, H, nearest(W, lut, fixed))
        scale = obj_n.max()
        np.testing.assert_allclose(res.objective, obj, rtol=1e-4, atol=1e-6 * scale)
        np.testing.assert_allclose(res.objective_nearest, obj_n, rtol=1e-4, atol=1e-6 * scale)
        assert (obj <= obj_n + 1e-6 * scale).all()
        assert np.array_equal(res.objective < res.objective_nearest, res.gptq_rows)
        total, total_nearest = total + obj.sum(), total_nearest + obj_n.sum()

        assert res.codes.dtype == np.uint8 and res.codes.shape == W.shape and res.codes.max() < 2**bits
        dense = np.take_along_axis(lut, res.codes.astype(np.int64), 1)
        assert np.array_equal(res.dequant[~fixed], dense[~fixed])
        kept = res.dequant[fixed]
        assert np.array_equal(kept.astype(np.float16).astype(np.float32), kept)  # what the CSR stores, exactly
        # A kept entry moves only by the feedback it received: rows left at nearest keep W itself.
        plain = ~res.gptq_rows[:, None] & fixed
        assert np.array_equal(res.dequant[plain], W[plain].astype(np.float16).astype(np.float32))
    assert total < 0.9 * total_nearest


def test_deterministic_and_independent_of_block_and_shared_factor(tensors):
    W, H, lut, fixed = setup(tensors, "model.layers.3.mlp.down_proj.weight", 3)
    a = assign_codes_gptq(W, H, lut, fixed)
    b = assign_codes_gptq(W, factor_hessian(H), lut, fixed, block=16)
    c = assign_codes_gptq(W, H, lut, fixed)
    assert np.array_equal(a.codes, c.codes) and np.array_equal(a.dequant, c.dequant)
    assert np.array_equal(a.objective, c.objective)
    assert (a.codes != b.codes).mean() < 1e-3  # only float rounding of the GEMM order differs
    np.testing.assert_allclose(a.objective.sum(), b.objective.sum(), rtol=1e-4)


def test_dead_column_is_rounded_to_nearest(tensors):
    """An input that is always zero: its column sees no feedback, and gives none."""
    W, H, lut, _ = setup(tensors, "model.layers.2.self_attn.o_proj.weight", 3)
    H = H.copy()
    H[5, :] = H[:, 5] = 0
    res = assign_codes_gptq(W, H, lut)
    assert np.array_equal(res.dequant[:, 5], nearest(W, lut, np.zeros_like(W, bool))[:, 5])
    live = np.ones(W.shape[1], bool)
    live[5] = False
    # Without the column, and the same damping (GPTQ's mean diagonal counts the dead column as 1).
    trace = float(np.trace(H, dtype=np.float64))
    damp = DAMP * (trace + 1) / H.shape[0] * (H.shape[0] - 1) / trace
    alone = assign_codes_gptq(W[:, live], H[np.ix_(live, live)], lut, damp=damp)
    assert (alone.dequant != res.dequant[:, live]).mean() < 1e-3
    np.testing.assert_allclose(res.objective, objective(W, H, res.dequant), rtol=1e-4, atol=1e-6 * res.objective.max())


def test_bad_arguments(tensors):
    W, H, lut, fixed = setup(tensors, "model.layers.1.self_attn.q_proj.weight", 3)
    with pytest.raises(ValueError, match="ascending"):
        assign_codes_gptq(W, H, lut[:, ::-1], fixed)
    with pytest.raises(ValueError, match="columns"):
        assign_codes_gptq(W[:, :10], H, lut)
    with pytest.raises(ValueError, match="fixed"):
        assign_codes_gptq(W, H, lut, fixed[:3])
    with pytest.raises(ValueError, match="damp"):
        assign_codes_gptq(W, H, lut, damp=0)
