"""KVQuant: calibration in the converter, the quantized cache in the runtime (SPEC §7)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sqllm import _sqllm
from sqllm.converter.kvquant import (ONLINE_OUTLIERS, ONLINE_SINK, RANGE_TOKENS, key_ranges, quantize_keys,
                                     quantize_keys_online, quantize_values, uniform_centroids, value_outlier_count)
from sqllm.formats import SqfWriter
from sqllm.formats import constants as C
from sqllm.errors import FormatError, RuntimeFailure, UnsupportedError
from sqllm.formats.reader import SqfReader
from sqllm.runtime import Model

from conftest import STORIES, TRAIN_TEXT, VALID_TEXT, sqconvert

CALIB = ["--calib-data", TRAIN_TEXT, "--calib-samples", 8, "--calib-seq-len", 256]


@pytest.fixture(scope="module")
def kv_files(tmp_path_factory, stories_fisher):
    """stories260K at 4 bits without KV data, with KVQuant calibration (10% outliers so that
    each 32-channel value vector has 3, sink 2), and with a sink longer than the test sequences."""
    d = tmp_path_factory.mktemp("kv")
    base = ["--bits", 4, "--fisher", stories_fisher, "--quiet"]
    sqconvert(STORIES, "-o", d / "plain.sqf", *base)
    sqconvert(STORIES, "-o", d / "kv.sqf", *base, "--kv-bits", 3, "--kv-outliers", 10, "--kv-sink", 2, *CALIB)
    sqconvert(STORIES, "-o", d / "sink.sqf", *base, "--kv-bits", 4, "--kv-sink", 255, *CALIB)
    sqconvert(STORIES, "-o", d / "kv1.sqf", *base, "--kv-bits", 4, *CALIB)
    return d


def calibration(path, layer, bits, method):
    r = SqfReader(path)
    lo, hi = r.tensor(C.kv_tensor_name(layer, "key_range"))
    if method == "uniform":
        kc = vc = uniform_centroids(bits)
    else:
        kc = r.tensor(C.kv_tensor_name(layer, f"key_centroids.{bits}"))
        vc = r.tensor(C.kv_tensor_name(layer, f"value_centroids.{bits}"))
    return np.array(lo), np.array(hi), np.array(kc), np.array(vc)


def heavy_tailed(rng, n, channels, lo, hi):
    """Keys and values around the calibrated ranges, with a few far outliers."""
    mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 1e-3)
    k = (mid + half * rng.standard_t(4, size=(n, channels)) * 0.6).astype(np.float32)
    v = rng.standard_t(3, size=(n, channels)).astype(np.float32)
    v[rng.random((n, channels)) < 0.02] *= 20
    return k, v


def test_file_records_the_calibration(kv_files):
    info = json.loads(sqconvert("inspect", kv_files / "kv.sqf", "--json").stdout)
    kv = info["kv_cache"]
    assert kv["bits"] == 3 and kv["sink"] == 2 and kv["outliers_pct"] == 10
    assert "tinystories_train.txt" in kv["calibration"] and "samples:8 seq_len:256" in kv["calibration"]
    assert kv["bytes_per_token"]["nuq2"] < kv["bytes_per_token"]["nuq3"] < kv["bytes_per_token"]["nuq4"] < kv["bytes_per_token"]["fp16"]
    assert info["totals"]["kv_calibration"] > 0
    assert json.loads(sqconvert("inspect", kv_files / "plain.sqf", "--json").stdout)["kv_cache"] is None
    r = SqfReader(kv_files / "kv.sqf")
    for layer in range(r.config["num_layers"]):
        lo, hi = r.tensor(C.kv_tensor_name(layer, "key_range"))
        assert (lo <= hi).all() and (lo < hi).any()
        for b in (2, 3, 4):
            for kind in ("key", "value"):
                c = r.tensor(C.kv_tensor_name(layer, f"{kind}_centroids.{b}"))
                assert c.shape == (1 << b,) and (np.diff(c) >= 0).all() and np.abs(c).max() <= 1
                assert len(np.unique(c)) > (1 << b) // 2  # k-means found distinct levels


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("method", ["nuq", "uniform"])
def test_cache_matches_the_numpy_reference(kv_files, bits, method):
    path = kv_files / "kv.sqf"
    model = _sqllm.LoadedModel(str(path))
    cache = _sqllm.QuantKvCache(model, 64, bits, method)
    sink = cache.sink
    assert sink == 2
    rng = np.random.default_rng(bits)
    for layer in (0, 4):
        lo, hi, kc, vc = calibration(path, layer, bits, method)
        k, v = heavy_tailed(rng, 40, lo.size, lo, hi)
        cache.store(layer, 0, k[:7], v[:7])  # two batches, as prompt processing stores them
        cache.store(layer, 7, k[7:], v[7:])
        got = [cache.read(layer, p) for p in range(40)]
        gk, gv = np.array([g[0] for g in got]), np.array([g[1] for g in got])
        # The sink is the fp16 value of every entry.
        np.testing.assert_array_equal(gk[:sink], k[:sink].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(gv[:sink], v[:sink].astype(np.float16).astype(np.float32))
        _, kout, kref = quantize_keys(k[sink:], lo, hi, kc)
        _, vout, _, _, vref = quantize_values(v[sink:], 10.0, vc)
        np.testing.assert_allclose(gk[sink:], kref, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gv[sink:], vref, rtol=1e-6, atol=1e-7)
        # Outliers are exact (fp16), and there are some of both kinds.
        assert kout.any() and vout.sum(-1).tolist() == [value_outlier_count(lo.size, 10.0)] * (40 - sink)
        np.testing.assert_array_equal(gk[sink:][kout], k[sink:][kout].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(gv[sink:][vout], v[sink:][vout].astype(np.float16).astype(np.float32))
        # Inliers carry the quantization error: it shrinks with the bits but is not zero.
        err = np.abs(gv[sink:] - v[sink:])[~vout]
        assert 0 < err.mean() < np.abs(v).mean()
    # Rewriting positions (a reset context) replaces what they held.
    k2, v2 = heavy_tailed(rng, 5, lo.size, lo, hi)
    cache.store(4, 0, k2, v2)
    np.testing.assert_array_equal(cache.read(4, 0)[0], k2[0].astype(np.float16).astype(np.float32))
    assert cache.bytes_used(5) < 5 * 5 * 2 * lo.size * 2  # smaller than the fp16 cache


def test_bytes_used_follows_the_bit_width(kv_files):
    model = _sqllm.LoadedModel(str(kv_files / "kv1.sqf"))
    rng = np.random.default_rng(0)
    sizes = {}
    for bits in (2, 3, 4):
        cache = _sqllm.QuantKvCache(model, 100, bits)
        for layer in range(5):
            lo, hi, _, _ = calibration(kv_files / "kv1.sqf", layer, bits, "nuq")
            k, v = heavy_tailed(rng, 100, lo.size, lo, hi)
            cache.store(layer, 0, k, v)
        sizes[bits] = cache.bytes_used(100)
    # 32 channels: bits*4 bytes of codes each for keys and values, 4 bytes of value range and 8
    # of offsets per layer, plus the measured outliers; one sink token in fp16.
    fixed = {b: 5 * (99 * (2 * 4 * b + 4 + 8) + (2 * 32 * 2 + 8)) for b in (2, 3, 4)}
    for b in (2, 3, 4):
        assert sizes[b] >= fixed[b] and (sizes[b] - fixed[b]) % 4 == 0
    assert sizes[2] < sizes[3] < sizes[4]


def test_quantization_off_is_the_fp16_path(kv_files):
    ids = Model(kv_files / "plain.sqf").tokenize(VALID_TEXT.read_text()[:3000])[:200]
    ref = Model(kv_files / "plain.sqf").logits(ids)
    m = Model(kv_files / "kv.sqf", kv_bits=0)
    assert m.kv_bits == 0
    np.testing.assert_array_equal(m.logits(ids), ref)
    assert Model(kv_files / "kv.sqf").kv_bits == 3  # the file's default


def test_attention_over_the_quantized_cache(kv_files):
    """With every position in the fp16 sink, the quantized path differs from the fp16 cache only
    by rounding keys before RoPE instead of after: this checks its rotation, grouped-query
    sharing and softmax."""
    ids = Model(kv_files / "plain.sqf").tokenize(VALID_TEXT.read_text()[:3000])[:250]
    ref = Model(kv_files / "plain.sqf").logits(ids)
    m = Model(kv_files / "sink.sqf", n_batch=37)
    assert m.kv_bits == 4
    got = m.logits(ids)
    assert np.abs(got - ref).max() < 2e-2 * np.abs(ref).max()
    assert (got.argmax(-1) == ref.argmax(-1)).mean() > 0.98


def test_perplexity_degrades_gracefully(kv_files):
    text = VALID_TEXT.read_text()[:12000]
    ppl = {b: Model(kv_files / "kv1.sqf", kv_bits=b).perplexity(text) for b in (0, 2, 3, 4)}
    uni2 = Model(kv_files / "kv1.sqf", kv_bits=2, kv_method="uniform").perplexity(text)
    assert ppl[0] <= ppl[4] < 1.05 * ppl[0]
    assert ppl[4] < ppl[3] < ppl[2] < uni2


@pytest.mark.parametrize("bits", [2, 4])
def test_uniform_without_calibration_sets_key_ranges_online(kv_files, bits):
    model = _sqllm.LoadedModel(str(kv_files / "plain.sqf"))
    cache = _sqllm.QuantKvCache(model, 200, bits, "uniform")
    assert cache.online_ranges and cache.sink == ONLINE_SINK
    uc = uniform_centroids(bits)
    rng = np.random.default_rng(bits)
    channels = 32
    k, v = heavy_tailed(rng, 150, channels, np.full(channels, -1.0), np.linspace(0.0, 3.0, channels))
    window_end = ONLINE_SINK + RANGE_TOKENS
    # Memory: a warm-up position holds no key codes yet (its key is counted in the fp16 window),
    # a later one holds both; every position has 4 bytes of value range and 8 of offsets.
    packed = channels * bits // 8
    warm = cache.bytes_used(ONLINE_SINK + 2) - cache.bytes_used(ONLINE_SINK + 1)
    later = cache.bytes_used(window_end + 2) - cache.bytes_used(window_end + 1)
    assert warm > 0 and (later - warm) * (packed + 12) == warm * packed
    # Before the window is complete its keys read back in fp16; values are quantized at once.
    cache.store(2, 0, k[:30], v[:30])
    f16 = k.astype(np.float16).astype(np.float32)
    gk = np.array([cache.read(2, p)[0] for p in range(30)])
    np.testing.assert_array_equal(gk, f16[:30])
    # Batches that cross the end of the window, then go on past it.
    cache.store(2, 30, k[30:window_end + 3], v[30:window_end + 3])
    cache.store(2, window_end + 3, k[window_end + 3:], v[window_end + 3:])
    got = [cache.read(2, p) for p in range(150)]
    gk, gv = np.array([g[0] for g in got]), np.array([g[1] for g in got])
    want = quantize_keys_online(k, uc)
    np.testing.assert_allclose(gk, want, rtol=1e-6, atol=1e-7)
    assert (gk[ONLINE_SINK:] != f16[ONLINE_SINK:]).mean() > 0.5  # quantized, not kept
    lo, hi = key_ranges(f16[ONLINE_SINK:window_end], ONLINE_OUTLIERS)
    assert ((k[window_end:] < lo) | (k[window_end:] > hi)).any()  # later keys meet outliers too
    _, _, _, _, vref = quantize_values(v[ONLINE_SINK:], ONLINE_OUTLIERS, uc)
    np.testing.assert_allclose(gv[ONLINE_SINK:], vref, rtol=1e-6, atol=1e-7)
    # A reset context rewrites the window: its keys are fp16 again until it is complete.
    cache.store(2, 0, k[:10] + 1.0, v[:10])
    np.testing.assert_array_equal(cache.read(2, 5)[0], (k[5] + 1.0).astype(np.float16).astype(np.float32))


def test_uniform_without_calibration_in_the_runtime(kv_files):
    text = VALID_TEXT.read_text()[:12000]
    plain = kv_files / "plain.sqf"
    ref = Model(plain).perplexity(text)
    ppl = {b: Model(plain, kv_bits=b, kv_method="uniform").perplexity(text) for b in (2, 4)}
    assert ref < ppl[4] < 1.1 * ref and ppl[4] < ppl[2]
    with pytest.raises(RuntimeFailure, match="plain.sqf: the file has no KV-cache calibration, so the uniform"):
        Model(plain, kv_method="uniform")
    r = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(plain), "-p", "Once upon a time", "-n", "80",
                        "--temp", "0", "--kv-bits", "3", "--kv-method", "uniform"], capture_output=True, text=True)
    assert r.returncode == 0 and "KV cache: KVQuant 3-bit" in r.stderr, r.stderr


def test_runtime_errors(kv_files):
    from sqllm.errors import SqllmError
    with pytest.raises(UnsupportedError, match="plain.sqf: the file has no KV-cache calibration"):
        Model(kv_files / "plain.sqf", kv_bits=3)
    with pytest.raises(ValueError, match="kv_bits"):
        Model(kv_files / "kv.sqf", kv_bits=5)
    with pytest.raises(ValueError, match="kv_method"):
        Model(kv_files / "kv.sqf", kv_method="int")
    r = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(kv_files / "kv.sqf"), "-p", "Once", "-n", "4",
                        "--kv-bits", "2", "--no-kv-quant"], capture_output=True, text=True)
    assert r.returncode == 2 and "at most one of --kv-bits and --no-kv-quant" in r.stderr
    r = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(kv_files / "plain.sqf"), "-p", "Once", "-n", "4",
                        "--kv-bits", "3"], capture_output=True, text=True)
    assert r.returncode == 1 and "no KV-cache calibration" in r.stderr and "Traceback" not in r.stderr
    assert issubclass(UnsupportedError, SqllmError)


def test_sqrun_reports_the_cache(kv_files):
    r = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(kv_files / "kv.sqf"), "-p", "Once upon a time",
                        "-n", "16", "--temp", "0"], capture_output=True, text=True, check=True)
    assert "KV cache: KVQuant 3-bit" in r.stderr
    per_token = float(r.stderr.split("KVQuant 3-bit, ")[1].split(" bytes/token")[0])
    r16 = subprocess.run([sys.executable, "-m", "sqllm.runtime", str(kv_files / "kv.sqf"), "-p", "Once upon a time",
                          "-n", "16", "--temp", "0", "--no-kv-quant"], capture_output=True, text=True, check=True)
    assert "KV cache: unquantized, 640 bytes/token" in r16.stderr  # 5 layers x K,V x 32 channels x fp16
    assert per_token < 640


def test_converter_errors(tmp_path):
    out = tmp_path / "o.sqf"
    r = sqconvert(STORIES, "-o", out, "--kv-bits", 3, check=False)
    assert r.returncode == 2 and "--calib-data" in r.stderr
    r = sqconvert(STORIES, "-o", out, "--kv-bits", 5, *CALIB, check=False)
    assert r.returncode == 1 and "--kv-bits must be one of 2, 3, 4" in r.stderr
    r = sqconvert(STORIES, "-o", out, "--kv-bits", 3, "--calib-data", tmp_path / "none.txt", check=False)
    assert r.returncode == 1 and "none.txt: cannot read the calibration text" in r.stderr
    r = sqconvert(STORIES, "-o", out, "--kv-bits", 3, "--kv-outliers", 60, *CALIB, check=False)
    assert r.returncode == 1 and "--kv-outliers" in r.stderr
    assert list(tmp_path.iterdir()) == []


def copy_with(src, dst, mutate, extra=None):
    """Copy an .sqf through the writer, letting mutate(name, array) change its KV tensors."""
    r = SqfReader(src)
    skip = {C.KEY_TENSOR_CRC32, C.KEY_LINEAR_NAMES, C.KEY_LINEAR_BITS, C.KEY_LINEAR_GROUP_SIZE, C.KEY_LINEAR_COLS}
    with SqfWriter(dst, overwrite=True) as w:
        for key, value in r.metadata.items():
            if key not in skip:
                vt, it = r.metadata_types[key]
                w.add(key, value.tolist() if isinstance(value, np.ndarray) else value, vt, it)
        for name in r.weight_names():
            if name in r.linears:
                L = r.linears[name]
                lut = r.stored_lut(name)
                w.add_linear(name, np.array(r.tensor(name + C.SUFFIX_CODES)),
                             tuple(np.array(a) for a in lut) if isinstance(lut, tuple) else np.array(lut),
                             bits=L.bits, group_size=L.group_size, cols=L.cols,
                             csr=None if r.csr(name) is None else [np.array(a) for a in r.csr(name)])
            else:
                w.add_tensor(name, np.array(r.tensor(name)))
        for name in r.tensor_names:
            if name.startswith("kv."):
                a = mutate(name, np.array(r.tensor(name)))
                if a is not None:
                    w.add_tensor(name, a)
        for name, a in (extra or {}).items():
            w.add_tensor(name, a)
    return dst


def _set(target, fn):
    def mutate(name, a):
        return fn(a) if name == target else a
    return mutate


@pytest.mark.parametrize("target,fn,error,match", [
    ("kv.1.key_centroids.3", lambda a: a[::-1].copy(), FormatError, "ascending"),
    ("kv.1.value_centroids.2", lambda a: a * 2, FormatError, "within \\[-1, 1\\]"),
    ("kv.0.key_range", lambda a: a[::-1].copy(), FormatError, "lo > hi"),
    ("kv.2.key_range", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, np.nan, a).astype(np.float32), FormatError, "NaN"),
    ("kv.3.value_centroids.4", lambda a: None, FormatError, "kv.3.value_centroids.4 is missing"),
    ("kv.0.key_range", lambda a: a[:, :-1].copy(), FormatError, "has shape"),
    ("kv.0.key_centroids.2", lambda a: a.astype(np.float16), FormatError, "must be F32"),
])
def test_loader_checks_the_kv_data(kv_files, tmp_path, target, fn, error, match):
    bad = copy_with(kv_files / "kv.sqf", tmp_path / "bad.sqf", _set(target, fn))
    with pytest.raises(error, match=match):
        SqfReader(bad)
    with pytest.raises(error, match=match):
        Model(bad)


def test_loader_refuses_stray_kv_tensors(kv_files, tmp_path):
    assert Model(copy_with(kv_files / "kv.sqf", tmp_path / "good.sqf", lambda n, a: a)).kv_bits == 3
    stray = copy_with(kv_files / "plain.sqf", tmp_path / "stray.sqf", lambda n, a: a,
                      extra={"kv.0.key_range": np.zeros((2, 32), np.float32)})
    with pytest.raises(FormatError, match="KV-cache data needs"):
        SqfReader(stray)
