"""KVQuant: the quantized KV cache's datatype, calibrated offline (SPEC §7).

Keys are quantized per channel before RoPE, values per token. Each entry is normalized into
[-1, 1] by a range (a key channel's calibrated range, a value vector's own range once its
outliers are set aside), and coded as the nearest of 2^bits centroids; entries outside the
range are outliers kept exactly (fp16). The first `sink` positions are kept in fp16.

This module holds the numpy reference of that quantizer (the runtime's C++ cache must agree
with it; tests/test_kvquant.py checks) and the calibration: the pre-RoPE keys and the values of
a model on calibration text, with their Fisher weights (squared gradients of the loss), give
each layer's key ranges and its non-uniform centroids by Fisher-weighted k-means.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sqllm.formats import constants as C
from sqllm.errors import ConversionError

from .fisher import calibration_sequences, open_calibration
from .kmeans import weighted_kmeans_rows

KV_BITS = (2, 3, 4)
# k-means runs on at most this many (normalized) entries per layer and tensor, sampled evenly.
MAX_KMEANS_ENTRIES = 1 << 20


def uniform_centroids(bits: int) -> np.ndarray:
    """The uniform baseline's datatype: 2^bits evenly spaced levels on [-1, 1]."""
    return np.linspace(-1.0, 1.0, 1 << bits).astype(np.float32)


