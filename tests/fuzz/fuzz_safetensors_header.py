"""atheris target: the safetensors header reader of the converter on arbitrary files. An input
either reads or raises ConversionError naming the file; anything else is a crash. Seeds:
corpus/safetensors_header."""

import sys
import tempfile
from pathlib import Path

from sqllm.converter.checkpoint import _read_safetensors_header
from sqllm.errors import ConversionError

PATH = Path(tempfile.mkdtemp(prefix="sqllm-fuzz-")) / "model.safetensors"


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        _read_safetensors_header(PATH)
    except ConversionError as e:
        assert str(PATH) in str(e)


if __name__ == "__main__":
    import atheris
    import sqllm.converter.checkpoint as checkpoint

    from atheris_instrument import instrument

    instrument(checkpoint)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
