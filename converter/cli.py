"""`sqconvert`: the command-line edge of the converter. It parses arguments and calls the library."""

from __future__ import annotations

import difflib
import json
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from sqllm.cli import version_option
from sqllm.errors import SqllmError

from .interrupt import sticky_sigint

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Quantize Llama, Mistral and Qwen2 checkpoints (Hugging Face or GGUF) into .sqf files, "
                       "and inspect them. `sqconvert MODEL -o OUT.sqf` is `sqconvert convert MODEL -o OUT.sqf`.")
SUBCOMMANDS = ("convert", "inspect", "dequant", "eval", "fisher")


class Method(str, Enum):
    squeezellm = "squeezellm"
    kmeans = "kmeans"
    rtn = "rtn"


class KMeans(str, Enum):
    fast = "fast"
    exact = "exact"


class Rounding(str, Enum):
    gptq = "gptq"
    nearest = "nearest"


class FisherKind(str, Enum):
    gradients = "gradients"
    activations = "activations"


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    float32 = "float32"
    float16 = "float16"


@app.callback()
def main_options(version: bool = version_option("sqconvert (sqllm)")) -> None:
    pass


def _keep_freed_memory() -> None:
    """Serve large arrays from glibc's heap instead of fresh mmaps. The converter allocates and
    frees arrays of hundreds of MB per tensor; from mmap each one is page-faulted in again, which
    on some virtual machines costs more system time than the quantization itself. Peak RSS is
    unchanged in kind (freed memory is reused, not returned). A no-op where libc is not glibc."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    mallopt(M_MMAP_MAX, 0)
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)


def _fail(e: Exception) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1)


def _parse_bits_for(items: list[str]) -> list[tuple[str, int]]:
    out = []
    for item in items:
        pattern, sep, bits = item.rpartition("=")
        if not sep or not pattern or not bits.isdigit():
            raise typer.BadParameter(f"expected PATTERN=BITS, got {item!r}", param_hint="--bits-for")
        out.append((pattern, int(bits)))
    return out


@app.command()
def convert(
    model: Path = typer.Argument(..., help="A .safetensors file, a Hugging Face model folder, a pytorch_model*.bin, "
                                 "a GGUF file, or a hub id (org/name[@revision]) in the local Hugging Face cache."),
    output: Path = typer.Option(..., "-o", "--output", help="The .sqf file to write."),
    method: Method = typer.Option(Method.squeezellm, help="squeezellm (Fisher-weighted k-means), kmeans (unweighted) or rtn."),
    bits: int = typer.Option(3, help="Bits per weight of the dense part: 2, 3, 4, 5, 6 or 8."),
    target_bpw: Optional[float] = typer.Option(None, help="Whole-file bits per weight: choose each matrix's width and "
                                               "sparse fraction by its Fisher-weighted error so that the file fits "
                                               "(needs a Fisher covering every quantized matrix; --bits-for pins widths)."),
    fisher: Optional[Path] = typer.Option(None, help="Fisher diagonal (safetensors with the model's tensor names). "
                                          "Default: fisher.safetensors next to the model, if present."),
    outliers: Optional[float] = typer.Option(None, help="Percent of each matrix kept exactly by magnitude "
                                             "(default 0.40 for k-means methods, 0 for rtn)."),
    sensitive: Optional[float] = typer.Option(None, help="Percent kept exactly by Fisher value (default 0.05 with a Fisher file)."),
    group_size: Optional[int] = typer.Option(None, help="rtn: columns per group (a multiple of 32); default one LUT per row."),
    sym: bool = typer.Option(False, "--sym/--asym", help="rtn: symmetric or asymmetric (default) grid."),
    clip_search: bool = typer.Option(False, help="rtn: grid-search the clipping ratio per row/group."),
    kmeans: KMeans = typer.Option(KMeans.fast, help="fast (Lloyd on sorted rows) or exact (optimal, dynamic programming)."),
    rounding: Rounding = typer.Option(Rounding.gptq, help="k-means codes: gptq (column by column with error feedback from the "
                                 "input statistics the Fisher file carries) or nearest (nearest level)."),
    damp: Optional[float] = typer.Option(None, help="gptq rounding: damping added to the input statistics' diagonal, "
                                         "as a fraction of its mean; higher trusts the calibration text less "
                                         "(default 0.1)."),
    keep: List[str] = typer.Option([], help="Glob of tensor names to keep unquantized (repeatable)."),
    bits_for: List[str] = typer.Option([], help="PATTERN=BITS: bit width for tensors matching a glob (repeatable)."),
    embed_bits: Optional[int] = typer.Option(None, help="Bits of the token embedding and output head (default: the next "
                                             "width above --bits). --keep model.embed_tokens.weight keeps it in fp16."),
    threads: Optional[int] = typer.Option(None, help="Worker threads (default: all cores)."),
    seed: int = typer.Option(0, help="Seed of the k-means initialisation."),
    force: bool = typer.Option(False, help="Overwrite an existing output file."),
    quiet: bool = typer.Option(False, help="No progress bar and no summary."),
    kv_bits: Optional[int] = typer.Option(None, help="Calibrate a KVQuant cache (2, 3 or 4 bits by default at run time; "
                                          "centroids for all three are stored). Needs --calib-data, torch and transformers."),
    kv_outliers: float = typer.Option(1.0, help="KVQuant: percent of each key channel / value vector kept exactly."),
    kv_sink: int = typer.Option(1, help="KVQuant: first positions kept in fp16 (the attention sink)."),
    calib_data: Optional[Path] = typer.Option(None, help="KVQuant: calibration text file."),
    calib_samples: int = typer.Option(16, help="KVQuant: calibration sequences."),
    calib_seq_len: int = typer.Option(512, help="KVQuant: tokens per calibration sequence."),
) -> None:
    """Quantize MODEL into OUTPUT (.sqf)."""
    from .convert import KvOptions, convert as run_convert

    _keep_freed_memory()
    from .quantize import Recipe

    if threads is not None:
        if threads < 1:
            raise typer.BadParameter("must be >= 1", param_hint="--threads")
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    recipe = Recipe(method=method.value, bits=bits, outliers=outliers, sensitive=sensitive, group_size=group_size,
                    sym=sym, clip_search=clip_search, kmeans=kmeans.value, rounding=rounding.value, seed=seed, keep=list(keep),
                    bits_for=_parse_bits_for(bits_for), embed_bits=embed_bits, target_bpw=target_bpw,
                    **({} if damp is None else {"damp": damp}))
    kv = None
    if kv_bits is not None:
        if calib_data is None:
            raise typer.BadParameter("--kv-bits needs --calib-data TEXT_FILE", param_hint="--kv-bits")
        if calib_samples < 1:
            raise typer.BadParameter("must be >= 1", param_hint="--calib-samples")
        kv = KvOptions(kv_bits, calib_data, kv_outliers, kv_sink, calib_samples, calib_seq_len)
    elif calib_data is not None:
        raise typer.BadParameter("--calib-data is only used with --kv-bits", param_hint="--calib-data")
    try:
        s = run_convert(model, output, recipe, fisher=fisher, overwrite=force, progress=not quiet, kv=kv)
    except (SqllmError, OSError) as e:
        _fail(e)
    if not quiet and s.recipe["plan"]:
        typer.echo(_plan_summary(s.recipe), err=True)
    if not quiet and s.output_error[0] > 0:
        typer.echo(f"GPTQ-style rounding: layer-output error {s.output_error[1] / s.output_error[0]:.3f}x that of "
                   f"nearest rounding", err=True)
    if not quiet:
        widths = (f"a {s.recipe['target_bpw']} bits/weight budget" if s.recipe.get("target_bpw")
                  else f"{s.recipe['bits']}-bit")
        typer.echo(f"wrote {s.output}: {s.n_linears} linears ({s.n_weights} weights) with {s.recipe['method']} "
                   f"{widths}, {s.n_sparse} sparse weights, objective {s.objective:.6g}, fisher: {s.fisher}, "
                   f"in {s.seconds:.1f} s",
                   err=True)


def _plan_summary(recipe: dict) -> str:
    """The allocation as counts of matrices per choice, with the predicted error."""
    from collections import Counter

    plan = recipe["plan"]
    counts = Counter((b, o + s) for b, o, s, _ in plan.values())
    lines = [f"allocation for --target-bpw {recipe['target_bpw']} ({recipe['budget_bytes']} bytes), "
             f"predicted Fisher-weighted error {sum(p[3] for p in plan.values()):.6g}:"]
    for (b, sparse), n in sorted(counts.items()):
        lines.append(f"  {n:4d} matrices at {b} bits + {sparse:.2f}% sparse")
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name in plan:
            b, o, s_, err = plan[name]
            lines.append(f"  {name}: {b} bits + {o + s_:.2f}% sparse")
    return "\n".join(lines)


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="An .sqf file."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show the architecture, tokenizer, recipe and a size breakdown of an .sqf file."""
    from sqllm.formats.inspect import format_report, inspect_file

    try:
        info = inspect_file(file)
    except (SqllmError, OSError) as e:
        _fail(e)
    typer.echo(json.dumps(info, indent=2) if as_json else format_report(info))


