"""The ``codesign`` command line: one typer app, one module per command.

Bad input raises ``CodesignError`` anywhere below; ``main`` prints it as one line on stderr
and exits with code 2.  Set CODESIGN_DEBUG=1 to see tracebacks of unexpected errors.
"""
from __future__ import annotations

import os
import sys

import typer
from typer.exceptions import TyperException

from codesign.errors import CodesignError

app = typer.Typer(
    name="codesign",
    help="Hardware-aware co-design: analyze, simulate and search networks x bit-widths x accelerators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from codesign.cli import analyze, targets_cmd

    app.command("analyze")(analyze.analyze)
    app.command("targets")(targets_cmd.targets)
    _optional("codesign.cli.simulate", "simulate", "simulate")
    _optional("codesign.cli.dse", "dse", "dse")
    _optional("codesign.cli.profile", "profile", "profile")
    _optional("codesign.cli.calibrate", "calibrate", "calibrate")
    _optional("codesign.cli.check", "check", "check")
    _optional("codesign.cli.search", "search", "search")
    _optional("codesign.cli.train", "train_supernet", "train-supernet")
    _optional("codesign.cli.train", "evaluate", "evaluate")


def _optional(module: str, attr: str, name: str) -> None:
    """Register commands whose modules are being built in parallel; absent ones are skipped."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return
        raise
    if hasattr(mod, attr):
        app.command(name)(getattr(mod, attr))


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False)   # returns the code of a raised typer.Exit
        if isinstance(rc, int):
            return rc
    except CodesignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TyperException as e:  # usage errors: missing/unknown options, bad values
        ctx = getattr(e, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        print(f"error: {' '.join(message.split())}{hint}", file=sys.stderr)
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
        return 1
    return 0


def entry() -> None:
    sys.exit(main())
