"""What the command lines (sqconvert, sqrun, sqllm) share."""

from __future__ import annotations

import typer


def version_option(program: str):
    """A `--version` option that prints `program` and sqllm's version, then exits."""

    def show(value: bool) -> None:
        if value:
            from sqllm import __version__

            typer.echo(f"{program} {__version__}")
            raise typer.Exit()

    return typer.Option(False, "--version", callback=show, is_eager=True, help="Print the version and exit.")
