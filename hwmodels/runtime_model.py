"""Device runtime model: the roofline applied to the kernels a runtime actually runs.

MACs miss most of what separates two networks of equal MACs on a phone or a Raspberry Pi:
a depthwise convolution moves as many bytes as it computes, every kernel pays a dispatch
cost, a channel shuffle is a full copy, a grouped convolution that the runtime splits costs a
Split, G small convolutions and a Concat, a residual Add is its own pass over memory (unless
the runtime fuses it), an Identity is free, and weights that stay in cache between runs cost
nothing to fetch while weights that do not fit stream from DRAM.

Per kernel (``hwmodels.fusion`` forms them from the target's ``[runtime] fusion`` rules):

    time = max(work / (peak x efficiency[class]), bytes at each level / its bandwidth)
           + kernel_overhead_us[class]

and a network adds ``overheads.per_network_us`` once per run.  The terms are the roofline's
(``hwmodels.roofline.layer_terms``); what this model adds is the kernel formation, per-class
dispatch costs and the cache-residency threshold, all read from the target file.  The same
code serves every device: a target differs only in its numbers and its fusion preset.
"""
from __future__ import annotations

from hwmodels.base import LayerCost
from hwmodels.bits import BitAssignment
from hwmodels.fusion import RUNTIMES, fuse
from hwmodels.roofline import RooflineModel, default_bits, layer_terms, weight_bytes, weights_resident
from hwmodels.targets import Target
from hwmodels.workload import Workload


def kernel_overhead_s(target: Target, op_class: str) -> float:
    rt = target.runtime
    us = rt.kernel_overhead_us.get(op_class) if rt is not None else None
    return (target.overheads.per_layer_us if us is None else us) * 1e-6


class RuntimeModel(RooflineModel):
    """Roofline per runtime kernel, with per-class dispatch costs (cost model ``runtime``)."""

    name = "runtime"

    def kernels(self, workload: Workload, target: Target) -> Workload:
        rules = RUNTIMES[target.runtime.fusion if target.runtime is not None else "none"]
        return fuse(workload, rules)

    def terms(self, workload: Workload, target: Target, bits: BitAssignment | None = None):
        bits = bits or BitAssignment(default_bits(target))
        kernels = self.kernels(workload, target).layers()
        total_w = sum(weight_bytes(k, self._bits(bits, k)) for k in kernels)
        resident = self.weights_on_chip if self.weights_on_chip is not None else weights_resident(target, total_w)
        return [layer_terms(k, target, self._bits(bits, k), resident) for k in kernels]

    @staticmethod
    def _bits(bits: BitAssignment, kernel):
        """A kernel computes at the bits of the node it is anchored on."""
        members = kernel.attrs.get("members") or [kernel.name]
        return bits.for_layer(members[0])

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None):
        cost = super().estimate(workload, target, bits)
        cost.cost_model = self.name
        return cost

    @staticmethod
    def _layer_cost(t, target: Target, bits) -> LayerCost:
        cost = RooflineModel._layer_cost(t, target, bits)
        if t.free:
            return cost
        rt = target.runtime
        if rt is not None and rt.weight_gbs and t.weight_bytes:
            pack = t.weight_bytes / (rt.weight_gbs * 1e9)
            terms = cost.extra.setdefault("terms_ms", {})
            terms["weights"] = pack * 1e3
            cost.latency_s = max(cost.latency_s - target.overheads.per_layer_us * 1e-6, pack) + target.overheads.per_layer_us * 1e-6
        # replace the roofline's uniform per-layer overhead with the kernel class's own
        uniform = target.overheads.per_layer_us * 1e-6
        overhead = kernel_overhead_s(target, t.layer.op_class)
        body = cost.latency_s - uniform
        cost.latency_s = body + overhead
        terms = cost.extra.get("terms_ms", {})
        cost.bound = "overhead" if overhead > max(terms.values(), default=0.0) * 1e-3 else max(terms, key=terms.get)
        cost.extra["members"] = t.layer.attrs.get("members", [t.layer.name])
        if cost.macs and t.peak_macs_s:
            cost.utilization = cost.macs / cost.latency_s / t.peak_macs_s
        return cost
