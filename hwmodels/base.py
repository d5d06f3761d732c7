"""What every cost model takes and returns.

A cost model maps (Workload, Target, precision assignment) to per-layer latency, energy,
memory traffic and the reason each layer is as slow as it is.  One module per model; they
are found by name through ``hwmodels.registry``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

from codesign.targets import Target
from codesign.workload import Workload
from hwmodels.precision import BitAssignment


@dataclass
class LayerCost:
    name: str
    op: str
    op_class: str
    macs: int
    weight_bytes: int          # at the assigned weight bit-width
    act_bytes: int             # activations in + out at the assigned activation bit-width
    latency_s: float
    energy_j: float
    bound: str                 # "compute", a memory level's name, "overhead", or "free"
    dram_bytes: float = 0.0    # traffic to the target's main memory
    precision: str = ""        # the compute precision the layer ran at
    utilization: float = 0.0   # achieved / peak MAC rate
    extra: dict = field(default_factory=dict)


@dataclass
class NetworkCost:
    model: str
    target: str
    cost_model: str
    layers: list[LayerCost]
    latency_s: float
    energy_j: float
    macs: int
    params: int
    peak_memory_bytes: int
    not_modelled: list[str]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The ``codesign analyze --json`` contract."""
        return {
            "model": self.model,
            "target": self.target,
            "cost_model": self.cost_model,
            "latency_ms": self.latency_s * 1e3,
            "energy_mj": self.energy_j * 1e3,
            "macs": self.macs,
            "params": self.params,
            "peak_memory_bytes": self.peak_memory_bytes,
            "not_modelled": self.not_modelled,
            "notes": self.notes,
            "layers": [
                {
                    "name": l.name, "op": l.op, "macs": l.macs, "weight_bytes": l.weight_bytes,
                    "act_bytes": l.act_bytes, "latency_ms": l.latency_s * 1e3, "energy_mj": l.energy_j * 1e3,
                    "bound": l.bound, "dram_bytes": l.dram_bytes, "precision": l.precision,
                    "utilization": l.utilization, **l.extra,
                }
                for l in self.layers
            ],
        }


class CostModel(Protocol):
    name: str

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        ...


def as_dict(cost: LayerCost) -> dict:
    return asdict(cost)
