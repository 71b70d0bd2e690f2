"""sqllm: non-uniform (SqueezeLLM-style) quantization of Llama-family models into .sqf files
(`sqllm.converter`), the file format (`sqllm.formats`) and the runtime (`sqllm.runtime`).

This module holds what they share: the error classes (`sqllm.errors`) and the version, which
is the project version of CMakeLists.txt, the same that the C API's sqllm_version() returns.
"""

from importlib.metadata import version as _distribution_version

from .errors import (ChecksumError, ConversionError, FileError, FormatError, InternalError, InvalidArgumentError,
                     NotFoundError, OutOfMemoryError, OutputExistsError, RuntimeFailure, SqllmError,
                     UnsupportedError, WrongTypeError, error_for_status)

__version__ = _distribution_version("sqllm")

__all__ = [
    "ChecksumError", "ConversionError", "FileError", "FormatError", "InternalError", "InvalidArgumentError",
    "NotFoundError", "OutOfMemoryError", "OutputExistsError", "RuntimeFailure", "SqllmError", "UnsupportedError",
    "WrongTypeError", "__version__", "error_for_status",
]
