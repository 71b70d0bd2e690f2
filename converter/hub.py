"""`org/name` model ids, resolved offline from the local Hugging Face hub cache.

The cache is the one `huggingface_hub` itself uses (HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub), and so is the resolution: `snapshot_download(local_files_only=True)`
follows refs/<revision> to the snapshot folder. Nothing is downloaded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqllm.errors import ConversionError

# owner/name, optionally @revision (a branch, tag or commit).
HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?")


def resolve_model(model: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """MODEL as a local path: itself when it exists or does not look like a hub id, otherwise the
    snapshot folder of that hub id in the cache. ConversionError, naming where it looked, when
    the id is not cached."""
    path = Path(model)
    m = HUB_ID.fullmatch(str(model))
    if path.exists() or m is None:
        return path
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub import constants
    except ImportError as e:
        raise ConversionError(f"{model}: no such file or folder (reading it as a Hugging Face hub id needs "
                              f"huggingface_hub)") from e
    cache = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    repo, revision = m.group("repo"), m.group("revision")
    try:
        return Path(snapshot_download(repo, revision=revision, cache_dir=cache, local_files_only=True))
    except Exception as e:  # LocalEntryNotFoundError, HFValidationError, an unreadable cache
        folder = cache / ("models--" + repo.replace("/", "--"))
        what = f"revision {revision!r} of " if revision else ""
        raise ConversionError(f"{model}: no such file or folder, and no snapshot of {what}{repo} in the Hugging Face "
                              f"cache (looked in {folder}; set HF_HUB_CACHE or HF_HOME, or fetch it with "
                              f"`hf download {repo}`)") from e
