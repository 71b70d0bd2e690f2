"""The exception hierarchy of sqllm. The native module raises these same classes: each status code
of the C API (sqllm.h) has one class, `error_for_status` says which."""


class SqllmError(Exception):
    """Base class of every error sqllm raises on purpose."""


class FormatError(SqllmError):
    """A .sqf file is malformed, truncated, corrupt or of an unsupported version."""


class ConversionError(SqllmError):
    """A checkpoint, Fisher file or option cannot be converted."""


class OutputExistsError(SqllmError):
    """The output file exists and overwriting was not asked for."""


class RuntimeFailure(SqllmError):
    """The runtime could not do what was asked (bad argument, context full, ...)."""


class InvalidArgumentError(RuntimeFailure, ValueError):
    """An argument out of range: a sampler or context parameter, a token id, a prompt that does
    not fit, a full context (SQLLM_ERR_INVALID_ARGUMENT)."""


class FileError(SqllmError, OSError):
    """A file cannot be opened, read or mapped (SQLLM_ERR_IO)."""


class ChecksumError(FormatError):
    """A tensor's stored CRC-32 does not match its bytes (SQLLM_ERR_CHECKSUM)."""


class UnsupportedError(FormatError):
    """A well-formed file this build cannot use (a newer format version, KV quantization, ...)."""


class NotFoundError(SqllmError, KeyError):
    """No such key or tensor (SQLLM_ERR_NOT_FOUND)."""


class WrongTypeError(SqllmError, TypeError):
    """A key exists with another type (SQLLM_ERR_TYPE)."""


class OutOfMemoryError(SqllmError, MemoryError):
    """An allocation failed (SQLLM_ERR_OUT_OF_MEMORY)."""


class InternalError(SqllmError):
    """A failure that is a bug in sqllm (SQLLM_ERR_INTERNAL)."""


# sqllm_status -> class (sqllm.h).
_BY_STATUS = {1: InvalidArgumentError, 2: FileError, 3: FormatError, 4: UnsupportedError, 5: ChecksumError,
              6: NotFoundError, 7: WrongTypeError, 8: OutOfMemoryError, 9: InternalError}


def error_for_status(status: int) -> type[SqllmError]:
    return _BY_STATUS.get(status, SqllmError)
