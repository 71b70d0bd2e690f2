"""Quantized embeddings and output head, and the size budget (`--target-bpw`), on real files."""

import json
import math
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import STORIES, TRAIN_TEXT, VALID_TEXT, sqconvert
from sqllm.converter.allocate import Choice, allocate, matrix_bytes
from sqllm.converter.evaluate import reference_logits
from sqllm.errors import ConversionError
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

TEXT = VALID_TEXT.read_text(encoding="utf-8")[:3000]


def inspect(path):
    return json.loads(sqconvert("inspect", path, "--json").stdout)


def max_rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def untied_stories(tmp_path_factory):
    """The bundled model with its own output head (the tied matrix plus noise), as an untied
    checkpoint: the head and the embedding are then two matrices."""
    d = tmp_path_factory.mktemp("untied")
    for f in STORIES.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, d / f.name)
    t = load_file(STORIES / "model.safetensors")
    E = t["model.embed_tokens.weight"]
    t["lm_head.weight"] = (E + np.random.default_rng(0).normal(0, 0.02, E.shape)).astype(E.dtype)
    save_file(t, d / "model.safetensors")
    cfg = json.loads((STORIES / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def test_embedding_and_head_are_quantized_by_default(tmp_path, untied_stories):
    f = tmp_path / "u.sqf"
    sqconvert(untied_stories, "-o", f, "--bits", 3, "--quiet")
    r = SqfReader(f)
    assert r.linears["model.embed_tokens.weight"].bits == 4  # one step above --bits
    assert r.linears["lm_head.weight"].bits == 4
    assert r.linears["model.layers.0.mlp.up_proj.weight"].bits == 3
    hf = tmp_path / "hf"
    sqconvert("dequant", f, "-o", hf)
    model = Model(f, kv_cache="f32", exact=True)
    ids = model.tokenize(TEXT[:600])
    assert max_rel_err(model.logits(ids), reference_logits(hf, ids)) < 1e-3


def test_embed_bits_and_keep(tmp_path, untied_stories):
    f = tmp_path / "e.sqf"
    sqconvert(untied_stories, "-o", f, "--bits", 3, "--embed-bits", 2, "--bits-for", "lm_head.weight=8",
              "--keep", "model.embed_tokens.weight", "--quiet")
    r = SqfReader(f)
    assert "model.embed_tokens.weight" not in r.linears
    assert r.tensor_info("model.embed_tokens.weight")["type"] == 1  # F16
    assert r.linears["lm_head.weight"].bits == 8


@pytest.fixture(scope="module")
def budget_fisher(tmp_path_factory):
    """A gradient Fisher that covers the embedding (the budget weighs every quantized matrix)."""
    out = tmp_path_factory.mktemp("bf") / "fisher.safetensors"
    sqconvert("fisher", STORIES, "--data", TRAIN_TEXT, "-o", out, "--samples", 8, "--seq-len", 128, "--quiet",
              "--no-hessian")
    assert "model.embed_tokens.weight" in load_file(out)
    return out


@pytest.mark.parametrize("target", [5.0, 6.0, 7.5])
def test_budget_is_honoured(tmp_path, budget_fisher, target):
    f = tmp_path / "b.sqf"
    sqconvert(STORIES, "-o", f, "--target-bpw", target, "--fisher", budget_fisher, "--quiet")
    info = inspect(f)
    assert info["bits_per_weight"]["whole_file"] <= target
    assert info["bits_per_weight"]["whole_file"] > target - 0.6  # the budget is spent, not wasted
    plan = info["recipe"]["parameters"]["plan"]
    r = SqfReader(f)
    assert set(plan) == set(r.linears)  # every quantized matrix, embedding included
    for name, (bits, outliers, sensitive, error) in plan.items():
        L = r.linears[name]
        assert L.bits == bits and error >= 0
        assert L.nnz == round(outliers / 100 * L.rows * L.cols) + round(sensitive / 100 * L.rows * L.cols)


def test_larger_budget_predicts_less_error(tmp_path, budget_fisher):
    errors = []
    for target in (5.0, 7.0):
        f = tmp_path / f"b{target}.sqf"
        sqconvert(STORIES, "-o", f, "--target-bpw", target, "--fisher", budget_fisher, "--quiet")
        errors.append(sum(p[3] for p in inspect(f)["recipe"]["parameters"]["plan"].values()))
    assert errors[1] < errors[0]


@pytest.mark.parametrize("bad", ["nan", "-3", "0", "inf", "0.5"])
def test_bad_budgets_are_clear_errors(tmp_path, budget_fisher, bad):
    f = tmp_path / "x.sqf"
    res = sqconvert(STORIES, "-o", f, "--target-bpw", bad, "--fisher", budget_fisher, "--quiet", check=False)
    assert res.returncode != 0
    assert "--target-bpw" in res.stderr and "Traceback" not in res.stderr
    assert not f.exists() and not list(tmp_path.glob(".x.sqf*"))


def test_budget_needs_a_fisher_covering_the_embedding(tmp_path, stories_fisher):
    old = tmp_path / "old.safetensors"
    t = {k: v for k, v in load_file(stories_fisher).items() if "embed" not in k}
    save_file(t, old)
    res = sqconvert(STORIES, "-o", tmp_path / "x.sqf", "--target-bpw", 6, "--fisher", old, check=False)
    assert res.returncode == 1 and "model.embed_tokens.weight" in res.stderr and "sqconvert fisher" in res.stderr
    # Without a budget the same Fisher still converts: the embedding is clustered unweighted.
    sqconvert(STORIES, "-o", tmp_path / "y.sqf", "--fisher", old, "--quiet")


def test_matrix_bytes_is_what_the_writer_writes(tmp_path, budget_fisher):
    f = tmp_path / "m.sqf"
    sqconvert(STORIES, "-o", f, "--target-bpw", 6, "--fisher", budget_fisher, "--quiet")
    info = inspect(f)
    plan = info["recipe"]["parameters"]["plan"]
    for row in info["tensors"]:
        if row["kind"] == "quantized":
            bits, o, s, _ = plan[row["name"]]
            rows, cols = row["shape"]
            expected = matrix_bytes(rows, cols, bits, o, s)
            assert row["bytes"] <= expected < row["bytes"] + 5 * 64  # the same up to alignment


def test_allocation_takes_the_best_steps_and_respects_the_budget():
    def choices(errors):  # bytes 100, 200, 300 for errors given
        return [Choice(b, 0.0, 0.0, 100 * b, e) for b, e in zip((1, 2, 3), errors)]

    cs = {"a": choices([10.0, 2.0, 1.0]), "b": choices([5.0, 4.5, 4.4])}
    pick = allocate(cs, 500)
    assert pick["a"].bits == 3 and pick["b"].bits == 2  # a's steps pay more per byte, then b's first
    assert sum(c.bytes for c in pick.values()) <= 500
    assert allocate(cs, 200) == {"a": cs["a"][0], "b": cs["b"][0]}
    with pytest.raises(ConversionError):
        allocate(cs, 199)
    # A choice above the hull (dearer and no better than a cheaper mix) is never taken.
    cs = {"a": [Choice(1, 0, 0, 100, 10.0), Choice(2, 0, 0, 200, 9.9), Choice(3, 0, 0, 300, 1.0)]}
    assert allocate(cs, 250)["a"].bits == 1
    assert allocate(cs, 300)["a"].bits == 3
    assert math.isfinite(sum(c.error for c in allocate(cs, 300).values()))


def test_damp_is_recorded_and_changes_the_rounding(tmp_path, stories_fisher):
    files = {}
    for damp in ("0.01", "1.0"):
        files[damp] = tmp_path / f"d{damp}.sqf"
        sqconvert(STORIES, "-o", files[damp], "--bits", 3, "--fisher", stories_fisher, "--damp", damp, "--quiet")
        assert inspect(files[damp])["recipe"]["parameters"]["damp"] == float(damp)
    name = "model.layers.0.mlp.down_proj.weight"
    assert not np.array_equal(SqfReader(files["0.01"]).codes(name), SqfReader(files["1.0"]).codes(name))


@pytest.mark.parametrize("bad", ["0", "-1", "nan"])
def test_bad_damp_is_a_clear_error(tmp_path, stories_fisher, bad):
    f = tmp_path / "x.sqf"
    res = sqconvert(STORIES, "-o", f, "--fisher", stories_fisher, "--damp", bad, "--quiet", check=False)
    assert res.returncode == 1 and "--damp" in res.stderr and "Traceback" not in res.stderr
    assert not f.exists()
