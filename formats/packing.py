"""Code packing of SPEC §4: per row, a little-endian bit stream of b-bit codes, padded to 32 columns."""

import numpy as np

from .constants import ALLOWED_BITS, padded_cols


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes uint8 [rows, cols] (each < 2**bits) -> packed uint8 [rows, row_bytes]."""
    if bits not in ALLOWED_BITS:
        raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {bits}")
    rows, cols = codes.shape
    if codes.size and int(codes.max()) >= (1 << bits):
        raise ValueError(f"a code does not fit in {bits} bits")
    full = np.zeros((rows, padded_cols(cols)), dtype=np.uint8)
    full[:, :cols] = codes
    if bits == 8:
        return full
    # Each run of 8 codes fills exactly `bits` bytes (up to 48 for 6 bits): build it as one
    # little-endian uint64.
    eights = full.reshape(rows, -1, 8).astype(np.uint64)
    shifts = (np.arange(8, dtype=np.uint64) * np.uint64(bits))
    words = np.bitwise_or.reduce(eights << shifts, axis=2).astype("<u8")
    return np.ascontiguousarray(words.view(np.uint8).reshape(rows, -1, 8)[:, :, :bits]).reshape(rows, -1)


def unpack_codes(packed: np.ndarray, bits: int, cols: int) -> np.ndarray:
    """packed uint8 [rows, row_bytes] -> codes uint8 [rows, cols]."""
    if bits not in ALLOWED_BITS:
        raise ValueError(f"bits must be one of {ALLOWED_BITS}, got {bits}")
    rows = packed.shape[0]
    if bits == 8:
        return np.ascontiguousarray(packed[:, :cols])
    chunks = packed.reshape(rows, -1, bits)
    words = np.zeros((rows, chunks.shape[1], 8), dtype=np.uint8)
    words[:, :, :bits] = chunks
    words = words.view("<u8")  # [rows, n8, 1]
    shifts = (np.arange(8, dtype=np.uint64) * np.uint64(bits))
    codes = (words >> shifts) & np.uint64((1 << bits) - 1)
    return np.ascontiguousarray(codes.reshape(rows, -1)[:, :cols].astype(np.uint8))


def dequantize_dense(codes: np.ndarray, lut: np.ndarray, group_size: int) -> np.ndarray:
    """codes uint8 [rows, cols], lut [rows, groups, 2**b] -> float32 [rows, cols] (SPEC §4 dense value)."""
    rows, cols = codes.shape
    group = (np.arange(cols) // group_size)[None, :]
    return lut.astype(np.float32)[np.arange(rows)[:, None], group, codes]


def decode_lut8(levels: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """An 8-bit LUT (SPEC §4) as its fp16 values: fp16(lo + step * level), with lo, step =
    scale[..., 0], scale[..., 1] (fp16) and the level (uint8) broadcast over the last axis. The
    sum is exact in float64 and rounded once to fp16, as every reader must."""
    lo = scale[..., :1].astype(np.float64)
    step = scale[..., 1:].astype(np.float64)
    return (lo + step * levels.astype(np.float64)).astype(np.float16)


def encode_lut8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tables values (float32 [..., k]) as 8-bit levels on a 256-step grid from each table's
    smallest to its largest value: (levels uint8 [..., k], scale fp16 [..., 2] = lo, step).
    decode_lut8 of the result is within about (max - min) / 510 of each value."""
    values = np.asarray(values, np.float32)
    lo = values.min(axis=-1, keepdims=True).astype(np.float16)
    hi = values.max(axis=-1, keepdims=True).astype(np.float32)
    step = ((hi - lo.astype(np.float32)) / 255.0).astype(np.float16)
    # A step that rounded up would push the top level past hi; the grid must still reach it.
    step_f = step.astype(np.float64)
    safe = np.where(step_f > 0, step_f, 1.0)
    levels = np.where(step_f > 0, np.rint((values - lo.astype(np.float64)) / safe), 0.0)
    levels = np.clip(levels, 0, 255).astype(np.uint8)
    return levels, np.concatenate([lo, step], axis=-1)
