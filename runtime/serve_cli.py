"""`sqllm`: the umbrella command. `sqllm serve MODEL.sqf` runs the OpenAI-compatible server;
converting and running stay `sqconvert` and `sqrun`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sqllm.cli import version_option
from sqllm.errors import SqllmError

app = typer.Typer(add_completion=True, pretty_exceptions_enable=False, no_args_is_help=True,
                  rich_markup_mode=None, help="sqllm: serve an .sqf model (sqconvert converts, sqrun runs).")


@app.callback()
def main_options(version: bool = version_option("sqllm")) -> None:
    pass


@app.command()
def serve(
    file: Path = typer.Argument(..., help="An .sqf model.", exists=True, dir_okay=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    parallel: int = typer.Option(1, "--parallel", "-np", min=1, help="Slots: requests generated at once "
                                 "(each with its own context); more wait in a queue."),
    ctx_size: int = typer.Option(0, "--ctx-size", "-c", min=0, help="Context length per slot; 0 = the model's."),
    threads: int = typer.Option(0, "--threads", "-t", min=0, help="Threads per slot; 0 = the cores divided among the slots."),
    name: Optional[str] = typer.Option(None, "--model-name", help="The model's id in the API (default: the file name "
                                       "without .sqf)."),
    int8: bool = typer.Option(False, "--int8", help="Quantized linears with int8 activations (faster, approximate)."),
    exact: bool = typer.Option(False, "--exact", help="Every product in fp32 (by default the quantized linears run "
                               "with 14-bit integer activations where the CPU has the kernels)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve FILE over HTTP with the OpenAI API: /v1/chat/completions, /v1/completions, /v1/models, /health."""
    from .server import serve as run_server

    if int8 and exact:
        raise typer.BadParameter("give at most one of --int8 and --exact", param_hint="--exact")
    try:
        run_server(file, host=host, port=port, parallel=parallel, ctx_size=ctx_size, threads=threads, model_name=name,
                   log_level=log_level, int8=int8, exact=exact)
    except (SqllmError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1)


def main() -> None:
    app(prog_name="sqllm")
if __name__ == "__main__":
    main()
