"""`sqrun`: generate text from an .sqf model, chat with it, or measure its perplexity on a text file."""

from __future__ import annotations

import math
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from sqllm.cli import version_option
from sqllm.errors import SqllmError

app = typer.Typer(add_completion=True, pretty_exceptions_enable=False, rich_markup_mode=None)


class KvCache(str, Enum):
    f16 = "f16"
    f32 = "f32"


class KvMethod(str, Enum):
    nuq = "nuq"
    uniform = "uniform"


def _kv_line(model) -> str:
    kind = f"KVQuant {model.kv_bits}-bit" if model.kv_bits else "unquantized"
    line = f"KV cache: {kind}, {model.kv_bytes_per_token():.0f} bytes/token over {model._ctx.n_past} tokens"
    if model.kv_bits:
        line += " (the first tokens stay in fp16: short runs cost more per token)"
    return line


def _stats_line(model) -> str:
    s = model.last_stats
    cached = f" (+{s.cached_tokens} reused)" if s.cached_tokens else ""
    return (f"load {s.load_seconds * 1000:.0f} ms; prompt {s.prompt_tokens} tokens{cached}, "
            f"{s.prompt_tokens_per_second:.1f} tokens/s; decode {s.generated_tokens} tokens, "
            f"{s.decode_tokens_per_second:.1f} tokens/s ({model.threads} threads)")


def _end_note(model) -> str | None:
    if model.last_stats.end_reason == "context_full":
        return f"(stopped: the context of {model.context_length} tokens is full; --ctx-size sets it)"
    return None


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _perplexity(model, path: Path, ctx: int, max_windows: Optional[int], quiet: bool) -> None:
    import numpy as np
    from tqdm import tqdm

    from .model import perplexity_windows

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SqllmError(f"{path}: cannot read: {e}") from e
    if not 2 <= ctx <= model.context_length:
        raise SqllmError(f"--ctx {ctx}: a window must hold 2 to {model.context_length} tokens (the context length)")
    windows = perplexity_windows(model.tokenize(text, add_bos=False), ctx, model.bos if model._model.add_bos else -1)
    windows = windows[:max_windows] if max_windows else windows
    if not windows:
        raise SqllmError(f"{path}: the text has fewer than two tokens")
    nll = []
    bar = tqdm(windows, desc="perplexity", unit="window", disable=quiet, file=sys.stderr)
    for window in bar:
        model.reset()
        nll.append(model._ctx.nll(np.asarray(window, dtype=np.int32)))
        values = np.concatenate(nll)
        bar.set_postfix_str(f"ppl {math.exp(values.mean()):.4f}")
    values = np.concatenate(nll)
    ppl = math.exp(values.mean())
    # llama-perplexity's uncertainty: the standard error of the mean NLL, carried to the perplexity.
    error = ppl * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    typer.echo(f"perplexity: {ppl:.4f} +/- {error:.4f} ({len(values)} tokens, {len(windows)} windows of {ctx})")


def _chat_session(model, system: Optional[str], sampling: dict) -> None:
    """Read turns from stdin until /exit or end of input; /reset forgets the conversation; Ctrl-C
    stops the answer being written, not the session."""
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo("Chat: /reset forgets the conversation, /exit (or Ctrl-D) ends; Ctrl-C stops an answer.", err=True)
    while True:
        _write("> ")
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            _write("\n")
            continue
        if not line or line.strip() == "/exit":
            if interactive or not line:
                _write("\n")
            return
        line = line.rstrip("\n")
        if not interactive:
            _write(line + "\n")
        if line.strip() == "/reset":
            history = list(start)
            _write("(history cleared)\n")
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        answer = []
        try:
            for piece in model.chat(history, **sampling):
                answer.append(piece)
                _write(piece)
        except KeyboardInterrupt:
            _write(" (stopped)")
        except SqllmError as e:
            history.pop()
            _write("\n")
            typer.echo(f"error: {e}", err=True)
            continue
        _write("\n")
        note = _end_note(model)
        if note:
            typer.echo(note, err=True)
        history.append({"role": "assistant", "content": "".join(answer)})


