"""What the tools share: where the repository, the shared data and the models are.

The tools run as scripts (`python tools/NAME.py`), which puts this folder first on sys.path, so
they import this module, and each other, by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
DEV_MODEL_SCRIPT = SHARED / "tools" / "get_dev_model.sh"


def model_dir(name: str) -> Path:
    """"stories260K" (bundled), "dev" (the Qwen2 dev model: $SQLLM_DEV_MODEL, else what
    ../shared/tools/get_dev_model.sh builds), or a folder."""
    if name == "stories260K":
        return ROOT / "models" / "stories260K"
    if name == "dev":
        env = os.environ.get("SQLLM_DEV_MODEL")
        if env:
            return Path(env)
        out = subprocess.run(["bash", str(DEV_MODEL_SCRIPT)], check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHON": sys.executable}).stdout
        return Path(out.strip().splitlines()[-1])
    return Path(name)
