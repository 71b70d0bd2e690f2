"""The Python API of the runtime: `Model(path).generate(prompt)`, `.logits(ids)`, `.perplexity(text)`."""

from __future__ import annotations

import codecs
import os
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from sqllm import _sqllm


@dataclass
class GenerationStats:
    load_seconds: float = 0.0
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    generated_tokens: int = 0
    decode_seconds: float = 0.0

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_tokens / self.prompt_seconds if self.prompt_seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds else 0.0


class Model:
    """A quantized model in an .sqf file, memory-mapped and run by the C++ runtime."""

    def __init__(self, path: str | os.PathLike, *, threads: int = 0, n_ctx: int = 0, n_batch: int = 64,
                 kv_cache: str = "f16", kv_bits: int | None = None, kv_method: str = "nuq",
                 int8: bool = False, verify_checksums: bool = False, guard_mapping: bool = False):
        """kv_bits: None quantizes the KV cache as the file says (KVQuant, when it was converted
        with --kv-bits), 0 never, 2/3/4 at that width; kv_method "nuq" (the file's calibrated
        datatype) or "uniform" (evenly spaced levels, same ranges, outliers and sink; on a file
        without KV calibration the key ranges come from the sequence, and kv_bits must be given).
        kv_cache: f16 or f32, the precision of a cache that is not quantized.
        int8: run the 2-4-bit linears with int8 activations and 255-level LUTs (faster decode,
        approximate: see docs/RESULTS.md) instead of the exact fp32 path.
        guard_mapping: install a process-wide SIGBUS handler so that the file being truncated while
        mapped raises FileError on the next call instead of killing the process (sqllm_load_params
        in sqllm.h says how); sqrun turns it on."""
        if kv_cache not in ("f16", "f32"):
            raise ValueError(f"kv_cache must be 'f16' or 'f32', got {kv_cache!r}")
        t0 = time.perf_counter()
        self.path = os.fspath(path)
        self._model = _sqllm.LoadedModel(self.path, verify_checksums, guard_mapping)
        self._ctx_args = dict(n_ctx=n_ctx, n_threads=threads, n_batch=n_batch, kv_f32=kv_cache == "f32",
                              kv_bits=-1 if kv_bits is None else kv_bits, kv_method=kv_method, int8=bool(int8))
        self._ctx = _sqllm.Context(self._model, **self._ctx_args)
        self.load_seconds = time.perf_counter() - t0
        self.last_stats = GenerationStats(load_seconds=self.load_seconds)

    @property
    def vocab_size(self) -> int:
        return self._model.vocab_size

    @property
    def context_length(self) -> int:
        return self._ctx.n_ctx

    @property
    def kv_bits(self) -> int:
        """Bits per KV-cache entry when the cache is quantized, else 0."""
        return self._ctx.kv_bits

    def kv_bytes_per_token(self) -> float:
        """Bytes the KV cache holds per token of the current sequence (0 when it is empty)."""
        return self._ctx.kv_bytes / self._ctx.n_past if self._ctx.n_past else 0.0

    @property
    def threads(self) -> int:
        return self._ctx.n_threads

    @property
    def bos(self) -> int:
        return self._model.bos

    @property
    def eos(self) -> int:
        return self._model.eos

    @property
    def chat_template(self) -> str:
        return self._model.chat_template

    def tokenize(self, text: str, *, add_bos: bool | None = None, parse_special: bool = True) -> list[int]:
        """Token ids; BOS is added when the model's tokenizer says so, unless add_bos is given."""
        return self._model.tokenize(text, self._model.add_bos if add_bos is None else add_bos, parse_special)

    def detokenize(self, ids, *, skip_special: bool = False) -> str:
        return self._model.detokenize(np.asarray(ids, dtype=np.int32), skip_special).decode("utf-8", "replace")

    def reset(self) -> None:
        """Forget the sequence held in the context."""
        self._ctx.reset()

    def eval(self, ids, *, all_logits: bool = False) -> np.ndarray:
        """Append ids to the sequence in the context; the last token's logits [vocab] (or [n, vocab])."""
        return self._ctx.eval(np.asarray(ids, dtype=np.int32), all_logits)

    def logits(self, ids) -> np.ndarray:
        """float32 [n, vocab]: the logits after each of ids, evaluated from an empty context."""
        ids = np.asarray(ids, dtype=np.int32)
        self._ctx.reset()
        return self._ctx.eval(ids, True)

    def generate(self, prompt: str, *, max_tokens: int = 128, temperature: float = 0.8, top_k: int = 40,
                 top_p: float = 0.95, min_p: float = 0.05, repetition_penalty: float = 1.0,
                 repetition_window: int = 64, seed: int = 0) -> Iterator[str]:
        """Stream the continuation of prompt as text pieces (whole UTF-8 characters), from an empty
        context. The core's generator (sqllm_generator_* in the C API) does the work: the same seed
        gives the same tokens here and in C."""
        self._ctx.reset()
        gen = _sqllm.Generator(self._ctx, prompt, max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                               min_p=min_p, repetition_penalty=repetition_penalty,
                               repetition_window=repetition_window, seed=seed)
        stats = GenerationStats(load_seconds=self.load_seconds)
        self.last_stats = stats
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            step = gen.next()
            for name, value in gen.stats.items():
                setattr(stats, name, value)
            if step is None:
                break
            piece = decoder.decode(step[1])
            if piece:
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def perplexity(self, text: str, *, ctx: int = 512, max_windows: int | None = None) -> float:
        """exp(mean NLL) over non-overlapping windows: each window is BOS followed by the next
        ctx-1 tokens of the text (without BOS: ctx tokens, the first not scored); every token
        after the first of a window is scored; the last window may be shorter."""
        nll, count = self.perplexity_terms(text, ctx=ctx, max_windows=max_windows)
        return float(np.exp(nll / count))

    def perplexity_terms(self, text: str, *, ctx: int = 512, max_windows: int | None = None) -> tuple[float, int]:
        """(NLL sum, tokens scored) over the windows of `perplexity_windows`, each from an empty context."""
        return self._ctx.text_nll(text, ctx, max_windows or 0)


def perplexity_windows(body: list[int], ctx: int, bos: int) -> list[list[int]]:
    """The windows of the perplexity definition shared by `sqrun --perplexity` and `sqconvert eval`
    (the core's, sqllm_text_nll): BOS (unless bos < 0) followed by the next ctx-1 tokens."""
    return _sqllm.perplexity_windows(body, ctx, bos)
