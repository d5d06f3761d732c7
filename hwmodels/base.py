"""The cost-model contract: what every cost model takes and returns (built-in or plug-in).

A cost model is an object with ``name`` and ``estimate(workload, target, bits=None)`` that
maps a ``Workload``, a ``Target`` and a ``BitAssignment`` (None: the target's default
precision) to a ``NetworkCost``.  Cost models are found by name through
``hwmodels.get_cost_model``; third parties add theirs with ``register_cost_model`` or the
``codesign.cost_models`` entry-point group (see ``hwmodels.registry``).

Field names below are the plug-in contract: the CLI, the CI gate, the search and the report
read exactly these.  Units are SI (seconds, joules, bytes, mm^2).  A quantity a model does
not estimate is ``None``, never 0 (0 means "costs nothing").

``LayerCost.bound`` says what limits a layer, in one vocabulary across models:

- ``"compute"``: the arithmetic rate (peak x efficiency, or the array's cycles without stalls);
- the name of one of the target's memory levels (``target.memory[i].name``, e.g. ``"DRAM"``):
  moving data at that level takes longest;
- ``"overhead"``: a fixed per-layer cost (dispatch, kernel launch, configuration) dominates;
- ``"free"``: a view or an op the runtime removes (reshape, identity, folded BatchNorm): no time;
- ``"fused"``: folded into a neighbouring layer's kernel, whose time carries it;
- ``"off-array"``: not run on the modelled accelerator (e.g. pooling next to a systolic array);
- ``"measured"``: a measured or predicted kernel time with no decomposition into causes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from hwmodels.bits import BitAssignment
from hwmodels.targets import Target
from hwmodels.workload import Workload

BOUNDS = ("compute", "overhead", "free", "fused", "off-array", "measured")   # + memory level names


@dataclass
class LayerCost:
    name: str                  # the Workload layer's name
    op: str                    # its source op type, e.g. "Conv"
    op_class: str              # one of hwmodels.workload.OP_CLASSES
    macs: int
    weight_bytes: int          # at the assigned weight bit-width
    act_bytes: int             # activations in + out at the assigned activation bit-width
    latency_s: float
    energy_j: float | None     # None: the model does not estimate energy
    bound: str                 # see the module docstring
    dram_bytes: float = 0.0    # traffic to the target's main memory
    precision: str = ""        # the compute precision the layer ran at (a hwmodels.bits precision name)
    utilization: float = 0.0   # achieved / peak MAC rate
    extra: dict = field(default_factory=dict)   # model-specific details (cycles, terms, kernel names...)


@dataclass
class NetworkCost:
    model: str                 # the Workload's name
    target: str                # the Target's name
    cost_model: str            # the cost model's registered name
    layers: list[LayerCost]
    latency_s: float           # whole network, including per-network overheads
    energy_j: float | None     # None: not estimated
    macs: int
    params: int
    peak_memory_bytes: int     # weights + peak live activations
    not_modelled: list[str]    # op types kept as zero-MAC layers
    notes: list[str] = field(default_factory=list)
    area_mm2: float | None = None   # accelerator area, for models of templates; None for fixed devices

    def to_json(self) -> dict:
        """The ``codesign analyze --json`` contract (milliseconds and millijoules)."""
        return {
            "model": self.model,
            "target": self.target,
            "cost_model": self.cost_model,
            "latency_ms": self.latency_s * 1e3,
            "energy_mj": _milli(self.energy_j),
            "area_mm2": self.area_mm2,
            "macs": self.macs,
            "params": self.params,
            "peak_memory_bytes": self.peak_memory_bytes,
            "not_modelled": self.not_modelled,
            "notes": self.notes,
            "layers": [
                {
                    "name": l.name, "op": l.op, "macs": l.macs, "weight_bytes": l.weight_bytes,
                    "act_bytes": l.act_bytes, "latency_ms": l.latency_s * 1e3, "energy_mj": _milli(l.energy_j),
                    "bound": l.bound, "dram_bytes": l.dram_bytes, "precision": l.precision,
                    "utilization": l.utilization, **l.extra,
                }
                for l in self.layers
            ],
        }


def fixed_datapath_note(model: str, bits: BitAssignment | None, word_bits: int) -> list[str]:
    """Models of a fixed-width datapath say so when asked for other bit-widths (never silently)."""
    widths = {b.widest for b in ([bits.default] + list(bits.per_layer.values()))} if bits is not None else set()
    if not widths - {word_bits}:
        return []
    return [f"{model} model: a fixed {word_bits}-bit datapath; the requested bits ({bits.label}) do not change "
            f"its latency or energy"]


def _milli(x: float | None) -> float | None:
    return None if x is None else x * 1e3


class CostModel(Protocol):
    name: str

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        ...
