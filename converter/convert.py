"""Checkpoint -> .sqf, streaming tensor by tensor (the `sqconvert MODEL -o OUT` pipeline)."""

from __future__ import annotations

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
from sqllm.formats.errors import ConversionError

from .checkpoint import Checkpoint, open_checkpoint, open_safetensors, load_config
from .fisher import describe
from .interrupt import raise_if_interrupted
from .kvquant import calibrate
from .numeric import bad_counts
from .config import ARRAY_ITEM_TYPES, KEY_TYPES, is_layer_linear, model_metadata
from .quantize import Recipe, quantize_matrix
from .tokenizer import tokenizer_metadata

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
    cfg = load_config(ckpt.folder)
    meta = model_metadata(cfg, ckpt.folder)
    shapes = C.model_tensor_shapes(meta["shapes_cfg"])
    for name, shape in shapes.items():
        if name not in ckpt.names:
            raise ConversionError(f"{ckpt.folder}: the checkpoint has no tensor {name}")
        if ckpt.shape(name) != shape:
            raise ConversionError(f"{ckpt.folder}: tensor {name} has shape {ckpt.shape(name)}, config.json implies {shape}")
    linears = [n for n in shapes if is_layer_linear(n) and not recipe.keeps(n)]
    fisher_file = resolve_fisher(ckpt, fisher)
    if fisher_file is not None:
        fisher_file.check(ckpt, linears)
    elif recipe.method == "squeezellm" and linears:
        log.warning("no Fisher file (--fisher or fisher.safetensors next to the model): squeezellm falls back "
                    "to unweighted k-means; %s", FISHER_HINT)
    recipe = recipe.resolved(fisher_file is not None)
    tok = tokenizer_metadata(ckpt.folder, vocab_size=meta["shapes_cfg"]["vocab_size"])
    if kv is not None and Path(output).exists() and not overwrite:
        from sqllm.formats.errors import OutputExistsError
        raise OutputExistsError(f"{output}: output exists (use --force to overwrite)")
    kv_cal = None if kv is None else calibrate(ckpt.folder, kv.data, bits=kv.bits, outliers=kv.outliers, sink=kv.sink,
                                               samples=kv.samples, seq_len=kv.seq_len, seed=recipe.seed, progress=progress)

    order = ["model.embed_tokens.weight"]
    order += [n for n in shapes if n.startswith("model.layers.")]
    order += [n for n in ("model.norm.weight", "lm_head.weight") if n in shapes]
    hashes = _Hashes(ckpt.weight_files + (fisher_file.source.weight_files if fisher_file is not None else []))
    try:
        with SqfWriter(output, overwrite=overwrite) as w:
            n_sparse, objective, fisher_desc = _write(w, ckpt, cfg, meta, tok, recipe, order, shapes, linears,
                                                      fisher_file, hashes, kv_cal, progress)
    finally:
        hashes.close()
    n_weights = sum(int(np.prod(shapes[n])) for n in linears)
    return ConversionSummary(Path(output), time.perf_counter() - start, len(linears), n_weights, n_sparse,
                             objective, fisher_desc, asdict(recipe))


def _write(w: SqfWriter, ckpt: Checkpoint, cfg: dict, meta: dict, tok: dict, recipe: Recipe, order: list[str],
           shapes: dict, linears: list[str], fisher_file: _Fisher | None, hashes: _Hashes, kv_cal,
           progress: bool) -> tuple[int, float, str]:
    """Metadata, then the tensors in order; the hashes are filled in last (a key keeps its place)."""
    if cfg.get("_name_or_path"):
        w.add(C.KEY_NAME, str(cfg["_name_or_path"]))
    for key, value in {**meta["keys"], **tok}.items():
        w.add(key, value, KEY_TYPES.get(key), ARRAY_ITEM_TYPES.get(key))
    for side in C.HF_SIDE_FILES:
        if (ckpt.folder / side).is_file():
            w.add(C.KEY_HF_FILE_PREFIX + side, (ckpt.folder / side).read_text(encoding="utf-8"))
    w.add(C.KEY_SOURCE_FILES, [p.name for p in ckpt.weight_files], item_type=C.VT_STRING)
    w.add(C.KEY_SOURCE_SHA256, ["" for _ in ckpt.weight_files], item_type=C.VT_STRING)
    w.add(C.KEY_RECIPE_METHOD, recipe.method)
    w.add(C.KEY_RECIPE_BITS, recipe.bits, C.VT_UINT32)
    w.add(C.KEY_RECIPE_FISHER, "")
    w.add(C.KEY_RECIPE_JSON, json.dumps(asdict(recipe), sort_keys=True))
    if kv_cal is not None:
        w.add(C.KEY_KV_BITS, kv_cal.bits, C.VT_UINT32)
        w.add(C.KEY_KV_OUTLIERS, kv_cal.outliers, C.VT_FLOAT32)
        w.add(C.KEY_KV_SINK, kv_cal.sink, C.VT_UINT32)
        w.add(C.KEY_KV_CALIBRATION, kv_cal.description)
    n_sparse, objective = 0, 0.0
    total = sum(int(np.prod(shapes[n])) for n in order)
    bar = tqdm(total=total, unit="w", unit_scale=True, disable=not progress, desc="quantizing", leave=False)
    try:
        for i, name in enumerate(order):
            for ahead in order[i + 1:i + 2]:  # the disk reads the next tensor while this one is quantized
                ckpt.prefetch(ahead)
                if fisher_file is not None and ahead in linears:
                    fisher_file.prefetch(ahead)
            W = ckpt.read(name)
            if bad_counts(W)[0]:
                raise ConversionError(f"{ckpt.folder}: tensor {name} holds NaN or Inf")
            bar.set_postfix_str(name, refresh=False)
            if name in linears:
                F = fisher_file.read(name) if fisher_file is not None else None
                q = quantize_matrix(W, F, recipe, recipe.bits_of(name))
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
    raise_if_interrupted()
    return n_sparse, objective, fisher_desc
