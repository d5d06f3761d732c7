"""Roofline with a memory hierarchy, per-precision peaks, op-class efficiency and overheads.

Per layer:  time = max(compute time, traffic at each memory level / its bandwidth) + overhead,
and the term that wins is reported as the layer's bound.

- Compute time: MACs (and other arithmetic) at the compute precision's peak x the op class's
  efficiency (depthwise convs, pooling and elementwise ops do not reach peak).
- Traffic ("what fits decides the bytes"): every operand passes through the innermost level;
  an activation reaches level i from further out only when it does not fit in any level
  inside i.  Weights stream from main memory unless all of them fit on chip (then they stay
  resident across inferences).
- Energy: MACs x per-MAC energy at the operand widths + bytes x per-byte energy at each level
  + other ops + static power x latency, dynamic energies scaled to the device's process node.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodels.targets import Target
from hwmodels.workload import Layer, Workload
from hwmodels.base import LayerCost, NetworkCost
from hwmodels.bits import FLOAT_BITS, BitAssignment, LayerBits, compute_precision, precision_bits, precision_name
from hwmodels.fusion import VIEW_OPS

# layout-only ops that runtimes execute as views (no copy, no kernel launch)
FREE_OPS = VIEW_OPS


def default_bits(target: Target) -> LayerBits:
    """fp32 where the target has it, else its widest native integer precision."""
    if "fp32" in target.peak_gmacs:
        return LayerBits(FLOAT_BITS, FLOAT_BITS)
    widest = max(precision_bits(p) for p in target.peak_gmacs)
    return LayerBits(widest, widest)


def node_scale(target: Target) -> float:
    """First-order dynamic-energy scaling from the node the figures are quoted at to the
    device's node (energy ~ C V^2, C ~ feature size; Stillmaker & Baas 2017 give finer fits)."""
    quoted, device = target.energy.process_nm, target.process_nm
    return device / quoted if quoted and device else 1.0


def mac_energy_pj(target: Target, bits: LayerBits, precision: str) -> float:
    """Per-MAC energy for w-bit x a-bit operands.

    A multiplier's energy grows with the product of its operand widths, and ``mac_pj`` is
    quoted for equal widths (e(b) ~ b^2), so mixed widths take the geometric mean
    sqrt(e(w) e(a)) ~ w a.  Widths the table lacks use the compute precision's figure.
    """
    table = target.energy.mac_pj
    fallback = table.get(precision, max(table.values()))
    if precision.startswith(("fp", "bf")):
        return fallback
    w_p, a_p = precision_name(bits.weight), precision_name(bits.activation)
    if w_p in table and a_p in table:
        return math.sqrt(table[w_p] * table[a_p])
    return fallback


@dataclass
class LayerTerms:
    """What the roofline needs of one layer, before any rate is applied (calibration reuses it)."""

    layer: Layer
    precision: str
    work: float                  # MACs (inflated by padded SIMD lanes) + other ops
    peak_macs_s: float           # peak rate at the compute precision
    traffic: list[float]         # bytes crossing each memory level, innermost first
    weight_bytes: int
    act_bytes: int
    free: bool                   # a view: no kernel, no time


def layer_terms(layer: Layer, target: Target, bits: LayerBits, weights_resident: bool) -> LayerTerms:
    precision = compute_precision(bits, target.precisions)
    w_bytes = weight_bytes(layer, bits)
    in_bytes = act_bytes(layer.input_bytes, layer.dtype_bytes, bits.activation)
    out_bytes = act_bytes(layer.output_bytes, layer.dtype_bytes, bits.activation)
    peak = target.peak_gmacs.get(precision, max(target.peak_gmacs.values())) * 1e9
    traffic = []
    inner_capacity = 0.0
    last = len(target.memory) - 1
    for i, level in enumerate(target.memory):
        t = 0.0
        for nbytes, is_weight in ((w_bytes, True), (in_bytes, False), (out_bytes, False)):
            if i == 0:
                t += nbytes            # everything streams through the innermost level
            elif is_weight:
                if not weights_resident or (i != last and nbytes > inner_capacity):
                    t += nbytes        # streamed from main memory (or from the level holding them)
            elif nbytes > inner_capacity:
                t += nbytes            # did not fit in any level inside this one
        traffic.append(t)
        inner_capacity = max(inner_capacity, level.size_bytes)
    work = layer.macs / lane_utilization(layer, target.channel_block) + layer.ops
    return LayerTerms(layer, precision, float(work), peak, traffic, w_bytes,
                      in_bytes + out_bytes, layer.op in FREE_OPS)


