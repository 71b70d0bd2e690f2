"""The C++ runtime against the torch forward of `sqconvert dequant` of the same file."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import STORIES, VALID_TEXT, sqconvert
from sqllm.converter.convert import convert
from sqllm.converter.evaluate import reference_logits, reference_perplexity
from sqllm.converter.quantize import Recipe
from sqllm.errors import FormatError, InvalidArgumentError, RuntimeFailure
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

TEXT = VALID_TEXT.read_text(encoding="utf-8")[:6000]


@pytest.fixture(scope="module")
def stories_q(tmp_path_factory, stories_fisher):
    d = tmp_path_factory.mktemp("rt")
    f = d / "q3.sqf"
    sqconvert(STORIES, "-o", f, "--bits", 3, "--fisher", stories_fisher, "--quiet")
    hf = d / "hf"
    sqconvert("dequant", f, "-o", hf)
    return f, hf


def max_rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("threads", [1, 2])
def test_logits_match_torch_of_dequant(stories_q, threads):
    f, hf = stories_q
    model = Model(f, threads=threads, kv_cache="f32", n_batch=7, exact=True)  # odd batches cross the prompt
    ids = model.tokenize(TEXT[:700])
    assert len(ids) > 100
    ours = model.logits(ids)
    ref = reference_logits(hf, ids)
    assert ours.shape == ref.shape
    assert max_rel_err(ours, ref) < 1e-3
    # The default fp16 cache stays close too.
    assert max_rel_err(Model(f, threads=threads, exact=True).logits(ids), ref) < 5e-3


@pytest.mark.parametrize("bits", [5, 6])
def test_five_and_six_bit_logits_match_torch_of_dequant(tmp_path, stories_fisher, bits):
    """The 5- and 6-bit widths end to end: converter, packing, loader and kernels against torch."""
    f = tmp_path / f"q{bits}.sqf"
    convert(STORIES, f, Recipe(bits=bits, embed_bits=bits), fisher=stories_fisher, progress=False)
    assert {L.bits for L in SqfReader(f).linears.values()} == {bits}
    hf = tmp_path / "hf"
    sqconvert("dequant", f, "-o", hf)
    model = Model(f, kv_cache="f32", n_batch=7, exact=True)
    ids = model.tokenize(TEXT[:700])
    ours = model.logits(ids)
    assert max_rel_err(ours, reference_logits(hf, ids)) < 1e-3
    # By default single tokens of these widths take the integer GEMM (where the CPU has it).
    assert max_rel_err(Model(f, kv_cache="f32", n_batch=1).logits(ids[:30]), ours[:30]) < 5e-3
    # The int8 path decodes these widths too: another computation, as close to the exact one
    # as at 3 bits (test_int8_mode_stays_close_to_the_exact_path).
    fast = Model(f, kv_cache="f32", n_batch=7, int8=True)
    assert not np.array_equal(fast.logits(ids), ours) and max_rel_err(fast.logits(ids), ours) < 0.05
    ppl_exact, ppl_int8 = model.perplexity(TEXT, ctx=128), fast.perplexity(TEXT, ctx=128)
    assert abs(ppl_int8 / ppl_exact - 1) < 0.01, (ppl_exact, ppl_int8)


def test_perplexity_matches_torch_to_4_digits(stories_q):
    f, hf = stories_q
    ours = Model(f, kv_cache="f32", exact=True).perplexity(TEXT, ctx=128)
    ref = reference_perplexity(hf, TEXT, ctx=128)
    assert ours == pytest.approx(ref, rel=5e-5), (ours, ref)


def test_int8_mode_stays_close_to_the_exact_path(stories_q):
    """int8 activations and 7-bit LUTs: another computation, close to the exact one; the prompt
    batches and one-token steps of the int8 path agree with each other."""
    f, _ = stories_q
    exact = Model(f, kv_cache="f32", exact=True)
    fast = Model(f, kv_cache="f32", int8=True)
    ids = exact.tokenize(TEXT[:700])
    a, b = exact.logits(ids), fast.logits(ids)
    assert not np.array_equal(a, b)
    assert max_rel_err(b, a) < 0.05
    stepwise = Model(f, kv_cache="f32", int8=True, n_batch=1).logits(ids[:40])
    assert max_rel_err(stepwise, b[:40]) < 1e-4
    ppl_exact, ppl_int8 = exact.perplexity(TEXT, ctx=128), fast.perplexity(TEXT, ctx=128)
    assert abs(ppl_int8 / ppl_exact - 1) < 0.01, (ppl_exact, ppl_int8)
    p = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(f), "--prompt", "Once upon a time", "-n", "12",
                        "--temp", "0", "--int8"], capture_output=True, text=True, check=True)
    assert p.stdout.startswith("Once upon a time") and len(p.stdout) > len("Once upon a time ")


def test_default_batches_stay_close_to_the_exact_path(stories_q):
    """By default prompt batches run as the integer GEMM where the CPU has it (AVX-512: 11-bit LUT
    levels, 14-bit activations): within a few 1e-3 of fp32 in the logits and 1e-3 in perplexity.
    One token at a time (decoding) it runs the 8-bit LUTs' own levels and 14-bit activations where
    the CPU has that kernel (lut_matvec_w8a16): as close. exact and int8 exclude each other."""
    f, _ = stories_q
    exact = Model(f, kv_cache="f32", exact=True)
    default = Model(f, kv_cache="f32")
    ids = exact.tokenize(TEXT[:700])
    assert max_rel_err(default.logits(ids), exact.logits(ids)) < 5e-3
    assert abs(default.perplexity(TEXT, ctx=128) / exact.perplexity(TEXT, ctx=128) - 1) < 1e-3
    one, one_exact = (Model(f, kv_cache="f32", n_batch=1, exact=e) for e in (False, True))
    assert max_rel_err(one.logits(ids[:40]), one_exact.logits(ids[:40])) < 5e-3
    assert abs(one.perplexity(TEXT, ctx=128) / one_exact.perplexity(TEXT, ctx=128) - 1) < 1e-3
    assert "exact" in repr(exact) and "exact" not in repr(default)
    with pytest.raises(InvalidArgumentError, match="int8 and exact"):
        Model(f, int8=True, exact=True)
    p = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(f), "--prompt", "x", "--int8", "--exact"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--exact" in p.stderr and "Traceback" not in p.stderr


def test_unquantized_model_runtime_and_torch_agree(tmp_path):
    """--keep '*' stores every linear unquantized: the runtime's fp16 path against torch on the same weights."""
    f = tmp_path / "f16.sqf"
    sqconvert(STORIES, "-o", f, "--keep", "*", "--quiet")
    hf = tmp_path / "hf"
    sqconvert("dequant", f, "-o", hf)
    ours = Model(f, kv_cache="f32").perplexity(TEXT, ctx=256)
    assert ours == pytest.approx(reference_perplexity(hf, TEXT, ctx=256), rel=5e-5)


