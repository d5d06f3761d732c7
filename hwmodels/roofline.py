"""Roofline with a memory hierarchy, per-precision peaks, op-class efficiency and overheads.

Per layer:  time = max(compute time, traffic at each memory level / its bandwidth) + overhead,
and the term that wins is reported as the layer's bound.

- Compute time: MACs at the compute precision's peak x the op class's efficiency; other
  arithmetic (elementwise, pooling, softmax) at the same vector rate.
- Traffic ("what fits decides the bytes"): every operand passes through the innermost level;
  an operand reaches level i from level i+1 only when it does not fit in level i.  Weights are
  read from main memory once per inference unless the target keeps them on chip; activations
  go to main memory only when they do not fit in the largest on-chip level.
- Energy: MACs x per-MAC energy at the operand widths + bytes x per-byte energy at each level
  + other ops + static power x latency.
"""
from __future__ import annotations

import math

from codesign.targets import Target
from codesign.workload import Layer, Workload
from hwmodels.base import LayerCost, NetworkCost
from hwmodels.precision import BitAssignment, LayerBits, compute_precision, precision_bits

# layout-only ops that runtimes execute as views (no copy, no kernel launch)
FREE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout",
            "relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten", "relax.nn.dropout"}


def default_bits(target: Target) -> LayerBits:
    """fp32 where the target has it, else its widest native integer precision."""
    if "fp32" in target.peak_gmacs:
        return LayerBits(32, 32)
    widest = max(precision_bits(p) for p in target.peak_gmacs)
    return LayerBits(widest, widest)


def mac_energy_pj(target: Target, bits: LayerBits, precision: str) -> float:
    """Per-MAC energy for w-bit x a-bit operands.

    A multiplier's energy grows with the product of its operand widths, and the target's
    ``mac_pj`` table is quoted for equal widths (e(b) ~ b^2), so mixed widths take the
    geometric mean sqrt(e(w) * e(a)) ~ w * a.  Widths the table lacks use the compute
    precision's figure.
    """
    table = target.energy.mac_pj
    if precision.startswith(("fp", "bf")):
        return table.get(precision, max(table.values()))
    w_p = _int_precision(bits.weight)
    a_p = _int_precision(bits.activation)
    if w_p in table and a_p in table:
        return math.sqrt(table[w_p] * table[a_p])
    return table.get(precision, max(table.values()))


def _int_precision(b: int) -> str:
    return {2: "int2", 4: "int4", 8: "int8", 16: "int16"}.get(b, "fp32")


