"""sqconvert on real files: every method and width on the bundled model, dequant through
transformers, the dense-and-sparse guarantee, and every bad input leaving nothing behind."""

import json
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import ROOT, STORIES, VALID_TEXT, sqconvert
from sqllm.converter.checkpoint import _read_safetensors_header
from sqllm.converter.config import model_metadata
from sqllm.errors import ConversionError
from sqllm.formats import constants as C
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model


@pytest.fixture(scope="module")
def conversions(tmp_path_factory, stories_fisher):
    out = tmp_path_factory.mktemp("conv")
    files = {}
    for method in ("squeezellm", "kmeans", "rtn"):
        for bits in (2, 3, 4):
            f = out / f"{method}{bits}.sqf"
            sqconvert(STORIES, "-o", f, "--method", method, "--bits", bits, "--fisher", stories_fisher, "--quiet")
            files[method, bits] = f
    return files


def torch_logits(folder: Path, ids):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def test_every_method_and_width_converts_and_dequantizes(conversions, tmp_path):
    import torch

    ids = Model(ROOT / "tests" / "data" / "stories260K-q4.sqf").tokenize(VALID_TEXT.read_text(encoding="utf-8")[:3000])[:400]
    ref = torch_logits(STORIES, ids)
    log_p = torch.log_softmax(torch.tensor(ref), -1)
    kl, rel, top1 = {}, {}, {}
    for (method, bits), f in conversions.items():
        r = SqfReader(f, verify_checksums=True)
        assert len(r.linears) == 36  # 35 decoder linears and the tied embedding
        assert {L.bits for n, L in r.linears.items() if n.startswith("model.layers.")} == {bits}
        assert r.linears["model.embed_tokens.weight"].bits == next(b for b in C.ALLOWED_BITS if b > bits)
        assert r.metadata[C.KEY_RECIPE_METHOD] == method
        hf = tmp_path / f"{method}{bits}"
        sqconvert("dequant", f, "-o", hf)
        logits = torch_logits(hf, ids)
        assert np.isfinite(logits).all()
        key = method, bits
        rel[key] = float(np.mean(np.linalg.norm(logits - ref, axis=1) / np.linalg.norm(ref, axis=1)))
        top1[key] = float(np.mean(logits.argmax(1) == ref.argmax(1)))
        log_q = torch.log_softmax(torch.tensor(logits), -1)
        kl[key] = float((log_p.exp() * (log_p - log_q)).sum(-1).mean())
    # At 4 bits the logits are close to the original's (a 260K-parameter model is fragile:
    # measured about 7% relative L2, KL 0.03-0.04, 90% top-1 agreement for the k-means methods);
    # fewer bits are further away; the non-uniform methods beat round-to-nearest.
    for method in ("squeezellm", "kmeans", "rtn"):
        assert rel[method, 4] < 0.15 and top1[method, 4] > 0.8 and kl[method, 4] < 0.2, (rel, top1, kl)
        assert kl[method, 4] < kl[method, 3] < kl[method, 2], kl
    assert kl["squeezellm", 4] < kl["rtn", 4] and kl["squeezellm", 3] < kl["rtn", 3], kl


def test_dense_and_sparse_is_exact_and_counts_match(tmp_path, stories_fisher):
    src = load_file(STORIES / "model.safetensors")
    f = tmp_path / "nearest.sqf"
    sqconvert(STORIES, "-o", f, "--bits", 3, "--fisher", stories_fisher, "--rounding", "nearest", "--quiet")
    r = SqfReader(f)
    recipe = json.loads(r.metadata[C.KEY_RECIPE_JSON])
    assert recipe["outliers"] == 0.40 and recipe["sensitive"] == 0.05
    for name, L in r.linears.items():
        W = src[name]
        n = W.size
        assert L.nnz == round(0.40 / 100 * n) + round(0.05 / 100 * n), name
        rowptr, cols, vals = r.csr(name)
        rows = np.repeat(np.arange(L.rows), np.diff(rowptr))
        # The sparse values are the original weights in fp16, and dequant reproduces them exactly.
        np.testing.assert_array_equal(vals, W[rows, cols].astype(np.float16))
        np.testing.assert_array_equal(r.weight(name)[rows, cols], W[rows, cols].astype(np.float16).astype(np.float32))
        # The outliers are the largest magnitudes of the matrix.
        k = round(0.40 / 100 * n)
        threshold = np.sort(np.abs(W).ravel())[-k]
        assert (np.abs(W[rows, cols]) >= threshold).sum() >= k


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("shape", [(1, 1), (3, 31), (5, 32), (7, 100), (64, 4096)])
def test_parallel_packing_equals_the_reference(bits, shape):
    from sqllm.converter.pack_fast import pack_codes_fast
    from sqllm.formats import pack_codes
    codes = np.random.default_rng(bits).integers(0, 1 << bits, shape).astype(np.uint8)
    np.testing.assert_array_equal(pack_codes_fast(codes, bits), pack_codes(codes, bits))
    if bits < 8:
        with pytest.raises(ValueError, match="does not fit"):
            pack_codes_fast(np.full((2, 3), 1 << bits, np.uint8), bits)


