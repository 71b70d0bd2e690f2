"""The ways into `sqconvert` besides a model folder: GGUF files (made by llama.cpp's
convert_hf_to_gguf.py where it is importable, else by GGUFWriter as that script writes them) and
Hugging Face hub ids resolved from a hub cache laid out as huggingface_hub lays it out."""

import json
import os
import shutil

import gguf
import numpy as np
import pytest

from conftest import STORIES, VALID_TEXT, sqconvert
from gguf_files import convert_with_llamacpp, llamacpp_converter_available, llamacpp_permute, write_gguf
from sqllm.converter.checkpoint import open_checkpoint
from sqllm.converter.gguf_checkpoint import _llama3_rope_scaling, rope_row_order
from sqllm.converter.gguf_tokenizer import tokenizer_from_gguf
from sqllm.converter.hub import resolve_model
from sqllm.formats import constants as C
from sqllm.errors import ConversionError
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

TEXT = VALID_TEXT.read_text(encoding="utf-8")[:3000] + " héllo wörld 世界 🙂 \x01 <s> 12345"
OPTIONS = ("--method", "rtn", "--bits", 4, "--quiet")
TOKENIZER_KEYS = (C.KEY_TOKENIZER_MODEL, C.KEY_TOKENIZER_TOKENS, C.KEY_TOKENIZER_TOKEN_TYPE, C.KEY_TOKENIZER_MERGES,
                  C.KEY_TOKENIZER_BOS, C.KEY_TOKENIZER_EOS, C.KEY_TOKENIZER_UNK, C.KEY_TOKENIZER_ADD_BOS,
                  C.KEY_TOKENIZER_ADD_EOS, C.KEY_TOKENIZER_ADD_SPACE_PREFIX, C.KEY_FAMILY, C.KEY_HEAD_DIM,
                  C.KEY_NUM_KV_HEADS, C.KEY_NORM_EPS, C.KEY_ROPE_THETA, C.KEY_TIE_EMBEDDINGS, C.KEY_CONTEXT_LENGTH)


@pytest.fixture(scope="module")
def stories_sqf(tmp_path_factory):
    f = tmp_path_factory.mktemp("folder") / "folder.sqf"
    sqconvert(STORIES, "-o", f, *OPTIONS)
    return f


