"""External data of an ONNX model: where it may live, and what to do when it is absent.

A model's external data (``data_location == EXTERNAL``) must be a file inside the model's
folder, as onnx's checker requires: an absolute location, a ``..`` that leaves the folder,
or a symlink that resolves outside it is refused before anything is opened.  When every
referenced file is there the data is loaded as usual; when one is absent the tensors in the
missing files stay unread (their dims and types are still in the model, which is all the
cost models need) and the Workload says the weights were not read.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
from onnx import TensorProto
from onnx.external_data_helper import load_external_data_for_tensor

from hwmodels.errors import CodesignError

_INSIDE = "external data must be a file inside the model's folder"


def all_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, TensorProto]]:
    """(name, tensor) for every TensorProto of the model: initializers, sparse initializers and
    node attribute tensors (an unnamed one is named by its node's first output), in the main
    graph, its subgraphs and the model's functions."""
    yield from _graph_tensors(model.graph)
    for fn in model.functions:
        yield from _node_tensors(fn.node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, TensorProto]]:
    for t in graph.initializer:
        yield t.name, t
    for sp in graph.sparse_initializer:
        yield sp.values.name, sp.values
        yield sp.indices.name or sp.values.name, sp.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes) -> Iterator[tuple[str, TensorProto]]:
    for node in nodes:
        label = node.output[0] if node.output else node.name
        for a in node.attribute:
            tensors = ([a.t] if a.HasField("t") else []) + list(a.tensors)
            sparse = ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors)
            tensors += [x for sp in sparse for x in (sp.values, sp.indices)]
            for t in tensors:
                yield t.name or label, t
            if a.HasField("g"):
                yield from _graph_tensors(a.g)
            for g in a.graphs:
                yield from _graph_tensors(g)


def is_external(t: TensorProto) -> bool:
    return t.HasField("data_location") and t.data_location == TensorProto.EXTERNAL


def location(t: TensorProto) -> str:
    return next((e.value for e in t.external_data if e.key == "location"), "")


def unread_tensors(model: onnx.ModelProto) -> dict[str, str]:
    """Tensors whose external data has not been loaded: name -> location."""
    return {name: location(t) for name, t in all_tensors(model) if is_external(t)}


def load_external(model: onnx.ModelProto, path: Path) -> None:
    """Check every external location of ``model`` (read from ``path``) and load what is there.

    Raises CodesignError (one line) for a location outside the model's folder, before any
    external file is opened.  Tensors whose file is absent are left external (unread).
    """
    folder = path.parent
    real_folder = folder.resolve()
    present: list[tuple[str, TensorProto]] = []
    for name, t in all_tensors(model):
        if not is_external(t):
            continue
        loc = location(t)
        full = _checked(path, real_folder, name, loc)
        if full.is_file():
            present.append((name, t))
        elif full.exists():
            raise CodesignError(f"{path}: tensor {name!r}: external data location {loc!r} is not a regular file")
    for name, t in present:     # only once every location has been checked
        try:
            load_external_data_for_tensor(t, str(folder))
        except Exception as e:  # bounds past the file's end, an unreadable file, onnx's own checks
            msg = str(e).strip().splitlines()
            raise CodesignError(f"{path}: cannot read external data of tensor {name!r} from {location(t)!r} "
                                f"({type(e).__name__}: {msg[0][:300] if msg else ''})") from None


def _checked(path: Path, real_folder: Path, name: str, loc: str) -> Path:
    """The file ``loc`` names, refused unless it lies inside the model's folder (symlinks followed)."""
    def refuse(why: str) -> CodesignError:
        return CodesignError(f"{path}: tensor {name!r}: external data location {loc!r} {why}; {_INSIDE}")

    if not loc:
        raise refuse("is empty")
    if "\x00" in loc:
        raise refuse("contains a NUL byte")
    posix = loc.replace("\\", "/")
    if PurePosixPath(posix).is_absolute() or PureWindowsPath(loc).drive or PureWindowsPath(loc).is_absolute():
        raise refuse("is an absolute path")
    if ".." in PurePosixPath(os.path.normpath(posix)).parts:
        raise refuse("leaves the model's folder")
    full = real_folder / posix
    try:
        resolved = full.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        raise refuse(f"cannot be resolved ({type(e).__name__})") from None
    if not resolved.is_relative_to(real_folder):
        raise refuse(f"resolves to {str(resolved)!r}, outside the folder")
    if full.is_symlink():  # onnx refuses to open one, wherever it points
        raise refuse(f"is a symbolic link (to {os.readlink(full)!r})")
    return resolved


def absent_files(unread: dict[str, str]) -> str:
    files = sorted({loc or "?" for loc in unread.values()})
    return ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")


def weights_note(unread: dict[str, str]) -> str:
    """The Workload's note for a model read from its shapes only."""
    return (f"weights not read: {len(unread)} external tensor(s), file(s) {absent_files(unread)} absent; "
            f"costs from shapes only")


def needs_weights(path: Path, unread: dict[str, str]) -> CodesignError:
    return CodesignError(f"{path}: this step needs the model's weights, but {len(unread)} external tensor(s) are in "
                         f"absent file(s) {absent_files(unread)} (analyze, check, simulate and dse, with the ONNX frontend, "
                         f"work from the shapes alone)")
