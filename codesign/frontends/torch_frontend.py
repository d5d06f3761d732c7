"""torch.nn.Module -> ONNX -> Workload.

The torch route goes through ONNX on purpose: the deployable artifact is the ONNX file, so
the Workload is built from exactly what will be deployed.  The TorchScript-based exporter
(``dynamo=False``, opset 17) is the default because it writes one self-contained file; the
dynamo exporter (needs onnxscript) is available with ``dynamo=True``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from codesign.errors import CodesignError
from codesign.frontends.onnx_frontend import load_onnx
from codesign.workload import Workload


def export_torch(module, example_inputs, path: str | Path, *, dynamo: bool = False, opset: int = 17,
                 input_names: list[str] | None = None) -> Path:
    """Export ``module`` to ONNX at ``path`` with static shapes taken from ``example_inputs``."""
    import torch

    path = Path(path)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    names = input_names or [f"input{i}" if len(args) > 1 else "input" for i in range(len(args))]
    module = module.eval()
    try:
        with torch.no_grad():
            if dynamo:
                torch.onnx.export(module, args, str(path), dynamo=True, input_names=names,
                                  external_data=False)
            else:
                torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                                  input_names=names, do_constant_folding=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CodesignError(f"torch.onnx.export failed for {type(module).__name__}: {first[:300]}") from None
    return path


def load_torch(module, example_inputs, *, name: str | None = None, dynamo: bool = False,
               keep_onnx: str | Path | None = None) -> Workload:
    """Export ``module`` to ONNX and import it; ``keep_onnx`` keeps the file at that path."""
    name = name or type(module).__name__
    if keep_onnx is not None:
        path = export_torch(module, example_inputs, keep_onnx, dynamo=dynamo)
        return load_onnx(path, name=name)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_torch(module, example_inputs, Path(tmp) / f"{name}.onnx", dynamo=dynamo)
        return load_onnx(path, name=name)
