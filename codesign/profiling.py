"""What profiling needs from files and frontends: the blocks ``codesign profile`` and the
benchmark measure, and the overhead fit on networks read from disk.

``hwmodels`` measures kernels through a backend and never opens a model file; this module
reads the ONNX networks (``codesign.frontends``) and turns them, and the random kernel
samples, into the blocks the chosen backend measures.
"""
from __future__ import annotations

from pathlib import Path

from hwmodels.kernel_backend import Block, KernelBackend
from hwmodels.kernel_sampling import random_blocks


def profile_blocks(backend: KernelBackend, models: list[Path] | None = None, samples: int = 400, seed: int = 0,
                   workloads: list | None = None) -> list[Block]:
    """The blocks that make every kernel of ``models`` (ONNX files) and ``workloads`` an exact hit,
    plus ``samples`` random kernel configurations (coverage for the regressors)."""
    from codesign.frontends.onnx_frontend import load_onnx, workload_from_model

    nets = [load_onnx(p) for p in (models or [])] + list(workloads or [])
    rnd = random_blocks(samples, seed) if samples else []
    if backend.name == "onnxruntime":           # random samples are ONNX one-unit models already
        return backend.blocks(nets) + rnd
    return backend.blocks(nets + [workload_from_model(b.model, name=b.key) for b in rnd])


def fit_overhead_on_models(model, paths: list[Path], threads: int = 1, min_nets: int = 3) -> dict | None:
    """``hwmodels.measured.fit_network_overhead`` on ONNX files (calibration networks)."""
    from codesign.frontends.onnx_frontend import load_onnx
    from hwmodels.measured import fit_network_overhead

    return fit_network_overhead(model, [load_onnx(p) for p in paths], threads, min_nets)
