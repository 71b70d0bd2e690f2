"""atheris target: `sqconvert inspect` (inspect_file + format_report) on arbitrary files. An input
either inspects or raises SqllmError (the one error line the CLI prints); anything else is a
crash. Seeds: corpus/sqf_load."""

import os
import sys
import tempfile

from sqllm.errors import SqllmError
from sqllm.formats.inspect import format_report, inspect_file

PATH = os.path.join(tempfile.mkdtemp(prefix="sqllm-fuzz-"), "input.sqf")


def one_input(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        format_report(inspect_file(PATH))
    except SqllmError:
        pass


if __name__ == "__main__":
    import atheris
    import sqllm.formats.inspect as inspect_module
    import sqllm.formats.reader as reader

    from atheris_instrument import instrument

    instrument(inspect_module, reader)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