def nearest_code(u: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (sorted ascending); a tie goes to the lower one."""
    c = np.asarray(centroids, np.float32)
    mid = (np.float32(0.5) * (c[:-1] + c[1:])).astype(np.float32)
    return (u[..., None] > mid).sum(-1).astype(np.uint8)


def value_outlier_count(n: int, outliers_pct: float) -> int:
    return int(np.floor(outliers_pct * n / 100.0 + 0.5))


def _normalize(x: np.ndarray, zero: np.ndarray, scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (x - zero) / scale
    return np.where(scale > 0, u, np.float32(0)).astype(np.float32)


def quantize_keys(k: np.ndarray, lo: np.ndarray, hi: np.ndarray, centroids: np.ndarray):
    """Keys [tokens, channels] (pre-RoPE, fp32) with per-channel ranges -> (codes, outlier mask,
    dequantized keys). Outliers (outside [lo, hi]) dequantize to their fp16 value."""
    k = np.asarray(k, np.float32)
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    zero = np.float32(0.5) * (lo + hi)
    scale = np.float32(0.5) * (hi - lo)
    out = ~((k >= lo) & (k <= hi))
    codes = nearest_code(_normalize(k, zero, scale), centroids)
    deq = zero + scale * np.asarray(centroids, np.float32)[codes]
    deq = np.where(out, k.astype(np.float16).astype(np.float32), deq).astype(np.float32)
    return codes, out, deq


def value_outliers(v: np.ndarray, outliers_pct: float) -> np.ndarray:
    """Mask of each token's outliers: its round(pct% of n) entries of largest magnitude (of equal
    magnitudes, the lower index first)."""
    v = np.asarray(v, np.float32)
    n_out = value_outlier_count(v.shape[-1], outliers_pct)
    mask = np.zeros(v.shape, bool)
    if n_out:
        order = np.argsort(-np.abs(v), axis=-1, kind="stable")[..., :n_out]
        np.put_along_axis(mask, order, True, axis=-1)
    return mask


def quantize_values(v: np.ndarray, outliers_pct: float, centroids: np.ndarray):
    """Values [tokens, channels] (fp32), each token on its own -> (codes, outlier mask, zero,
    scale, dequantized values). zero and scale are the inliers' mid-range and half-range,
    rounded to fp16 as the cache stores them."""
    v = np.asarray(v, np.float32)
    out = value_outliers(v, outliers_pct)
    inl = np.where(out, np.nan, v)
    all_out = out.all(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: every entry an outlier
        lo = np.where(all_out, 0, np.nanmin(inl, -1)).astype(np.float32)
        hi = np.where(all_out, 0, np.nanmax(inl, -1)).astype(np.float32)
    zero = (np.float32(0.5) * (lo + hi)).astype(np.float16).astype(np.float32)[:, None]
    scale = (np.float32(0.5) * (hi - lo)).astype(np.float16).astype(np.float32)[:, None]
    codes = nearest_code(_normalize(v, zero, scale), centroids)
    deq = zero + scale * np.asarray(centroids, np.float32)[codes]
    deq = np.where(out, v.astype(np.float16).astype(np.float32), deq).astype(np.float32)
    return codes, out, zero[:, 0], scale[:, 0], deq


@dataclass
class KvCalibration:
    bits: int
    outliers: float
    sink: int
    key_range: list[np.ndarray]              # per layer: [2, channels] (lo, hi)
    key_centroids: list[dict[int, np.ndarray]]  # per layer: bits -> [2^bits], ascending
    value_centroids: list[dict[int, np.ndarray]]
    description: str

    def tensors(self):
        """(name, array) pairs as SPEC §7 names them."""
        for l in range(len(self.key_range)):
            yield C.kv_tensor_name(l, "key_range"), self.key_range[l].astype(np.float32)
            for b in KV_BITS:
                yield C.kv_tensor_name(l, f"key_centroids.{b}"), self.key_centroids[l][b].astype(np.float32)
                yield C.kv_tensor_name(l, f"value_centroids.{b}"), self.value_centroids[l][b].astype(np.float32)


def _weighted_centroids(u: np.ndarray, w: np.ndarray, bits: int, seed: int) -> np.ndarray:
    u, w = u.ravel(), w.ravel()
    if u.size > MAX_KMEANS_ENTRIES:
        pick = np.linspace(0, u.size - 1, MAX_KMEANS_ENTRIES).round().astype(np.int64)
        u, w = u[pick], w[pick]
    if u.size == 0:
        return uniform_centroids(bits)
    c = weighted_kmeans_rows(u[None, :], w[None, :], None, bits, seed=seed).centroids[0]
    return np.sort(np.clip(c, -1.0, 1.0)).astype(np.float32)


def key_ranges(keys: np.ndarray, outliers_pct: float) -> tuple[np.ndarray, np.ndarray]:
    """Each key channel's range (lo, hi) from [tokens, channels] keys: the p/2 % and
    (100 - p/2) % quantiles (linear interpolation, in float64)."""
    q = outliers_pct / 200.0
    x = np.asarray(keys, np.float64)
    return np.quantile(x, q, axis=0).astype(np.float32), np.quantile(x, 1.0 - q, axis=0).astype(np.float32)


# Online key ranges (the uniform method on a file without calibration; SPEC §7).
ONLINE_SINK = 1
ONLINE_OUTLIERS = 1.0
RANGE_TOKENS = 64


def quantize_keys_online(k: np.ndarray, centroids: np.ndarray):
    """Keys [tokens, channels] of one sequence from position 0, without calibration -> dequantized
    keys as the runtime reads them: the sink in fp16; the next RANGE_TOKENS positions set the
    ranges from their fp16 values and are quantized from those; every later key from its fp32
    value. A sequence that ends inside that window keeps it in fp16."""
    k = np.asarray(k, np.float32)
    out = k.astype(np.float16).astype(np.float32)
    a, b = ONLINE_SINK, ONLINE_SINK + RANGE_TOKENS
    if len(k) < b:
        return out
    lo, hi = key_ranges(out[a:b], ONLINE_OUTLIERS)
    out[a:b] = quantize_keys(out[a:b], lo, hi, centroids)[2]
    out[b:] = quantize_keys(k[b:], lo, hi, centroids)[2]
    return out


def fit_layer(keys: np.ndarray, key_fisher: np.ndarray, values: np.ndarray, value_fisher: np.ndarray,
              outliers_pct: float, seed: int = 0):
    """One layer's calibration from [tokens, channels] activations and their Fisher weights."""
    lo, hi = key_ranges(keys, outliers_pct)
    zero, scale = np.float32(0.5) * (lo + hi), np.float32(0.5) * (hi - lo)
    k_in = (keys >= lo) & (keys <= hi)
    ku = _normalize(keys, zero, scale)
    # Fisher weight of an entry's error in the normalized domain: F * scale^2.
    kw = key_fisher * np.square(scale)
    v_out = value_outliers(values, outliers_pct)
    v_in = np.where(v_out, np.nan, values)
    vlo, vhi = np.nanmin(v_in, -1, keepdims=True), np.nanmax(v_in, -1, keepdims=True)
    vzero, vscale = np.float32(0.5) * (vlo + vhi), np.float32(0.5) * (vhi - vlo)
    vu = _normalize(values, vzero, vscale)
    vw = value_fisher * np.square(vscale)
    kc = {b: _weighted_centroids(ku[k_in], kw[k_in], b, seed) for b in KV_BITS}
    vc = {b: _weighted_centroids(vu[~v_out], vw[~v_out], b, seed) for b in KV_BITS}
    return np.stack([lo, hi]), kc, vc


