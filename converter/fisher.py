"""`sqconvert fisher`: the sensitivity weights of SqueezeLLM.

The diagonal Fisher information of every linear weight of the decoder layers: the mean over
calibration sequences of the squared gradient of the language-model loss, one sequence at a
time. Squares are accumulated into fp32 buffers by post-accumulate-grad hooks that free each
gradient at once, so peak memory is the weights, one fp32 accumulator per linear and the
activations of one sequence (fewer with --checkpointing).

The gradient Fisher also covers model.embed_tokens.weight, and lm_head.weight when the head is
not tied (a tied embedding's gradient already sums its use as the input table and as the head),
so the embedding and the head can be clustered with the same weights.

`--fisher-kind activations` is the cheap fallback GGUF's importance matrix uses: E[x^2] of each
input column over the calibration tokens, broadcast over the rows.

In the same pass (either kind), forward pre-hooks collect the second-order statistics GPTQ-style
rounding needs: H = E[x x^T] over the calibration tokens of every distinct linear input (q/k/v
share one, gate/up share one, and lm_head's input is the final norm's output), named by
gptq.hessian_name. Each sequence's x^T x is one fp32 GEMM added into an fp64 accumulator; H is
the accumulator over the rows it saw, so a forward recomputed by --checkpointing counts in both
and leaves the mean unchanged. H is stored in fp32, [cols, cols].
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sqllm.errors import ConversionError

from .config import is_layer_linear
from .hub import resolve_model
from .gptq import hessian_name

_EMBEDDINGS = ("model.embed_tokens.weight", "lm_head.weight")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def calibration_sequences(token_ids: list[int], seq_len: int, samples: int | None, *, data: Path) -> list[list[int]]:
    n_avail = len(token_ids) // seq_len
    if n_avail == 0:
        raise ConversionError(f"{data}: {len(token_ids)} tokens are too few for one sample of {seq_len} tokens "
                              f"(use a longer text or a smaller --seq-len)")
    n = n_avail if samples is None else min(samples, n_avail)
    if samples is not None and samples > n_avail:
        raise ConversionError(f"{data}: only {n_avail} samples of {seq_len} tokens fit in the text, {samples} asked")
    # Spread the samples over the whole text rather than taking its head.
    starts = np.linspace(0, n_avail - 1, n).round().astype(int) * seq_len
    return [token_ids[s:s + seq_len] for s in starts]


def open_calibration(model_dir: Path, data: Path, what: str, device: str = "cpu"):
    """What a calibration run starts from: (torch, the tokenizer, the model in fp32 on device,
    the token ids of the calibration text without special tokens, the model's context length).
    `what` names the command in the error when torch or transformers is missing."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ConversionError(f"{what} needs torch and transformers (pip install 'sqllm[fisher]')") from e
    model_dir = resolve_model(model_dir)
    if not model_dir.is_dir():
        raise ConversionError(f"{model_dir}: {what} runs the model in transformers, which needs a Hugging Face "
                              f"model folder (or hub id)")
    try:
        text = data.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"{data}: cannot read the calibration text: {e}") from e
    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device)
    except Exception as e:  # transformers raises many types for unloadable folders
        raise ConversionError(f"{model_dir}: transformers cannot load the model: {e}") from e
    model.eval()
    ctx = int(getattr(model.config, "max_position_embeddings", 2048))
    return torch, tok, model, tok(text, add_special_tokens=False)["input_ids"], ctx


