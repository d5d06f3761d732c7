"""Python entries: a torch module (exported through codesign's torch frontend), or a search
config with a ``[model]`` section, into the same flow as ``codesign quantize``.

    from codesign.quantize.api import quantize_module
    summary = quantize_module(net, torch.zeros(1, 1, 8, 8), data="val.npz", target="bitfusion", out="q")
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from codesign.files import write_bytes, write_text
from codesign.quantize.pipeline import Progress, QuantizeOptions, run


def quantize_onnx(model: str | Path, data: str, target: str, out: str | Path, progress: Progress | None = None,
                  **options) -> dict:
    """``codesign quantize`` from Python; ``options`` are ``QuantizeOptions``' fields (bits, trials, ...)."""
    return run(QuantizeOptions(model=Path(model), data=str(data), target=target, out=Path(out), **options), progress)


def quantize_module(module, example_input, data: str, target: str, out: str | Path, *, dynamo: bool = False,
                    progress: Progress | None = None, **options) -> dict:
    """Export ``module`` (eval mode, dynamic batch) through ``codesign.frontends.torch_frontend`` and
    quantize the ONNX file; the float export is kept as DIR/model.onnx once the run has succeeded."""
    from codesign.frontends.torch_frontend import export_onnx

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example_input, Path(tmp) / "model.onnx", dynamo=dynamo, dynamic_batch=True,
                           check=True, what=type(module).__name__)
        summary = quantize_onnx(path, data, target, out, progress, **options)
        write_bytes(out / "model.onnx", path.read_bytes(), "--out")
    summary["model"] = str(out / "model.onnx")
    write_text(out / "quantize.json", json.dumps(summary, indent=2, default=float) + "\n", "--out")
    return summary


def quantize_from_config(cfg, out: str | Path, resume: bool = False,
                         progress: Progress | None = None) -> dict:
    """A search config whose ``[model]`` section names a trained model: quantize it with the config's
    data, target, bit choices, budget and seed (what ``codesign search CONFIG`` runs then)."""
    from codesign.search.config import QUANTIZE_OBJECTIVES

    m = cfg.model
    objective = m.objective or next(QUANTIZE_OBJECTIVES[o] for o in cfg.objectives if o in QUANTIZE_OBJECTIVES)
    # paths as every other path of a search config: relative to the folder the command runs in
    return quantize_onnx(Path(m.onnx), cfg.data.source, cfg.target.name, out, progress,
                         bits=tuple(sorted(set(cfg.quantization.bits))), max_accuracy_drop=m.max_accuracy_drop,
                         objective=objective, trials=cfg.budget.trials, minutes=cfg.budget.minutes, seed=cfg.seed,
                         resume=resume, layers=m.layers, search_hardware=cfg.target.search_hardware)