def test_parallel_passes_equal_numpy():
    from sqllm.converter.numeric import bad_counts, gather_csr, widen_to_f32
    halves = np.arange(1 << 16, dtype=np.uint16)  # every bit pattern: subnormals, inf, nan
    want = halves.view(np.float16).astype(np.float32)
    got = widen_to_f32(halves.view(np.uint8), "F16")
    nan = np.isnan(want)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.isnan(got[nan]).all()
    bf16 = widen_to_f32(halves.view(np.uint8), "BF16")
    np.testing.assert_array_equal(bf16.view(np.uint32), halves.astype(np.uint32) << 16)
    assert bad_counts(np.array([1, -2, np.nan, np.inf, -np.inf, 0, -0.0], np.float32)) == (3, 1)
    assert bad_counts(np.zeros((0, 3), np.float32)) == (0, 0)
    rng = np.random.default_rng(0)
    for shape, density in (((300, 1001), 0.01), ((4, 7), 0.0), ((0, 5), 0.5), ((9, 33), 1.0)):
        mask = rng.random(shape) < density
        values = rng.standard_normal(shape).astype(np.float16)
        rowptr, cols, vals = gather_csr(mask, values)
        r, c = np.nonzero(mask)
        np.testing.assert_array_equal(cols, c)
        np.testing.assert_array_equal(vals, values[r, c])
        np.testing.assert_array_equal(rowptr, np.concatenate([[0], np.cumsum(mask.sum(1))]))
        assert rowptr.dtype == cols.dtype == np.int32


def test_dense_only(tmp_path, stories_fisher):
    f = tmp_path / "dense.sqf"
    sqconvert(STORIES, "-o", f, "--outliers", 0, "--sensitive", 0, "--fisher", stories_fisher, "--quiet")
    assert all(L.nnz == 0 for L in SqfReader(f).linears.values())


def test_no_fisher_warns_and_records_it(tmp_path):
    f = tmp_path / "m.sqf"
    p = sqconvert(STORIES, "-o", f, "--quiet")
    assert "falls back to unweighted k-means" in p.stderr and "sqconvert fisher" in p.stderr
    r = SqfReader(f)
    assert r.metadata[C.KEY_RECIPE_FISHER] == "none"
    assert json.loads(r.metadata[C.KEY_RECIPE_JSON])["sensitive"] == 0.0


def test_fisher_next_to_the_model_is_used(tmp_path, stories_fisher):
    model = tmp_path / "model"
    shutil.copytree(STORIES, model)
    shutil.copy(stories_fisher, model / "fisher.safetensors")
    f = tmp_path / "m.sqf"
    sqconvert(model / "model.safetensors", "-o", f, "--quiet")
    assert SqfReader(f).metadata[C.KEY_RECIPE_FISHER].startswith("file:fisher.safetensors sha256:")


def test_keep_bits_for_and_rtn_groups(tmp_path):
    f = tmp_path / "m.sqf"
    sqconvert(STORIES, "-o", f, "--method", "rtn", "--bits", 4, "--group-size", 64, "--clip-search",
              "--keep", "*.self_attn.o_proj.weight", "--bits-for", "*.mlp.down_proj.weight=8", "--quiet")
    r = SqfReader(f)
    assert not any(n.endswith("o_proj.weight") for n in r.linears)
    assert r.tensor_info("model.layers.0.self_attn.o_proj.weight")["type"] == C.TYPE_F16
    assert r.linears["model.layers.0.mlp.down_proj.weight"].bits == 8
    assert r.linears["model.layers.0.mlp.up_proj.weight"].group_size == 64  # 64 columns of 64: one group
    assert r.linears["model.layers.0.mlp.down_proj.weight"].group_size == 64
    assert r.linears["model.layers.0.mlp.down_proj.weight"].groups == 3     # 172 columns


def test_exact_kmeans_is_never_worse(tmp_path, stories_fisher):
    objective = {}
    for kind in ("fast", "exact"):
        f = tmp_path / f"{kind}.sqf"
        p = sqconvert(STORIES, "-o", f, "--bits", 2, "--kmeans", kind, "--fisher", stories_fisher)
        objective[kind] = float(p.stderr.split("objective ")[1].split(",")[0])
    assert objective["exact"] <= objective["fast"] * (1 + 1e-6)


