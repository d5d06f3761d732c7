"""torch.nn.Module -> ONNX -> Workload: the one route from torch into the cost models.

The torch route goes through ONNX on purpose: the deployable artifact is the ONNX file, so
the Workload is built from exactly what will be deployed.  The TorchScript-based exporter
(``dynamo=False``, opset 17) is the default because it writes one self-contained file; the
dynamo exporter (needs onnxscript) writes weights beside it and is available with ``dynamo=True``.
"""
from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import warnings
from pathlib import Path

from codesign.frontends.onnx_frontend import load_onnx
from hwmodels.errors import CodesignError
from hwmodels.workload import Workload

OPSET = 17


def export_onnx(module, example_inputs, path: str | Path, *, dynamo: bool = False, opset: int = OPSET,
                input_names: list[str] | None = None, dynamic_batch: bool = False, check: bool = False,
                what: str | None = None) -> Path:
    """Export ``module`` (a copy, in eval mode) to ONNX at ``path``; failures -> one-line CodesignError.

    Shapes are static, taken from ``example_inputs``, unless ``dynamic_batch`` (the batch axis of
    the input and of the ``logits`` output may vary: what a deployed classifier needs).  ``check``
    runs the ONNX checker on the result; ``what`` names the model in errors.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    names = input_names or [f"input{i}" if len(args) > 1 else "input" for i in range(len(args))]
    net = copy.deepcopy(module).eval()
    kwargs = {"input_names": names}
    if dynamic_batch:
        kwargs.update(output_names=["logits"], dynamic_axes={names[0]: {0: "batch"}, "logits": {0: "batch"}})
    try:
        with warnings.catch_warnings(), _grad_mode(net), _quiet_fds():
            warnings.simplefilter("ignore")
            if dynamo:
                torch.onnx.export(net, args, str(path), dynamo=True, external_data=False, **kwargs)
            else:
                torch.onnx.export(net, args, str(path), dynamo=False, opset_version=opset,
                                  do_constant_folding=True, **kwargs)
        if check:
            import onnx

            onnx.checker.check_model(onnx.load(str(path)))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CodesignError(f"{what or type(module).__name__} failed to export to ONNX: "
                            f"{type(e).__name__}: {first[:300]}") from None
    return path


def load_torch(module, example_inputs, *, name: str | None = None, dynamo: bool = False,
               keep_onnx: str | Path | None = None) -> Workload:
    """Export ``module`` to ONNX and import it; ``keep_onnx`` keeps the file at that path."""
    name = name or type(module).__name__
    if keep_onnx is not None:
        return load_onnx(export_onnx(module, example_inputs, keep_onnx, dynamo=dynamo, what=name), name=name)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example_inputs, Path(tmp) / "model.onnx", dynamo=dynamo, what=name)
        return load_onnx(path, name=name)


def example_input(module, in_channels: int, resolution: int | None = None):
    """A one-image input at the model's own resolution (``input_resolution``) or ``resolution``."""
    import torch

    r = getattr(module, "input_resolution", None) or resolution
    if r is None:
        raise CodesignError("cannot tell the model's input resolution: pass resolution=")
    return torch.zeros(1, in_channels, int(r), int(r))


def _grad_mode(net):
    """No grad while exporting, except for attention: without grad, nn.TransformerEncoderLayer and
    nn.MultiheadAttention take their fused inference fast path (aten::_transformer_encoder_layer_fwd,
    _native_multi_head_attention), which neither exporter can write; with grad they export as ops."""
    import torch

    attention = (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer, torch.nn.MultiheadAttention)
    return torch.enable_grad() if any(isinstance(m, attention) for m in net.modules()) else torch.no_grad()


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
