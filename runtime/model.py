"""The Python API of the runtime: `Model(path).generate(prompt)`, `.logits(ids)`, `.perplexity(text)`."""

from __future__ import annotations

import codecs
import os
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from sqllm import _sqllm
from sqllm.errors import InvalidArgumentError, UnsupportedError

from .chat import render_chat


@dataclass
class GenerationStats:
    load_seconds: float = 0.0
    prompt_tokens: int = 0        # evaluated for this generation (a reused prefix is not)
    prompt_seconds: float = 0.0
    generated_tokens: int = 0
    decode_seconds: float = 0.0
    cached_tokens: int = 0        # prompt tokens whose KV cache was kept from the previous sequence
    finish_reason: str = ""       # "stop" (end token or stop string) or "length" (max_tokens, context full)
    end_reason: str = ""          # what ended it: end_token, stop_string, max_tokens or context_full

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_tokens / self.prompt_seconds if self.prompt_seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        return self.generated_tokens / self.decode_seconds if self.decode_seconds else 0.0


class StopScanner:
    """Holds back streamed text that could be the start of a stop string, so that no stop string
    (nor any part of one) is ever emitted; `push` returns the text safe to emit and whether a stop
    string was found."""

    def __init__(self, stop: list[str]):
        self.stop = [s for s in stop if s]
        self.held = ""

    def push(self, text: str) -> tuple[str, bool]:
        self.held += text
        cut = min((i for i in (self.held.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            out, self.held = self.held[:cut], ""
            return out, True
        keep = 0  # the longest tail of what is held that begins a stop string
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.held)), keep, -1):
                if self.held.endswith(s[:n]):
                    keep = n
                    break
        out = self.held[:len(self.held) - keep]
        self.held = self.held[len(self.held) - keep:]
        return out, False

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


