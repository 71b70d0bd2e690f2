"""`--target-bpw B`: spend a whole-file size budget where the Fisher says the bits matter.

Every quantized matrix may take any LUT width of the format and one of a few dense-and-sparse
splits. The cost of a choice is its exact size in the file (codes, LUT, CSR, alignment); its
predicted error is the Fisher-weighted squared error sum F (W - Q)^2 of the dense part, which
is (twice) the second-order estimate of the loss increase and so adds up across matrices.
The error of each choice is measured by quantizing an evenly spaced sample of rows and
scaling by rows / sampled rows.

The choice per matrix is a multiple-choice knapsack: minimise the summed error under the
budget. Each matrix's choices are reduced to their lower convex hull in (bytes, error), and
a greedy takes the hull steps of largest error reduction per byte while they fit, which is
the Lagrangian optimum at the budget up to the last step that did not fit.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from sqllm.formats import constants as C
from sqllm.errors import ConversionError

from .kmeans import weighted_kmeans_rows
from .quantize import LUT8_MIN_BITS
from .sparse import select_sparse

# (outliers %, sensitive %) splits the allocation chooses among; SqueezeLLM's is the last.
SPARSE_CHOICES = ((0.0, 0.0), (0.20, 0.05), (0.40, 0.05))
# LUT widths the allocation chooses among (8 bits buys little over 6 at four times the LUT).
ALLOCATION_BITS = tuple(b for b in C.ALLOWED_BITS if b <= 6)
SAMPLE_WEIGHTS = 1 << 17  # weights per matrix quantized to measure each choice's error


@dataclass(frozen=True)
class Choice:
    bits: int
    outliers: float
    sensitive: float
    bytes: int
    error: float


def _aligned(n: int) -> int:
    return -(-n // C.ALIGNMENT) * C.ALIGNMENT


def matrix_bytes(rows: int, cols: int, bits: int, outliers: float, sensitive: float) -> int:
    """Bytes a per-row-LUT quantized matrix takes in the data section, each tensor aligned."""
    n = rows * cols
    nnz = int(round(outliers / 100.0 * n)) + int(round(sensitive / 100.0 * n))
    size = _aligned(rows * C.row_bytes(cols, bits))
    if bits >= LUT8_MIN_BITS:  # 8-bit levels and the (lo, step) scale, two tensors
        size += _aligned(rows << bits) + _aligned(4 * rows)
    else:
        size += _aligned(rows * (2 << bits))
    if nnz:
        size += _aligned(4 * (rows + 1)) + _aligned(4 * nnz) + _aligned(2 * nnz)
    return size


def sample_rows(rows: int, cols: int) -> np.ndarray:
    m = min(rows, max(32, -(-SAMPLE_WEIGHTS // cols)))
    return np.unique(np.linspace(0, rows - 1, m).round().astype(np.int64))


def measure_choices(W: np.ndarray, F: np.ndarray, rows: int, cols: int, *, bits_options=ALLOCATION_BITS,
                    sparse_options=SPARSE_CHOICES, seed: int = 0) -> list[Choice]:
    """Every (bits, split) choice of one matrix with its size and predicted error, from the
    sampled rows W, F (float32 [m, cols]) of a [rows, cols] matrix."""
    scale = rows / W.shape[0]
    out = []
    for outliers, sensitive in sparse_options:
        mask = select_sparse(W, F, outliers, sensitive) if (outliers or sensitive) else None
        for bits in bits_options:
            res = weighted_kmeans_rows(W, F, None if mask is None else ~mask, bits, seed=seed, n_init=1)
            err = F * (W - np.take_along_axis(res.centroids, res.codes.astype(np.int64), axis=1)) ** 2
            if mask is not None:
                err[mask] = 0
            out.append(Choice(bits, outliers, sensitive, matrix_bytes(rows, cols, bits, outliers, sensitive),
                              float(err.sum(dtype=np.float64)) * scale))
    return out


def _hull(choices: list[Choice]) -> list[Choice]:
    """The lower convex hull of (bytes, error), from the smallest choice on."""
    pts = []
    for c in sorted(choices, key=lambda c: (c.bytes, c.error)):
        if pts and c.error >= pts[-1].error:
            continue  # costs more and is no better
        while len(pts) >= 2:
            a, b = pts[-2], pts[-1]
            # drop b when it lies on or above the segment a -> c
            if (b.error - a.error) * (c.bytes - a.bytes) >= (c.error - a.error) * (b.bytes - a.bytes):
                pts.pop()
            else:
                break
        pts.append(c)
    return pts


def allocate(choices: dict[str, list[Choice]], budget: int) -> dict[str, Choice]:
    """Pick one choice per matrix with total bytes <= budget and a small summed error.
    Raises ConversionError when even the smallest choices do not fit."""
    hulls = {name: _hull(cs) for name, cs in choices.items()}
    pick = {name: 0 for name in hulls}
    spent = sum(h[0].bytes for h in hulls.values())
    if spent > budget:
        raise ConversionError(f"the budget leaves {budget} bytes for the quantized matrices, but the smallest "
                              f"choice for each needs {spent}")
    heap = []

    def push(name: str) -> None:
        h, i = hulls[name], pick[name]
        if i + 1 < len(h):
            gain = (h[i].error - h[i + 1].error) / (h[i + 1].bytes - h[i].bytes)
            heapq.heappush(heap, (-gain, name))

    for name in hulls:
        push(name)
    while heap:
        _, name = heapq.heappop(heap)
        h, i = hulls[name], pick[name]
        step = h[i + 1].bytes - h[i].bytes
        if spent + step <= budget:
            pick[name] = i + 1
            spent += step
            push(name)
    return {name: hulls[name][i] for name, i in pick.items()}


def budget_bytes(target_bpw: float, n_weights: int) -> int:
    if not (isinstance(target_bpw, (int, float)) and math.isfinite(target_bpw) and target_bpw > 0):
        raise ConversionError(f"--target-bpw must be a positive number of bits per weight, got {target_bpw}")
    return int(math.floor(target_bpw * n_weights / 8))
