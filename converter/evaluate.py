"""The torch reference: perplexity and logits of any Hugging Face folder (transformers, float32),
with the same window definition as the runtime (sqllm.runtime.model.perplexity_windows)."""

from __future__ import annotations

import math
import os

import numpy as np

from sqllm.errors import ConversionError

from .hub import resolve_model


def _load(hf_dir: str | os.PathLike, device: str = "cpu"):
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ConversionError("the torch reference needs torch and transformers (pip install 'sqllm[fisher]')") from e
    path = resolve_model(hf_dir)
    if not (path / "config.json").is_file():
        raise ConversionError(f"{path}: not a Hugging Face model folder (no config.json)")
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
    except Exception as e:  # transformers raises many types for unloadable folders
        raise ConversionError(f"{path}: transformers cannot load it: {e}") from e
    return torch, tok, model


def reference_logits(hf_dir: str | os.PathLike, ids: list[int]) -> np.ndarray:
    """float32 [n, vocab] logits of the torch forward over ids."""
    torch, _, model = _load(hf_dir)
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def reference_perplexity(hf_dir: str | os.PathLike, text: str, *, ctx: int = 512, max_windows: int | None = None,
                         device: str = "cpu") -> float:
    from sqllm.runtime.model import perplexity_windows

    torch, tok, model = _load(hf_dir, device)
    body = tok(text, add_special_tokens=False)["input_ids"]
    # A model "has" BOS when its tokenizer puts one in front of text.
    adds_bos = tok.bos_token_id is not None and tok("x")["input_ids"][:1] == [tok.bos_token_id]
    bos = tok.bos_token_id if adds_bos else -1
    total, count = 0.0, 0
    with torch.no_grad():
        for i, window in enumerate(perplexity_windows(body, ctx, bos)):
            if max_windows is not None and i >= max_windows:
                break
            ids = torch.tensor([window], device=device)
            logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
            total -= float(logp[torch.arange(len(window) - 1), ids[0, 1:]].sum())
            count += len(window) - 1
    if count == 0:
        raise ConversionError("the text is too short to score a single token")
    return math.exp(total / count)
