"""`sqconvert dequant`: an .sqf back to a Hugging Face folder (the reference for evaluation).

The weights are the exact values the runtime multiplies by (SPEC §4), written as float32 (or
float16, which holds every LUT and sparse value exactly but rounds unquantized fp32 tensors).
The folder is built beside the target and renamed into place, so a failure leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from sqllm.formats import constants as C
from sqllm.errors import ConversionError, OutputExistsError
from sqllm.formats.reader import SqfReader

_ST_NAMES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}


def _write_safetensors(path: Path, reader: SqfReader, names: list[str], dtype: np.dtype) -> None:
    """Stream one tensor at a time: the header needs only shapes, which are known up front."""
    shapes = {}
    for n in names:
        shapes[n] = [reader.linears[n].rows, reader.linears[n].cols] if n in reader.linears else list(reader.tensor_info(n)["shape"])
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for n in names:
        size = int(np.prod(shapes[n])) * dtype.itemsize
        header[n] = {"dtype": _ST_NAMES[dtype], "shape": shapes[n], "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for n in names:
            f.write(np.ascontiguousarray(reader.weight(n).astype(dtype)).tobytes())
        f.flush()
        os.fsync(f.fileno())


def dequantize_to_hf(sqf: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "float32",
                     overwrite: bool = False) -> Path:
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: output exists (use --force to overwrite)")
    if dtype not in ("float32", "float16"):
        raise ConversionError(f"--dtype must be float32 or float16, got {dtype}")
    reader = SqfReader(sqf)
    md = reader.metadata
    if C.KEY_HF_CONFIG not in md:
        raise ConversionError(f"{sqf}: no {C.KEY_HF_CONFIG}; cannot rebuild a Hugging Face config")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        cfg = json.loads(md[C.KEY_HF_CONFIG])
        cfg["torch_dtype"] = cfg["dtype"] = dtype
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
        if C.KEY_HF_TOKENIZER_JSON in md:
            (tmp / "tokenizer.json").write_text(md[C.KEY_HF_TOKENIZER_JSON], encoding="utf-8")
        for side in C.HF_SIDE_FILES:
            if C.KEY_HF_FILE_PREFIX + side in md:
                (tmp / side).write_text(md[C.KEY_HF_FILE_PREFIX + side], encoding="utf-8")
        names = reader.weight_names()
        _write_safetensors(tmp / "model.safetensors", reader, names, np.dtype(dtype))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
