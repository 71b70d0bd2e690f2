"""The dense-and-sparse split of SqueezeLLM: which weights are kept exactly, and their CSR.

Outliers are the entries of largest |W|: the symmetric range [-t, t] is chosen so that the
requested fraction of the matrix lies outside it. Sensitive entries are those of largest
Fisher value F among the rest. Both counts are exact (round(pct / 100 * numel)); ties at
the threshold go to the lowest flat index, so the choice is deterministic.

Memory stays a small multiple of a bool mask: a fixed random sample gives a threshold just
below the k-th largest score, one parallel pass (numeric.scores_at_least) collects the few
entries above it, and np.partition on those finds the exact cut. Nothing is sorted and no
float64 (nor full float32) copy of the matrix is made.
"""

from __future__ import annotations

import numpy as np

from .numeric import gather_csr, scores_at_least

_SAMPLE = 1 << 18


def _sample_positions(n, m):
    return np.random.default_rng(0).integers(0, n, m)


_BAD = {True: "W has NaN or infinite entries", False: "F (the sensitivities) must be finite and >= 0"}


def _scores(sample, absolute):
    if not np.isfinite(sample).all() or not (absolute or (sample >= 0).all()):
        raise ValueError(_BAD[absolute])
    return np.abs(sample) if absolute else sample


def _top_indices(flat, count, absolute, excluded, n_excluded):
    """Flat indices of the count largest scores (|flat| or flat) outside excluded, the lowest
    index first among equal scores; count must not exceed the entries outside excluded."""
    n = flat.size
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float32)
    threshold = -np.inf
    if count < (n - n_excluded) // 8:
        pos = _sample_positions(n, min(n, _SAMPLE))
        if excluded is not None:
            pos = pos[~excluded[pos]]
        sample = _scores(flat[pos], absolute)
        m = sample.size
        expect = m * count / (n - n_excluded)
        rank = int(np.ceil(1.25 * expect + 6.0 * np.sqrt(expect) + 16))  # too few: rarely
        if rank < m:
            threshold = np.partition(sample, m - rank)[m - rank]
    for _attempt in range(2):
        idx, vals, bad = scores_at_least(flat, threshold, absolute, excluded)
        if bad:
            raise ValueError(_BAD[absolute])
        if idx.size >= count:
            break
        threshold = -np.inf  # an unlucky sample: take every candidate
    if idx.size == count:
        return idx
    cut = np.partition(vals, idx.size - count)[idx.size - count]
    above = idx[vals > cut]
    ties = idx[vals == cut][: count - above.size]
    return np.concatenate([above, ties])


def select_sparse(W: np.ndarray, F: np.ndarray | None, outlier_pct: float, sensitive_pct: float) -> np.ndarray:
    """Mask (bool, W's shape) of the entries kept exactly: round(outlier_pct% of numel)
    outliers of largest |W|, then round(sensitive_pct% of numel) of largest F among the rest.

    F is needed only when sensitive_pct > 0; it must then be finite and >= 0.
    """
    W = np.ascontiguousarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be a 2-D matrix, got shape {W.shape}")
    for label, pct in (("outlier_pct", outlier_pct), ("sensitive_pct", sensitive_pct)):
        if not 0.0 <= pct <= 100.0:
            raise ValueError(f"{label} is a percentage in [0, 100], got {pct}")
    n = W.size
    n_out = int(round(outlier_pct / 100.0 * n))
    n_sens = int(round(sensitive_pct / 100.0 * n))
    if n_out + n_sens > n:
        raise ValueError(f"outlier_pct + sensitive_pct = {outlier_pct + sensitive_pct} exceeds 100")
    if sensitive_pct > 0 and F is None:
        raise ValueError("sensitive_pct > 0 needs F, the Fisher information (sensitivity) of W; "
                         "pass sensitive_pct=0 to keep outliers only")
    mask = np.zeros(W.shape, np.bool_)
    flat_mask = mask.reshape(-1)
    if n_out:
        flat_mask[_top_indices(W.reshape(-1), n_out, True, None, 0)] = True
    if n_sens:
        F = np.ascontiguousarray(F)
        if F.shape != W.shape:
            raise ValueError(f"F has shape {F.shape}, W has {W.shape}")
        flat_mask[_top_indices(F.reshape(-1), n_sens, False, flat_mask if n_out else None, n_out)] = True
    return mask


def to_csr(mask_sparse: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of the True entries of mask_sparse: (rowptr int32 [rows+1], cols int32 [nnz],
    vals float16 [nnz]), columns increasing within each row. values has the mask's shape
    (float16, or any float array: only the selected entries are rounded to float16)."""
    mask_sparse = np.asarray(mask_sparse, dtype=np.bool_)
    values = np.asarray(values)
    if mask_sparse.ndim != 2:
        raise ValueError(f"mask must be a 2-D matrix, got shape {mask_sparse.shape}")
    if values.shape != mask_sparse.shape:
        raise ValueError(f"values have shape {values.shape}, the mask has {mask_sparse.shape}")
    if mask_sparse.shape[1] >= 2**31:
        raise ValueError("the sparse part is too large for int32 indices")
    rowptr, cols, vals = gather_csr(np.ascontiguousarray(mask_sparse), np.ascontiguousarray(values))
    return rowptr, cols, vals.astype(np.float16, copy=False)
