#!/usr/bin/env python3
"""Prove that a normal (wheel) install and the editable install import the same code.

Builds a wheel of this checkout, installs it into a temporary folder, and imports sqllm from
there in a fresh interpreter that sees no editable hooks; every Python module of the wheel must
be byte-identical to the source file the editable install imports, and both native modules must
read tests/data/golden.sqf to the same metadata.
"""

import json
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = r"""
import hashlib, json, pkgutil, sys, importlib, importlib.util
out = {}
for name in ("sqllm", "sqllm.errors"):
    origin = importlib.util.find_spec(name).origin
    out[name] = (origin, hashlib.sha256(open(origin, "rb").read()).hexdigest())
for pkg in ("sqllm.formats", "sqllm.converter", "sqllm.runtime"):
    m = importlib.import_module(pkg)
    for info in pkgutil.iter_modules(m.__path__, pkg + "."):
        origin = importlib.util.find_spec(info.name).origin
        out[info.name] = (origin, hashlib.sha256(open(origin, "rb").read()).hexdigest())
from sqllm import _sqllm
md = _sqllm.SqfFile(sys.argv[1]).metadata()
out["_sqllm"] = (_sqllm.__file__, sorted(md))
print(json.dumps(out))
"""


def probe(python_args: list[str]) -> dict:
    cmd = [sys.executable, *python_args, "-c", PROBE, str(ROOT / "tests/data/golden.sqf")]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd="/").stdout)


def main() -> int:
    editable = probe([])
    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir, target = Path(tmp) / "wheel", Path(tmp) / "site"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps",
                        "-w", str(wheel_dir), str(ROOT)], check=True)
        wheel = next(wheel_dir.glob("sqllm-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                        str(wheel)], check=True)
        # -S: no site processing, so the editable install's import hook is not loaded.
        paths = [str(target), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
        installed = probe_with_paths(paths)
    failures = []
    for name, (path, digest) in editable.items():
        if name == "_sqllm":
            continue
        if name not in installed:
            failures.append(f"{name}: missing from the wheel")
        elif installed[name][1] != digest:
            failures.append(f"{name}: differs ({path} vs {installed[name][0]})")
    for name in installed:
        if name not in editable:
            failures.append(f"{name}: only in the wheel")
    if editable["_sqllm"][1] != installed["_sqllm"][1]:
        failures.append("_sqllm: the two native modules read golden.sqf differently")
    if not str(installed["_sqllm"][0]).startswith(tempfile.gettempdir()):
        failures.append(f"the wheel probe imported {installed['_sqllm'][0]}, not the wheel's module")
    for f in failures:
        print("FAIL", f)
    print(f"check-install: {len(editable) - 1} modules and the native module compared; "
          f"{'identical' if not failures else f'{len(failures)} differences'}")
    return 1 if failures else 0


def probe_with_paths(paths: list[str]) -> dict:
    code = f"import sys; sys.path[:0] = {paths!r}\n" + PROBE
    cmd = [sys.executable, "-S", "-c", code, str(ROOT / "tests/data/golden.sqf")]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd="/").stdout)


if __name__ == "__main__":
    sys.exit(main())
