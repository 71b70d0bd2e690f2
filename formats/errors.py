"""The error classes, for the modules that import them from here: they live in sqllm.errors."""

from sqllm.errors import (ChecksumError, ConversionError, FileError, FormatError, InternalError,
                          InvalidArgumentError, NotFoundError, OutOfMemoryError, OutputExistsError, RuntimeFailure,
                          SqllmError, UnsupportedError, WrongTypeError)

__all__ = ["ChecksumError", "ConversionError", "FileError", "FormatError", "InternalError", "InvalidArgumentError",
           "NotFoundError", "OutOfMemoryError", "OutputExistsError", "RuntimeFailure", "SqllmError",
           "UnsupportedError", "WrongTypeError"]
