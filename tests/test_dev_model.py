"""The real Qwen2 dev model (../shared/tools/get_dev_model.sh) through converter and runtime:
per-group LUTs, a sparse part, q/k/v biases, tied embeddings, byte-level BPE, GQA 14/2."""

import json

import numpy as np
import pytest

from conftest import TRAIN_TEXT, WIKI_TEXT, sqconvert
from gguf_files import convert_with_llamacpp, llamacpp_converter_available, write_gguf
from sqllm.converter.evaluate import reference_logits, reference_perplexity
from sqllm._sqllm import Tokenizer
from sqllm.formats import constants as C
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

TEXT = WIKI_TEXT.read_text(encoding="utf-8")[:4000]


@pytest.fixture(scope="module")
def dev_q(tmp_path_factory, dev_model):
    d = tmp_path_factory.mktemp("dev")
    f = d / "q4g128.sqf"
    sqconvert(dev_model, "-o", f, "--method", "rtn", "--bits", 4, "--group-size", 128, "--outliers", 0.4, "--quiet")
    hf = d / "hf"
    sqconvert("dequant", f, "-o", hf)
    return f, hf


def test_dev_model_file(dev_q):
    r = SqfReader(dev_q[0])
    assert r.config["family"] == "qwen2" and r.config["attention_bias"] and r.config["tie_embeddings"]
    L = r.linears["model.layers.0.mlp.down_proj.weight"]
    assert L.group_size == 128 and L.groups == 38 and L.nnz == round(0.004 * L.rows * L.cols)


def test_dev_model_logits_match_torch(dev_q):
    f, hf = dev_q
    model = Model(f, kv_cache="f32", n_batch=48, exact=True)
    ids = model.tokenize(TEXT)[:96]
    ours = model.logits(ids)
    ref = reference_logits(hf, ids)
    assert float(np.abs(ours - ref).max() / np.abs(ref).max()) < 1e-3


def test_dev_model_perplexity_matches_torch(dev_q):
    f, hf = dev_q
    ours = Model(f, kv_cache="f32", exact=True).perplexity(TEXT, ctx=256, max_windows=2)
    ref = reference_perplexity(hf, TEXT, ctx=256, max_windows=2)
    assert ours == pytest.approx(ref, rel=5e-5), (ours, ref)


def test_dev_model_gguf_reads_as_the_folder(dev_model, tmp_path):
    """An F16 GGUF of the dev model (convert_hf_to_gguf.py's where importable) holds the folder's
    model: every tensor, the configuration keys and the tokenizer keys are the same, so the
    converter, which is deterministic, writes the same file from either (test_inputs.py converts
    stories260K both ways and compares the logits)."""
    from sqllm.converter.checkpoint import open_checkpoint
    from sqllm.converter.config import model_metadata

    gguf = tmp_path / "dev-f16.gguf"
    if llamacpp_converter_available():
        convert_with_llamacpp(dev_model, gguf, "f16")
    else:
        write_gguf(dev_model, gguf, dtype=np.float16)
    ours, theirs = open_checkpoint(gguf), open_checkpoint(dev_model)
    assert sorted(ours.names) == sorted(theirs.names)
    for name in theirs.names:
        assert np.array_equal(ours.read(name), theirs.read(name)), name
    keys = model_metadata(ours.config(), gguf)["keys"]
    reference = model_metadata(theirs.config(), dev_model)["keys"]
    keys.pop(C.KEY_HF_CONFIG), reference.pop(C.KEY_HF_CONFIG)  # the GGUF's config.json is rebuilt, not copied
    assert keys == reference
    vocab = reference[C.KEY_VOCAB_SIZE]
    tok, tok_reference = ours.tokenizer_metadata(vocab), theirs.tokenizer_metadata(vocab)
    for key in (C.KEY_TOKENIZER_MODEL, C.KEY_TOKENIZER_TOKENS, C.KEY_TOKENIZER_TOKEN_TYPE, C.KEY_TOKENIZER_MERGES,
                C.KEY_TOKENIZER_BOS, C.KEY_TOKENIZER_EOS, C.KEY_TOKENIZER_PAD, C.KEY_TOKENIZER_ADD_BOS,
                C.KEY_TOKENIZER_ADD_EOS):
        assert tok.get(key) == tok_reference.get(key), key
    text = TEXT + "\ndef f(x):\n\treturn x ** 2  # héllo 世界 <|im_start|>user\n"
    assert Tokenizer(tok).encode(text) == Tokenizer(tok_reference).encode(text)


def test_dev_model_generates_code(dev_q):
    text = "".join(Model(dev_q[0]).generate("def fibonacci(n):", max_tokens=24, temperature=0))
    assert "return" in text or "if" in text


@pytest.fixture(scope="module")
def dev_fisher(tmp_path_factory, dev_model):
    """A small real gradient Fisher of the dev model (embedding included), with input statistics."""
    out = tmp_path_factory.mktemp("devfisher") / "fisher.safetensors"
    sqconvert("fisher", dev_model, "--data", TRAIN_TEXT, "-o", out, "--samples", 2, "--seq-len", 64, "--quiet")
    return out


@pytest.mark.parametrize("target", [3.5, 5.0])
def test_dev_model_budget_is_honoured(tmp_path, dev_model, dev_fisher, target):
    f = tmp_path / "b.sqf"
    sqconvert(dev_model, "-o", f, "--target-bpw", target, "--fisher", dev_fisher, "--quiet")
    info = json.loads(sqconvert("inspect", f, "--json").stdout)
    bpw = info["bits_per_weight"]["whole_file"]
    assert target - 0.05 < bpw <= target
    r = SqfReader(f)
    assert "model.embed_tokens.weight" in r.linears  # the tied embedding and head are quantized too
    if target == 3.5:
        # The quantized tied embedding/head and GPTQ-rounded linears match torch on the dequantized weights.
        hf = tmp_path / "hf"
        sqconvert("dequant", f, "-o", hf)
        model = Model(f, kv_cache="f32", n_batch=48, exact=True)
        ids = model.tokenize(TEXT)[:64]
        ours, ref = model.logits(ids), reference_logits(hf, ids)
        assert float(np.abs(ours - ref).max() / np.abs(ref).max()) < 1e-3
