"""The Bit Fusion simulation as a ``CostModel`` (``codesign analyze --target bitfusion``).

Each conv/matmul layer runs at its own weight and activation bits (the BitBricks re-fuse per
layer), so latency as well as energy follows the bit map: compute cycles shrink with
(8/w) x (8/a), DRAM traffic with the operand widths, and a memory-bound layer stays as slow as
its traffic.  The whole network is one vectorised call; pooling and elementwise layers do not
run on the array and cost nothing here (said in the notes).
"""
from __future__ import annotations

from hwmodels.base import LayerCost, NetworkCost
from hwmodels.bitfusion import FusionConfigs, simulate
from hwmodels.bitfusion_cost import area_mm2, energy_parts_pj, template
from hwmodels.bits import FLOAT_BITS, VALID_BITS, BitAssignment, LayerBits, precision_name
from hwmodels.roofline import act_bytes, fit_notes, weight_bytes
from hwmodels.systolic import layers_from_workload
from hwmodels.targets import BitFusionConfig, Target
from hwmodels.workload import Workload


def default_bits(target: Target) -> LayerBits:
    d = template(target).default
    return LayerBits(d.w_bits, d.a_bits)


class BitFusionCostModel:
    name = "bitfusion"

    def __init__(self, config: BitFusionConfig | None = None):
        self.config = config

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        bf = template(target)
        base = self.config or bf.default
        bits = bits or BitAssignment(default_bits(target))
        layers = layers_from_workload(workload)
        w = [bits.for_layer(n).weight for n in layers.names]
        a = [bits.for_layer(n).activation for n in layers.names]
        configs = FusionConfigs.from_config(base)
        res = simulate(layers, configs, w, a, bf.unit)
        parts = energy_parts_pj(res, target)
        energy = parts["core"][0] + parts["sram"][0] + parts["dram"][0]
        area = float(area_mm2(configs, target)[0])
        hz = base.clock_mhz * 1e6
        index = {n: j for j, n in enumerate(layers.names)}
        costs = []
        for l in workload.layers():
            b = bits.for_layer(l.name)
            w_bytes = weight_bytes(l, b)
            a_bytes = act_bytes(l.input_bytes, l.dtype_bytes, b.activation) + \
                act_bytes(l.output_bytes, l.dtype_bytes, b.activation)
            precision = precision_name(b.widest) if b.widest in VALID_BITS else precision_name(FLOAT_BITS)
            j = index.get(l.name)
            if j is None:     # pooling, elementwise...: off the array (host/vector unit), not modelled here
                costs.append(LayerCost(l.name, l.op, l.op_class, l.macs, w_bytes, a_bytes, 0.0, 0.0, "off-array",
                                       precision=precision))
                continue
            stall = float(res.stall_cycles[0, j])
            compute = float(res.compute_cycles[0, j])
            cycles = float(res.total_cycles[0, j])
            costs.append(LayerCost(
                l.name, l.op, l.op_class, l.macs, w_bytes, a_bytes, cycles / hz, float(energy[j]) * 1e-12,
                target.main_memory.name if stall > compute else "compute", float(res.dram_bits[0, j]) / 8,
                precision, float(res.utilization[0, j]) * compute / max(cycles, 1.0),
                extra={"cycles": int(cycles), "compute_cycles": int(compute), "stall_cycles": int(stall),
                       "w_bits": int(res.w_bits[j]), "a_bits": int(res.a_bits[j]),
                       "core_energy_mj": float(parts["core"][0, j]) * 1e-9,
                       "sram_energy_mj": float(parts["sram"][0, j]) * 1e-9,
                       "dram_energy_mj": float(parts["dram"][0, j]) * 1e-9}))
        latency = sum(c.latency_s for c in costs)
        total_energy = sum(c.energy_j for c in costs) + target.energy.static_power_w * latency
        weights = sum(c.weight_bytes for c in costs)
        off = sorted({c.op for c in costs if c.bound == "off-array" and c.op_class not in ("data_movement",)})
        notes = [f"Bit Fusion {base.rows}x{base.cols} fusion units, IBUF/WBUF/OBUF {base.ifmap_sram_kb:g}/"
                 f"{base.filter_sram_kb:g}/{base.ofmap_sram_kb:g} KB, {base.dram_bits_per_cycle:g} DRAM bits/cycle, "
                 f"area {area:.3f} mm^2; layers at their own w/a bits ({bits.label})"]
        if off:
            notes.append(f"not on the array (zero cycles here): {', '.join(off)}")
        notes += list(layers.notes)
        peak_act = workload.peak_activation_bytes() * min(bits.default.activation / FLOAT_BITS, 1.0)
        notes += fit_notes(target, weights, peak_act)
        return NetworkCost(workload.name, target.name, self.name, costs, latency, total_energy, workload.macs,
                           workload.params, int(weights + peak_act), workload.not_modelled, notes, area_mm2=area)
