"""Checkpoint -> .sqf, streaming tensor by tensor (the `sqconvert MODEL -o OUT` pipeline)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sqllm.formats import SqfWriter
from sqllm.formats import constants as C
from sqllm.errors import ConversionError

from .allocate import ALLOCATION_BITS, allocate, budget_bytes, measure_choices, sample_rows
from .checkpoint import Checkpoint, open_checkpoint, open_safetensors
from .fisher import describe
from .gptq import HessianFactor, factor_hessian, hessian_name
from .interrupt import raise_if_interrupted
from .kvquant import calibrate
from .numeric import bad_counts
from .config import ARRAY_ITEM_TYPES, KEY_TYPES, is_layer_linear, is_quantizable, model_metadata
from .quantize import Recipe, quantize_matrix

log = logging.getLogger("sqllm.convert")

FISHER_HINT = "compute one with `sqconvert fisher MODEL --data TEXT_FILE -o fisher.safetensors`"


@dataclass
class KvOptions:
    """KVQuant calibration (`--kv-bits` and friends)."""
    bits: int
    data: Path
    outliers: float = 1.0
    sink: int = 1
    samples: int = 16
    seq_len: int = 512


@dataclass
class ConversionSummary:
    output: Path
    seconds: float
    n_linears: int
    n_weights: int
    n_sparse: int
    objective: float
    fisher: str
    recipe: dict
    output_error: tuple[float, float]  # sum e H e^T with nearest and with GPTQ-style rounding (0, 0: none)


def _file_sha256(path: Path, stop: threading.Event) -> str | None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            if stop.is_set():
                return None
            h.update(chunk)
    return h.hexdigest()


class _Hashes:
    """sha256 of the input files, computed on a thread while the tensors are quantized: the
    hashes go only into the header, which is written last, and hashlib and file reads release
    the GIL, so the hashing costs the conversion little more than one core's share."""

    def __init__(self, paths: list[Path]):
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqllm-sha256")
        self._futures = {p: self._pool.submit(_file_sha256, p, self._stop) for p in dict.fromkeys(paths)}

    def __getitem__(self, path: Path) -> str:
        return self._futures[path].result()

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


