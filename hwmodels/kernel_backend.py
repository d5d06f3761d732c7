"""The kernel-backend interface of the measured-kernel cost model: one module per runtime.

A backend answers, for one runtime on this machine:

* ``compile(workload)``: which runtime kernels the Workload becomes (the runtime's own fusion
  and layout decisions), each with a signature (its exact-hit key in the ``KernelStore``), a
  regressor class and shape features, and which layers it covers;
* ``blocks(workloads)``: small units to measure that, between them, contain those kernels;
* ``measure_block(block, skip)``: the kernels of one unit, timed (those in ``skip`` -- already
  measured quietly -- left out);
* ``measure_overhead(gate)``: what running a network costs beyond its kernels
  (``per_run_us + per_kernel_us * kernels``);
* ``measure_network(compiled, gate)``: the whole network timed directly (MnasNet-style), for
  when measuring is cheaper than predicting; ``measure_kernels(compiled)`` times each of its
  kernels in place (the per-layer split of a direct measurement when the store has none).

``MeasuredModel`` and the profiling driver (``hwmodels.kernel_profiling``) only talk to this
interface; ``hwmodels.ort_backend`` (onnxruntime) and ``hwmodels.tvm_backend`` (TVM, llvm)
implement it.  Store rows are keyed by ``(backend.name, machine, threads, backend.variant)``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwmodels.errors import CodesignError
from hwmodels.workload import Layer, Workload


@dataclass
class Kernel:
    """One kernel the runtime executes for a network."""

    name: str
    op: str                    # the runtime's op, e.g. "com.microsoft.nchwc:Conv"
    kind: str                  # regressor class, e.g. "nchwc.Conv/depthwise"
    sig_hash: str              # exact-hit key
    signature: dict
    features: dict
    layers: list[str] = field(default_factory=list)   # workload layers it computes (none: layout reorders)


@dataclass
class CompiledNetwork:
    """A Workload as the runtime will run it."""

    kernels: list[Kernel]
    standins: list[Layer]      # layers the runtime cannot be given (costed from bytes)
    handle: Any = None         # backend-private: what ``measure_network`` runs


@dataclass
class Block:
    """A unit of measurement: a small model (ONNX for onnxruntime, a layer group for TVM)."""

    key: str                   # a label, unique within one sampling call
    model: Any
    source: str = ""           # "workload:<name>" or "random"


@dataclass
class KernelTiming:
    kernel: Kernel
    us: float                  # the kernel's time on this machine (fastest quarter of its runs)
    spread_us: float = 0.0     # median absolute deviation of its runs
    runs: int = 0


class KernelBackend(Protocol):
    name: str                  # "onnxruntime" | "tvm"
    variant: str               # what else the kernels depend on: optimization level, codegen target
    threads: int

    def compile(self, workload: Workload) -> CompiledNetwork: ...

    def blocks(self, workloads: list[Workload]) -> list[Block]: ...

    def block_hash(self, block: Block) -> str: ...

    def measure_block(self, block: Block, skip: frozenset = frozenset()) -> list[KernelTiming]: ...

    def measure_overhead(self, gate=None) -> tuple[float, float]: ...

    def measure_network(self, compiled: CompiledNetwork, gate=None, rounds: int = 3) -> tuple[float, bool]: ...

    def measure_kernels(self, compiled: CompiledNetwork) -> dict[str, float]: ...


_BACKENDS = {"onnxruntime": "hwmodels.ort_backend:OnnxruntimeBackend", "tvm": "hwmodels.tvm_backend:TvmBackend"}
BACKENDS = tuple(_BACKENDS)


def get_backend(name: str, threads: int = 1, opt_level: str = "all") -> KernelBackend:
    """A backend by name (imported on first use: TVM loads only when asked for)."""
    if name not in _BACKENDS:
        raise CodesignError(f"unknown measured backend {name!r}; use one of {', '.join(_BACKENDS)}")
    module, _, attr = _BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)(threads=threads, opt_level=opt_level)
