"""The error classes, for the modules that import them from here: they live in sqllm.errors."""

from sqllm.errors import (ChecksumError, ConversionError, FileError, FormatError, InternalError,  # noqa: F401
                          InvalidArgumentError, NotFoundError, OutOfMemoryError, OutputExistsError, RuntimeFailure,
                          SqllmError, UnsupportedError, WrongTypeError)