def test_bf16_and_fp16_inputs(tmp_path):
    src = load_file(STORIES / "model.safetensors")
    for dtype in ("float16", "bfloat16"):
        model = tmp_path / dtype
        shutil.copytree(STORIES, model)
        if dtype == "float16":
            save_file({k: v.astype(np.float16) for k, v in src.items()}, model / "model.safetensors")
        else:
            write_bf16(model / "model.safetensors", src)
        f = tmp_path / f"{dtype}.sqf"
        sqconvert(model, "-o", f, "--quiet")
        assert len(SqfReader(f).linears) == 36  # the decoder linears and the embedding


def write_bf16(path: Path, tensors: dict):
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        raw = (arr.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_sharded_folder(tmp_path):
    src = load_file(STORIES / "model.safetensors")
    model = tmp_path / "sharded"
    shutil.copytree(STORIES, model, ignore=shutil.ignore_patterns("model.safetensors"))
    names = sorted(src)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        fname = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({n: src[n] for n in part}, model / fname)
        weight_map.update({n: fname for n in part})
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    f = tmp_path / "s.sqf"
    sqconvert(model, "-o", f, "--method", "rtn", "--quiet")
    r = SqfReader(f)
    assert r.metadata[C.KEY_SOURCE_FILES] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]


def test_pytorch_bin_through_weights_only(tmp_path):
    import torch

    model = tmp_path / "bin"
    shutil.copytree(STORIES, model, ignore=shutil.ignore_patterns("model.safetensors"))
    torch.save({k: torch.from_numpy(v) for k, v in load_file(STORIES / "model.safetensors").items()},
               model / "pytorch_model.bin")
    f = tmp_path / "b.sqf"
    sqconvert(model / "pytorch_model.bin", "-o", f, "--method", "rtn", "--quiet")
    assert len(SqfReader(f).linears) == 36


# -- bad inputs: a clear error, a non-zero exit, and nothing written ---------------------------
def bad(tmp_path, *args, match):
    out = tmp_path / "out" / "m.sqf"
    out.parent.mkdir(exist_ok=True)
    p = sqconvert(*args, "-o", out, "--quiet", check=False)
    assert p.returncode != 0, p.stdout + p.stderr
    assert match in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert list(out.parent.iterdir()) == []


def model_copy(tmp_path, name="model") -> Path:
    model = tmp_path / name
    shutil.copytree(STORIES, model)
    return model


def test_missing_input(tmp_path):
    bad(tmp_path, tmp_path / "nope", match="no such file")


def test_truncated_safetensors(tmp_path):
    model = model_copy(tmp_path)
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    bad(tmp_path, model, match="model.safetensors")