def test_generate_greedy_is_deterministic_and_streams(stories_q):
    f, _ = stories_q
    model = Model(f)
    a = list(model.generate("Once upon a time", max_tokens=40, temperature=0))
    b = "".join(model.generate("Once upon a time", max_tokens=40, temperature=0))
    assert "".join(a) == b and len(a) > 5
    assert model.last_stats.generated_tokens <= 40
    # Greedy equals the argmax of the logits path.
    ids = model.tokenize("Once upon a time")
    first = int(np.argmax(model.logits(ids)[-1]))
    assert b.strip().startswith(model.detokenize([first]).strip())


def test_sampling_is_seeded(stories_q):
    model = Model(stories_q[0])
    a = "".join(model.generate("Tom", max_tokens=30, temperature=1.0, seed=7))
    b = "".join(model.generate("Tom", max_tokens=30, temperature=1.0, seed=7))
    c = "".join(model.generate("Tom", max_tokens=30, temperature=1.0, seed=8, top_k=0, top_p=1.0, min_p=0.0))
    assert a == b and a != c


def test_bad_inputs(stories_q, tmp_path):
    f, _ = stories_q
    model = Model(f, n_ctx=32)
    with pytest.raises(RuntimeFailure, match="context"):
        list(model.generate("Once upon a time " * 20, max_tokens=5))
    with pytest.raises(RuntimeFailure, match="context full"):
        model.logits(list(range(3, 40)))
    for kw in ({"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"min_p": 1.0}, {"top_k": -1},
               {"repetition_penalty": 0}):
        with pytest.raises(ValueError):
            list(model.generate("Hi", max_tokens=3, **kw))
    with pytest.raises(RuntimeFailure, match="outside the vocabulary"):
        model.logits([1, 99999])
    # Context parameters are checked once, in the core: one class per status, named parameter.
    for kw, name in (({"threads": -1}, "n_threads"), ({"kv_bits": 5}, "kv_bits"), ({"n_batch": 0}, "n_batch"),
                     ({"n_ctx": -2}, "n_ctx")):
        with pytest.raises(InvalidArgumentError, match=name):
            Model(f, **kw)
    with pytest.raises(InvalidArgumentError, match="max_tokens"):
        list(model.generate("Hi", max_tokens=-1))
    with pytest.raises(InvalidArgumentError, match="window"):
        model.perplexity(TEXT, ctx=1)
    broken = tmp_path / "broken.sqf"
    broken.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(FormatError, match="broken.sqf"):
        Model(broken)


def test_file_replaced_while_mapped(stories_q, tmp_path):
    f, _ = stories_q
    path = tmp_path / "m.sqf"
    shutil.copy(f, path)
    model = Model(path)
    before = "".join(model.generate("Lily", max_tokens=20, temperature=0))
    other = tmp_path / "other.sqf"
    sqconvert(STORIES, "-o", other, "--method", "rtn", "--bits", 2, "--quiet")
    os.replace(other, path)  # the mapping keeps the old file's pages
    assert "".join(model.generate("Lily", max_tokens=20, temperature=0)) == before
    assert Model(path).logits([1, 2]).shape == (2, 512)


@pytest.mark.parametrize("change", ["truncate", "overwrite"])
def test_file_changed_in_place_while_mapped(stories_q, tmp_path, change):
    """Truncating the mapped file or rewriting it in place gives a clear error on the next call,
    never a crash (reads of vanished pages: tests/cpp/test_loader.cpp). A subprocess, so that a
    crash fails only this test."""
    f, _ = stories_q
    path = tmp_path / "m.sqf"
    shutil.copy(f, path)
    code = f"""
import os
from sqllm.runtime import Model
from sqllm.errors import FileError
m = Model({str(path)!r}, guard_mapping=True)
before = m.logits([1, 2, 3])
if {change!r} == "truncate":
    os.truncate({str(path)!r}, 4096)
else:
    with open({str(path)!r}, "r+b") as fh:
        fh.seek(os.path.getsize({str(path)!r}) // 2)
        fh.write(b"garbage")
try:
    m.logits([1, 2, 3])
    print("no error")
except FileError as e:
    print("error:", e)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    assert r.stdout.startswith("error:") and "m.sqf: the file was changed in place" in r.stdout, r.stdout


def test_sqrun_cli(stories_q):
    f, hf = stories_q
    p = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(f), "--prompt", "Once upon a time", "-n", "20",
                        "--temp", "0"], capture_output=True, text=True, check=True)
    assert len(p.stdout.strip()) > len("Once upon a time")
    assert "tokens/s" in p.stderr and "load" in p.stderr
    text = Path(f).parent / "text.txt"
    text.write_text(TEXT)
    p = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(f), "--perplexity", str(text), "--ctx", "128",
                        "--kv-cache", "f32"], capture_output=True, text=True, check=True)
    value = float(p.stdout.split("perplexity:")[1].split("+/-")[0])
    assert "tokens, " in p.stdout and float(p.stdout.split("+/-")[1].split()[0]) > 0
    assert value == pytest.approx(Model(f, kv_cache="f32").perplexity(TEXT, ctx=128), rel=1e-4)
    p = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(f), "--prompt", "x", "--top-p", "2"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--top-p" in p.stderr and "Traceback" not in p.stderr


def test_contexts_share_a_model_across_threads(stories_q):
    from concurrent.futures import ThreadPoolExecutor

    from sqllm import _sqllm

    loaded = _sqllm.LoadedModel(str(stories_q[0]))
    ids = np.array([1, 403, 407, 261, 378, 324, 271], np.int32)

    def run(_):
        ctx = _sqllm.Context(loaded, n_threads=1)
        return ctx.eval(ids, True)

    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(run, range(8)))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_native_eval_sizes_logits_from_the_model(stories_q):
    """The binding sizes its output from the model's vocabulary; a caller-given size (smaller than
    what Context::eval writes) once let it write past the buffer."""
    from sqllm import _sqllm

    loaded = _sqllm.LoadedModel(str(stories_q[0]))
    ctx = _sqllm.Context(loaded, n_threads=1)
    ids = np.array([1, 403, 407], np.int32)
    assert ctx.eval(ids, True).shape == (3, loaded.vocab_size)
    assert ctx.eval(ids[:1], False).shape == (loaded.vocab_size,)
    with pytest.raises(TypeError):
        ctx.eval(ids, True, 1)


def test_python_and_c_generators_give_the_same_tokens(stories_q):
    """Model.generate (through the binding) and sqllm_generate (the C ABI, which the native module
    exports too) run the one core generator: the same file and seed give the same tokens."""
    import ctypes

    from sqllm import _sqllm

    class SamplerParams(ctypes.Structure):
        _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                    ("min_p", ctypes.c_float), ("repetition_penalty", ctypes.c_float),
                    ("repetition_window", ctypes.c_int32), ("seed", ctypes.c_uint64),
                    ("presence_penalty", ctypes.c_float), ("frequency_penalty", ctypes.c_float)]

    class Stats(ctypes.Structure):
        _fields_ = [("prompt_tokens", ctypes.c_int32), ("generated_tokens", ctypes.c_int32),
                    ("prompt_seconds", ctypes.c_double), ("decode_seconds", ctypes.c_double),
                    ("end_reason", ctypes.c_int32)]

    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                                     ctypes.c_void_p)
    lib = ctypes.CDLL(_sqllm.__file__)
    lib.sqllm_sampler_params_default.restype = SamplerParams
    lib.sqllm_last_error.restype = ctypes.c_char_p
    model, ctx = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.sqllm_model_load(str(stories_q[0]).encode(), None, ctypes.byref(model)) == 0, lib.sqllm_last_error()
    assert lib.sqllm_context_create(model, None, ctypes.byref(ctx)) == 0, lib.sqllm_last_error()
    ours = Model(stories_q[0])
    prompt = "Once upon a time"
    try:
        for seed, temperature in ((7, 1.0), (8, 1.0), (9, 0.7)):
            tokens, pieces = [], []

            def on_token(token, piece, length, _):
                tokens.append(token)
                pieces.append(ctypes.string_at(piece, length))
                return 0

            params = lib.sqllm_sampler_params_default()
            params.temperature, params.seed = temperature, seed
            stats = Stats()
            lib.sqllm_context_reset(ctx)
            status = lib.sqllm_generate(ctx, prompt.encode(), len(prompt.encode()), 48, ctypes.byref(params),
                                        callback_type(on_token), None, ctypes.byref(stats))
            assert status == 0, lib.sqllm_last_error()
            # From an empty context as the C call: a kept prompt prefix would leave one token to
            # evaluate alone, through the single-token kernels instead of the batch GEMM, whose
            # logits differ in the last bits.
            ours.reset()
            text = "".join(ours.generate(prompt, max_tokens=48, temperature=temperature, seed=seed))
            assert text == b"".join(pieces).decode("utf-8", "replace") and len(tokens) > 5
            assert ours.last_stats.generated_tokens == stats.generated_tokens == len(tokens)
            # The Python side keeps the previous run's prompt in its KV cache and evaluates the rest.
            assert ours.last_stats.prompt_tokens + ours.last_stats.cached_tokens == stats.prompt_tokens
            assert stats.end_reason in (1, 2)  # SQLLM_END_MAX_TOKENS, SQLLM_END_TOKEN
    finally:
        lib.sqllm_context_free(ctx)
        lib.sqllm_model_free(model)


def test_found_by_fuzzing():
    """What the fuzz targets found, at the Python edge: out-of-order KV-cache positions, NaN
    logits, chat templates that fail or reach for Python internals: each an SqllmError."""
    from sqllm import _sqllm
    from sqllm.errors import SqllmError
    from sqllm.runtime.chat import render_chat

    golden = Path(__file__).parent / "data" / "golden.sqf"
    cache = _sqllm.QuantKvCache(_sqllm.LoadedModel(str(golden)), 16, 3, "uniform")
    kv = np.ones((2, 16), np.float32)
    with pytest.raises(InvalidArgumentError, match="in order"):
        cache.store(0, 5, kv, kv)
    cache.store(0, 0, kv, kv)
    cache.store(0, 2, kv, kv)
    cache.store(0, 0, kv[:1], kv[:1])  # a rewrite from position 0 drops positions 1-3
    assert not cache.read(0, 3)[1].any()
    with pytest.raises(InvalidArgumentError, match="logit of token 1"):
        _sqllm.sample(np.array([0.0, np.nan], np.float32), np.zeros(0, np.int32), 0.8, 40, 0.95, 0.05, 1.0, 64, 0)
    for template in ("{{ 1 / 0 }}", "{{ ''.__class__.__mro__ }}", "{% for %}", "{{ raise_exception('no') }}"):
        with pytest.raises(SqllmError, match="m.sqf: chat template"):
            render_chat(template, [{"role": "user", "content": "hi"}], source="m.sqf: chat template")
