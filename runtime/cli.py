"""`sqrun`: generate text from an .sqf model, or measure its perplexity on a text file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from sqllm.errors import SqllmError

from .chat import render_chat

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _render_chat(model, prompt: str) -> str:
    if not model.chat_template:
        raise SqllmError(f"{model.path}: the model has no chat template (drop --chat)")
    piece = lambda t: model.detokenize([t]) if t >= 0 else ""  # noqa: E731
    return render_chat(model.chat_template, [{"role": "user", "content": prompt}], bos_token=piece(model.bos),
                       eos_token=piece(model.eos), source=f"{model.path}: chat template")


def _kv_line(model) -> str:
    kind = f"KVQuant {model.kv_bits}-bit" if model.kv_bits else "unquantized"
    return f"KV cache: {kind}, {model.kv_bytes_per_token():.0f} bytes/token"


@app.command()
def run(
    file: Path = typer.Argument(..., help="An .sqf model."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Text to continue."),
    n_predict: int = typer.Option(128, "-n", "--n-predict", help="Maximum tokens to generate."),
    temp: float = typer.Option(0.8, "--temp", help="Temperature; 0 = greedy."),
    top_k: int = typer.Option(40, "--top-k", help="Keep the k most likely tokens; 0 = off."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling mass; 1 = off."),
    min_p: float = typer.Option(0.05, "--min-p", help="Drop tokens below min-p x the top probability; 0 = off."),
    repeat_penalty: float = typer.Option(1.0, "--repeat-penalty", help="Repetition penalty; 1 = off."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    threads: int = typer.Option(0, "--threads", "-t", help="Threads; 0 = all cores."),
    ctx_size: int = typer.Option(0, "--ctx-size", help="Context length; 0 = the model's."),
    kv_cache: str = typer.Option("f16", "--kv-cache", help="Precision of an unquantized KV cache: f16 or f32."),
    kv_bits: Optional[int] = typer.Option(None, "--kv-bits", help="Quantize the KV cache to 2, 3 or 4 bits (KVQuant; "
                                          "nuq needs the file's KV calibration). Default: as the file says."),
    no_kv_quant: bool = typer.Option(False, "--no-kv-quant", help="Keep the KV cache in fp16 even if the file calibrates one."),
    kv_method: str = typer.Option("nuq", "--kv-method", help="nuq (the calibrated non-uniform datatype) or uniform (evenly spaced levels; "
                                   "on a file without KV calibration it sets the key ranges from the sequence and needs --kv-bits)."),
    int8: bool = typer.Option(False, "--int8", help="Quantized linears with int8 activations and LUTs: faster "
                              "decode, approximate (see docs/RESULTS.md)."),
    chat: bool = typer.Option(False, "--chat", help="Wrap the prompt in the model's chat template."),
    perplexity: Optional[Path] = typer.Option(None, "--perplexity", help="Print the perplexity of this text file."),
    ctx: int = typer.Option(512, "--ctx", help="--perplexity: tokens per window."),
    max_windows: Optional[int] = typer.Option(None, "--max-windows", help="--perplexity: score only the first N windows."),
    verify: bool = typer.Option(False, "--verify", help="Check every tensor's CRC-32 at load."),
) -> None:
    """Generate text from FILE (--prompt), or measure its perplexity (--perplexity TEXT_FILE)."""
    from .model import Model

    if (prompt is None) == (perplexity is None):
        typer.echo("error: give exactly one of --prompt and --perplexity", err=True)
        raise typer.Exit(2)
    if no_kv_quant and kv_bits is not None:
        typer.echo("error: give at most one of --kv-bits and --no-kv-quant", err=True)
        raise typer.Exit(2)
    try:
        model = Model(file, threads=threads, n_ctx=ctx_size, kv_cache=kv_cache, verify_checksums=verify, guard_mapping=True,
                      kv_bits=0 if no_kv_quant else kv_bits, kv_method=kv_method, int8=int8)
        if perplexity is not None:
            try:
                text = perplexity.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise SqllmError(f"{perplexity}: cannot read: {e}") from e
            value = model.perplexity(text, ctx=ctx, max_windows=max_windows)
            typer.echo(f"perplexity: {value:.4f}")
            typer.echo(_kv_line(model), err=True)
            return
        text = _render_chat(model, prompt) if chat else prompt
        if not chat:
            sys.stdout.write(prompt)
        for piece in model.generate(text, max_tokens=n_predict, temperature=temp, top_k=top_k, top_p=top_p,
                                    min_p=min_p, repetition_penalty=repeat_penalty, seed=seed):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        s = model.last_stats
        typer.echo(f"load {s.load_seconds * 1000:.0f} ms; prompt {s.prompt_tokens} tokens, "
                   f"{s.prompt_tokens_per_second:.1f} tokens/s; decode {s.generated_tokens} tokens, "
                   f"{s.decode_tokens_per_second:.1f} tokens/s ({model.threads} threads)", err=True)
        typer.echo(_kv_line(model), err=True)
    except (SqllmError, ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="sqrun")