def test_corrupt_header(tmp_path):
    model = model_copy(tmp_path)
    (model / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!")
    bad(tmp_path, model, match="cannot read safetensors header")


@pytest.mark.parametrize("entry, message", [
    ({"dtype": "F32", "shape": [2], "data_offsets": ["0", "8"]}, "must be non-negative integers"),
    ({"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}, "must be non-negative integers"),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "must be non-negative integers"),
    ({"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}, "has dtype"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, "corrupt header entry"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "data offsets outside the file or of the wrong size"),
])
def test_corrupt_header_entry(tmp_path, entry, message):
    header = json.dumps({"model.norm.weight": entry}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(ConversionError, match=message):
        _read_safetensors_header(path)


def test_unsupported_architecture(tmp_path):
    model = model_copy(tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["GPTNeoXForCausalLM"]
    (model / "config.json").write_text(json.dumps(cfg))
    bad(tmp_path, model, match="architecture GPTNeoXForCausalLM is not supported")


def test_nan_in_weights(tmp_path):
    model = model_copy(tmp_path)
    t = load_file(model / "model.safetensors")
    t["model.layers.2.mlp.up_proj.weight"][3, 4] = np.nan
    save_file(t, model / "model.safetensors")
    bad(tmp_path, model, match="model.layers.2.mlp.up_proj.weight holds NaN")


def test_unsupported_dtype(tmp_path):
    model = model_copy(tmp_path)
    t = load_file(model / "model.safetensors")
    t["model.norm.weight"] = t["model.norm.weight"].astype(np.int32)
    save_file(t, model / "model.safetensors")
    bad(tmp_path, model, match="dtype I32")


def test_bits_out_of_range(tmp_path):
    bad(tmp_path, STORIES, "--bits", 7, match="--bits 7: the bit widths are 2, 3, 4, 5, 6, 8")
    bad(tmp_path, STORIES, "--embed-bits", 9, match="--embed-bits 9: the bit widths are")
    bad(tmp_path, STORIES, "--bits-for", "*.q_proj.weight=7", match="--bits-for *.q_proj.weight=7: the bit widths are")


def test_fisher_names_and_shapes_and_nan(tmp_path, stories_fisher):
    F = load_file(stories_fisher)
    wrong = dict(F)
    del wrong["model.layers.1.self_attn.k_proj.weight"]
    save_file(wrong, tmp_path / "f1.safetensors")
    bad(tmp_path, STORIES, "--fisher", tmp_path / "f1.safetensors", match="no Fisher tensor for model.layers.1.self_attn.k_proj.weight")
    shaped = dict(F)
    shaped["model.layers.0.mlp.up_proj.weight"] = shaped["model.layers.0.mlp.up_proj.weight"][:10].copy()
    save_file(shaped, tmp_path / "f2.safetensors")
    bad(tmp_path, STORIES, "--fisher", tmp_path / "f2.safetensors", match="has shape")
    nan = dict(F)
    nan["model.layers.4.mlp.down_proj.weight"] = nan["model.layers.4.mlp.down_proj.weight"].copy()
    nan["model.layers.4.mlp.down_proj.weight"][0, 0] = np.inf
    save_file(nan, tmp_path / "f3.safetensors")
    bad(tmp_path, STORIES, "--fisher", tmp_path / "f3.safetensors", match="holds NaN or Inf")


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "m.sqf"
    out.write_bytes(b"precious")
    p = sqconvert(STORIES, "-o", out, "--quiet", check=False)
    assert p.returncode != 0 and "--force" in p.stderr
    assert out.read_bytes() == b"precious"
    sqconvert(STORIES, "-o", out, "--quiet", "--force", "--method", "rtn")
    assert SqfReader(out).metadata[C.KEY_RECIPE_METHOD] == "rtn"


def test_swallowed_ctrl_c_is_raised_again():
    """A KeyboardInterrupt swallowed where it was raised (as llvmlite's ctypes callbacks do while
    Numba compiles) is raised again at the converter's next check, and forgotten after the block."""
    import os

    from sqllm.converter.interrupt import raise_if_interrupted, sticky_sigint

    with sticky_sigint():
        raise_if_interrupted()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    raise_if_interrupted()


def test_ctrl_c_leaves_nothing(tmp_path):
    """A larger synthetic Llama so that the conversion is still running when interrupted."""
    model = tmp_path / "big"
    model.mkdir()
    cfg = json.loads((STORIES / "config.json").read_text())
    cfg.update(hidden_size=512, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=8,
               num_key_value_heads=8, head_dim=64)
    (model / "config.json").write_text(json.dumps(cfg))
    for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copy(STORIES / f, model / f)
    rng = np.random.default_rng(0)
    t = {"model.embed_tokens.weight": rng.standard_normal((512, 512), np.float32) * 0.02,
         "model.norm.weight": np.ones(512, np.float32)}
    for L in range(6):
        p = f"model.layers.{L}."
        t[p + "input_layernorm.weight"] = np.ones(512, np.float32)
        t[p + "post_attention_layernorm.weight"] = np.ones(512, np.float32)
        for n, shape in (("self_attn.q_proj", (512, 512)), ("self_attn.k_proj", (512, 512)), ("self_attn.v_proj", (512, 512)),
                         ("self_attn.o_proj", (512, 512)), ("mlp.gate_proj", (1536, 512)), ("mlp.up_proj", (1536, 512)),
                         ("mlp.down_proj", (512, 1536))):
            t[p + n + ".weight"] = rng.standard_t(3, shape).astype(np.float32) * 0.02
    save_file(t, model / "model.safetensors")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "sqllm.converter", model, "-o", out_dir / "m.sqf", "--bits", "4",
                             "--kmeans", "exact", "--quiet"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(out_dir.iterdir()):
        time.sleep(0.05)
    assert any(out_dir.iterdir()), "the converter never started writing"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert list(out_dir.iterdir()) == [], err


def _metadata(**changes):
    cfg = {**json.loads((STORIES / "config.json").read_text()), **changes}
    return model_metadata({k: v for k, v in cfg.items() if v is not None}, STORIES)


def test_architecture_from_model_type_and_sliding_windows():
    assert _metadata(architectures=None, model_type="mistral")["family"] == "mistral"
    assert _metadata(architectures=None, model_type="qwen2")["family"] == "qwen2"
    window = C.KEY_SLIDING_WINDOW
    assert _metadata(architectures=["MistralForCausalLM"], sliding_window=32)["keys"][window] == 32
    assert _metadata(sliding_window=32)["keys"][window] == 0  # Llama has none
    qwen2 = {"architectures": ["Qwen2ForCausalLM"], "sliding_window": 32}
    assert _metadata(**qwen2, use_sliding_window=False, max_window_layers=0)["keys"][window] == 0
    assert _metadata(**qwen2, use_sliding_window=True, max_window_layers=0)["keys"][window] == 32
    assert _metadata(**qwen2, use_sliding_window=True, max_window_layers=5)["keys"][window] == 0
    with pytest.raises(ConversionError, match="only some layers"):
        _metadata(**qwen2, use_sliding_window=True, max_window_layers=2)
