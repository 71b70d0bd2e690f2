"""The .sqf file format: constants, writer and reader (see formats/SPEC.md)."""

from sqllm.errors import ConversionError, FormatError, OutputExistsError, RuntimeFailure, SqllmError
from .packing import pack_codes, unpack_codes
from .writer import SqfWriter

__all__ = [
    "ConversionError", "FormatError", "OutputExistsError", "RuntimeFailure", "SqllmError",
    "SqfWriter", "pack_codes", "unpack_codes",
]
