"""The seed corpus and every kept crasher of the Python fuzz targets (tests/fuzz/fuzz_*.py, run by
`make fuzz` under atheris), replayed: each input gives a result or the target's own error class.
The C++ targets' inputs are replayed by ctest (fuzz_*_corpus)."""

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
TARGETS = {"inspect": "sqf_load", "safetensors_header": "safetensors_header", "chat_template": "chat_template"}


def inputs(target: str) -> list[Path]:
    dirs = [FUZZ / "corpus" / TARGETS[target], FUZZ / "crashers" / target]
    return sorted(p for d in dirs if d.is_dir() for p in d.iterdir() if p.is_file())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_inputs_replay(target):
    spec = importlib.util.spec_from_file_location(f"fuzz_{target}", FUZZ / f"fuzz_{target}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files = inputs(target)
    assert files, f"no seeds for {target}"
    for path in files:
        module.one_input(path.read_bytes())
