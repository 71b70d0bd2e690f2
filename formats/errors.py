"""The exception hierarchy of sqllm. The native module raises these same classes."""


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


class FileError(SqllmError, OSError):
    """A file cannot be opened, read or mapped."""


class ChecksumError(FormatError):
    """A tensor's stored CRC-32 does not match its bytes."""


class UnsupportedError(FormatError):
    """A well-formed file this build cannot use (a newer format version, KV quantization, ...)."""