@pytest.fixture(scope="module", params=["convert_hf_to_gguf", "GGUFWriter"])
def stories_gguf(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf") / "stories260K-f32.gguf"
    if request.param == "convert_hf_to_gguf":
        if not llamacpp_converter_available():
            pytest.skip("llama.cpp's convert_hf_to_gguf.py is not importable (../shared/tools/get_llamacpp_peer.sh)")
        return convert_with_llamacpp(STORIES, out)
    return write_gguf(STORIES, out)


def same_model(a, b, text=TEXT):
    """Both files tokenize the text alike, have the same tokenizer and shape keys, and the same logits."""
    ma, mb = SqfReader(a).metadata, SqfReader(b).metadata
    for key in TOKENIZER_KEYS:
        assert (np.asarray(ma.get(key)) == np.asarray(mb.get(key))).all(), key
    ra, rb = Model(a, kv_cache="f32"), Model(b, kv_cache="f32")
    ids = rb.tokenize(text)
    assert ra.tokenize(text) == ids
    assert np.array_equal(ra.logits(ids[:96]), rb.logits(ids[:96]))


def test_gguf_converts_to_the_same_file_as_the_folder(stories_gguf, stories_sqf, tmp_path):
    f = tmp_path / "gguf.sqf"
    sqconvert(stories_gguf, "-o", f, *OPTIONS)
    same_model(f, stories_sqf)
    # The tokenizer.json rebuilt from the GGUF tokenizes as the folder's does in Hugging Face tokenizers.
    from tokenizers import Tokenizer
    ours = Tokenizer.from_str(SqfReader(f).metadata[C.KEY_HF_TOKENIZER_JSON])
    theirs = Tokenizer.from_file(str(STORIES / "tokenizer.json"))
    assert ours.encode(TEXT).ids == theirs.encode(TEXT).ids


def test_llama_rows_are_put_back_in_hugging_face_order(stories_gguf):
    ckpt = open_checkpoint(stories_gguf)
    reference = open_checkpoint(STORIES)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.4.self_attn.k_proj.weight"):
        assert np.array_equal(ckpt.read(name), reference.read(name))
        rows = np.array([5, 0, 17, 31])
        assert np.array_equal(ckpt.read_rows(name, rows), reference.read(name)[rows])
    assert ckpt.config()["architectures"] == ["LlamaForCausalLM"]


@pytest.mark.parametrize("heads,rows", [(8, 64), (4, 32), (2, 256), (14, 896)])
def test_rope_row_order_inverts_llamacpp_permute(heads, rows):
    w = np.random.default_rng(0).standard_normal((rows, 3)).astype(np.float32)
    assert np.array_equal(llamacpp_permute(w, heads)[rope_row_order(rows, heads)], w)


def test_f16_and_quantized_gguf(tmp_path, caplog):
    f16 = write_gguf(STORIES, tmp_path / "f16.gguf", dtype=np.float16)
    reference = open_checkpoint(STORIES)
    ckpt = open_checkpoint(f16)
    name = "model.layers.2.self_attn.q_proj.weight"
    assert ckpt.dtype(name) == "F16"
    assert np.array_equal(ckpt.read(name), reference.read(name).astype(np.float16).astype(np.float32))

    Q8 = gguf.GGMLQuantizationType.Q8_0
    names = ["model.layers.1.self_attn.k_proj.weight", "model.layers.0.mlp.gate_proj.weight"]
    q8 = write_gguf(STORIES, tmp_path / "q8.gguf", quantize={n: Q8 for n in names})
    with caplog.at_level("WARNING"):
        ckpt = open_checkpoint(q8)
    assert "dequantized first" in caplog.text and "Q8_0" in caplog.text
    for n in names:
        W = reference.read(n)
        stored = W if ".mlp." in n else llamacpp_permute(W, 4)
        expect = gguf.quants.dequantize(gguf.quants.quantize(stored, Q8), Q8)
        expect = expect if ".mlp." in n else expect[rope_row_order(W.shape[0], 4)]
        assert np.array_equal(ckpt.read(n), expect)
        assert np.array_equal(ckpt.read_rows(n, np.array([3, 1])), expect[[3, 1]])
        assert 0 < np.abs(ckpt.read(n) - W).max() < 0.01 * np.abs(W).max()
    p = sqconvert(q8, "-o", tmp_path / "q8.sqf", *OPTIONS)
    assert "requantiz" in p.stderr or "quantizing them again" in p.stderr


def test_unsupported_and_broken_gguf_files(tmp_path, stories_sqf):
    p = sqconvert(stories_sqf, "-o", tmp_path / "again.sqf", check=False)
    assert p.returncode == 1 and "an .sqf file, already quantized" in p.stderr and not (tmp_path / "again.sqf").exists()
    other = write_gguf(STORIES, tmp_path / "gemma.gguf", arch="gemma")
    out = tmp_path / "o.sqf"
    p = sqconvert(other, "-o", out, check=False)
    assert p.returncode == 1 and not out.exists()
    assert p.stderr.count("\n") == 1 and "gemma.gguf" in p.stderr and "architecture 'gemma'" in p.stderr

    q1 = write_gguf(STORIES, tmp_path / "q1.gguf",
                    quantize={"model.layers.0.mlp.gate_proj.weight": gguf.GGMLQuantizationType.Q8_1})
    p = sqconvert(q1, "-o", out, check=False)
    assert p.returncode == 1 and not out.exists()
    assert p.stderr.count("\n") == 1 and "blk.0.ffn_gate.weight has type Q8_1" in p.stderr, p.stderr

    good = write_gguf(STORIES, tmp_path / "good.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    for bad in (truncated, tmp_path / "header.gguf"):
        if bad.name == "header.gguf":
            bad.write_bytes(good.read_bytes()[:100])
        p = sqconvert(bad, "-o", out, check=False)
        assert p.returncode == 1 and not out.exists(), p.stderr
        assert p.stderr.count("\n") == 1 and bad.name in p.stderr, p.stderr


def _train_byte_level(pre: str):
    """A small byte-level BPE with the pipeline `pre` names, and the GGUF keys llama.cpp would write for it."""
    from tokenizers import Tokenizer, models, trainers
    tj_pipeline = tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre,
                                       "tokenizer.ggml.tokens": ["a"], "tokenizer.ggml.merges": ["a a"]}, "x.gguf")[0]
    tok = Tokenizer(models.BPE(ignore_merges=tj_pipeline["model"]["ignore_merges"]))
    spec = json.loads(tok.to_str())
    spec.update(normalizer=tj_pipeline["normalizer"], pre_tokenizer=tj_pipeline["pre_tokenizer"],
                decoder={"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False})
    tok = Tokenizer.from_str(json.dumps(spec))
    from tokenizers import pre_tokenizers
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([VALID_TEXT.read_text(encoding="utf-8")[:200_000]], trainer)
    trained = json.loads(tok.to_str())
    vocab = trained["model"]["vocab"]
    tokens = [None] * len(vocab)
    for text, i in vocab.items():
        tokens[i] = text
    fields = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
              "tokenizer.ggml.token_type": [3 if t == "<|endoftext|>" else 1 for t in tokens],
              "tokenizer.ggml.merges": [m if isinstance(m, str) else " ".join(m) for m in trained["model"]["merges"]],
              "tokenizer.ggml.eos_token_id": vocab["<|endoftext|>"], "tokenizer.ggml.add_bos_token": False}
    return tok, fields


@pytest.mark.parametrize("pre", ["qwen2", "llama-bpe", "gpt-2", "starcoder", "default"])
def test_gguf_pre_tokenizer_names_become_the_hugging_face_pipeline(pre):
    """The tokenizer.json rebuilt from GGUF keys tokenizes like the tokenizer the keys were taken from."""
    from tokenizers import Tokenizer
    reference, fields = _train_byte_level(pre)
    tj, config = tokenizer_from_gguf(fields, "x.gguf")
    assert config["eos_token"] == "<|endoftext|>" and not config["add_bos_token"]
    ours = Tokenizer.from_str(json.dumps(tj))
    for text in (TEXT, "  leading\n\n\ttabs  and 1234567 digits's IT'S <|endoftext|> ½ ǅ e\u0301"):
        assert ours.encode(text).ids == reference.encode(text).ids


def test_unknown_gguf_tokenizers_are_named(tmp_path):
    with pytest.raises(ConversionError, match="pre-tokenizer 'bloom'"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "bloom",
                             "tokenizer.ggml.tokens": ["a"], "tokenizer.ggml.merges": ["a a"]}, tmp_path / "m.gguf")
    with pytest.raises(ConversionError, match="m.gguf: tokenizer model 'bert'"):
        tokenizer_from_gguf({"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["a"]}, tmp_path / "m.gguf")


def _hub_cache(root, repo: str, folder, revision: str = "0123456789abcdef0123456789abcdef01234567"):
    """A hub cache as huggingface_hub lays it out: blobs named by content, a snapshot of links, refs/main."""
    import hashlib
    base = root / ("models--" + repo.replace("/", "--"))
    (base / "blobs").mkdir(parents=True)
    snapshot = base / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for f in sorted(folder.iterdir()):
        if f.suffix in (".bin", ".md") or f.name == "LICENSE":
            continue
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, base / "blobs" / digest)
        (snapshot / f.name).symlink_to(os.path.relpath(base / "blobs" / digest, snapshot))
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(revision)
    return snapshot


def test_hub_id_from_the_cache(tmp_path, stories_sqf):
    home = tmp_path / "hf-home"
    snapshot = _hub_cache(home / "hub", "sqllm-test/stories260K", STORIES)
    assert resolve_model("sqllm-test/stories260K", home / "hub") == snapshot
    assert resolve_model(f"sqllm-test/stories260K@{snapshot.name}", home / "hub") == snapshot
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    out = tmp_path / "hub.sqf"
    sqconvert("sqllm-test/stories260K", "-o", out, *OPTIONS, env={**env, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    same_model(out, stories_sqf)

    missing = tmp_path / "missing.sqf"
    p = sqconvert("sqllm-test/absent-model", "-o", missing, check=False, env={**env, "HF_HUB_CACHE": str(home / "hub")})
    assert p.returncode == 1 and not missing.exists()
    assert p.stderr.count("\n") == 1 and str(home / "hub" / "models--sqllm-test--absent-model") in p.stderr
    with pytest.raises(ConversionError, match="revision 'v2'"):
        resolve_model("sqllm-test/stories260K@v2", home / "hub")

    # A GGUF repository: its one .gguf file is the model.
    gguf_repo = tmp_path / "gguf-repo"
    gguf_repo.mkdir()
    write_gguf(STORIES, gguf_repo / "stories260K-f32.gguf")
    _hub_cache(home / "hub", "sqllm-test/stories260K-GGUF", gguf_repo)
    ckpt = open_checkpoint(resolve_model("sqllm-test/stories260K-GGUF", home / "hub"))
    assert ckpt.weight_files[0].name == "stories260K-f32.gguf" and ckpt.config()["architectures"] == ["LlamaForCausalLM"]


class _Tensor:
    def __init__(self, data):
        self.data = data


@pytest.mark.parametrize("scaling", [
    {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    {"factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 3.0, "original_max_position_embeddings": 64},
])
def test_llama3_rope_scaling_from_rope_freqs(scaling):
    """llama.cpp stores Llama-3.1's scaling as one factor per frequency (rope_freqs): the parameters
    recovered from it give Hugging Face's frequencies back."""
    import math
    theta, dim, ctx = 500000.0, 64, 131072
    freqs = 1.0 / theta ** (np.arange(0, dim, 2) / dim)

    def hf_inv_freq(s):  # transformers' _compute_llama3_parameters
        low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
        high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
        wavelen = 2 * math.pi / freqs
        inv = np.where(wavelen > low_wavelen, freqs / s["factor"], freqs)
        smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (
            s["high_freq_factor"] - s["low_freq_factor"])
        smoothed = (1 - smooth) * inv / s["factor"] + smooth * inv
        middle = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return np.where(middle, smoothed, inv)

    factors = freqs / hf_inv_freq(scaling)  # what convert_hf_to_gguf.py writes
    got = _llama3_rope_scaling("m.gguf", _Tensor(factors.astype(np.float32)),
                               {"head_dim": dim, "rope_theta": theta, "max_position_embeddings": ctx})
    assert got["rope_type"] == "llama3" and got["factor"] == scaling["factor"]
    np.testing.assert_allclose(hf_inv_freq(got), hf_inv_freq(scaling), rtol=1e-5)


def test_tokenizer_errors_name_the_gguf(stories_gguf):
    ckpt = open_checkpoint(stories_gguf)
    ckpt._tokenizer[0]["model"]["vocab"]["▁extra"] = 600  # a token beyond the embedding's 512 rows
    with pytest.raises(ConversionError) as e:
        ckpt.tokenizer_metadata(512)
    assert str(e.value).startswith(str(stories_gguf)) and "sqllm-gguf-tokenizer" not in str(e.value)
    assert "601 tokens" in str(e.value)