@app.command()
def dequant(
    file: Path = typer.Argument(..., help="An .sqf file."),
    output: Path = typer.Option(..., "-o", "--output", help="The Hugging Face folder to write."),
    dtype: DType = typer.Option(DType.float32, help="Precision of the weights written."),
    force: bool = typer.Option(False, help="Replace an existing output folder."),
) -> None:
    """Write the dequantized weights as a Hugging Face checkpoint (loadable by transformers)."""
    from .dequant import dequantize_to_hf

    try:
        out = dequantize_to_hf(file, output, dtype=dtype.value, overwrite=force)
    except (SqllmError, OSError) as e:
        _fail(e)
    typer.echo(f"wrote {out}", err=True)


@app.command()
def fisher(
    model: Path = typer.Argument(..., help="A Hugging Face model folder, or a hub id in the local Hugging Face cache."),
    data: Path = typer.Option(..., help="Calibration text (UTF-8); use training text, never the evaluation text."),
    output: Path = typer.Option(..., "-o", "--output", help="The fisher.safetensors to write."),
    samples: Optional[int] = typer.Option(None, help="Calibration sequences (default: as many as the text holds)."),
    seq_len: Optional[int] = typer.Option(None, help="Tokens per sequence (default min(512, context))."),
    fisher_kind: FisherKind = typer.Option(FisherKind.gradients, help="gradients (squared gradients) or activations "
                                           "(E[x^2] per column)."),
    device: Device = typer.Option(Device.cpu, help="Where torch runs the model."),
    checkpointing: bool = typer.Option(False, help="Recompute activations in the backward pass (less memory)."),
    hessian: bool = typer.Option(True, "--hessian/--no-hessian", help="Also store E[x x^T] of every linear input "
                                 "(for GPTQ-style rounding; a [cols, cols] fp32 matrix per distinct input)."),
    force: bool = typer.Option(False, help="Overwrite an existing output file."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Compute the diagonal Fisher information of every decoder linear weight, the embedding and the head."""
    from .fisher import compute_fisher

    try:
        meta = compute_fisher(model, data, output, samples=samples, seq_len=seq_len, kind=fisher_kind.value,
                              device=device.value, checkpointing=checkpointing, hessians=hessian, overwrite=force,
                              progress=not quiet)
    except (SqllmError, OSError) as e:
        _fail(e)
    if not quiet:
        typer.echo(f"wrote {output}: {meta['kind']} over {meta['samples']} x {meta['seq_len']} tokens of {meta['data_file']}", err=True)


@app.command("eval")
def evaluate(
    hf_dir: Path = typer.Argument(..., help="A Hugging Face model folder (for example from `sqconvert dequant`)."),
    data: Path = typer.Option(..., help="A UTF-8 text file."),
    ctx: int = typer.Option(512, help="Tokens per window."),
    max_windows: Optional[int] = typer.Option(None, help="Score only the first N windows."),
    device: Device = typer.Option(Device.cpu, help="Where torch runs the model."),
) -> None:
    """Perplexity of a Hugging Face model under torch, with the same windows as `sqrun --perplexity`."""
    from .evaluate import reference_perplexity

    try:
        text = data.read_text(encoding="utf-8")
        value = reference_perplexity(hf_dir, text, ctx=ctx, max_windows=max_windows, device=device.value)
    except (SqllmError, OSError, UnicodeDecodeError) as e:
        _fail(e)
    typer.echo(f"perplexity: {value:.4f}")


def _looks_like_a_subcommand(word: str) -> bool:
    """A bare word that names no file: not a path, a hub id (org/name) or a checkpoint file name."""
    return word.isidentifier() and not Path(word).exists()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = sys.argv[1:]
    # `sqconvert MODEL -o OUT` is the main job: route it to the convert subcommand, unless the
    # word is no model at all but a mistyped subcommand.
    if args and args[0] not in SUBCOMMANDS and not args[0].startswith("-"):
        if _looks_like_a_subcommand(args[0]):
            close = difflib.get_close_matches(args[0], SUBCOMMANDS, n=1)
            hint = f"did you mean `sqconvert {close[0]}`?" if close else (
                "`sqconvert --version` prints the version" if args[0] == "version" else
                f"the subcommands are {', '.join(SUBCOMMANDS)}")
            typer.echo(f"error: {args[0]!r} is neither a subcommand nor a model path or hub id; {hint}", err=True)
            sys.exit(2)
        args = ["convert", *args]
    with sticky_sigint():
        app(args=args, prog_name="sqconvert")
