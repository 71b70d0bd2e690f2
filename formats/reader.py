"""Reading .sqf files from Python, through the same validating C++ loader the runtime uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import constants as C
from .packing import decode_lut8, dequantize_dense, unpack_codes


@dataclass(frozen=True)
class LinearInfo:
    name: str
    bits: int
    group_size: int
    rows: int
    cols: int
    groups: int
    nnz: int


class SqfReader:
    """A validated, memory-mapped .sqf file. Arrays returned are read-only views of the mapping."""

    def __init__(self, path: str | os.PathLike, *, verify_checksums: bool = False):
        from sqllm import _sqllm  # the native loader; imported here so that writing needs no build

        self.path = os.fspath(path)
        self._file = _sqllm.SqfFile(self.path, verify_checksums)

    @property
    def file_size(self) -> int:
        return self._file.file_size

    @cached_property
    def metadata(self) -> dict:
        return self._file.metadata()

    @cached_property
    def metadata_types(self) -> dict:
        return self._file.metadata_types()

    @cached_property
    def config(self) -> dict:
        return self._file.config()

    @cached_property
    def tensor_names(self) -> list[str]:
        return self._file.tensor_names()

    @cached_property
    def linears(self) -> dict[str, LinearInfo]:
        return {d["name"]: LinearInfo(**d) for d in self._file.linears()}

    def tensor(self, name: str) -> np.ndarray:
        return self._file.tensor(name)

    def tensor_info(self, name: str) -> dict:
        return self._file.tensor_info(name)

    def verify_checksums(self) -> None:
        self._file.verify_checksums()

    def weight_names(self) -> list[str]:
        """Model parameter names (Hugging Face names), quantized or not, in file order."""
        parts = set()
        for lin in self.linears:
            parts.update(lin + s for s in (C.SUFFIX_CODES, C.SUFFIX_LUT, C.SUFFIX_LUT_SCALE, C.SUFFIX_ROWPTR, C.SUFFIX_COLS,
                                           C.SUFFIX_VALS))
        names = []
        for t in self.tensor_names:
            if t in parts:
                if t.endswith(C.SUFFIX_CODES):
                    names.append(t[: -len(C.SUFFIX_CODES)])
            elif not t.startswith(C.KV_TENSOR_PREFIX):
                names.append(t)
        return names

    def codes(self, name: str) -> np.ndarray:
        """Unpacked codes uint8 [rows, cols] of a quantized linear."""
        info = self.linears[name]
        return unpack_codes(self.tensor(name + C.SUFFIX_CODES), info.bits, info.cols)

    def lut(self, name: str) -> np.ndarray:
        """The LUT values float16 [rows, groups, 2^bits] of a quantized linear, decoded where it
        is stored as an 8-bit table (SPEC §4)."""
        lut = self.stored_lut(name)
        return decode_lut8(*lut) if isinstance(lut, tuple) else lut

    def stored_lut(self, name: str) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The LUT of a quantized linear as stored, in the form SqfWriter.add_linear takes: the
        fp16 values, or (8-bit levels, fp16 scale)."""
        lut = self.tensor(name + C.SUFFIX_LUT)
        return lut if lut.dtype == np.float16 else (lut, self.tensor(name + C.SUFFIX_LUT_SCALE))

    def csr(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if not self.linears[name].nnz:
            return None
        return tuple(self.tensor(name + s) for s in (C.SUFFIX_ROWPTR, C.SUFFIX_COLS, C.SUFFIX_VALS))

    def weight(self, name: str) -> np.ndarray:
        """A model parameter as float32: unquantized tensors widened, quantized linears dequantized
        (SPEC §4: the LUT value of each code, replaced by the sparse value where there is one)."""
        if name not in self.linears:
            return self.tensor(name).astype(np.float32)
        info = self.linears[name]
        W = dequantize_dense(self.codes(name), self.lut(name), info.group_size)
        csr = self.csr(name)
        if csr is not None:
            rowptr, cols, vals = csr
            rows = np.repeat(np.arange(info.rows), np.diff(rowptr))
            W[rows, cols] = vals.astype(np.float32)
        return W
