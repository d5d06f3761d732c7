"""The systolic-array simulation as a ``CostModel`` (``codesign analyze --target systolic``).

The array is built for the widest operand any layer uses (area grows with it); each layer
moves words of its own width, so SRAM capacity in words, traffic and MAC energy follow the
layer's bits.  Layers are simulated once per distinct width and each takes its own row.
"""
from __future__ import annotations


from hwmodels.errors import CodesignError
from hwmodels.targets import SystolicConfig, Target
from hwmodels.workload import Workload
from hwmodels.base import LayerCost, NetworkCost
from hwmodels.bits import FLOAT_BITS, BitAssignment, LayerBits, precision_name, word_bits
from hwmodels.roofline import act_bytes, fit_notes, weight_bytes
from hwmodels.systolic import config_from_systolic, layers_from_workload, simulate
from hwmodels.systolic_cost import area_mm2, energy_pj


class SystolicCostModel:
    name = "systolic"

    def __init__(self, config: SystolicConfig | None = None):
        self.config = config

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        if target.systolic is None:
            raise CodesignError(f"target {target.name!r} is not a systolic template (no [systolic] table)")
        base = self.config or target.systolic.default
        bits = bits or BitAssignment(LayerBits(base.word_bits, base.word_bits))
        layers = layers_from_workload(workload)
        per_layer_bits = {l.name: word_bits(bits.for_layer(l.name)) for l in workload.layers()}
        hz = base.clock_mhz * 1e6
        rows: dict[str, dict] = {}
        for wb in sorted(set(per_layer_bits[n] for n in layers.names) or {base.word_bits}):
            res = simulate(layers, config_from_systolic(base.model_copy(update={"word_bits": wb})))
            e = energy_pj(res, target)[0]
            for j, name in enumerate(layers.names):
                if per_layer_bits[name] == wb:
                    rows[name] = {"cycles": int(res.total_cycles[0, j]), "stall": int(res.stall_cycles[0, j]),
                                  "energy_j": float(e[j]) * 1e-12, "util": float(res.overall_util_pct[0, j]) / 100,
                                  "dram_bytes": float(res.dram_reads[0, j] + res.dram_writes[0, j]) * wb / 8}
        widest = max((per_layer_bits[n] for n in layers.names), default=base.word_bits)   # the array's layers only
        area = float(area_mm2(config_from_systolic(base.model_copy(update={"word_bits": widest})), target)[0])
        costs = []
        for l in workload.layers():
            b = bits.for_layer(l.name)
            w_bytes = weight_bytes(l, b)
            a_bytes = act_bytes(l.input_bytes, l.dtype_bytes, b.activation) + \
                act_bytes(l.output_bytes, l.dtype_bytes, b.activation)
            r = rows.get(l.name)
            if r is None:   # pooling, elementwise...: off the array (host/vector unit), not modelled here
                costs.append(LayerCost(l.name, l.op, l.op_class, l.macs, w_bytes, a_bytes, 0.0, 0.0, "off-array",
                                       precision=precision_name(per_layer_bits[l.name])))
                continue
            costs.append(LayerCost(l.name, l.op, l.op_class, l.macs, w_bytes, a_bytes, r["cycles"] / hz,
                                   r["energy_j"], target.main_memory.name if r["stall"] > 0 else "compute",
                                   r["dram_bytes"], precision_name(per_layer_bits[l.name]), r["util"],
                                   extra={"cycles": r["cycles"], "stall_cycles": r["stall"]}))
        latency = sum(c.latency_s for c in costs)
        energy = sum(c.energy_j for c in costs) + target.energy.static_power_w * latency
        weights = sum(c.weight_bytes for c in costs)
        off = sorted({c.op for c in costs if c.bound == "off-array" and c.op_class not in ("data_movement",)})
        notes = [f"array {base.rows}x{base.cols} {base.dataflow}, {widest}-bit PEs, area {area:.3f} mm^2"]
        if off:
            notes.append(f"not on the array (zero cycles here): {', '.join(off)}")
        peak_act = workload.peak_activation_bytes() * min(bits.default.activation / FLOAT_BITS, 1.0)
        notes += fit_notes(target, weights, peak_act)
        return NetworkCost(workload.name, target.name, self.name, costs, latency, energy, workload.macs,
                           workload.params, int(weights + peak_act), workload.not_modelled, notes, area_mm2=area)
