"""Architectures beyond the bundled Llama and the Qwen2 dev model: a Mistral with a sliding window,
through the converter and the runtime against torch on the dequantized weights."""

import json
import shutil

import numpy as np
import pytest

from conftest import STORIES, VALID_TEXT, sqconvert
from sqllm.converter.evaluate import reference_logits
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

TEXT = VALID_TEXT.read_text(encoding="utf-8")[:400]


def max_rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def mistral_folder(tmp_path_factory):
    """A random-init MistralForCausalLM (GQA 4/2, a sliding window of 16) with stories260K's tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.MistralConfig(vocab_size=512, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                     max_position_embeddings=256, sliding_window=16, initializer_range=0.2,
                                     tie_word_embeddings=False)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mistral") / "mistral"
    transformers.MistralForCausalLM(cfg).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copyfile(STORIES / name, folder / name)
    return folder


def test_mistral_sliding_window_matches_torch(mistral_folder, tmp_path):
    """Mistral with a window shorter than the context: runtime against torch, in one prompt and in
    batches that cross the window's edge, and the window visibly changes the logits."""
    f = tmp_path / "mistral.sqf"
    sqconvert(mistral_folder, "-o", f, "--method", "rtn", "--bits", 4, "--quiet")
    r = SqfReader(f)
    assert r.config["family"] == "mistral" and r.config["sliding_window"] == 16
    hf = tmp_path / "hf"
    sqconvert("dequant", f, "-o", hf)
    model = Model(f, kv_cache="f32", exact=True)
    ids = model.tokenize(TEXT)[:80]
    ref = reference_logits(hf, ids)
    assert max_rel_err(model.logits(ids), ref) < 1e-3
    assert max_rel_err(Model(f, kv_cache="f32", n_batch=7, exact=True).logits(ids), ref) < 1e-3
    unwindowed = tmp_path / "unwindowed"
    shutil.copytree(hf, unwindowed)
    cfg = json.loads((unwindowed / "config.json").read_text())
    (unwindowed / "config.json").write_text(json.dumps({**cfg, "sliding_window": None}))
    full = reference_logits(unwindowed, ids)
    assert max_rel_err(full[:16], ref[:16]) < 1e-5 and max_rel_err(full[16:], ref[16:]) > 1e-2
