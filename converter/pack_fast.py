"""SPEC §4 code packing in parallel (Numba): the same bytes as `sqllm.formats.pack_codes`, the
format's reference, which tests/test_converter.py checks it against."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from sqllm.formats.constants import ALLOWED_BITS, padded_cols


@njit(parallel=True, cache=True)
def _pack_rows(codes, bits, row_bytes, out):
    rows, cols = codes.shape
    for r in prange(rows):
        # Each run of 8 codes fills exactly `bits` bytes (up to 48 for 6 bits), little-endian.
        for g in range(row_bytes // bits):
            word = np.uint64(0)
            for k in range(8):
                j = g * 8 + k
                if j < cols:
                    word |= np.uint64(codes[r, j]) << np.uint64(k * bits)
            for b in range(bits):
                out[r, g * bits + b] = np.uint8((word >> np.uint64(8 * b)) & np.uint64(255))


def pack_codes_fast(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes uint8 [rows, cols] (each < 2**bits) -> packed uint8 [rows, row_bytes]."""
    if bits not in ALLOWED_BITS:
        raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {bits}")
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    rows, cols = codes.shape
    if codes.size and int(codes.max()) >= (1 << bits):
        raise ValueError(f"a code does not fit in {bits} bits")
    row_bytes = padded_cols(cols) * bits // 8
    out = np.empty((rows, row_bytes), np.uint8)
    if bits == 8:
        out[:, :cols] = codes
        out[:, cols:] = 0
    elif rows:
        _pack_rows(codes, bits, row_bytes, out)
    return out