@app.command()
def run(
    file: Path = typer.Argument(..., help="An .sqf model."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Text to continue (with --chat: the one message)."),
    n_predict: int = typer.Option(128, "-n", "--n-predict", min=0, help="Maximum tokens to generate."),
    temp: float = typer.Option(0.8, "--temp", min=0.0, help="Temperature; 0 = greedy."),
    top_k: int = typer.Option(40, "--top-k", min=0, help="Keep the k most likely tokens; 0 = off."),
    top_p: float = typer.Option(0.95, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass in (0, 1]; 1 = off."),
    min_p: float = typer.Option(0.05, "--min-p", min=0.0, max=1.0, help="Drop tokens below min-p x the top "
                                "probability; 0 = off."),
    repeat_penalty: float = typer.Option(1.0, "--repeat-penalty", help="Repetition penalty; 1 = off."),
    seed: int = typer.Option(0, "--seed", min=0, help="Sampling seed."),
    threads: int = typer.Option(0, "--threads", "-t", min=0, help="Threads; 0 = all cores."),
    ctx_size: int = typer.Option(0, "--ctx-size", min=0, help="Context length; 0 = the model's."),
    kv_cache: KvCache = typer.Option(KvCache.f16, "--kv-cache", help="Precision of an unquantized KV cache."),
    kv_bits: Optional[int] = typer.Option(None, "--kv-bits", min=2, max=4, help="Quantize the KV cache to 2, 3 or 4 "
                                          "bits (KVQuant; nuq needs the file's KV calibration). Default: as the file says."),
    no_kv_quant: bool = typer.Option(False, "--no-kv-quant", help="Keep the KV cache in fp16 even if the file calibrates one."),
    kv_method: KvMethod = typer.Option(KvMethod.nuq, "--kv-method", help="nuq: the calibrated non-uniform datatype; "
                                       "uniform: evenly spaced levels (on a file without KV calibration it sets the key "
                                       "ranges from the sequence and needs --kv-bits)."),
    int8: bool = typer.Option(False, "--int8", help="Quantized linears with int8 activations and LUTs: faster "
                              "decode, approximate (see docs/RESULTS.md)."),
    exact: bool = typer.Option(False, "--exact", help="Every product in fp32 (the reference). By default the "
                               "quantized linears run with 14-bit integer activations where the CPU has the kernels "
                               "(AVX-512)."),
    chat: bool = typer.Option(False, "--chat", help="Chat through the model's chat template: with --prompt one "
                              "message, without it a multi-turn session on stdin."),
    system: Optional[str] = typer.Option(None, "--system", help="--chat: the system message."),
    perplexity: Optional[Path] = typer.Option(None, "--perplexity", help="Print the perplexity of this text file."),
    ctx: int = typer.Option(512, "--ctx", help="--perplexity: tokens per window."),
    max_windows: Optional[int] = typer.Option(None, "--max-windows", min=1, help="--perplexity: score only the first "
                                              "N windows."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or statistics on stderr."),
    verify: bool = typer.Option(False, "--verify", help="Check every tensor's CRC-32 at load."),
    version: bool = version_option("sqrun (sqllm)"),
) -> None:
    """Generate text from FILE (--prompt), chat with it (--chat), or measure its perplexity (--perplexity TEXT_FILE)."""
    from .model import Model, ctx_size_warning

    if perplexity is not None and (prompt is not None or chat):
        raise typer.BadParameter("give --perplexity alone, without --prompt or --chat", param_hint="--perplexity")
    if perplexity is None and prompt is None and not chat:
        raise typer.BadParameter("give --prompt TEXT, --chat or --perplexity TEXT_FILE", param_hint="--prompt")
    if no_kv_quant and kv_bits is not None:
        raise typer.BadParameter("give at most one of --kv-bits and --no-kv-quant", param_hint="--kv-bits")
    if int8 and exact:
        raise typer.BadParameter("give at most one of --int8 and --exact", param_hint="--exact")
    if system is not None and not chat:
        raise typer.BadParameter("--system needs --chat", param_hint="--system")
    sampling = dict(max_tokens=n_predict, temperature=temp, top_k=top_k, top_p=top_p, min_p=min_p,
                    repetition_penalty=repeat_penalty, seed=seed)
    if top_p == 0.0:
        raise typer.BadParameter("must be in (0, 1]", param_hint="--top-p")
    if min_p >= 1.0:
        raise typer.BadParameter("must be in [0, 1)", param_hint="--min-p")
    if not (repeat_penalty > 0.0 and math.isfinite(repeat_penalty)):
        raise typer.BadParameter("must be a finite number > 0", param_hint="--repeat-penalty")
    try:
        model = Model(file, threads=threads, n_ctx=ctx_size, kv_cache=kv_cache.value, verify_checksums=verify,
                      guard_mapping=True, kv_bits=0 if no_kv_quant else kv_bits, kv_method=kv_method.value, int8=int8,
                      exact=exact)
        warning = ctx_size_warning(model)
        if warning:
            typer.echo(f"warning: {warning}", err=True)
        if perplexity is not None:
            _perplexity(model, perplexity, ctx, max_windows, quiet)
            if not quiet:
                typer.echo(_kv_line(model), err=True)
            return
        if chat and prompt is None:
            model.chat_tokens([{"role": "user", "content": "x"}])  # no template: say so before the session
            _chat_session(model, system, sampling)
            return
        if chat:
            messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
            pieces = model.chat(messages, **sampling)
        else:
            pieces = model.generate(prompt, **sampling)  # checks every parameter before anything is written
            _write(prompt)
        for piece in pieces:
            _write(piece)
        _write("\n")
        if not quiet:
            typer.echo(_stats_line(model), err=True)
            typer.echo(_kv_line(model), err=True)
        note = _end_note(model)
        if note:
            typer.echo(note, err=True)
    except BrokenPipeError:
        # The reader went away (sqrun ... | head): stop quietly, as a pipeline stage should.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0)
    except (SqllmError, ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="sqrun")
