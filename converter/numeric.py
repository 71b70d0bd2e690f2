"""Whole-matrix passes of the converter in parallel (Numba): widening checkpoint dtypes to
float32, scanning for NaN/Inf and negative values, and gathering a mask into CSR.

Each is one pass over memory on every core; the numpy equivalents (astype, isfinite().all(),
nonzero) are single-threaded and allocate temporaries as large as the matrix, which made them
a fifth of a 7B conversion. tests/test_converter.py checks them against numpy.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_jit = dict(parallel=True, cache=True, nogil=True)


@njit(**_jit)
def _bf16_bits_to_f32_bits(src, dst):
    for i in prange(src.shape[0]):
        dst[i] = np.uint32(src[i]) << np.uint32(16)


@njit(**_jit)
def _f16_bits_to_f32_bits(src, dst):
    for i in prange(src.shape[0]):
        h = np.uint32(src[i])
        sign = (h & np.uint32(0x8000)) << np.uint32(16)
        e = (h >> np.uint32(10)) & np.uint32(0x1F)
        m = h & np.uint32(0x3FF)
        if e == 0:
            if m == 0:
                dst[i] = sign
            else:  # subnormal: normalise the mantissa
                e2 = np.int64(1)
                while (m & np.uint32(0x400)) == 0:
                    m <<= np.uint32(1)
                    e2 -= 1
                dst[i] = sign | (np.uint32(e2 + 112) << np.uint32(23)) | ((m & np.uint32(0x3FF)) << np.uint32(13))
        elif e == 31:
            dst[i] = sign | np.uint32(0x7F800000) | (m << np.uint32(13))
        else:
            dst[i] = sign | ((e + np.uint32(112)) << np.uint32(23)) | (m << np.uint32(13))


def widen_to_f32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """raw: the little-endian bytes of a BF16 or F16 tensor (uint8, flat) -> new float32 array (flat)."""
    src = raw.view("<u2")
    out = np.empty(src.shape[0], np.float32)
    if src.size:
        (_bf16_bits_to_f32_bits if dtype == "BF16" else _f16_bits_to_f32_bits)(src, out.view(np.uint32))
    return out


@njit(**_jit)
def _bad_counts(a):
    nonfinite = 0
    negative = 0
    for i in prange(a.shape[0]):
        v = a[i]
        if not np.isfinite(v):
            nonfinite += 1
        elif v < 0:
            negative += 1
    return nonfinite, negative


def bad_counts(a: np.ndarray) -> tuple[int, int]:
    """(entries that are NaN or infinite, finite entries below zero) of a float array."""
    flat = np.ascontiguousarray(a).reshape(-1)
    if flat.size == 0:
        return 0, 0
    nonfinite, negative = _bad_counts(flat)
    return int(nonfinite), int(negative)


@njit(**_jit)
def _row_counts(mask, counts):
    for r in prange(mask.shape[0]):
        c = 0
        for j in range(mask.shape[1]):
            if mask[r, j]:
                c += 1
        counts[r] = c


@njit(**_jit)
def _gather_rows(mask, values, rowptr, cols, vals):
    for r in prange(mask.shape[0]):
        k = rowptr[r]
        for j in range(mask.shape[1]):
            if mask[r, j]:
                cols[k] = j
                vals[k] = values[r, j]
                k += 1


def gather_csr(mask: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The True entries of a 2-D bool mask, row by row: (rowptr int32 [rows+1] of the counts,
    cols int32 [nnz] increasing within each row, values[mask] in values' dtype)."""
    rows = mask.shape[0]
    counts = np.zeros(rows, np.int64)
    if mask.size:
        _row_counts(mask, counts)
    rowptr = np.zeros(rows + 1, np.int64)
    np.cumsum(counts, out=rowptr[1:])
    nnz = int(rowptr[-1])
    if nnz >= 2**31:
        raise ValueError("the sparse part is too large for int32 indices")
    cols = np.empty(nnz, np.int32)
    vals = np.empty(nnz, values.dtype)
    if nnz:
        # float16 is gathered as its bits (Numba has no float16 arrays)
        same = (lambda a: a.view(np.uint16)) if values.dtype == np.float16 else (lambda a: a)
        _gather_rows(mask, same(values), rowptr, cols, same(vals))
    return rowptr.astype(np.int32), cols, vals


@njit(**_jit)
def _candidates(flat, threshold, absolute, excluded, has_excluded, chunk, counts, bad, idx, vals, fill):
    n = flat.shape[0]
    for c in prange(counts.shape[0]):
        k = counts[c] if fill else 0
        nbad = 0
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            v = flat[i]
            if not np.isfinite(v) or (not absolute and v < 0):
                nbad += 1
                continue
            s = abs(v) if absolute else v
            if s >= threshold and not (has_excluded and excluded[i]):
                if fill:
                    idx[k] = i
                    vals[k] = s
                k += 1
        if not fill:
            counts[c] = k
            bad[c] = nbad


def scores_at_least(flat: np.ndarray, threshold: float, absolute: bool,
                    excluded: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat indices (ascending) and scores of the entries whose score (|v| if absolute, else v)
    is >= threshold, outside excluded (a flat bool array, or None); and the number of bad entries
    (NaN/Inf, or negative when not absolute), which are never selected."""
    n = flat.shape[0]
    chunk = 1 << 20
    n_chunks = max(1, -(-n // chunk))
    counts = np.zeros(n_chunks, np.int64)
    bad = np.zeros(n_chunks, np.int64)
    has_excluded = excluded is not None
    ex = excluded if has_excluded else np.zeros(1, np.bool_)
    idx_type = np.int32 if n < 2**31 else np.int64
    thr = flat.dtype.type(threshold) if np.isfinite(threshold) else flat.dtype.type(-np.inf)
    _candidates(flat, thr, absolute, ex, has_excluded, chunk, counts, bad, np.zeros(1, idx_type),
                np.zeros(1, flat.dtype), False)
    offsets = np.zeros(n_chunks, np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    total = int(counts.sum())
    idx = np.empty(total, idx_type)
    vals = np.empty(total, flat.dtype)
    if total:
        _candidates(flat, thr, absolute, ex, has_excluded, chunk, offsets, bad, idx, vals, True)
    return idx, vals, int(bad.sum())
