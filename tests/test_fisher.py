"""sqconvert fisher on the bundled model: gradients, activations, the input statistics H, the
SqueezeLLM folder layout, errors."""

import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import STORIES, TRAIN_TEXT, sqconvert
from sqllm.converter.gptq import hessian_name
from sqllm.formats import constants as C
from sqllm.formats.reader import SqfReader


def test_gradient_fisher_file(stories_fisher):
    """Every decoder linear and the (tied) embedding get a Fisher; every distinct linear input an H."""
    F = load_file(stories_fisher)
    W = load_file(STORIES / "model.safetensors")
    linears = [n for n in W if n.startswith("model.layers.") and W[n].ndim == 2]
    weighted = linears + ["model.embed_tokens.weight"]
    hessians = sorted({hessian_name(n) for n in weighted})
    assert "lm_head.hessian" in hessians and len(hessians) == 4 * 5 + 1
    assert sorted(F) == sorted(weighted + hessians)
    for n in weighted:
        assert F[n].shape == W[n].shape and F[n].dtype == np.float32
        assert np.isfinite(F[n]).all() and (F[n] >= 0).all() and F[n].max() > 0
    for n in linears + ["model.embed_tokens.weight"]:
        H = F[hessian_name(n)]
        assert H.dtype == np.float32 and H.shape == (W[n].shape[1],) * 2
    for h in hessians:
        H = F[h].astype(np.float64)
        assert np.array_equal(F[h], F[h].T) and (np.diagonal(H) >= 0).all() and np.diagonal(H).max() > 0
        assert np.linalg.eigvalsh(H).min() >= -1e-5 * np.diagonal(H).max()
    with open(stories_fisher, "rb") as f:
        header = f.read(8 + int.from_bytes(f.read(8), "little"))
    assert b'"samples":"16"' in header and b'"seq_len":"256"' in header and b"data_sha256" in header
    assert b'"hessians":"true"' in header


def test_hessian_is_the_mean_of_x_xT(tmp_path):
    """H against X^T X / N from the norms' outputs (not the linears' inputs the converter hooks)
    of the same calibration sequences, run through the model here."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sqllm.converter.fisher import calibration_sequences, compute_fisher

    out = tmp_path / "h.safetensors"
    compute_fisher(STORIES, TRAIN_TEXT, out, samples=2, seq_len=32, kind="activations", progress=False)
    F = load_file(out)
    model = AutoModelForCausalLM.from_pretrained(STORIES, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(STORIES)(TRAIN_TEXT.read_text(), add_special_tokens=False)["input_ids"]
    seqs = calibration_sequences(ids, 32, 2, data=TRAIN_TEXT)
    seen = {"model.layers.1.mlp.gate_proj.hessian": [], "lm_head.hessian": []}
    layer = model.model.layers[1]
    layer.post_attention_layernorm.register_forward_hook(
        lambda m, i, o: seen["model.layers.1.mlp.gate_proj.hessian"].append(o[0]))
    model.model.norm.register_forward_hook(lambda m, i, o: seen["lm_head.hessian"].append(o[0]))
    with torch.no_grad():
        for seq in seqs:
            model(torch.tensor([seq]))
        x = torch.cat(seen["model.layers.1.mlp.gate_proj.hessian"])
        seen["model.layers.1.mlp.down_proj.hessian"] = [layer.mlp.act_fn(layer.mlp.gate_proj(x)) * layer.mlp.up_proj(x)]
    for name, xs in seen.items():
        X = torch.cat(xs).double().numpy()
        assert X.shape[0] == 64
        np.testing.assert_allclose(F[name], X.T @ X / X.shape[0], rtol=1e-4, atol=1e-6 * np.abs(F[name]).max())


def test_activation_fisher_is_broadcast_over_rows(tmp_path):
    out = tmp_path / "act.safetensors"
    sqconvert("fisher", STORIES, "--data", TRAIN_TEXT, "-o", out, "--fisher-kind", "activations", "--samples", 4,
              "--seq-len", 128, "--no-hessian", "--quiet")
    F = load_file(out)
    up = F["model.layers.0.mlp.up_proj.weight"]
    assert np.array_equal(up, np.broadcast_to(up[0], up.shape)) and (up[0] > 0).all()
    assert not [n for n in F if n.endswith(".hessian")]
    with open(out, "rb") as f:
        assert b'"hessians":"false"' in f.read(8 + int.from_bytes(f.read(8), "little"))


def test_squeezellm_gradient_folder_is_accepted(tmp_path, stories_fisher):
    """The SqueezeLLM gradient tool saves a checkpoint-shaped folder (save_pretrained)."""
    folder = tmp_path / "gradients"
    folder.mkdir()
    shutil.copy(STORIES / "config.json", folder / "config.json")
    W = load_file(STORIES / "model.safetensors")
    F = load_file(stories_fisher)
    save_file({n: F.get(n, np.zeros_like(v)) for n, v in W.items()}, folder / "model.safetensors")
    out = tmp_path / "m.sqf"
    sqconvert(STORIES, "-o", out, "--fisher", folder, "--quiet")
    assert SqfReader(out).metadata[C.KEY_RECIPE_FISHER].startswith("folder:gradients sha256:")


def test_fisher_errors(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Once upon a time.")
    p = sqconvert("fisher", STORIES, "--data", short, "-o", tmp_path / "f.safetensors", "--quiet", check=False)
    assert p.returncode == 1 and "too few for one sample" in p.stderr
    p = sqconvert("fisher", tmp_path, "--data", TRAIN_TEXT, "-o", tmp_path / "f.safetensors", "--quiet", check=False)
    assert p.returncode == 1 and "cannot load" in p.stderr
    p = sqconvert("fisher", STORIES, "--data", TRAIN_TEXT, "-o", tmp_path / "f.safetensors", "--samples", 100000,
                  "--quiet", check=False)
    assert p.returncode == 1 and "samples" in p.stderr
    assert not (tmp_path / "f.safetensors").exists() and "Traceback" not in p.stderr


@pytest.mark.parametrize("n_tokens, seq_len, samples, expected", [(1000, 100, None, 10), (1000, 100, 4, 4), (99, 100, None, None)])
def test_calibration_sequences(n_tokens, seq_len, samples, expected, tmp_path):
    from sqllm.converter.fisher import calibration_sequences
    from sqllm.errors import ConversionError

    ids = list(range(n_tokens))
    if expected is None:
        with pytest.raises(ConversionError):
            calibration_sequences(ids, seq_len, samples, data=tmp_path)
        return
    seqs = calibration_sequences(ids, seq_len, samples, data=tmp_path)
    assert len(seqs) == expected and all(len(s) == seq_len for s in seqs)
    assert seqs[0][0] == 0 and seqs[-1][-1] == (n_tokens // seq_len) * seq_len - 1  # spread over the whole text