def lane_utilization(layer: Layer, block: int) -> float:
    """Share of SIMD lanes doing useful MACs when channel counts are padded up to ``block``.

    Kernels vectorise over channels (NCHWc convs, GEMM columns): 12 channels on a 16-lane
    block use 75% of it.  Convs pad input and output channels per group; depthwise convs
    and GEMMs pad the vectorised (output) dimension; inputs narrower than a block are not padded
    (onnxruntime's MLAS reads them unblocked).
    """
    if block <= 1 or not layer.macs:
        return 1.0
    pad = lambda x: x / (-(-x // block) * block)
    if layer.conv is not None:
        c = layer.conv
        if layer.op_class == "depthwise_conv":
            return pad(c.c)
        cin = c.c // c.groups
        # inputs narrower than one block are read unblocked (e.g. an RGB stem), not padded
        return pad(c.k // c.groups) * (pad(cin) if cin >= block else 1.0)
    if layer.gemm is not None:
        return pad(layer.gemm.n)
    return 1.0


def weights_resident(target: Target, total_weight_bytes: float) -> bool:
    """Weights stay on chip across inferences when they fit in the target's share (``[runtime]
    weights_resident_fraction``, else half) of its largest on-chip level."""
    largest = max((m.size_bytes for m in target.on_chip), default=0.0)
    frac = target.runtime.weights_resident_fraction if target.runtime is not None else 0.5
    return largest > 0 and total_weight_bytes <= frac * largest


class RooflineModel:
    name = "roofline"

    def __init__(self, weights_on_chip: bool | None = None):
        self.weights_on_chip = weights_on_chip   # None: decide from the target's sizes

    def terms(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> list[LayerTerms]:
        bits = bits or BitAssignment(default_bits(target))
        layers = workload.layers()
        total_w = sum(weight_bytes(l, bits.for_layer(l.name)) for l in layers)
        resident = self.weights_on_chip if self.weights_on_chip is not None else weights_resident(target, total_w)
        return [layer_terms(l, target, bits.for_layer(l.name), resident) for l in layers]

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        bits = bits or BitAssignment(default_bits(target))
        terms = self.terms(workload, target, bits)
        costs = [self._layer_cost(t, target, bits.for_layer(t.layer.name)) for t in terms]
        latency = sum(c.latency_s for c in costs) + target.overheads.per_network_us * 1e-6
        energy = sum(c.energy_j for c in costs) + target.energy.static_power_w * latency
        notes = []
        fallback = sorted({t.precision for t in terms if t.layer.macs and
                           bits.for_layer(t.layer.name).widest < precision_bits(t.precision)})
        if fallback:
            notes.append(f"{target.name} has no native {bits.default.widest}-bit compute for some layers; "
                         f"they ran at {', '.join(fallback)}")
        total_w = sum(t.weight_bytes for t in terms)
        peak_act = workload.peak_activation_bytes() * min(bits.default.activation / FLOAT_BITS, 1.0)
        notes += fit_notes(target, total_w, peak_act)
        return NetworkCost(
            model=workload.name, target=target.name, cost_model=self.name, layers=costs,
            latency_s=latency, energy_j=energy, macs=workload.macs, params=workload.params,
            peak_memory_bytes=int(total_w + peak_act), not_modelled=workload.not_modelled, notes=notes,
        )

    @staticmethod
    def _layer_cost(t: LayerTerms, target: Target, bits: LayerBits) -> LayerCost:
        layer = t.layer
        if t.free:
            return LayerCost(layer.name, layer.op, layer.op_class, layer.macs, t.weight_bytes, t.act_bytes,
                             0.0, 0.0, "free", 0.0, t.precision, 0.0)
        eff = target.efficiency.get(layer.op_class, 1.0)
        times = {"compute": t.work / (t.peak_macs_s * eff)}
        for level, nbytes in zip(target.memory, t.traffic):
            times[level.name] = nbytes / (level.bandwidth_gbs * 1e9)
        bound = max(times, key=times.get)
        overhead = target.overheads.per_layer_us * 1e-6
        latency = times[bound] + overhead
        if overhead > times[bound]:
            bound = "overhead"
        scale = node_scale(target)
        energy = sum(nbytes * lvl.energy_pj_per_byte for lvl, nbytes in zip(target.memory, t.traffic))
        energy += layer.macs * mac_energy_pj(target, bits, t.precision) + layer.ops * target.energy.elementwise_op_pj
        util = layer.macs / latency / t.peak_macs_s if layer.macs else 0.0
        return LayerCost(layer.name, layer.op, layer.op_class, layer.macs, t.weight_bytes, t.act_bytes,
                         latency, energy * scale * 1e-12, bound, t.traffic[-1], t.precision, util,
                         extra={"terms_ms": {k: v * 1e3 for k, v in times.items()}})


def weight_bytes(layer: Layer, bits: LayerBits) -> int:
    """Parameters stored at the weight width; 32 means the model's own float width."""
    if bits.weight >= FLOAT_BITS:
        return layer.weight_bytes
    return math.ceil(layer.params * bits.weight / 8)


def act_bytes(nbytes: int, dtype_bytes: int, act_bits: int) -> int:
    if act_bits >= FLOAT_BITS or dtype_bytes <= 0:
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
        notes.append(f"does not fit: {(weight_bytes + activation_bytes) / 2**20:.0f} MiB > "
                     f"{target.main_memory.name} {main / 2**20:.0f} MiB")
    return notes