class RooflineModel:
    name = "roofline"

    def __init__(self, weights_on_chip: bool | None = None):
        # None: decide per target (weights stay on chip only if they all fit in the largest level)
        self.weights_on_chip = weights_on_chip

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        bits = bits or BitAssignment(default_bits(target))
        layers = workload.layers()
        total_weight_bytes = sum(_weight_bytes(l, bits.for_layer(l.name)) for l in layers)
        on_chip = target.on_chip
        largest_on_chip = max((m.size_bytes for m in on_chip), default=0.0)
        resident = self.weights_on_chip
        if resident is None:
            resident = bool(on_chip) and total_weight_bytes <= 0.5 * largest_on_chip
        costs = [self._layer(l, target, bits.for_layer(l.name), resident) for l in layers]
        latency = sum(c.latency_s for c in costs) + target.overheads.per_network_us * 1e-6
        static = target.energy.static_power_w * latency
        energy = sum(c.energy_j for c in costs) + static
        notes = []
        fallback = {c.precision for c, l in zip(costs, layers)
                    if l.macs and precision_bits(c.precision) > bits.for_layer(l.name).widest
                    and bits.for_layer(l.name).widest < 32}
        if fallback:
            notes.append(f"{target.name} has no native {bits.default.widest}-bit compute; ran at {', '.join(sorted(fallback))}")
        peak_act = workload.peak_activation_bytes()
        act_scale = bits.default.activation / 32.0
        notes += fit_notes(target, total_weight_bytes, peak_act * act_scale)
        return NetworkCost(
            model=workload.name, target=target.name, cost_model=self.name, layers=costs,
            latency_s=latency, energy_j=energy, macs=workload.macs, params=workload.params,
            peak_memory_bytes=int(total_weight_bytes + peak_act * act_scale),
            not_modelled=workload.not_modelled, notes=notes,
        )

    def _layer(self, layer: Layer, target: Target, bits: LayerBits, weights_resident: bool) -> LayerCost:
        precision = compute_precision(bits, target.precisions) if (layer.macs or layer.ops) else "fp32"
        w_bytes = _weight_bytes(layer, bits)
        in_bytes = _act_bytes(layer.input_bytes, layer.dtype_bytes, bits.activation)
        out_bytes = _act_bytes(layer.output_bytes, layer.dtype_bytes, bits.activation)
        if layer.op in FREE_OPS:
            return LayerCost(layer.name, layer.op, layer.op_class, layer.macs, w_bytes, in_bytes + out_bytes,
                             0.0, 0.0, "free", 0.0, precision, 0.0)
        peak = target.peak_gmacs.get(precision, max(target.peak_gmacs.values())) * 1e9
        eff = target.efficiency.get(layer.op_class, 1.0)
        compute_s = (layer.macs + layer.ops) / (peak * eff) if (layer.macs or layer.ops) else 0.0
        # bytes that cross each level: operands larger than every level inside it pass through it
        operands = [(w_bytes, True), (in_bytes, False), (out_bytes, False)]
        terms = {"compute": compute_s}
        energy = 0.0
        dram_bytes = 0.0
        inner_capacity = 0.0
        for i, level in enumerate(target.memory):
            is_main = i == len(target.memory) - 1
            traffic = 0.0
            for nbytes, is_weight in operands:
                if i == 0:
                    traffic += nbytes          # everything streams through the innermost level
                elif is_weight and not weights_resident:
                    traffic += nbytes          # streamed from main memory through every level
                elif is_weight and is_main:
                    pass                       # resident on chip: no main-memory traffic
                elif nbytes > inner_capacity:
                    traffic += nbytes          # did not fit in any level inside this one
            if is_main:
                dram_bytes = traffic
            terms[level.name] = traffic / (level.bandwidth_gbs * 1e9)
            energy += traffic * level.energy_pj_per_byte * 1e-12
            inner_capacity = max(inner_capacity, level.size_bytes)
        bound = max(terms, key=terms.get)
        overhead_s = target.overheads.per_layer_us * 1e-6
        latency = terms[bound] + overhead_s
        if overhead_s > terms[bound]:
            bound = "overhead"
        energy += layer.macs * mac_energy_pj(target, bits, precision) * 1e-12
        energy += layer.ops * target.energy.elementwise_op_pj * 1e-12
        util = layer.macs / latency / peak if latency > 0 and layer.macs else 0.0
        return LayerCost(layer.name, layer.op, layer.op_class, layer.macs, w_bytes, in_bytes + out_bytes,
                         latency, energy, bound, dram_bytes, precision, util,
                         extra={"terms_ms": {k: v * 1e3 for k, v in terms.items()}})


def _weight_bytes(layer: Layer, bits: LayerBits) -> int:
    # parameters stored at the weight width; 32 means the model's own float width
    if bits.weight >= 32:
        return layer.weight_bytes
    return math.ceil(layer.params * bits.weight / 8)


def _act_bytes(nbytes: int, dtype_bytes: int, act_bits: int) -> int:
    if act_bits >= 32 or dtype_bytes <= 0:
        return nbytes
    return math.ceil(nbytes / dtype_bytes * act_bits / 8)


def fit_notes(target: Target, weight_bytes: float, activation_bytes: float) -> list[str]:
    """Say so when a model cannot be deployed as-is on the target's memories."""
    notes = []
    if target.weight_memory_bytes and weight_bytes > target.weight_memory_bytes:
        notes.append(f"does not fit: weights {weight_bytes / 1024:.0f} KB > weight memory "
                     f"{target.weight_memory_bytes / 1024:.0f} KB")
    if target.kind == "mcu":
        sram = sum(m.size_bytes for m in target.on_chip)
        if activation_bytes > sram:
            notes.append(f"does not fit: peak activations {activation_bytes / 1024:.0f} KB > on-chip SRAM {sram / 1024:.0f} KB")
    main = target.main_memory.size_bytes
    if weight_bytes + activation_bytes > main:
        notes.append(f"does not fit: {(weight_bytes + activation_bytes) / 2**20:.0f} MiB > {target.main_memory.name} {main / 2**20:.0f} MiB")
    return notes
