"""Lazy, tensor-by-tensor reading of Hugging Face checkpoints.

A checkpoint is a `.safetensors` file (its folder holds config.json and the tokenizer), a
model folder (one `model.safetensors`, or shards with `model.safetensors.index.json`),
`pytorch_model*.bin` (through torch's weights_only loader; torch is optional), a Hugging Face
hub id found in the local hub cache (hub.py), or a GGUF file (gguf_checkpoint.py). Tensors are
read one at a time with positional reads into a fresh buffer, never through a long-lived
memory map, so the resident memory is one tensor, whatever the checkpoint's size; the next
tensors can be prefetched (an OS read-ahead hint) while the current one is quantized.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sqllm.errors import ConversionError

from .numeric import widen_to_f32

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "F64": np.float64}
_ST_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


@dataclass
class _Entry:
    path: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def _read_safetensors_header(path: Path) -> dict[str, _Entry]:
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ConversionError(f"{path}: truncated safetensors file (no header)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 1 << 30:
                raise ConversionError(f"{path}: corrupt safetensors header length {n}")
            header = json.loads(f.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"{path}: cannot read safetensors header: {e}") from e
    if not isinstance(header, dict):
        raise ConversionError(f"{path}: corrupt safetensors header")
    base = 8 + n
    entries = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError) as e:
            raise ConversionError(f"{path}: corrupt header entry for {name}") from e
        if not all(type(v) is int and v >= 0 for v in (*shape, start, end)):
            raise ConversionError(f"{path}: corrupt header entry for {name}: shape and data offsets must be "
                                  "non-negative integers")
        if not isinstance(dtype, str) or dtype not in _ST_SIZES:
            raise ConversionError(f"{path}: tensor {name} has dtype {dtype}; only F32, F16, BF16 (and F64) are supported")
        nbytes = math.prod(shape) * _ST_SIZES[dtype]
        if start < 0 or end - start != nbytes or base + end > size:
            raise ConversionError(f"{path}: tensor {name} has data offsets outside the file or of the wrong size")
        entries[name] = _Entry(path, dtype, shape, base + start, base + end)
    return entries


@dataclass
class Checkpoint:
    """The tensors of one model, readable one at a time as float32, with its configuration and
    tokenizer (from the files beside the weights in `folder`)."""

    folder: Path
    weight_files: list[Path]
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _torch_state: dict | None = None

    def config(self) -> dict:
        """config.json as a dict."""
        return load_config(self.folder)

    def tokenizer_metadata(self, vocab_size: int | None) -> dict[str, object]:
        """The tokenizer keys of formats/SPEC.md §5 (tokenizer.py)."""
        from .tokenizer import tokenizer_metadata
        return tokenizer_metadata(self.folder, vocab_size)

    def side_files(self) -> dict[str, str]:
        """The Hugging Face files kept in the .sqf for `sqconvert dequant` (C.HF_SIDE_FILES), by name."""
        from sqllm.formats import constants as C
        return {name: (self.folder / name).read_text(encoding="utf-8") for name in C.HF_SIDE_FILES
                if (self.folder / name).is_file()}

    def transformers_folder(self, what: str) -> Path:
        """The folder transformers loads the model from, for `what` (a calibration) to run it."""
        return self.folder

    @property
    def names(self) -> list[str]:
        return list(self._entries) if self._torch_state is None else list(self._torch_state)

    def shape(self, name: str) -> tuple[int, ...]:
        if self._torch_state is not None:
            return tuple(self._torch_state[name].shape)
        return self._entries[name].shape

    def dtype(self, name: str) -> str:
        if self._torch_state is not None:
            return str(self._torch_state[name].dtype).replace("torch.", "")
        return self._entries[name].dtype

    def read(self, name: str) -> np.ndarray:
        """One tensor as a new float32 array."""
        if self._torch_state is not None:
            t = self._torch_state[name]
            return t.float().numpy().copy()
        e = self._entries[name]
        if e.dtype == "F32":  # straight into the result
            out = np.empty(e.shape, np.float32)
            self._read_into(name, e, out.reshape(-1).view(np.uint8))
            return out
        buf = np.empty(e.end - e.start, np.uint8)
        self._read_into(name, e, buf)
        if e.dtype in ("BF16", "F16"):
            return widen_to_f32(buf, e.dtype).reshape(e.shape)
        return np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[e.dtype]).newbyteorder("<")).reshape(e.shape).astype(np.float32)

    def read_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows of a matrix as a new float32 array [len(rows), cols], reading only those rows."""
        if self._torch_state is not None:
            return self._torch_state[name][np.asarray(rows)].float().numpy().copy()
        e = self._entries[name]
        cols = int(np.prod(e.shape[1:]))
        row_bytes = cols * _ST_SIZES[e.dtype]
        buf = np.empty(len(rows) * row_bytes, np.uint8)
        with open(e.path, "rb", buffering=0) as f:
            for i, r in enumerate(rows):
                got = os.pread(f.fileno(), row_bytes, e.start + int(r) * row_bytes)
                if len(got) != row_bytes:
                    raise ConversionError(f"{e.path}: truncated while reading {name}")
                buf[i * row_bytes:(i + 1) * row_bytes] = np.frombuffer(got, np.uint8)
        if e.dtype in ("BF16", "F16"):
            return widen_to_f32(buf, e.dtype).reshape(len(rows), cols)
        return np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[e.dtype]).newbyteorder("<")).reshape(len(rows), cols).astype(np.float32)

    @staticmethod
    def _read_into(name: str, e: _Entry, buf: np.ndarray) -> None:
        with open(e.path, "rb", buffering=0) as f:
            f.seek(e.start)
            view, done = memoryview(buf), 0
            while done < len(view):  # large reads may return early
                n = f.readinto(view[done:])
                if not n:
                    raise ConversionError(f"{e.path}: truncated while reading {name}")
                done += n

    def prefetch(self, name: str) -> None:
        """Ask the OS to start reading a tensor's bytes in the background (a hint; safetensors only)."""
        e = self._entries.get(name)
        if e is None or not hasattr(os, "posix_fadvise"):
            return
        try:
            fd = os.open(e.path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, e.start, e.end - e.start, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
        except OSError:
            pass


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise ConversionError(f"{index}: cannot read the shard index: {e}") from e
        files = sorted({folder / v for v in weight_map.values()})
        for f in files:
            if not f.is_file():
                raise ConversionError(f"{index}: shard {f.name} is missing")
        return files
    single = folder / "model.safetensors"
    if single.is_file():
        return [single]
    return sorted(folder.glob("*.safetensors"))


def open_safetensors(files: list[Path]) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for f in files:
        for name, e in _read_safetensors_header(f).items():
            if name in entries:
                raise ConversionError(f"{f}: tensor {name} also appears in {entries[name].path.name}")
            entries[name] = e
    return entries


def open_checkpoint(model: str | os.PathLike) -> Checkpoint:
    """Resolve MODEL (a .safetensors file, a model folder, a pytorch_model*.bin, a hub id or a
    GGUF file) lazily."""
    from .gguf_checkpoint import is_gguf, open_gguf
    from .hub import resolve_model

    path = resolve_model(model)
    if not path.exists():
        raise ConversionError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix == ".safetensors":
        return Checkpoint(path.parent, [path], open_safetensors([path]))
    if path.is_file() and path.suffix == ".bin":
        return _open_torch(path.parent, [path])
    if path.is_file() and (path.suffix == ".gguf" or is_gguf(path)):
        return open_gguf(path)
    if path.is_dir():
        files = [f for f in _safetensors_files(path) if f.name != "fisher.safetensors"]
        if files:
            return Checkpoint(path, files, open_safetensors(files))
        bins = sorted(path.glob("pytorch_model*.bin"))
        if bins:
            return _open_torch(path, bins)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1 and not (path / "config.json").is_file():  # a GGUF repository from the hub
            return open_gguf(ggufs[0])
        raise ConversionError(f"{path}: no model.safetensors, sharded safetensors or pytorch_model*.bin in this folder"
                              + (f" (name one of its {len(ggufs)} GGUF files instead)" if ggufs else ""))
    raise ConversionError(f"{path}: expected a .safetensors file, a pytorch_model*.bin, a GGUF file or a model folder")


def _open_torch(folder: Path, files: list[Path]) -> Checkpoint:
    try:
        import torch
    except ImportError as e:
        raise ConversionError(f"{files[0]}: reading .bin checkpoints needs torch (pip install 'sqllm[torch]')") from e
    state = {}
    for f in files:
        try:
            part = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # torch raises many types for corrupt or unsafe pickles
            raise ConversionError(f"{f}: cannot load with torch's weights_only loader: {e}") from e
        if not isinstance(part, dict):
            raise ConversionError(f"{f}: not a state dict")
        for name, t in part.items():
            if not hasattr(t, "dtype") or str(t.dtype) not in ("torch.float32", "torch.float16", "torch.bfloat16"):
                raise ConversionError(f"{f}: tensor {name} has unsupported dtype {getattr(t, 'dtype', type(t))}")
            state[name] = t
    return Checkpoint(folder, files, {}, state)


def load_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConversionError(f"{path}: missing (the model folder needs its config.json)") from e
    except (OSError, json.JSONDecodeError) as e:
        raise ConversionError(f"{path}: cannot read: {e}") from e