class Model:
    """A quantized model in an .sqf file, memory-mapped and run by the C++ runtime."""

    def __init__(self, path: str | os.PathLike, *, threads: int = 0, n_ctx: int = 0, n_batch: int = 64,
                 kv_cache: str = "f16", kv_bits: int | None = None, kv_method: str = "nuq",
                 int8: bool = False, exact: bool = False, verify_checksums: bool = False,
                 guard_mapping: bool = False):
        """kv_bits: None quantizes the KV cache as the file says (KVQuant, when it was converted
        with --kv-bits), 0 never, 2/3/4 at that width; kv_method "nuq" (the file's calibrated
        datatype) or "uniform" (evenly spaced levels, same ranges, outliers and sink; on a file
        without KV calibration the key ranges come from the sequence, and kv_bits must be given).
        kv_cache: f16 or f32, the precision of a cache that is not quantized.
        int8: run the 2-6-bit linears with int8 activations and 255-level LUTs (faster decode,
        approximate: see docs/RESULTS.md).
        exact: every product on the fp32 path (the reference). By default, where the CPU has the
        kernels (AVX-512 VNNI), the 2-6-bit linears run with 14-bit activations: prompt batches as
        an integer GEMM with 11-bit LUT levels, single tokens with 8-bit LUT levels; faster, and
        close to fp32 (docs/RESULTS.md gives the perplexity). int8 and exact exclude each other.
        guard_mapping: install a process-wide SIGBUS handler so that the file being truncated while
        mapped raises FileError on the next call instead of killing the process (sqllm_load_params
        in sqllm.h says how); sqrun turns it on."""
        if kv_cache not in ("f16", "f32"):
            raise ValueError(f"kv_cache must be 'f16' or 'f32', got {kv_cache!r}")
        t0 = time.perf_counter()
        self.path = os.fspath(path)
        self._model = _sqllm.LoadedModel(self.path, verify_checksums, guard_mapping)
        self._ctx_args = dict(n_ctx=n_ctx, n_threads=threads, n_batch=n_batch, kv_f32=kv_cache == "f32",
                              kv_bits=-1 if kv_bits is None else kv_bits, kv_method=kv_method, int8=bool(int8),
                              exact=bool(exact))
        self._ctx = _sqllm.Context(self._model, **self._ctx_args)
        self.load_seconds = time.perf_counter() - t0
        self.last_stats = GenerationStats(load_seconds=self.load_seconds)

    def fork(self) -> Model:
        """Another Model over the same mapped file (no second copy of the weights), with a context
        of its own made with the same settings: one per concurrent conversation."""
        other = object.__new__(Model)
        other.path, other._model, other._ctx_args, other.load_seconds = self.path, self._model, self._ctx_args, 0.0
        other._ctx = _sqllm.Context(self._model, **self._ctx_args)
        other.last_stats = GenerationStats()
        return other

    def close(self) -> None:
        """Free the context and (when no fork still uses it) the mapping; the Model is unusable after."""
        self._ctx = self._model = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._model is None:
            return f"Model({self.path!r}, closed)"
        kv = f"KVQuant {self.kv_bits}-bit" if self.kv_bits else "kv " + ("f32" if self._ctx_args["kv_f32"] else "f16")
        return (f"Model({self.path!r}, {self._model.family}, {self._model.num_layers} layers, vocab {self.vocab_size}, "
                f"n_ctx {self.context_length}, {self.threads} threads, {kv}{', int8' if self._ctx_args['int8'] else ''}{', exact' if self._ctx_args['exact'] else ''})")

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
                 repetition_window: int = 64, presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                 seed: int = 0, stop: Iterable[str] = (), reset: bool = True) -> Iterator[str]:
        """Stream the continuation of prompt as text pieces (whole UTF-8 characters).

        reset=True: the prompt starts a new sequence (BOS first when the model adds one); the KV
        cache of the longest prefix it shares with the sequence held is kept, so only the rest is
        evaluated. reset=False: the prompt continues the sequence held (no BOS).
        stop: strings that end generation; the text streamed stops just before the first one.
        The core's generator (sqllm_generator_* in the C API) samples: the same seed gives the same
        tokens here and in C. `last_stats` says how it went, `finish_reason` included."""
        if reset:
            ids = self.tokenize(prompt)
        else:
            ids = self._model.tokenize(prompt, self._ctx.n_past == 0 and self._model.add_bos, True)
        return self.generate_tokens(ids, max_tokens=max_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                    min_p=min_p, repetition_penalty=repetition_penalty,
                                    repetition_window=repetition_window, presence_penalty=presence_penalty,
                                    frequency_penalty=frequency_penalty, seed=seed, stop=stop, reset=reset)

    def generate_tokens(self, ids, *, max_tokens: int = 128, temperature: float = 0.8, top_k: int = 40,
                        top_p: float = 0.95, min_p: float = 0.05, repetition_penalty: float = 1.0,
                        repetition_window: int = 64, presence_penalty: float = 0.0, frequency_penalty: float = 0.0,
                        seed: int = 0, stop: Iterable[str] = (), reset: bool = True) -> Iterator[str]:
        """`generate` from token ids, taken as they are (no BOS added)."""
        if isinstance(stop, str):
            stop = [stop]
        stop = list(stop)
        if not all(isinstance(s, str) for s in stop):
            raise ValueError("stop must be a list of strings")
        ids = [int(i) for i in ids]
        if not ids:
            raise InvalidArgumentError("the prompt has no tokens")
        cached = 0
        if reset:
            # Keep the KV cache of the common prefix; at least one token is evaluated, for its logits.
            held = self._ctx.tokens
            while cached < min(len(held), len(ids) - 1) and held[cached] == ids[cached]:
                cached += 1
            self._ctx.truncate(cached)
        gen = _sqllm.Generator(self._ctx, np.asarray(ids[cached:], dtype=np.int32), max_tokens,
                               temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                               repetition_penalty=repetition_penalty, repetition_window=repetition_window,
                               presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, seed=seed)
        stats = GenerationStats(load_seconds=self.load_seconds, cached_tokens=cached)
        self.last_stats = stats
        return self._stream(gen, stats, StopScanner(stop))

    def _stream(self, gen, stats: GenerationStats, scanner: StopScanner) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stopped = False
        while not stopped:
            step = gen.next()
            for name, value in gen.stats.items():
                setattr(stats, name, value)
            text = decoder.decode(b"", final=True) if step is None else decoder.decode(step[1])
            piece, stopped = scanner.push(text)
            if step is None and not stopped:
                piece += scanner.flush()
            if piece:
                yield piece
            if step is None:
                break
        stats.end_reason = "stop_string" if stopped else gen.end_reason
        stats.finish_reason = "stop" if stats.end_reason in ("stop_string", "end_token") else "length"

    def chat(self, messages: list[dict], **sampling) -> Iterator[str]:
        """Stream the assistant's answer to `messages` ([{"role": ..., "content": ...}, ...]) through the
        model's chat template (rendered in Jinja's sandbox). The KV cache of the conversation so far is
        kept: in a multi-turn chat only the new turn is evaluated. `sampling`: as for `generate`."""
        return self.generate_tokens(self.chat_tokens(messages), **sampling)

    def chat_tokens(self, messages: list[dict], *, add_generation_prompt: bool = True) -> list[int]:
        """The token ids of `messages` rendered by the model's chat template, with one BOS at most."""
        if not self.chat_template:
            raise UnsupportedError(f"{self.path}: the model has no chat template")
        text = render_chat(self.chat_template, messages, bos_token=self._piece(self.bos),
                           eos_token=self._piece(self.eos), add_generation_prompt=add_generation_prompt,
                           source=f"{self.path}: chat template")
        ids = self.tokenize(text)
        if len(ids) >= 2 and ids[0] == ids[1] == self.bos:  # the template wrote bos_token too
            ids = ids[1:]
        return ids

    def _piece(self, token: int) -> str:
        return self.detokenize([token]) if token >= 0 else ""

    def perplexity(self, text: str, *, ctx: int = 512, max_windows: int | None = None) -> float:
        """exp(mean NLL) over non-overlapping windows: each window is BOS followed by the next
        ctx-1 tokens of the text (without BOS: ctx tokens, the first not scored); every token
        after the first of a window is scored; the last window may be shorter."""
        nll, count = self.perplexity_terms(text, ctx=ctx, max_windows=max_windows)
        return float(np.exp(nll / count))

    def perplexity_terms(self, text: str, *, ctx: int = 512, max_windows: int | None = None) -> tuple[float, int]:
        """(NLL sum, tokens scored) over the windows of `perplexity_windows`, each from an empty context."""
        return self._ctx.text_nll(text, ctx, max_windows or 0)


def ctx_size_warning(model: Model) -> str | None:
    """What to tell a user whose context length is not the model's: longer than it was trained for."""
    trained = model._model.context_length
    if model.context_length > trained:
        return (f"the context ({model.context_length} tokens) is longer than the {trained} tokens {model.path} was "
                "trained for; expect worse text past that")
    return None


def perplexity_windows(body: list[int], ctx: int, bos: int) -> list[list[int]]:
    """The windows of the perplexity definition shared by `sqrun --perplexity` and `sqconvert eval`
    (the core's, sqllm_text_nll): BOS (unless bos < 0) followed by the next ctx-1 tokens."""
    return _sqllm.perplexity_windows(body, ctx, bos)
