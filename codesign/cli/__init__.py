"""The ``codesign`` command line: one typer app, one module per command.

Exit codes: 0 success; 1 only for ``codesign check``'s "over budget"; 2 bad input (a
``CodesignError`` raised anywhere below, printed as one line on stderr); 3 an internal error (a
bug, also one line; CODESIGN_DEBUG=1 shows the traceback); 130 interrupted.
"""
from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from hwmodels.errors import CodesignError

app = typer.Typer(
    name="codesign",
    help="Hardware-aware co-design: analyze, simulate and search networks x bit-widths x accelerators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    """``codesign --version``: the version and what plug-ins added (read from metadata, nothing loaded)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from hwmodels.plugins import installed_plugins

    try:
        typer.echo(f"codesign {version('codesign')}")
    except PackageNotFoundError:
        typer.echo("codesign (not installed)")
    plugins = installed_plugins()
    if not plugins:
        typer.echo("plug-ins: none")
    for p in plugins:
        typer.echo(f"plug-in {p.kind} {p.name!r} from {p.distribution} ({p.value})")
    raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and installed plug-ins")] = False) -> None:
    """Hardware-aware co-design: analyze, simulate and search networks x bit-widths x accelerators."""


def _register() -> None:
    """Every command module imports only light modules at its top: torch and TVM load inside commands."""
    from codesign.cli import analyze, calibrate, check, dse, profile, quantize_cmd, report_cmd, search, simulate, targets_cmd, train

    app.command("analyze")(analyze.analyze)
    app.command("check")(check.check)
    app.command("targets")(targets_cmd.targets)
    app.command("calibrate")(calibrate.calibrate)
    app.command("simulate")(simulate.simulate)
    app.command("dse")(dse.dse)
    app.command("profile")(profile.profile)
    app.command("train-supernet")(train.train_supernet)
    app.command("evaluate")(train.evaluate)
    app.command("search")(search.search)
    app.command("report")(report_cmd.report)
    app.command("quantize")(quantize_cmd.quantize)


_register()


def _one_line(text: str, limit: int = 500) -> str:
    """A message as one line of at most ``limit`` characters (a long value quoted in it is cut)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False)   # returns the code of a raised typer.Exit
        if isinstance(rc, int):
            return rc
    except CodesignError as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except TyperException as e:  # usage errors: missing/unknown options, bad values
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        print(f"error: {' '.join(message.split()).replace('Value error, ', '')}{hint}", file=sys.stderr)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("CODESIGN_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {' '.join(str(e).split())[:400]} "
              f"(rerun with CODESIGN_DEBUG=1 for a traceback and please report it)", file=sys.stderr)
        return 3                      # not 1: a CI gate reads 1 as "over budget"
    return 0


def entry() -> None:
    sys.exit(main())
