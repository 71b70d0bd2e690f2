"""Streaming, atomic writer of .sqf files (SPEC §1).

Tensors are written one at a time to a temporary data file beside the output, so that no
more than one tensor is ever held by the writer; `finish()` then writes the header (whose
size is only known once every tensor and checksum is), appends the data, fsyncs and renames
onto the output. Any exception, and `abort()`, removes both temporary files: the output is
either the complete new file or untouched.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from sqllm import __version__
from sqllm.errors import OutputExistsError

from . import constants as C
from .packing import decode_lut8

_DTYPE_TO_TYPE = {
    np.dtype("float32"): C.TYPE_F32,
    np.dtype("float16"): C.TYPE_F16,
    np.dtype("uint8"): C.TYPE_I8,
    np.dtype("int8"): C.TYPE_I8,
    np.dtype("int32"): C.TYPE_I32,
}
_SCALAR_FORMAT = {
    C.VT_UINT8: "<B", C.VT_INT8: "<b", C.VT_UINT16: "<H", C.VT_INT16: "<h",
    C.VT_UINT32: "<I", C.VT_INT32: "<i", C.VT_FLOAT32: "<f", C.VT_BOOL: "<?",
    C.VT_UINT64: "<Q", C.VT_INT64: "<q", C.VT_FLOAT64: "<d",
}
_NUMPY_ITEM = {
    C.VT_UINT8: "<u1", C.VT_INT8: "<i1", C.VT_UINT16: "<u2", C.VT_INT16: "<i2",
    C.VT_UINT32: "<u4", C.VT_INT32: "<i4", C.VT_FLOAT32: "<f4", C.VT_BOOL: "<u1",
    C.VT_UINT64: "<u8", C.VT_INT64: "<i8", C.VT_FLOAT64: "<f8",
}
_CHUNK = 1 << 24


def _string(s: str | bytes) -> bytes:
    """A GGUF string: str as UTF-8; bytes (token pieces, SPEC §8) as they are."""
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _infer_scalar_type(v) -> int:
    if isinstance(v, (bool, np.bool_)):
        return C.VT_BOOL
    if isinstance(v, (int, np.integer)):
        if v < 0:
            return C.VT_INT32 if v >= -(1 << 31) else C.VT_INT64
        return C.VT_UINT32 if v < (1 << 32) else C.VT_UINT64
    if isinstance(v, (float, np.floating)):
        return C.VT_FLOAT32
    if isinstance(v, (str, bytes)):
        return C.VT_STRING
    raise TypeError(f"cannot store a {type(v).__name__} in GGUF metadata")


def _encode_value(vtype: int, value, item_type: int | None) -> bytes:
    if vtype == C.VT_STRING:
        return _string(value)
    if vtype != C.VT_ARRAY:
        return struct.pack(_SCALAR_FORMAT[vtype], value)
    items = list(value) if not isinstance(value, np.ndarray) else value
    if item_type is None:
        if len(items) == 0:
            raise TypeError("the item type of an empty array must be given")
        kinds = {_infer_scalar_type(x) for x in items}
        if kinds == {C.VT_UINT32, C.VT_INT32}:
            kinds = {C.VT_INT32}
        if len(kinds) != 1:
            raise TypeError(f"array mixes item types {sorted(kinds)}")
        item_type = kinds.pop()
    head = struct.pack("<IQ", item_type, len(items))
    if item_type == C.VT_STRING:
        return head + b"".join(_string(s) for s in items)
    return head + np.asarray(items).astype(_NUMPY_ITEM[item_type]).tobytes()


class SqfWriter:
    """Write one .sqf file. Use as a context manager, or call finish()/abort() yourself."""

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise OutputExistsError(f"{self.path}: output exists (use --force to overwrite)")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path.parent}: output folder does not exist")
        fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".data.tmp")
        self._data = os.fdopen(fd, "wb")
        self._data_path = Path(name)
        self._kv: dict[str, tuple[int, object, int | None]] = {}
        self._tensors: list[tuple[str, tuple[int, ...], int, int, int]] = []  # name, shape, type, offset, crc
        self._names: set[str] = set()
        self._offset = 0
        self._linears: list[tuple[str, int, int, int]] = []
        self._closed = False
        self.add(C.KEY_ARCHITECTURE, C.ARCHITECTURE)
        self.add(C.KEY_ALIGNMENT, C.ALIGNMENT, C.VT_UINT32)
        self.add(C.KEY_FORMAT_VERSION, C.FORMAT_VERSION, C.VT_UINT32)
        self.add(C.KEY_TOOL_VERSION, __version__)

    # -- metadata ---------------------------------------------------------------------------
    def add(self, key: str, value, vtype: int | None = None, item_type: int | None = None) -> None:
        """Add (or replace) one key. Types are inferred unless given (SPEC fixes some of them)."""
        if vtype is None:
            vtype = C.VT_ARRAY if isinstance(value, (list, tuple, np.ndarray)) else _infer_scalar_type(value)
        _encode_value(vtype, value, item_type)  # fail now, not at finish()
        if key not in C.BYTE_STRING_KEYS and (vtype == C.VT_STRING or item_type == C.VT_STRING):
            if any(isinstance(x, bytes) for x in ([value] if vtype == C.VT_STRING else value)):
                raise TypeError(f"{key}: text must be str (only {', '.join(C.BYTE_STRING_KEYS)} hold bytes)")
        self._kv[key] = (vtype, value, item_type)

    # -- tensors ----------------------------------------------------------------------------
    def add_tensor(self, name: str, array: np.ndarray) -> None:
        """Append one tensor; its bytes go to disk at once."""
        if name in self._names:
            raise ValueError(f"tensor {name!r} written twice")
        array = np.ascontiguousarray(array)
        ttype = _DTYPE_TO_TYPE.get(array.dtype)
        if ttype is None:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} is not allowed in .sqf")
        if array.ndim == 0 or array.ndim > 4 or array.size == 0:
            raise ValueError(f"tensor {name!r}: shape {array.shape} is not allowed")
        pad = -self._offset % C.ALIGNMENT
        if pad:
            self._data.write(b"\0" * pad)
            self._offset += pad
        raw = memoryview(array.reshape(-1).view(np.uint8))
        crc = 0
        for start in range(0, len(raw), _CHUNK):
            piece = raw[start:start + _CHUNK]
            self._data.write(piece)
            crc = zlib.crc32(piece, crc)
        self._tensors.append((name, tuple(array.shape), ttype, self._offset, crc))
        self._names.add(name)
        self._offset += len(raw)

    def add_linear(self, name: str, codes: np.ndarray, lut: np.ndarray | tuple[np.ndarray, np.ndarray], *,
                   bits: int, group_size: int, cols: int,
                   csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        """A quantized linear (SPEC §4): packed codes, the LUT [rows, groups, 2^bits] as fp16 values
        or as an 8-bit table (levels uint8, scale fp16 [rows, groups, 2]; packing.encode_lut8),
        optional CSR."""
        rows = codes.shape[0]
        if bits not in C.ALLOWED_BITS:
            raise ValueError(f"{name}: bits must be one of {C.ALLOWED_BITS}")
        if group_size != cols and group_size % C.CODE_BLOCK:
            raise ValueError(f"{name}: group size {group_size} is neither cols nor a multiple of {C.CODE_BLOCK}")
        if codes.shape != (rows, C.row_bytes(cols, bits)):
            raise ValueError(f"{name}: packed codes have shape {codes.shape}, expected {(rows, C.row_bytes(cols, bits))}")
        levels, scale = lut if isinstance(lut, tuple) else (lut, None)
        if scale is None and levels.dtype.kind != "f":
            raise ValueError(f"{name}: an fp16 LUT must be floating point; 8-bit levels need their scale")
        shape = (rows, C.n_groups(cols, group_size), 1 << bits)
        if levels.shape != shape or (scale is not None and scale.shape != shape[:2] + (2,)):
            raise ValueError(f"{name}: LUT shape {levels.shape} does not match")
        if scale is not None and not np.isfinite(decode_lut8(levels, scale)).all():
            raise ValueError(f"{name}: the 8-bit LUT decodes to NaN or infinity")
        self.add_tensor(name + C.SUFFIX_CODES, codes.astype(np.uint8, copy=False))
        if scale is None:
            self.add_tensor(name + C.SUFFIX_LUT, levels.astype(np.float16, copy=False))
        else:
            self.add_tensor(name + C.SUFFIX_LUT, levels.astype(np.uint8, copy=False))
            self.add_tensor(name + C.SUFFIX_LUT_SCALE, scale.astype(np.float16, copy=False))
        if csr is not None and len(csr[1]):
            rowptr, colidx, vals = csr
            self.add_tensor(name + C.SUFFIX_ROWPTR, rowptr.astype(np.int32, copy=False))
            self.add_tensor(name + C.SUFFIX_COLS, colidx.astype(np.int32, copy=False))
            self.add_tensor(name + C.SUFFIX_VALS, vals.astype(np.float16, copy=False))
        self._linears.append((name, bits, group_size, cols))

    # -- closing ----------------------------------------------------------------------------
    def _header(self) -> bytes:
        kv = dict(self._kv)
        if self._linears:
            names, bits, gsizes, cols = zip(*self._linears)
            kv[C.KEY_LINEAR_NAMES] = (C.VT_ARRAY, list(names), C.VT_STRING)
            kv[C.KEY_LINEAR_BITS] = (C.VT_ARRAY, list(bits), C.VT_UINT32)
            kv[C.KEY_LINEAR_GROUP_SIZE] = (C.VT_ARRAY, list(gsizes), C.VT_UINT32)
            kv[C.KEY_LINEAR_COLS] = (C.VT_ARRAY, list(cols), C.VT_UINT32)
        kv[C.KEY_TENSOR_CRC32] = (C.VT_ARRAY, [t[4] for t in self._tensors], C.VT_UINT32)
        parts = [C.GGUF_MAGIC, struct.pack("<IQQ", C.GGUF_VERSION, len(self._tensors), len(kv))]
        for key, (vtype, value, item_type) in kv.items():
            parts += [_string(key), struct.pack("<I", vtype), _encode_value(vtype, value, item_type)]
        for name, shape, ttype, offset, _ in self._tensors:
            ne = tuple(reversed(shape))
            parts += [_string(name), struct.pack(f"<I{len(ne)}QIQ", len(ne), *ne, ttype, offset)]
        header = b"".join(parts)
        return header + b"\0" * (-len(header) % C.ALIGNMENT)

    def size(self) -> int:
        """The size the file would have if finished now."""
        return len(self._header()) + self._offset

    def finish(self) -> Path:
        """Write the header, append the data, fsync and rename onto the output path."""
        if self._closed:
            raise RuntimeError("writer already closed")
        final_tmp = None
        try:
            self._data.flush()
            self._data.close()
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            final_tmp = Path(name)
            with os.fdopen(fd, "wb") as out, open(self._data_path, "rb") as data:
                out.write(self._header())
                while chunk := data.read(_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(final_tmp, 0o644)
            os.replace(final_tmp, self.path)
            final_tmp = None
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            self._closed = True
            if final_tmp is not None:
                final_tmp.unlink(missing_ok=True)
            self._data_path.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Forget everything written; leaves no file behind."""
        if not self._closed:
            self._closed = True
            self._data.close()
            self._data_path.unlink(missing_ok=True)

    def __enter__(self) -> "SqfWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.finish()
        else:
            self.abort()
