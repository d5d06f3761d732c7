"""torch -> ONNX, so that any model from any space reaches the cost models through the ONNX frontend.

Uses the TorchScript exporter (``dynamo=False``, opset 17): it writes one self-contained file,
where the dynamo exporter writes weights to a side ``.onnx.data`` file.
"""
from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from codesign.errors import CodesignError

OPSET = 17


def export_onnx(module: nn.Module, example_input: torch.Tensor, path: str | Path, space_name: str = "model",
                check: bool = True) -> Path:
    """Export ``module`` (eval mode, batch dimension dynamic) to ``path``; failures -> one-line CodesignError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(module).eval()
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_fds():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example_input,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        if check:
            import onnx

            onnx.checker.check_model(onnx.load(str(path)))
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CodesignError(f"model from space {space_name} failed to export: {type(exc).__name__}: {msg}") from None
    return path


@contextlib.contextmanager
def _quiet_fds():
    """Silence file descriptors 1 and 2: on failure the exporter logs its whole IR graph from C++."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy_fd in zip((1, 2), saved):
                os.dup2(copy_fd, fd)
                os.close(copy_fd)


def example_input(module: nn.Module, in_channels: int, resolution: int | None = None) -> torch.Tensor:
    """A one-image input at the model's own resolution (``input_resolution``) or ``resolution``."""
    r = getattr(module, "input_resolution", None) or resolution
    if r is None:
        raise CodesignError("cannot tell the model's input resolution: pass resolution=")
    return torch.zeros(1, in_channels, int(r), int(r))


def to_workload(module: nn.Module, example: torch.Tensor, space_name: str = "model", name: str | None = None):
    """Export to a temporary ONNX file and import it with the ONNX frontend: the one path into the cost models."""
    from codesign.frontends.onnx_frontend import load_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example, Path(tmp) / "model.onnx", space_name)
        return load_onnx(path, input_shapes={"input": tuple(example.shape)}, name=name or space_name)
