"""Loop-tiled FPGA engine (cost model ``tiled``): the classic layer-by-layer CNN accelerator.

An FPGA CNN engine in the style of Zhang et al. (FPGA 2015) unrolls the output- and input-
channel loops of a convolution onto a ``tm x tn`` array of multiply-accumulators and iterates
the remaining loops (kernel window, output pixels, channel tiles); a depthwise unit processes
``td`` channels at a time with the whole K x K window unrolled (up to ``max_window``), which is
why a depthwise layer's time does not grow with K there while a dense layer's does.  Per layer:

    compute cycles = groups x ceil(C_g / tn) x ceil(M_g / tm) x R x S x P x Q     (dense, grouped, 1x1)
                   = ceil(C / td) x P x Q x ceil(R*S / max_window^2)             (depthwise, pooling)
    cycles         = max(compute cycles, DRAM bytes / dram_bytes_per_cycle) + layer_overhead_cycles

DRAM bytes are the layer's weights, inputs and outputs at ``word_bits``.  Activations and
BatchNorm are applied in the output pipeline; a residual Add reads one more tensor; channel
shuffles and concats are write-address remaps (free).  One code path for every network; a
target gives the unroll factors, clock, bandwidth and overhead (``[tiled]`` in its TOML).
"""
from __future__ import annotations

import numpy as np

from hwmodels.base import LayerCost, NetworkCost, fixed_datapath_note
from hwmodels.bits import BitAssignment
from hwmodels.errors import CodesignError
from hwmodels.fusion import fuse
from hwmodels.row_stationary import ACCELERATOR_FUSION, LAYOUT_OPS
from hwmodels.targets import Target, TiledEngine
from hwmodels.workload import Layer, Workload


def _cd(a: int, b: int) -> int:
    return -(-a // b)


def compute_cycles(layer: Layer, eng: TiledEngine) -> float:
    c = layer.conv
    win = eng.max_window * eng.max_window
    if c is not None:
        if c.groups > 1 and c.groups == c.c:        # depthwise: td channels, window unrolled
            return float(c.n * _cd(c.c, eng.td) * c.p * c.q * _cd(c.r * c.s, win))
        cg, mg = c.c // c.groups, c.k // c.groups
        return float(c.n * c.groups * _cd(cg, eng.tn) * _cd(mg, eng.tm) * c.r * c.s * c.p * c.q)
    if layer.gemm is not None:
        g = layer.gemm
        return float(g.batch * _cd(g.k, eng.tn) * _cd(g.n, eng.tm) * g.m)
    if layer.op_class == "pool" and layer.input_shapes and len(layer.input_shapes[0]) == 4:
        n, ch, h, w = (int(d) for d in layer.input_shapes[0])
        p, q = (int(d) for d in layer.output_shapes[0][2:])
        k = layer.attrs.get("kernel_shape") or [h, w]
        return float(n * _cd(ch, eng.td) * p * q * _cd(int(k[0]) * int(k[1]), win))
    return 0.0


def dram_bytes(layer: Layer, eng: TiledEngine) -> float:
    scale = eng.word_bits / 8 / max(layer.dtype_bytes, 1)
    return (layer.params * eng.word_bits / 8) + (layer.input_bytes + layer.output_bytes) * scale


def _config(target: Target) -> TiledEngine:
    if target.tiled is None:
        raise CodesignError(f"target {target.name!r} has no [tiled] table; the tiled model needs the engine's "
                            f"unroll factors, bandwidth and overhead (see targets/fpga-zc706.toml)")
    return target.tiled


def kernels(workload: Workload) -> list[Layer]:
    return [k for k in fuse(workload, ACCELERATOR_FUSION).layers() if k.op not in LAYOUT_OPS]


class TiledModel:
    name = "tiled"

    def __init__(self, **_):
        pass

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        eng = _config(target)
        clock = target.clock_mhz * 1e6
        mac_pj = target.energy.mac_pj.get("int16", max(target.energy.mac_pj.values()))
        e_dram = target.main_memory.energy_pj_per_byte
        costs = []
        for k in kernels(workload):
            comp = compute_cycles(k, eng)
            dram = dram_bytes(k, eng)
            terms = {"compute": comp, target.main_memory.name: dram / eng.dram_bytes_per_cycle}
            cyc = max(terms.values()) + eng.layer_overhead_cycles
            bound = max(terms, key=terms.get) if max(terms.values()) >= eng.layer_overhead_cycles else "overhead"
            util = k.macs / (comp * eng.tm * eng.tn) if comp and k.macs else 0.0
            costs.append(LayerCost(k.name, k.op, k.op_class, k.macs, k.weight_bytes, k.act_bytes, cyc / clock,
                                   (k.macs * mac_pj + dram * e_dram) * 1e-12, bound, dram, "int16", util,
                                   extra={"cycles": cyc, "terms_ms": {n: v / clock * 1e3 for n, v in terms.items()},
                                          "members": k.attrs.get("members", [k.name])}))
        latency = sum(c.latency_s for c in costs) + target.overheads.per_network_us * 1e-6
        energy = sum(c.energy_j for c in costs) + target.energy.static_power_w * latency
        return NetworkCost(model=workload.name, target=target.name, cost_model=self.name, layers=costs,
                           latency_s=latency, energy_j=energy, macs=workload.macs, params=workload.params,
                           peak_memory_bytes=int(workload.weight_bytes + workload.peak_activation_bytes()),
                           not_modelled=workload.not_modelled, notes=fixed_datapath_note(self.name, bits, 16))


class TiledFitter:
    """Calibration of a tiled engine: DRAM bandwidth, per-layer overhead, clock, per-run cost
    (the unroll factors are the design, not fitted here)."""

    def __init__(self, target: Target, runs):
        self.target, self.runs = target, runs
        eng = _config(target)
        comp, dram, owner = [], [], []
        for j, wl in enumerate(runs.unique):
            for k in kernels(wl):
                comp.append(compute_cycles(k, eng))
                dram.append(dram_bytes(k, eng))
                owner.append(j)
        self.comp, self.dram, self.owner = np.array(comp), np.array(dram), np.array(owner, int)
        self.names = ["dram_bytes_per_cycle", "layer_overhead_cycles", "clock_mhz", "per_network_us"]

    def initial(self):
        eng = self.target.tiled
        x0 = np.array([eng.dram_bytes_per_cycle, max(eng.layer_overhead_cycles, 1.0), self.target.clock_mhz,
                       max(self.target.overheads.per_network_us, 1.0)])
        return x0, np.array([0.01, 1e-3, 10.0, 1e-3]), np.array([1e4, 1e7, 5000.0, 1e7])

    def predict_ms(self, p):
        cyc = np.maximum(self.comp, self.dram / p["dram_bytes_per_cycle"]) + p["layer_overhead_cycles"]
        per_wl = np.bincount(self.owner, weights=cyc, minlength=len(self.runs.unique)) / (p["clock_mhz"] * 1e6)
        return self.runs.total(per_wl + p["per_network_us"] * 1e-6) * 1e3

    def apply(self, p):
        data = self.target.model_dump(exclude_none=True)
        data["tiled"] = {**data["tiled"], "dram_bytes_per_cycle": float(p["dram_bytes_per_cycle"]),
                         "layer_overhead_cycles": float(p["layer_overhead_cycles"])}
        data["clock_mhz"] = float(p["clock_mhz"])
        data["overheads"] = {**data.get("overheads", {}), "per_network_us": float(p["per_network_us"])}
        return data