def calibrate(model_dir: Path, data: Path, *, bits: int, outliers: float, sink: int, samples: int = 16,
              seq_len: int = 512, seed: int = 0, progress: bool = True) -> KvCalibration:
    """Run the model on calibration text and fit the KV datatype of every layer."""
    if bits not in KV_BITS:
        raise ConversionError(f"--kv-bits must be one of {', '.join(map(str, KV_BITS))}, got {bits}")
    if not 0.0 <= outliers < 50.0:
        raise ConversionError(f"--kv-outliers must be a percent in [0, 50), got {outliers}")
    if sink < 0:
        raise ConversionError(f"--kv-sink must be >= 0, got {sink}")
    model_dir, data = Path(model_dir), Path(data)
    torch, tok, model, ids, ctx = open_calibration(model_dir, data, "KV calibration")
    if not sink < seq_len <= ctx:
        raise ConversionError(f"--calib-seq-len must be in ({sink}, {ctx}], got {seq_len}")
    # Each sample starts as the runtime's sequences do: with BOS where the tokenizer adds one.
    prefix = list(tok("", add_special_tokens=True)["input_ids"])
    seqs = [prefix + s for s in calibration_sequences(ids, seq_len - len(prefix), samples, data=data)]

    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.model.layers
    acts: dict[tuple[int, str], list[torch.Tensor]] = {}
    grads: dict[tuple[int, str], list[torch.Tensor]] = {}
    handles = []
    for l, layer in enumerate(layers):
        for kind, mod in (("k", layer.self_attn.k_proj), ("v", layer.self_attn.v_proj)):
            def fwd(_m, _inp, out, key=(l, kind)):
                out.requires_grad_(True)
                acts.setdefault(key, []).append(out.detach()[0, sink:].clone())
                out.register_hook(lambda g, key=key: grads.setdefault(key, []).append(g.detach()[0, sink:].square()))
            handles.append(mod.register_forward_hook(fwd))
    try:
        for seq in tqdm(seqs, desc="kv calibration", unit="seq", disable=not progress, leave=False):
            x = torch.tensor([seq])
            # The projections' outputs need gradients although no parameter does.
            with torch.enable_grad():
                emb = model.get_input_embeddings()(x).requires_grad_(True)
                loss = model(inputs_embeds=emb, labels=x).loss
                if not torch.isfinite(loss):
                    raise ConversionError(f"{model_dir}: the loss is {float(loss)} on a calibration sample")
                loss.backward()
    finally:
        for h in handles:
            h.remove()

    key_range, kcs, vcs = [], [], []
    for l in tqdm(range(len(layers)), desc="kv datatypes", unit="layer", disable=not progress, leave=False):
        cat = lambda d, kind: torch.cat(d.pop((l, kind))).float().numpy()  # noqa: E731
        K, V, FK, FV = cat(acts, "k"), cat(acts, "v"), cat(grads, "k"), cat(grads, "v")
        for name, a in (("keys", K), ("values", V), ("key Fisher", FK), ("value Fisher", FV)):
            if not np.isfinite(a).all():
                raise ConversionError(f"{model_dir}: layer {l} {name} hold NaN or Inf on the calibration text")
        r, kc, vc = fit_layer(K, FK, V, FV, outliers, seed)
        key_range.append(r)
        kcs.append(kc)
        vcs.append(vc)
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    desc = f"file:{data.name} sha256:{sha} samples:{len(seqs)} seq_len:{seq_len} fisher:gradients"
    return KvCalibration(bits, float(outliers), int(sink), key_range, kcs, vcs, desc)

