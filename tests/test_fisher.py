"""sqconvert fisher on the bundled model: gradients, activations, the SqueezeLLM folder layout, errors."""

import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import STORIES, TRAIN_TEXT, sqconvert
from sqllm.formats import constants as C
from sqllm.formats.reader import SqfReader


def test_gradient_fisher_file(stories_fisher):
    F = load_file(stories_fisher)
    W = load_file(STORIES / "model.safetensors")
    linears = [n for n in W if n.startswith("model.layers.") and W[n].ndim == 2]
    assert sorted(F) == sorted(linears)
    for n in linears:
        assert F[n].shape == W[n].shape and F[n].dtype == np.float32
        assert np.isfinite(F[n]).all() and (F[n] >= 0).all() and F[n].max() > 0
    with open(stories_fisher, "rb") as f:
        header = f.read(8 + int.from_bytes(f.read(8), "little"))
    assert b'"samples":"16"' in header and b'"seq_len":"256"' in header and b"data_sha256" in header


def test_activation_fisher_is_broadcast_over_rows(tmp_path):
    out = tmp_path / "act.safetensors"
    sqconvert("fisher", STORIES, "--data", TRAIN_TEXT, "-o", out, "--fisher-kind", "activations", "--samples", 4,
              "--seq-len", 128, "--quiet")
    F = load_file(out)
    up = F["model.layers.0.mlp.up_proj.weight"]
    assert np.array_equal(up, np.broadcast_to(up[0], up.shape)) and (up[0] > 0).all()


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
    from sqllm.formats.errors import ConversionError

    ids = list(range(n_tokens))
    if expected is None:
        with pytest.raises(ConversionError):
            calibration_sequences(ids, seq_len, samples, data=tmp_path)
        return
    seqs = calibration_sequences(ids, seq_len, samples, data=tmp_path)
    assert len(seqs) == expected and all(len(s) == seq_len for s in seqs)
    assert seqs[0][0] == 0 and seqs[-1][-1] == (n_tokens // seq_len) * seq_len - 1  # spread over the whole text
