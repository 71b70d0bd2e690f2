"""One weight matrix -> the quantized linear of formats/SPEC.md §4 (codes, LUT, optional CSR)."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from sqllm.formats import constants as C
from sqllm.errors import ConversionError
from sqllm.formats.packing import decode_lut8, encode_lut8

from .config import EMBEDDING_MATRICES
from .gptq import DAMP, HessianFactor, assign_codes_gptq
from .kmeans import weighted_kmeans_rows
from .pack_fast import pack_codes_fast
from .rtn import rtn_rows
from .sparse import select_sparse, to_csr

METHODS = ("squeezellm", "kmeans", "rtn")
ROUNDINGS = ("gptq", "nearest")


@dataclass
class Recipe:
    """Every parameter of a conversion; stored as JSON in the file (sqllm.recipe.json)."""

    method: str = "squeezellm"
    bits: int = 3
    outliers: float | None = None   # percent of each matrix kept by magnitude (None: method default)
    sensitive: float | None = None  # percent kept by Fisher value (None: method default)
    group_size: int | None = None   # columns per LUT; None = one LUT per row
    sym: bool = False
    clip_search: bool = False
    kmeans: str = "fast"            # "fast" (Lloyd on sorted rows) or "exact" (dynamic programming)
    n_init: int = 3
    seed: int = 0
    keep: list[str] = field(default_factory=list)
    bits_for: list[tuple[str, int]] = field(default_factory=list)
    embed_bits: int | None = None   # embedding and output head (None: the next width above `bits`)
    rounding: str = "gptq"          # k-means codes: "gptq" (error feedback, where H is known) or "nearest"
    damp: float = DAMP              # GPTQ-style rounding: damping, a fraction of H's mean diagonal
    target_bpw: float | None = None  # whole-file bits per weight; the allocation fills `plan`
    # Per matrix, as chosen by the allocation: [bits, outliers %, sensitive %, predicted error].
    plan: dict[str, list] = field(default_factory=dict)
    budget_bytes: int | None = None  # the file size target_bpw allows

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConversionError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        widths = [(f"--bits {self.bits}", self.bits), *((f"--bits-for {p}={b}", b) for p, b in self.bits_for),
                  *([(f"--embed-bits {self.embed_bits}", self.embed_bits)] if self.embed_bits is not None else [])]
        for given, b in widths:
            if b not in C.ALLOWED_BITS:
                raise ConversionError(f"{given}: the bit widths are {', '.join(map(str, C.ALLOWED_BITS))}")
        for label, pct in (("--outliers", self.outliers), ("--sensitive", self.sensitive)):
            if pct is not None and not (0.0 <= pct < 50.0):
                raise ConversionError(f"{label} is a percentage in [0, 50), got {pct}")
        if self.group_size is not None and (self.group_size <= 0 or self.group_size % C.CODE_BLOCK):
            raise ConversionError(f"--group-size must be a positive multiple of {C.CODE_BLOCK}, got {self.group_size}")
        if self.group_size is not None and self.method != "rtn":
            raise ConversionError("--group-size applies to --method rtn (k-means LUTs are per row)")
        if self.target_bpw is not None:
            if not (isinstance(self.target_bpw, (int, float)) and math.isfinite(self.target_bpw) and self.target_bpw > 0):
                raise ConversionError(f"--target-bpw must be a positive number of bits per weight, got {self.target_bpw}")
            if self.method != "squeezellm":
                raise ConversionError("--target-bpw allocates bits by the Fisher: it needs --method squeezellm")
        if self.rounding not in ROUNDINGS:
            raise ConversionError(f"--rounding must be one of {', '.join(ROUNDINGS)}, got {self.rounding!r}")
        if not (math.isfinite(self.damp) and self.damp > 0):
            raise ConversionError(f"--damp must be a positive number, got {self.damp}")
        if self.kmeans not in ("fast", "exact"):
            raise ConversionError(f"--kmeans must be fast or exact, got {self.kmeans!r}")

    def resolved(self, have_fisher: bool) -> "Recipe":
        """Fill the method defaults: SqueezeLLM keeps 0.40% outliers + 0.05% sensitive weights."""
        r = Recipe(**asdict(self))
        if r.method == "squeezellm" and not have_fisher:
            r.method = "kmeans"  # what it runs without a Fisher: say so in the file and the summary
        sparse_default = self.method != "rtn"
        if r.outliers is None:
            r.outliers = 0.40 if sparse_default else 0.0
        if r.sensitive is None:
            r.sensitive = 0.05 if (sparse_default and have_fisher) else 0.0
        if r.sensitive > 0 and not have_fisher:
            raise ConversionError("--sensitive needs a Fisher file (--fisher FILE, or fisher.safetensors next to the model)")
        return r

    def bits_of(self, name: str) -> int:
        bits = self.bits
        if name in EMBEDDING_MATRICES:
            # The head's errors reach every logit: by default one step finer than the layers.
            bits = self.embed_bits if self.embed_bits is not None else next(
                (b for b in C.ALLOWED_BITS if b > self.bits), max(C.ALLOWED_BITS))
        for pattern, b in self.bits_for:
            if fnmatch.fnmatchcase(name, pattern):
                bits = b
        return bits

    def pinned_bits(self, name: str) -> int | None:
        """The width --bits-for gives this matrix, if any pattern matches."""
        found = None
        for pattern, b in self.bits_for:
            if fnmatch.fnmatchcase(name, pattern):
                found = b
        return found

    def settings(self, name: str) -> tuple[int, float, float]:
        """(bits, outliers %, sensitive %) of one matrix: the allocation's plan, or the recipe's."""
        if name in self.plan:
            bits, outliers, sensitive = self.plan[name][:3]
            return int(bits), float(outliers), float(sensitive)
        return self.bits_of(name), self.outliers, self.sensitive

    def keeps(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.keep)


# LUTs of this many bits and more are stored as 8-bit tables (SPEC §4): 2^b + 4 bytes per table
# instead of 2^(b+1), for an error of at most 1/510 of the table's range per entry.
LUT8_MIN_BITS = 3


def store_lut(values: np.ndarray, bits: int) -> tuple[np.ndarray | tuple[np.ndarray, np.ndarray], np.ndarray]:
    """LUT values (float32 [rows, groups, 2^bits]) as they will be stored: (what SqfWriter.add_linear
    takes, the stored values as float32). An 8-bit table that would not decode to finite values
    (a range near the fp16 limit) falls back to fp16."""
    if bits >= LUT8_MIN_BITS:
        levels, scale = encode_lut8(values)
        decoded = decode_lut8(levels, scale)
        if np.isfinite(decoded).all():
            return (levels, scale), decoded.astype(np.float32)
    lut = values.astype(np.float16)
    return lut, lut.astype(np.float32)


@dataclass
class QuantizedLinear:
    codes: np.ndarray   # packed, uint8 [rows, row_bytes]
    lut: np.ndarray | tuple[np.ndarray, np.ndarray]  # fp16 [rows, groups, 2^bits], or 8-bit (store_lut)
    csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    bits: int
    group_size: int
    cols: int
    objective: float    # sum of weighted squared errors of the dense part
    # With GPTQ-style rounding: sum over rows of e H e^T for nearest rounding and for the result.
    output_error: tuple[float, float] | None = None


def quantize_matrix(W: np.ndarray, F: np.ndarray | None, recipe: Recipe, name: str,
                    hessian: HessianFactor | None = None) -> QuantizedLinear:
    """W float32 [rows, cols], F (Fisher diagonal, same shape) or None; `name` selects the
    matrix's settings in the recipe. With the factored second moments of the matrix's input
    (k-means methods), codes are assigned GPTQ-style (gptq.py) instead of to the nearest entry."""
    rows, cols = W.shape
    csr_values, output_error = W, None
    bits, outliers, sensitive = recipe.settings(name)
    if F is None:
        sensitive = 0.0  # no Fisher for this matrix: outliers only
    sparse = None
    if outliers or sensitive:
        sparse = select_sparse(W, F, outliers, sensitive)
    if recipe.method == "rtn":
        gs = recipe.group_size if recipe.group_size and recipe.group_size < cols else None
        values, codes = rtn_rows(W, bits, group_size=gs, sym=recipe.sym, clip_search=recipe.clip_search, F=F)
        group_size = gs or cols
        lut, stored = store_lut(values, bits)
        dense = stored[np.arange(rows)[:, None], (np.arange(cols) // group_size)[None, :], codes]
        err = (W - dense) ** 2
        if F is not None:
            err *= F
        if sparse is not None:
            err[sparse] = 0
        objective = float(err.sum(dtype=np.float64))
    else:
        weights = F if recipe.method == "squeezellm" else None
        res = weighted_kmeans_rows(W, weights, None if sparse is None else ~sparse, bits,
                                   seed=recipe.seed, n_init=recipe.n_init, exact=recipe.kmeans == "exact")
        codes, group_size = res.codes, cols
        lut, stored = store_lut(res.centroids[:, None, :], bits)
        objective = float(np.sum(res.objective))
        if hessian is not None:
            # The codebook stays; the codes are chosen column by column with error feedback,
            # and the sparse part stores the values the feedback left at its positions.
            g = assign_codes_gptq(W, hessian, stored[:, 0, :], sparse)
            codes = g.codes
            err = (W - g.dequant) ** 2
            if weights is not None:
                err *= weights
            if sparse is not None:
                err[sparse] = 0
                csr_values = g.dequant
            objective = float(err.sum(dtype=np.float64))
            output_error = (float(g.objective_nearest.sum()), float(g.objective.sum()))
    csr = None
    if sparse is not None and sparse.any():
        csr = to_csr(sparse, csr_values)
    return QuantizedLinear(pack_codes_fast(codes, bits), lut, csr, bits, group_size, cols, objective,
                           output_error)