def compute_fisher(model_dir: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike, *,
                   samples: int | None = None, seq_len: int | None = None, kind: str = "gradients",
                   device: str = "cpu", checkpointing: bool = False, hessians: bool = True,
                   overwrite: bool = False, progress: bool = True) -> dict:
    if kind not in ("gradients", "activations"):
        raise ConversionError(f"--fisher-kind must be gradients or activations, got {kind!r}")
    model_dir, data, output = Path(model_dir), Path(data), Path(output)
    if output.exists() and not overwrite:
        from sqllm.errors import OutputExistsError
        raise OutputExistsError(f"{output}: output exists (use --force to overwrite)")
    torch, _, model, ids, ctx = open_calibration(model_dir, data, "sqconvert fisher", device)
    seq_len = seq_len or min(512, ctx)
    if seq_len < 2 or seq_len > ctx:
        raise ConversionError(f"--seq-len must be in [2, {ctx}], got {seq_len}")
    seqs = calibration_sequences(ids, seq_len, samples, data=data)

    if checkpointing:
        model.gradient_checkpointing_enable()
    params = {n: p for n, p in model.named_parameters() if is_layer_linear(n)}
    if not params:
        raise ConversionError(f"{model_dir}: no decoder-layer linear weights found")
    handles = []
    if kind == "gradients":
        targets = {n: p for n, p in model.named_parameters() if n in params or n in _EMBEDDINGS}
        acc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in targets.items()}
        for n, p in model.named_parameters():
            p.requires_grad_(n in targets)
        for n, p in targets.items():
            def hook(param, name=n):
                acc[name].add_(param.grad.float().square())
                param.grad = None
            handles.append(p.register_post_accumulate_grad_hook(hook))
    else:
        modules = {n + ".weight": m for n, m in model.named_modules() if n + ".weight" in params}
        cols = {n: torch.zeros(p.shape[1], dtype=torch.float64) for n, p in params.items()}
        for n, mod in modules.items():
            def fwd(module, inputs, _out, name=n):
                x = inputs[0].detach().double()
                cols[name].add_(x.square().reshape(-1, x.shape[-1]).sum(0).cpu())
            handles.append(mod.register_forward_hook(fwd))
    gram, seen = {}, {}
    if hessians:
        inputs_of = {}
        for n, mod in model.named_modules():
            if n + ".weight" in params:
                inputs_of.setdefault(hessian_name(n + ".weight"), mod)
        inputs_of[hessian_name("lm_head.weight")] = model.get_output_embeddings()
        for h, mod in inputs_of.items():
            d = mod.weight.shape[1]
            gram[h], seen[h] = torch.zeros(d, d, dtype=torch.float64, device=device), [0]

            def pre(module, inputs, name=h):
                x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).float()
                gram[name].add_(x.T @ x)
                seen[name][0] += x.shape[0]
            handles.append(mod.register_forward_pre_hook(pre))

    try:
        for seq in tqdm(seqs, desc=f"fisher ({kind})", unit="seq", disable=not progress, leave=False):
            x = torch.tensor([seq], device=device)
            if kind == "gradients":
                loss = model(x, labels=x).loss
                if not torch.isfinite(loss):
                    raise ConversionError(f"{model_dir}: the loss is {float(loss)} on a calibration sample")
                loss.backward()
            else:
                with torch.no_grad():
                    model(x)
    finally:
        for h in handles:
            h.remove()

    if kind == "gradients":
        tensors = {n: (acc.pop(n) / len(seqs)).cpu().numpy() for n in list(acc)}
    else:
        n_tokens = len(seqs) * seq_len
        tensors = {n: np.broadcast_to((cols[n] / n_tokens).float().numpy(), tuple(params[n].shape)).copy()
                   for n in params}
    for n, t in tensors.items():
        if not np.isfinite(t).all():
            raise ConversionError(f"{model_dir}: the Fisher of {n} holds NaN or Inf")
    for h in list(gram):
        # Symmetric by construction; averaging with the transpose removes the GEMM's rounding asymmetry.
        G = gram.pop(h)
        H = ((G + G.T) / (2 * seen[h][0])).float().cpu().numpy()
        if not np.isfinite(H).all():
            raise ConversionError(f"{model_dir}: the input statistics {h} hold NaN or Inf")
        tensors[h] = H
    meta = {"kind": kind, "data_file": data.name, "data_sha256": _sha256(data), "samples": str(len(seqs)),
            "seq_len": str(seq_len), "model": model_dir.name, "hessians": "true" if hessians else "false"}
    _save_atomic(output, tensors, meta)
    return meta


def _save_atomic(output: Path, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe(path: Path) -> str:
    """What the file says it is, for the converter's record."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(n)).get("__metadata__", {})
    except (OSError, ValueError):
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(meta.items()))
