"""Cost of a bit map on the target: the same Workload and the same cost-model call as
``codesign analyze`` makes, so the figures reproduce there on the written QDQ model.

The Workload is the float model's, at batch 1; a layer the bit map names runs at its
(weight, activation) bits, every other layer as the frontend costs an unquantized layer of a
QDQ model (``codesign.frontends.qdq_reader.assignment``).
"""
from __future__ import annotations

from dataclasses import dataclass

from hwmodels.base import NetworkCost
from hwmodels.bits import BitAssignment, LayerBits
from hwmodels.errors import CodesignError
from hwmodels.workload import Workload

OBJECTIVES = {"energy": "energy_mj", "latency": "latency_ms", "size": "size_kb"}


@dataclass
class Costing:
    workload: Workload
    target: object
    cost_model_name: str

    def assignment(self, bits: dict[str, tuple[int, int]]) -> BitAssignment | None:
        """The bits ``codesign analyze`` reads from the written QDQ model (the frontend's own rule:
        norm/softmax layers float, other unquantized layers at the widest width in use); an empty
        map is the float model (None: the target's default precision, as analyze costs it)."""
        from codesign.frontends.qdq_reader import assignment

        per_layer = {n: LayerBits(int(w), int(a)) for n, (w, a) in bits.items() if min(w, a) < 32}
        return assignment(per_layer, self._op_class)

    @property
    def _op_class(self) -> dict[str, str]:
        if not hasattr(self, "_classes"):
            self._classes = {l.name: l.op_class for l in self.workload.layers()}
        return self._classes

    def estimate(self, bits: dict[str, tuple[int, int]], target=None) -> NetworkCost:
        from hwmodels.registry import get_cost_model

        return get_cost_model(self.cost_model_name).estimate(self.workload, target or self.target, self.assignment(bits))

    def metrics(self, bits: dict[str, tuple[int, int]], target=None) -> dict[str, float]:
        cost = self.estimate(bits, target)
        return summarize(cost, self.workload, bits)


def summarize(cost: NetworkCost, workload: Workload, bits: dict[str, tuple[int, int]]) -> dict[str, float]:
    return {"latency_ms": cost.latency_s * 1e3,
            "energy_mj": None if cost.energy_j is None else cost.energy_j * 1e3,
            "size_kb": size_kb(workload, bits)}


def size_kb(workload: Workload, bits: dict[str, tuple[int, int]]) -> float:
    """Parameter storage: each layer's parameters at its weight bits (float layers at their stored size)."""
    total = 0.0
    for layer in workload.layers():
        if layer.name in bits and bits[layer.name][0] < 32:
            total += layer.params * bits[layer.name][0] / 8
        else:
            total += layer.weight_bytes
    return total / 1024


def make_costing(model_path, input_name: str, shape: tuple[int, ...], target_spec: str) -> Costing:
    from codesign.frontends.onnx_frontend import load_onnx
    from hwmodels.registry import resolve_name
    from hwmodels.targets import load_target

    tgt = load_target(target_spec)
    workload = load_onnx(model_path, {input_name: shape})
    name = resolve_name("auto", tgt)
    return Costing(workload, tgt, name)


def check_layers(costing: Costing, layers: list[str], path) -> None:
    """Every quantizable layer must be a layer of the Workload (one set of names)."""
    names = {l.name for l in costing.workload.layers()}
    missing = [n for n in layers if n not in names]
    if missing:
        raise CodesignError(f"{path}: layer {missing[0]!r} is not in the model's Workload (a folded constant?); "
                            "quantize cannot cost it")


def objective_value(metrics: dict, objective: str) -> float:
    key = OBJECTIVES[objective]
    v = metrics.get(key)
    if v is None:
        raise CodesignError(f"--objective {objective}: the target's cost model does not estimate {key}; "
                            "choose latency or size")
    return float(v)
