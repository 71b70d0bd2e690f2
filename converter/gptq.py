"""GPTQ-style code assignment for per-row look-up tables.

Nearest-centroid rounding minimises each weight's own error; what the layer's output loses is
e H e^T per row, e = W_i - Q_i and H = E[x x^T] over calibration inputs (Fisher files from
`sqconvert fisher` carry H under hessian_name). GPTQ (Frantar et al. 2022) lowers that by
rounding the columns left to right and moving each rounding error onto the columns not yet
rounded. The codebook stays the row's own LUT: column j gets the entry nearest to its
updated value.

GPTQ writes the update with U, the upper Cholesky factor of the damped H^-1. With H_d = R R^T,
R upper (the Cholesky factor of H with rows and columns reversed), U = R^-1, and the update
GPTQ applies works out to

    w'_j = W_j + sum_{i<j} (W_i - q_i) R_ij / R_jj,

so M = R with its columns divided by their diagonal carries the feedback and no inverse is
formed: one Cholesky is the whole factorisation. A block of `block` columns is rounded by a
row-parallel kernel that feeds each error to the block's later columns; the columns after the
block get the block's errors in one GEMM. All rows share H, so both run over rows at once.
The objective e H_d e^T of nearest rounding is |e R|^2 (one triangular product); GPTQ's comes
free from the kernel, since its errors satisfy e H_d e^T = sum_j R_jj^2 (w'_j - q_j)^2; rows
where the two are within 0.1% are measured again by the triangular product. Both have the
damping and the dead-column diagonal taken back out.

Kept-exact entries (`fixed`, the sparse part) are stored as their updated value w'_j rounded to
fp16, the CSR's type: given the columns already rounded that is the value which adds nothing
to the objective (GPTQ's update is the optimal correction of the remaining weights), only its
fp16 rounding. Storing W_ij instead would add R_jj^2 (w'_j - W_ij)^2 to the damped objective.
The CSR must therefore store `dequant` at the fixed entries, not W.

A column whose H_jj is 0 never sees a nonzero input: H_jj is set to 1 as GPTQ does, which
leaves it decoupled (nothing flows in or out), so it is rounded to nearest of its own value.
Rows where the GPTQ assignment is not strictly better than nearest rounding keep nearest
rounding, so the objective never rises.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange
from scipy.linalg import lapack
from scipy.linalg.blas import sgemm, strmm

_jit = dict(cache=True, nogil=True, error_model="numpy")
_ROW_CHUNK = 256  # rows per thread task: a 128-column block of them stays in L2

_SHARED_INPUT = {"self_attn.k_proj": "self_attn.q_proj", "self_attn.v_proj": "self_attn.q_proj",
                 "mlp.up_proj": "mlp.gate_proj"}


def hessian_name(linear_name: str) -> str:
    """The Fisher-file tensor holding H = E[x x^T] of the input of linear_name (a weight name).
    Linears that read the same input share one: k/v -> q_proj, up -> gate_proj, and the
    output head, whether lm_head.weight or a tied model.embed_tokens.weight, -> lm_head."""
    if linear_name in ("lm_head.weight", "model.embed_tokens.weight"):
        return "lm_head.hessian"
    if not linear_name.endswith(".weight"):
        raise ValueError(f"{linear_name}: not a weight name")
    module = linear_name[: -len(".weight")]
    for suffix, owner in _SHARED_INPUT.items():
        if module.endswith("." + suffix):
            module = module[: -len(suffix)] + owner
            break
    return module + ".hessian"


class GptqResult(NamedTuple):
    codes: np.ndarray              # uint8 [rows, cols]; at fixed entries the code of the nearest LUT entry
    dequant: np.ndarray            # float32 [rows, cols]: LUT values and, at fixed entries, the CSR values
    objective: np.ndarray          # float64 [rows]: e H e^T of the returned assignment
    objective_nearest: np.ndarray  # float64 [rows]: e H e^T of nearest rounding (fixed entries = W in fp16)
    gptq_rows: np.ndarray          # bool [rows]: rows that took the GPTQ assignment


@njit(inline="always")
def _round_fp16(x):
    """x rounded to the nearest float16 value, ties to even (as numpy's astype), as float32."""
    a = abs(np.float64(x))
    if a < 6.103515625e-05:
        step = 5.960464477539063e-08  # the fp16 subnormal spacing, 2^-24
    else:
        step = math.ldexp(1.0, math.frexp(a)[1] - 11)  # a in [2^(e-1), 2^e): 10 fraction bits
    return np.float32(np.rint(np.float64(x) / step) * step)


@njit(inline="always")
def _nearest(mids, v):
    """Index of the nearest entry of an ascending table, given its float64 midpoints; ties go low."""
    c = 0
    vv = np.float64(v)
    while c < mids.shape[0] and vv > mids[c]:
        c += 1
    return c


@njit(parallel=True, **_jit)
def _round_nearest(W, mids, lut, fixed, codes, Q):
    rows, cols = W.shape
    for r in prange(rows):
        for j in range(cols):
            c = _nearest(mids[r], W[r, j])
            codes[r, j] = c
            Q[r, j] = _round_fp16(W[r, j]) if fixed[r, j] else lut[r, c]


@njit(parallel=True, **_jit)
def _round_block(Wt, Vt, b0, b1, M, r2, mids_t, lut, fixed_t, codes_t, err_t, obj):
    """Round columns b0..b1-1 of W in order. Everything is transposed (Wt[j] is column j of the
    original W, Vt[j] the value to round, W plus the feedback so far) so the inner loops run
    along contiguous rows; threads take chunks of rows. Each error W - q is fed to the block's
    later columns through M; Vt[b0:b1] ends as the rounded values, err_t as the errors, and
    obj accumulates R_jj^2 (v - q)^2, the damped objective (e = Err U, so e H_d e^T = |Err|^2)."""
    rows = Wt.shape[1]
    n_chunks = (rows + _ROW_CHUNK - 1) // _ROW_CHUNK
    for ci in prange(n_chunks):
        r0 = ci * _ROW_CHUNK
        r1 = min(r0 + _ROW_CHUNK, rows)
        n = r1 - r0
        lut_c, mids_c, obj_c = lut[r0:r1], mids_t[:, r0:r1], obj[r0:r1]
        code = np.empty(n, np.int64)
        # Slices indexed from 0 in the inner loops: LLVM vectorizes those, not r0..r1 ranges.
        for j in range(b0, b1):
            e_j, w_j, v_j = err_t[j - b0, r0:r1], Wt[j, r0:r1], Vt[j, r0:r1]
            c_j, f_j = codes_t[j, r0:r1], fixed_t[j, r0:r1]
            code[:] = 0
            for m in range(mids_c.shape[0]):
                mid = mids_c[m]
                for r in range(n):
                    code[r] += np.float64(v_j[r]) > mid[r]
            for r in range(n):
                c = code[r]
                c_j[r] = c
                q = _round_fp16(v_j[r]) if f_j[r] else lut_c[r, c]
                e_j[r] = w_j[r] - q
                d = np.float64(v_j[r] - q)
                obj_c[r] += r2[j] * d * d
                v_j[r] = q
            for t in range(j + 1, b1):
                m_jt = M[j, t]
                v_t = Vt[t, r0:r1]
                for r in range(n):
                    v_t[r] += e_j[r] * m_jt


def _check(W, h_shape, lut, fixed):
    W = np.ascontiguousarray(W, dtype=np.float32)
    if W.ndim != 2:
        raise ValueError(f"W must be a 2-D matrix, got shape {W.shape}")
    rows, cols = W.shape
    if h_shape != (cols, cols):
        raise ValueError(f"H has shape {h_shape}, W has {cols} columns")
    lut = np.ascontiguousarray(lut, dtype=np.float32)
    if lut.ndim != 2 or lut.shape[0] != rows or not 1 <= lut.shape[1] <= 256:
        raise ValueError(f"lut must be [rows, k] with k <= 256, got {lut.shape} for {rows} rows")
    if not (np.isfinite(W).all() and np.isfinite(lut).all()):
        raise ValueError("W and lut must be finite")
    if (np.diff(lut, axis=1) < 0).any():
        raise ValueError("every row of lut must be ascending")
    if fixed is None:
        return W, lut, np.zeros(W.shape, np.bool_)
    fixed = np.ascontiguousarray(fixed, dtype=np.bool_)
    if fixed.shape != W.shape:
        raise ValueError(f"fixed has shape {fixed.shape}, W has {W.shape}")
    return W, lut, fixed


class HessianFactor(NamedTuple):
    """What assign_codes_gptq needs of H; linears that share an input (hessian_name) share it."""
    R: np.ndarray     # float32 [cols, cols] upper, Fortran-ordered: H' + lam I = R R^T
    M: np.ndarray     # float32 [cols, cols], Fortran-ordered: R with each column divided by its diagonal
    lam: float        # the damping added to the diagonal
    dead: np.ndarray  # bool [cols]: H_jj == 0; H' is H with those diagonal entries set to 1


# The damping the converter uses: 10x GPTQ's usual 0.01. H comes from a few thousand tokens of
# calibration text; on the dev model (3-bit, TinyStories calibration) 0.01 improved in-domain
# perplexity but lost 2.8% out of domain (WikiText-2), where 0.1 keeps the in-domain gain and
# loses nothing out of domain (1.0 measured the same as 0.1).
DAMP = 0.1


def factor_hessian(H: np.ndarray, damp: float = DAMP) -> HessianFactor:
    """Factor H = E[x x^T] ([cols, cols], symmetric PSD) damped as GPTQ does: damp (GPTQ's
    percdamp) * mean(diag H') is added to the diagonal."""
    if not damp > 0:
        raise ValueError(f"damp must be > 0, got {damp}")
    H = np.asarray(H)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square matrix, got shape {H.shape}")
    if not np.isfinite(H).all():
        raise ValueError("H must be finite")
    dead = np.diagonal(H) == 0
    # H with rows and columns reversed, so that its lower Cholesky factor reversed back is R.
    # Reversing both axes of a contiguous matrix reverses its buffer (a fast 1-D copy, where a
    # 2-D negative-stride copy is slow); being symmetric, the C-ordered result's transpose is
    # the same matrix, Fortran-ordered for LAPACK.
    Hr = _reversed(np.ascontiguousarray(H, dtype=np.float32), "C")
    Hr[dead[::-1], dead[::-1]] = 1.0
    lam = float(np.float32(damp * float(np.mean(np.diagonal(Hr), dtype=np.float64))))
    Hr[np.diag_indices_from(Hr)] += np.float32(lam)
    L, info = lapack.spotrf(Hr.T, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise ValueError(f"H + damping is not positive definite (LAPACK info {info}); raise damp")
    del Hr
    R = _reversed(L, "F")
    del L
    return HessianFactor(R, R / np.diagonal(R)[None, :], lam, dead)


def _reversed(A, order):
    """A (contiguous in `order`) with both axes reversed, a new array in the same order."""
    return A.reshape(-1, order=order)[::-1].copy().reshape(A.shape, order=order)


def _undamped(E, damped, f):
    """e H e^T per row from e H_d e^T: less lam |e|^2 and the 1 put at the dead diagonal entries."""
    own = np.einsum("ij,ij->i", E, E, dtype=np.float64)
    at_dead = np.einsum("ij,ij->i", E[:, f.dead], E[:, f.dead], dtype=np.float64)
    return damped - f.lam * own - at_dead


def _objective(E, f):
    """Per row e H e^T, as |e R|^2 undamped (one triangular product); E (C-ordered) is overwritten."""
    correction = _undamped(E, 0.0, f)
    ERt = strmm(1.0, f.R, E.T, side=0, lower=0, trans_a=1, overwrite_b=1)  # (E R)^T, in E's memory
    return np.einsum("ij,ij->j", ERt, ERt, dtype=np.float64) + correction


def assign_codes_gptq(W: np.ndarray, H: np.ndarray | HessianFactor, lut: np.ndarray,
                      fixed: np.ndarray | None = None, *, damp: float = DAMP, block: int = 128) -> GptqResult:
    """GPTQ-style codes for W (float32 [rows, cols]) against per-row ascending tables lut
    (float32 [rows, k]; pass the LUT as it will be stored, i.e. already rounded to fp16).
    H is E[x x^T] ([cols, cols]) of the layer's input, or factor_hessian(H, damp) when linears
    share an input (damp is then ignored). fixed (bool, W's shape) marks the entries kept
    exactly in the sparse part; the CSR must store dequant at those entries. block: columns
    rounded per kernel call between GEMMs (only speed depends on it). See the module docstring."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    W, lut, fixed = _check(W, H.R.shape if isinstance(H, HessianFactor) else np.shape(H), lut, fixed)
    rows, cols = W.shape
    mids = 0.5 * (lut[:, :-1].astype(np.float64) + lut[:, 1:])

    codes_n = np.empty((rows, cols), np.uint8)
    Q_n = np.empty((rows, cols), np.float32)
    _round_nearest(W, mids, lut, fixed, codes_n, Q_n)
    if rows == 0 or cols == 0:
        z = np.zeros(rows)
        return GptqResult(codes_n, Q_n, z, z.copy(), np.zeros(rows, np.bool_))
    f = H if isinstance(H, HessianFactor) else factor_hessian(H, damp)

    # Transposed copies (row j is column j of W) so that the kernel's inner loops and the
    # columns not yet rounded are contiguous; sgemm adds the feedback to the latter in place.
    Wt = np.ascontiguousarray(W.T)
    Vt = Wt.copy()
    mids_t = np.ascontiguousarray(mids.T)
    fixed_t = np.ascontiguousarray(fixed.T)
    codes_t = np.empty((cols, rows), np.uint8)
    err_t = np.empty((block, rows), np.float32)
    damped = np.zeros(rows)
    r2 = np.square(np.diagonal(f.R), dtype=np.float64)
    for b0 in range(0, cols, block):
        b1 = min(b0 + block, cols)
        _round_block(Wt, Vt, b0, b1, f.M, r2, mids_t, lut, fixed_t, codes_t, err_t, damped)
        if b1 < cols:
            sgemm(1.0, err_t[: b1 - b0].T, f.M[b0:b1, b1:], beta=1.0, c=Vt[b1:].T, overwrite_c=1)
    del Wt
    Q = np.ascontiguousarray(Vt.T)
    codes = np.ascontiguousarray(codes_t.T)
    del Vt, codes_t

    obj = _undamped(W - Q, damped, f)
    obj_n = _objective(W - Q_n, f)
    # The kernel's sum is exact only up to the rounding of the feedback: where the two are close,
    # the choice is made on the same triangular product as nearest rounding's.
    close = np.flatnonzero(np.abs(obj - obj_n) <= 1e-3 * obj_n)
    if close.size:
        obj[close] = _objective(W[close] - Q[close], f)
    better = obj < obj_n
    keep = ~better
    codes[keep] = codes_n[keep]
    Q[keep] = Q_n[keep]
    return GptqResult(codes, Q, np.where(better, obj, obj_n), obj_n, better)