class _Fisher:
    """The Fisher diagonal, read lazily with the model's tensor names: a safetensors file (from
    `sqconvert fisher`), or a checkpoint-shaped folder as the SqueezeLLM gradient tool saves it."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self.source = open_checkpoint(path)
        else:
            self.source = Checkpoint(path.parent, [path], open_safetensors([path]))
            self.info = describe(path)

    def description(self, hashes: _Hashes) -> str:
        if self.path.is_dir():
            return f"folder:{self.path.name} sha256:{','.join(hashes[p] for p in self.source.weight_files)}"
        return f"file:{self.path.name} sha256:{hashes[self.path]}" + (f" ({self.info})" if self.info else "")

    def check(self, ckpt: Checkpoint, names: list[str]) -> None:
        have = set(self.source.names)
        for n in names:
            if n not in have:
                raise ConversionError(f"{self.path}: no Fisher tensor for {n} (names must be the model's)")
            if self.source.shape(n) != ckpt.shape(n):
                raise ConversionError(f"{self.path}: Fisher tensor {n} has shape {self.source.shape(n)}, the weight {ckpt.shape(n)}")

    def has(self, name: str) -> bool:
        return name in self.source.names

    def read(self, name: str) -> np.ndarray:
        F = self.source.read(name)
        nonfinite, negative = bad_counts(F)
        if nonfinite:
            raise ConversionError(f"{self.path}: Fisher tensor {name} holds NaN or Inf")
        if negative:
            raise ConversionError(f"{self.path}: Fisher tensor {name} holds negative values")
        return F

    def prefetch(self, name: str) -> None:
        self.source.prefetch(name)


class _Hessians:
    """The factored input statistics for GPTQ-style rounding, by matrix; linears that share an
    input (q/k/v, gate/up) share one factorisation, kept until the next input comes."""

    def __init__(self, fisher_file: _Fisher | None, damp: float):
        self.fisher, self.damp = fisher_file, damp
        self._name, self._factor = None, None
        self.missing = False

    def factor(self, name: str, *, tied: bool) -> HessianFactor | None:
        if self.fisher is None or (tied and name == "model.embed_tokens.weight"):
            return None  # a tied embedding is also gathered as the input, where H says nothing
        hname = hessian_name(name)
        if not self.fisher.has(hname):
            if not self.missing:
                log.warning("%s has no input statistics (%s): codes are rounded to the nearest level; "
                            "recompute it with `sqconvert fisher` for GPTQ-style rounding", self.fisher.path, hname)
            self.missing = True
            return None
        if hname != self._name:
            self._name, self._factor = None, None
            H = self.fisher.source.read(hname)
            if not np.isfinite(H).all():
                raise ConversionError(f"{self.fisher.path}: input statistics {hname} hold NaN or Inf")
            try:
                self._name, self._factor = hname, factor_hessian(H, self.damp)
            except ValueError as e:
                raise ConversionError(f"{self.fisher.path}: input statistics {hname}: {e}") from None
        return self._factor


def resolve_fisher(ckpt: Checkpoint, fisher: Path | None) -> _Fisher | None:
    if fisher is not None:
        if not Path(fisher).exists():
            raise ConversionError(f"{fisher}: Fisher file not found")
        return _Fisher(Path(fisher))
    beside = ckpt.folder / "fisher.safetensors"
    return _Fisher(beside) if beside.is_file() else None


def convert(model: str | Path, output: str | Path, recipe: Recipe, *, fisher: Path | None = None,
            overwrite: bool = False, progress: bool = True, kv: KvOptions | None = None) -> ConversionSummary:
    start = time.perf_counter()
    recipe.validate()
    ckpt = open_checkpoint(model)
    cfg = ckpt.config()
    meta = model_metadata(cfg, ckpt.folder)
    shapes = C.model_tensor_shapes(meta["shapes_cfg"])
    for name, shape in shapes.items():
        if name not in ckpt.names:
            raise ConversionError(f"{ckpt.folder}: the checkpoint has no tensor {name}")
        if ckpt.shape(name) != shape:
            raise ConversionError(f"{ckpt.folder}: tensor {name} has shape {ckpt.shape(name)}, config.json implies {shape}")
    for flag, patterns in (("--keep", recipe.keep), ("--bits-for", [p for p, _ in recipe.bits_for])):
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in shapes):
                raise ConversionError(f"{flag} {pattern!r} matches no tensor of {ckpt.folder} (names look like "
                                      f"{C.LAYER_PREFIX}0.{C.LAYER_Q} or {C.TENSOR_EMBED})")
    linears = [n for n in shapes if is_quantizable(n) and not recipe.keeps(n)]
    fisher_file = resolve_fisher(ckpt, fisher)
    if fisher_file is not None:
        # The embedding and head may lack a Fisher (files from before it covered them): they
        # are then clustered unweighted and keep outliers only.
        fisher_file.check(ckpt, [n for n in linears if is_layer_linear(n) or fisher_file.has(n)])
    elif recipe.method == "squeezellm" and linears:
        log.warning("no Fisher file (--fisher or fisher.safetensors next to the model): squeezellm falls back "
                    "to unweighted k-means; %s", FISHER_HINT)
    if recipe.target_bpw is not None:
        missing = [n for n in linears if fisher_file is None or not fisher_file.has(n)]
        if missing:
            where = "no Fisher file was given" if fisher_file is None else f"{fisher_file.path} has no tensor {missing[0]}"
            raise ConversionError(f"--target-bpw weighs every quantized matrix by its Fisher, but {where}; "
                                  f"{FISHER_HINT} (it covers the embedding and head too)")
    recipe = recipe.resolved(fisher_file is not None)
    tok = ckpt.tokenizer_metadata(meta["shapes_cfg"]["vocab_size"])
    if kv is not None and Path(output).exists() and not overwrite:
        from sqllm.errors import OutputExistsError
        raise OutputExistsError(f"{output}: output exists (use --force to overwrite)")
    kv_cal = None if kv is None else calibrate(ckpt.transformers_folder("--kv-bits"), kv.data, bits=kv.bits,
                                               outliers=kv.outliers, sink=kv.sink, samples=kv.samples,
                                               seq_len=kv.seq_len, seed=recipe.seed, progress=progress)

    order = ["model.embed_tokens.weight"]
    order += [n for n in shapes if n.startswith("model.layers.")]
    order += [n for n in ("model.norm.weight", "lm_head.weight") if n in shapes]
    hashes = _Hashes(ckpt.weight_files + (fisher_file.source.weight_files if fisher_file is not None else []))
    try:
        with SqfWriter(output, overwrite=overwrite) as w:
            n_sparse, objective, fisher_desc, output_error = _write(w, ckpt, cfg, meta, tok, recipe, order, shapes, linears,
                                                      fisher_file, hashes, kv_cal, progress)
    finally:
        hashes.close()
    n_weights = sum(int(np.prod(shapes[n])) for n in linears)
    return ConversionSummary(Path(output), time.perf_counter() - start, len(linears), n_weights, n_sparse,
                             objective, fisher_desc, asdict(recipe), output_error)


def _plan_budget(w: SqfWriter, ckpt: Checkpoint, recipe: Recipe, order: list[str], shapes: dict,
                 linears: list[str], fisher_file: _Fisher, kv_cal, progress: bool) -> None:
    """Fill recipe.plan so that the whole file stays within recipe.target_bpw (allocate.py).

    Everything but the quantized matrices has a size known now: the unquantized tensors, the
    KV calibration, and the header, bounded from above (the hashes and the Fisher description
    are filled in later, the plan itself goes into the recipe JSON)."""
    n_weights = sum(int(np.prod(s)) for s in shapes.values())
    budget = budget_bytes(recipe.target_bpw, n_weights)
    fixed = sum(_aligned_size(int(np.prod(shapes[n])) * (4 if len(shapes[n]) == 1 else 2))
                for n in order if n not in linears)
    def info_bytes(name: str) -> int:  # a tensor info (3-D at most) and its CRC
        return 8 + len(name.encode()) + 4 + 24 + 4 + 8 + 4

    header = len(w._header()) + len(json.dumps(asdict(recipe), sort_keys=True)) + C.ALIGNMENT
    header += sum(info_bytes(n) for n in order if n not in linears)
    header += sum(info_bytes(n + C.SUFFIX_CODES) + info_bytes(n + C.SUFFIX_LUT) + info_bytes(n + C.SUFFIX_LUT_SCALE)
                  for n in linears)
    header += sum(8 + len(n.encode()) + 12 for n in linears) + 4 * 128  # sqllm.linear.* arrays and keys
    header += 64 * len(ckpt.weight_files) + 1024                          # hashes, Fisher description
    header += sum(len(json.dumps(n)) + 96 for n in linears)               # the plan in the recipe JSON
    if kv_cal is not None:
        for name, t in kv_cal.tensors():
            fixed += _aligned_size(t.nbytes)
            header += info_bytes(name)
    csr_infos = {n: sum(info_bytes(n + sfx) for sfx in (C.SUFFIX_ROWPTR, C.SUFFIX_COLS, C.SUFFIX_VALS)) for n in linears}

    def csr_header(picked) -> int:  # the sparse tensors' infos, for the matrices that have them
        return sum(csr_infos[n] for n, c in picked.items() if c.outliers or c.sensitive)

    choices = {}
    for name in tqdm(linears, desc="allocating", unit="matrix", disable=not progress, leave=False):
        rows, cols = shapes[name]
        idx = sample_rows(rows, cols)
        W = ckpt.read_rows(name, idx)
        F = fisher_file.source.read_rows(name, idx)
        if bad_counts(W)[0]:
            raise ConversionError(f"{ckpt.folder}: tensor {name} holds NaN or Inf")
        nonfinite, negative = bad_counts(F)
        if nonfinite or negative:
            raise ConversionError(f"{fisher_file.path}: Fisher tensor {name} holds NaN, Inf or negative values")
        pinned = recipe.pinned_bits(name)
        bits_options = (pinned,) if pinned is not None else ALLOCATION_BITS
        choices[name] = measure_choices(W, F, rows, cols, bits_options=bits_options, seed=recipe.seed)
        raise_if_interrupted()
    try:
        # First with room for every sparse part's tensor infos, then with those of the plan.
        picked = allocate(choices, budget - fixed - header - sum(csr_infos.values()))
        for _ in range(3):
            again = allocate(choices, budget - fixed - header - csr_header(picked))
            if sum(c.bytes for c in again.values()) + csr_header(again) > budget - fixed - header:
                break
            picked = again
    except ConversionError as e:
        smallest = fixed + header + sum(min(c.bytes for c in cs) for cs in choices.values())
        raise ConversionError(f"--target-bpw {recipe.target_bpw}: below the smallest file this model can take "
                              f"(about {8 * smallest / n_weights:.3f} bits per weight): {e}") from None
    recipe.plan = {n: [c.bits, c.outliers, c.sensitive, float(f"{c.error:.6g}")] for n, c in picked.items()}
    recipe.budget_bytes = budget


def _aligned_size(n: int) -> int:
    return -(-n // C.ALIGNMENT) * C.ALIGNMENT


def _write(w: SqfWriter, ckpt: Checkpoint, cfg: dict, meta: dict, tok: dict, recipe: Recipe, order: list[str],
           shapes: dict, linears: list[str], fisher_file: _Fisher | None, hashes: _Hashes, kv_cal,
           progress: bool) -> tuple[int, float, str]:
    """Metadata, then the tensors in order; the hashes are filled in last (a key keeps its place)."""
    if cfg.get("_name_or_path"):
        w.add(C.KEY_NAME, str(cfg["_name_or_path"]))
    for key, value in {**meta["keys"], **tok}.items():
        w.add(key, value, KEY_TYPES.get(key), ARRAY_ITEM_TYPES.get(key))
    for side, text in ckpt.side_files().items():
        w.add(C.KEY_HF_FILE_PREFIX + side, text)
    w.add(C.KEY_SOURCE_FILES, [p.name for p in ckpt.weight_files], item_type=C.VT_STRING)
    w.add(C.KEY_SOURCE_SHA256, ["" for _ in ckpt.weight_files], item_type=C.VT_STRING)
    w.add(C.KEY_RECIPE_METHOD, recipe.method)
    w.add(C.KEY_RECIPE_BITS, recipe.bits, C.VT_UINT32)
    w.add(C.KEY_RECIPE_FISHER, "")
    if recipe.target_bpw is not None:
        _plan_budget(w, ckpt, recipe, order, shapes, linears, fisher_file, kv_cal, progress)
    w.add(C.KEY_RECIPE_JSON, json.dumps(asdict(recipe), sort_keys=True))
    if kv_cal is not None:
        w.add(C.KEY_KV_BITS, kv_cal.bits, C.VT_UINT32)
        w.add(C.KEY_KV_OUTLIERS, kv_cal.outliers, C.VT_FLOAT32)
        w.add(C.KEY_KV_SINK, kv_cal.sink, C.VT_UINT32)
        w.add(C.KEY_KV_CALIBRATION, kv_cal.description)
    n_sparse, objective, output_error = 0, 0.0, (0.0, 0.0)
    hessians = _Hessians(fisher_file if recipe.method != "rtn" and recipe.rounding == "gptq" else None, recipe.damp)
    total = sum(int(np.prod(shapes[n])) for n in order)
    bar = tqdm(total=total, unit="w", unit_scale=True, disable=not progress, desc="quantizing", leave=False)
    try:
        for i, name in enumerate(order):
            for ahead in order[i + 1:i + 2]:  # the disk reads the next tensor while this one is quantized
                ckpt.prefetch(ahead)
                if fisher_file is not None and ahead in linears and fisher_file.has(ahead):
                    fisher_file.prefetch(ahead)
            W = ckpt.read(name)
            if bad_counts(W)[0]:
                raise ConversionError(f"{ckpt.folder}: tensor {name} holds NaN or Inf")
            bar.set_postfix_str(name, refresh=False)
            if name in linears:
                F = fisher_file.read(name) if fisher_file is not None and fisher_file.has(name) else None
                q = quantize_matrix(W, F, recipe, name, hessians.factor(name, tied=meta["shapes_cfg"]["tie_embeddings"]))
                if q.output_error is not None:
                    output_error = (output_error[0] + q.output_error[0], output_error[1] + q.output_error[1])
                w.add_linear(name, q.codes, q.lut, bits=q.bits, group_size=q.group_size, cols=q.cols, csr=q.csr)
                n_sparse += 0 if q.csr is None else len(q.csr[1])
                objective += q.objective
            else:
                # Norms and biases stay fp32; unquantized matrices (embeddings, --keep) go to fp16.
                w.add_tensor(name, W if W.ndim == 1 else W.astype(np.float16))
            bar.update(W.size)
            del W
            raise_if_interrupted()
    finally:
        bar.close()
    for name, t in kv_cal.tensors() if kv_cal is not None else ():
        w.add_tensor(name, t)
    w.add(C.KEY_SOURCE_SHA256, [hashes[p] for p in ckpt.weight_files], item_type=C.VT_STRING)
    fisher_desc = fisher_file.description(hashes) if fisher_file is not None else "none"
    w.add(C.KEY_RECIPE_FISHER, fisher_desc)
    if recipe.target_bpw is not None and w.size() > recipe.budget_bytes:
        raise ConversionError(f"internal error: the file would take {w.size()} bytes, over the budget of "
                              f"{recipe.budget_bytes} for --target-bpw {recipe.target_bpw}")
    raise_if_interrupted()
    return n_sparse, objective, fisher_desc, output_error
