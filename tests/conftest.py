"""Shared fixtures: the bundled model, a real Fisher file for it, and the dev model when present."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STORIES = ROOT / "models" / "stories260K"
SHARED = ROOT.parent / "shared"
TRAIN_TEXT = SHARED / "data" / "tinystories_train.txt"
VALID_TEXT = SHARED / "data" / "tinystories_valid.txt"
WIKI_TEXT = SHARED / "data" / "wikitext2_valid.txt"
# The evaluation texts for the tokenizer tests: shared/data in the checkout, or next to it.
TOKENIZER_DATA = next((d for d in (ROOT / "shared" / "data", SHARED / "data") if d.is_dir()), ROOT / "shared" / "data")
DATA_FILES = ["tinystories_valid.txt", "tinystories_train.txt", "wikitext2_valid.txt"]
DEV_MODEL_DEFAULT = Path.home() / ".cache" / "sqllm-models" / "qwen2.5-coder-0.5b-instruct" / "hf-float16"


def data_text(name: str) -> str:
    """One of DATA_FILES, or the test is skipped where the data is not there."""
    path = TOKENIZER_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} is not there")
    return path.read_text(encoding="utf-8")


def random_texts(pool: list[str], count: int, seed: int) -> list[str]:
    """count texts of 1 to 24 items drawn from pool."""
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(count)]


def sqconvert(*args, check=True, **kw):
    return subprocess.run([sys.executable, "-m", "sqllm.converter", *map(str, args)], capture_output=True, text=True,
                          check=check, **kw)


@pytest.fixture(scope="session")
def stories_fisher(tmp_path_factory) -> Path:
    """A real gradient Fisher of the bundled model on training text (16 sequences of 256 tokens)."""
    out = tmp_path_factory.mktemp("fisher") / "fisher.safetensors"
    sqconvert("fisher", STORIES, "--data", TRAIN_TEXT, "-o", out, "--samples", 16, "--seq-len", 256, "--quiet")
    return out


@pytest.fixture(scope="session")
def dev_model() -> Path:
    """The Qwen2 dev model folder; skipped when absent unless SQLLM_REQUIRE_DEV_MODEL=1."""
    path = Path(os.environ.get("SQLLM_DEV_MODEL", DEV_MODEL_DEFAULT))
    if not (path / "config.json").is_file():
        if os.environ.get("SQLLM_REQUIRE_DEV_MODEL") == "1":
            pytest.fail(f"dev model not found at {path} (run ../shared/tools/get_dev_model.sh)")
        pytest.skip(f"dev model not found at {path}")
    return path


# A Llama-2-style template over stories260K's vocabulary: it writes bos_token itself.
STORY_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}assistant:{% endif %}")


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory) -> Path:
    """stories260K converted with a chat template in its tokenizer_config.json."""
    d = tmp_path_factory.mktemp("chat")
    src = d / "hf"
    shutil.copytree(STORIES, src)
    config_path = src / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config["chat_template"] = STORY_TEMPLATE
    config_path.write_text(json.dumps(config))
    sqconvert(src, "-o", d / "chat.sqf", "--bits", 4, "--quiet")
    return d / "chat.sqf"
