"""Uniform round-to-nearest (RTN) baselines, stored as look-up tables like the k-means ones.

Per row, or per group of group_size columns (the last group may be shorter):

asymmetric  s = (max - min) / (2^b - 1), z = rint(-min / s)
symmetric   s = 2 max|w| / (2^b - 1),    z = 2^(b-1)          (GPTQ's convention)
both        q = clamp(rint(w / s) + z, 0, 2^b - 1),  LUT[q] = s (q - z)

so the runtime's LUT kernel runs them unchanged. rint rounds half to even (numpy's rule),
all arithmetic is float64 and the table is rounded to float32 at the end. z is not clamped:
a group whose values all have one sign still gets a grid over [min, max]. A constant
group (s would be 0, or below 2^-50 max|w|) uses s = max|w| (1 if that is 0), which puts a
constant v exactly in the table.

clip_search: the range is shrunk by each ratio 1.0, 0.975, ..., 0.5 (both ends alike) and the
ratio with the least (F-weighted, when F is given) squared error in the group is kept,
ratio 1.0 on ties, so clipping is never worse than none (in the spirit of the weight
clipping of AWQ and OmniQuant, by search instead of learning).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

CLIP_RATIOS = tuple(1.0 - 0.025 * i for i in range(21))


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_zero(lo, hi, amax, qmax, sym):
    if sym:
        s = 2.0 * amax / qmax
        if not s > 0.0:
            s = 1.0
        return s, np.float64((qmax + 1) // 2)
    s = (hi - lo) / qmax
    if not s > amax * 2.0 ** -50:  # a constant group (keeps z finite for a near-constant one)
        s = amax if amax > 0.0 else 1.0
    return s, np.rint(-lo / s)


@njit(cache=True, nogil=True, error_model="numpy")
def _code(w, s, z, qmax):
    q = np.rint(w / s) + z
    if q < 0.0:
        q = 0.0
    elif q > qmax:
        q = np.float64(qmax)
    return q


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _group_error(W, F, has_F, r, a, b, s, z, qmax):
    """Squared (F-weighted) error of columns a..b-1 of row r on the grid (s, z); the sum may be
    reassociated so that it vectorises: it only ranks the clipping ratios."""
    err = 0.0
    if has_F:
        for j in range(a, b):
            v = np.float64(W[r, j])
            e = v - s * (_code(v, s, z, qmax) - z)
            err += np.float64(F[r, j]) * e * e
    else:
        for j in range(a, b):
            v = np.float64(W[r, j])
            e = v - s * (_code(v, s, z, qmax) - z)
            err += e * e
    return err


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _rtn_rows(W, F, has_F, qmax, gs, sym, ratios, lut, codes):
    rows, cols = W.shape
    groups = lut.shape[1]
    for r in prange(rows):
        for g in range(groups):
            a = g * gs
            b = min(a + gs, cols)
            lo = np.inf
            hi = -np.inf
            for j in range(a, b):
                v = np.float64(W[r, j])
                lo = min(lo, v)
                hi = max(hi, v)
            amax = max(abs(lo), abs(hi))
            best_s, best_z = _scale_zero(lo, hi, amax, qmax, sym)
            if ratios.shape[0] > 1:
                best_err = np.inf
                for ri in range(ratios.shape[0]):
                    t = ratios[ri]
                    s, z = _scale_zero(t * lo, t * hi, t * amax, qmax, sym)
                    err = _group_error(W, F, has_F, r, a, b, s, z, qmax)
                    if err < best_err:
                        best_err, best_s, best_z = err, s, z
            for q in range(qmax + 1):
                lut[r, g, q] = np.float32(best_s * (q - best_z))
            for j in range(a, b):
                codes[r, j] = np.uint8(_code(np.float64(W[r, j]), best_s, best_z, qmax))


def rtn_rows(W: np.ndarray, bits: int, group_size: int | None = None, sym: bool = False,
             clip_search: bool = False, F: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RTN of each row (or group of group_size columns) as (lut float32 [rows, groups, 2^bits],
    codes uint8 [rows, cols]); dense(i, j) = lut[i, j // group_size, codes[i, j]].

    F (same shape as W, finite and >= 0) weights the error of the clipping search only.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    W = np.ascontiguousarray(W, dtype=np.float32)
    if W.ndim != 2:
        raise ValueError(f"W must be a 2-D matrix, got shape {W.shape}")
    rows, cols = W.shape
    if group_size is not None and group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    gs = cols if group_size is None or group_size >= cols else int(group_size)
    if not np.isfinite(W).all():
        raise ValueError("W has NaN or infinite entries")
    has_F = clip_search and F is not None
    if has_F:
        Fa = np.ascontiguousarray(F, dtype=np.float32)
        if Fa.shape != W.shape:
            raise ValueError(f"F has shape {Fa.shape}, W has {W.shape}")
        if not (np.isfinite(Fa).all() and (Fa >= 0).all()):
            raise ValueError("F (the sensitivities) must be finite and >= 0")
    else:
        Fa = np.zeros((0, 0), np.float32)
    groups = -(-cols // gs) if cols else 0
    lut = np.zeros((rows, groups, 1 << bits), np.float32)
    codes = np.zeros((rows, cols), np.uint8)
    ratios = np.array(CLIP_RATIOS if clip_search else (1.0,), np.float64)
    if rows and cols:
        _rtn_rows(W, Fa, has_F, (1 << bits) - 1, gs, bool(sym), ratios, lut, codes)
    return lut, codes
