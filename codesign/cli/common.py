"""What every command shares: the same flag means the same thing everywhere, and every file a
command writes goes through ``codesign.files.write_text`` (an unwritable path is a one-line exit-2 error,
never exit 1, which the CI gate uses for "over budget").

Only light imports here: ``codesign --help`` and ``--version`` must not load torch or TVM.
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from codesign.files import write_text
from hwmodels.errors import CodesignError

TARGET_HELP = "target name (see `codesign targets`) or a path to a target .toml"

TargetOpt = Annotated[str, typer.Option("--target", "-t", help=TARGET_HELP)]
JsonOpt = Annotated[Optional[str], typer.Option("--json", help="write the result as JSON to PATH, or - for stdout")]
BitsOpt = Annotated[Optional[str], typer.Option(
    "--bits", help="fp / w8a8 / w4a8 ... for every layer, or a per-layer .json/.toml map "
                   "{default = \"w8a8\", layers = {conv1 = \"w4a8\"}}")]
CostModelOpt = Annotated[str, typer.Option(
    "--cost-model", help="auto (what the target names, else systolic for templates, roofline otherwise) "
                         "or any registered cost model (see `codesign --version`)")]
InputShapeOpt = Annotated[Optional[list[str]], typer.Option(
    "--input-shape", help="NAME=1x3x224x224 for an ONNX input with dynamic dimensions (repeatable)")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="output folder")]


class Frontend(str, Enum):
    onnx = "onnx"
    tvm = "tvm"


class Dataflow(str, Enum):
    ws = "ws"
    os = "os"
    is_ = "is"


class Backend(str, Enum):
    onnxruntime = "onnxruntime"
    tvm = "tvm"


class OptLevel(str, Enum):
    disable = "disable"
    basic = "basic"
    extended = "extended"
    all = "all"


class Strategy(str, Enum):
    joint = "joint"
    sequential = "sequential"
    both = "both"          # joint and sequential side by side, the same budget each
    random = "random"      # the floor: random candidates of the joint space
    all = "all"            # joint, sequential and the random floor, the same budget each


def emit_json(payload: Any, dest: str | None, what: str = "--json") -> bool:
    """``--json -`` prints to stdout, ``--json PATH`` writes the file; True when printed to stdout."""
    if dest is None:
        return False
    text = json.dumps(payload, indent=2, default=float) + "\n"
    if dest == "-":
        typer.echo(text, nl=False)
        return True
    write_text(dest, text, what)
    return False


def ensure_out_dir(path: Path) -> Path:
    """Create an output folder; a file in the way or no permission -> one-line CodesignError."""
    if path.exists() and not path.is_dir():
        raise CodesignError(f"--out {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CodesignError(f"cannot create --out {path}: {e.strerror or e}") from None
    return path
