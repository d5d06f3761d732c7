"""Row-stationary mapping model of an Eyeriss-style spatial array (cost model ``row-stationary``).

Eyeriss v1 (Chen et al., ISSCC 2016, JSSC 2017; dataflow: ISCA 2016) computes a convolution as
1-D row convolutions: a PE keeps one filter row in its scratchpad, slides it over one input
row and produces one row of partial sums.  A *logical PE set* of R x E PEs (filter rows x
output rows) computes one 2-D convolution plane: filter rows are reused across a PE row,
input rows diagonally, and partial sums accumulate up each column.  The mapper then

- folds the set onto the physical array (``rows`` x ``cols``, 12 x 14 on Eyeriss): output rows
  are cut into strips of at most ``cols`` columns, filter rows taller than ``rows`` into parts;
- replicates the folded set to fill the array, the copies working on other strips, other
  groups, other input channels (their psums meet in the global buffer) or other filters;
- interleaves ``q`` input channels and ``p`` filters inside each PE, as far as the ifmap,
  filter and psum scratchpads hold them (q*S <= ifmap spad, p*q*S <= filter spad, p <= psum spad).

Per candidate mapping: compute cycles = passes x (p*q*S*F); global-buffer words = filters
(re-read per strip) + input rows (re-read per filter pass) + partial sums (read and written
per input-channel pass); DRAM words = weights + inputs (re-fetched per filter pass when the
layer's input and output do not fit the global buffer) + outputs.  A layer takes
max(compute, GLB words / GLB bandwidth, DRAM words / DRAM bandwidth) + a fixed per-layer
overhead, with the mapping that minimises it (as Timeloop's mapper would for delay).

Why depthwise layers map poorly: a depthwise filter sees one input channel and one filter,
so there is no channel accumulation (q = 1) and no filter reuse of an input row (p = 1);
each PE does S MACs per output pixel between reloads, and with ``groups = "sequential"`` (one
group's 2-D convolution at a time, as a mapper without a group dimension runs them) only
R x E PEs of the 168 work.  Pooling runs the same way (a window with no weights); element-wise
layers (residual adds) only move data; activations and BatchNorm are applied as psums drain.

The same code maps every layer of every network; a target supplies the array, scratchpads,
buffer, bandwidths and overhead (``[row_stationary]`` in its TOML).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hwmodels.base import LayerCost, NetworkCost, fixed_datapath_note
from hwmodels.bits import BitAssignment
from hwmodels.errors import CodesignError
from hwmodels.fusion import ACTIVATIONS, FusionRules, fuse
from hwmodels.targets import RowStationary, Target
from hwmodels.workload import Layer, Workload

# activations and BatchNorm are applied on the psum path as outputs drain; a residual Add that
# follows a convolution initialises its psums with the residual (one more tensor read, no pass)
ACCELERATOR_FUSION = FusionRules(fuse_activation=ACTIVATIONS, fuse_residual_add=True, split_grouped_conv=False)


@dataclass(frozen=True)
class Problem:
    """One 2-D convolution (per group) in row-stationary terms; pooling has no weights."""

    c: int            # input channels per group
    m: int            # filters per group
    g: int            # groups
    r: int
    s: int
    e: int            # output rows
    f: int            # output columns
    h: int            # input rows (padded)
    w: int            # input columns (padded)
    stride: int
    weights: bool = True

    @property
    def macs(self) -> int:
        return self.g * self.m * self.c * self.r * self.s * self.e * self.f


def _cd(a, b):
    return -(-a // b)


def _cands(x: int, lim: int) -> np.ndarray:
    """Split factors worth trying for x in [1, lim]: each distinct ceil(x / k), plus lim."""
    lim = max(1, min(lim, x))
    vals = {_cd(x, k) for k in range(1, x + 1)}
    vals.add(lim)
    return np.array(sorted(v for v in vals if v <= lim), dtype=np.int64)


@lru_cache(maxsize=65536)
def mappings(pb: Problem, hw: tuple) -> np.ndarray:
    """Pareto set of candidate mappings as rows (compute cycles, GLB words, DRAM words, util, passes)."""
    rows, cols, if_spad, w_spad, ps_spad, glb_words, group_parallel = hw
    rf = _cd(pb.r, rows)
    rp = _cd(pb.r, rf)
    gs, gseq = (pb.g, 1) if group_parallel else (1, pb.g)
    w_total = pb.g * pb.m * pb.c * pb.r * pb.s if pb.weights else 0
    in_total = pb.g * pb.c * pb.h * pb.w
    out_total = pb.g * pb.m * pb.e * pb.f
    fits = in_total + out_total <= glb_words
    out = []
    first = _cd(pb.e, cols)
    for n_strip in range(first, min(pb.e, first + 3) + 1):
        e = _cd(pb.e, n_strip)
        sets = (rows // rp) * (cols // e)
        for q in _cands(pb.c, max(1, if_spad // pb.s)):
            q = int(q)
            cq = _cd(pb.c, q)
            ps = _cands(pb.m, min(ps_spad, max(1, w_spad // (q * pb.s))))
            ts = np.arange(1, min(sets, n_strip) + 1)
            tg = _cands(gs, sets)
            tc = _cands(cq, sets)
            P, TS, TG, TC = (a.ravel() for a in np.meshgrid(ps, ts, tg, tc, indexing="ij"))
            ok = TS * TG * TC <= sets
            P, TS, TG, TC = P[ok], TS[ok], TG[ok], TC[ok]
            mp = -(-pb.m // P)
            TM = np.minimum(sets // (TS * TG * TC), mp)
            n_c = -(-cq // TC)
            n_m = -(-mp // TM)
            n_g = -(-gs // TG) * gseq
            passes = -(-n_strip // TS) * rf * n_c * n_m * n_g
            compute = passes * P * q * pb.s * pb.f
            rows_in = min(pb.h, (e - 1) * pb.stride + pb.r) * n_strip
            glb = (w_total * n_strip + pb.g * pb.c * rows_in * pb.w * n_m
                   + out_total * (2 * (n_c * rf - 1) + 1))
            dram = w_total + in_total * (np.ones_like(n_m) if fits else n_m) + out_total
            util = pb.macs / (compute * rows * cols)
            out.append(np.stack([compute, glb, dram, util, passes], axis=1).astype(float))
    cand = np.concatenate(out)
    return _pareto(cand)


def _pareto(c: np.ndarray) -> np.ndarray:
    """Candidates not dominated in (compute, GLB words, DRAM words)."""
    order = np.lexsort((c[:, 2], c[:, 1], c[:, 0]))
    c = c[order]
    keep = []
    for i in range(len(c)):
        dominated = False
        for j in keep:
            if c[j, 0] <= c[i, 0] and c[j, 1] <= c[i, 1] and c[j, 2] <= c[i, 2]:
                dominated = True
                break
        if not dominated:
            keep.append(i)
            if len(keep) > 64:
                break
    return c[keep]


def hw_key(rs: RowStationary, bits_word: int | None = None) -> tuple:
    glb_words = int(rs.glb_kb * 1024 * 8 // rs.word_bits)
    return (rs.rows, rs.cols, rs.ifmap_spad_words, rs.filter_spad_words, rs.psum_spad_words, glb_words,
            rs.groups == "parallel")


def problem_of(layer: Layer) -> Problem | None:
    """The row-stationary problem of a kernel, or None when it does not use the PE array."""
    c = layer.conv
    if c is not None:
        return Problem(c.c // c.groups, c.k // c.groups, c.groups, c.r, c.s, c.p, c.q,
                       c.h + c.pad_top + c.pad_bottom, c.w + c.pad_left + c.pad_right, max(c.stride_h, 1))
    if layer.gemm is not None:
        gm = layer.gemm
        return Problem(gm.k, gm.n, gm.batch, 1, 1, 1, gm.m, 1, gm.m, 1)
    if layer.op_class == "pool" and layer.input_shapes and len(layer.input_shapes[0]) == 4:
        n, ch, h, w = (int(d) for d in layer.input_shapes[0])
        _, _, p, q = (int(d) for d in layer.output_shapes[0])
        k = layer.attrs.get("kernel_shape") or [h, w]
        st = layer.attrs.get("strides") or [1, 1]
        pads = layer.attrs.get("pads") or [0, 0, 0, 0]
        return Problem(1, 1, n * ch, int(k[0]), int(k[1]), p, q, h + int(pads[0]) + int(pads[2]),
                       w + int(pads[1]) + int(pads[3]), int(st[0]), weights=False)
    return None


def with_residual(cands: np.ndarray, words: float) -> np.ndarray:
    if not words:
        return cands
    out = cands.copy()
    out[:, 1] += words
    out[:, 2] += words
    return out


def layer_cycles(cands: np.ndarray, glb_bw: float, dram_bw: float) -> tuple[float, int]:
    t = np.maximum(cands[:, 0], np.maximum(cands[:, 1] / glb_bw, cands[:, 2] / dram_bw))
    i = int(np.argmin(t))
    return float(t[i]), i


# layout-only ops an accelerator folds into the address generation of the layer that writes the
# tensor (a channel shuffle is a permuted write order, a concat writes into one buffer): no pass
LAYOUT_OPS = frozenset({"Transpose", "Concat", "Split"})


def residual_words(layer: Layer) -> float:
    """Words of inputs a fused kernel reads besides its convolution's own input (a residual)."""
    extra = layer.input_shapes[1:] if layer.conv is not None or layer.gemm is not None else []
    return float(sum(math.prod(int(d) for d in s) for s in extra if s))


def traffic_words(layer: Layer) -> float:
    """DRAM words of a layer that does not use the array: its inputs in, its output out."""
    return (layer.input_bytes + layer.output_bytes) / max(layer.dtype_bytes, 1)


class RowStationaryModel:
    """Per-layer row-stationary mapping on the target's array (see module docstring)."""

    name = "row-stationary"

    def __init__(self, **_):
        pass

    def estimate(self, workload: Workload, target: Target, bits: BitAssignment | None = None) -> NetworkCost:
        rs = _config(target)
        hw = hw_key(rs)
        clock = target.clock_mhz * 1e6
        word_bytes = rs.word_bits / 8
        glb_name = target.memory[1].name if len(target.memory) > 2 else "global buffer"
        dram_name = target.main_memory.name
        e_rf, e_glb, e_dram = (target.memory[i].energy_pj_per_byte * word_bytes if i < len(target.memory) else 0.0
                               for i in range(3))
        mac_pj = target.energy.mac_pj.get("int16", max(target.energy.mac_pj.values()))
        costs = []
        for k in fuse(workload, ACCELERATOR_FUSION).layers():
            if k.op in LAYOUT_OPS:
                costs.append(LayerCost(k.name, k.op, k.op_class, 0, 0, k.act_bytes, 0.0, 0.0, "free", 0.0, "int16", 0.0))
                continue
            pb = problem_of(k)
            if pb is not None:
                cands = with_residual(mappings(pb, hw), residual_words(k))
                cyc, i = layer_cycles(cands, rs.glb_words_per_cycle, rs.dram_words_per_cycle)
                comp, glb, dram, util, passes = cands[i]
                terms = {"compute": comp, glb_name: glb / rs.glb_words_per_cycle,
                         dram_name: dram / rs.dram_words_per_cycle}
                macs = pb.macs
                rf_words = 3 * macs
            else:
                dram = traffic_words(k)
                glb, comp, util, passes = dram, 0.0, 0.0, 0
                terms = {glb_name: glb / rs.glb_words_per_cycle, dram_name: dram / rs.dram_words_per_cycle}
                cyc = max(terms.values())
                macs, rf_words = 0, 0
            bound = max(terms, key=terms.get)
            cyc += rs.layer_overhead_cycles
            if rs.layer_overhead_cycles > max(terms.values()):
                bound = "overhead"
            energy_pj = macs * mac_pj + rf_words * e_rf + glb * e_glb + dram * e_dram
            costs.append(LayerCost(k.name, k.op, k.op_class, k.macs, k.weight_bytes, k.act_bytes, cyc / clock,
                                   energy_pj * 1e-12, bound, dram * word_bytes, "int16", float(util),
                                   extra={"cycles": cyc, "passes": int(passes),
                                          "terms_ms": {n: v / clock * 1e3 for n, v in terms.items()},
                                          "glb_words": glb, "dram_words": dram,
                                          "members": k.attrs.get("members", [k.name])}))
        latency = sum(c.latency_s for c in costs) + target.overheads.per_network_us * 1e-6
        energy = sum(c.energy_j for c in costs) + target.energy.static_power_w * latency
        return NetworkCost(model=workload.name, target=target.name, cost_model=self.name, layers=costs,
                           latency_s=latency, energy_j=energy, macs=workload.macs, params=workload.params,
                           peak_memory_bytes=int(workload.weight_bytes + workload.peak_activation_bytes()),
                           not_modelled=workload.not_modelled, notes=fixed_datapath_note(self.name, bits, 16))


def _config(target: Target) -> RowStationary:
    if target.row_stationary is None:
        raise CodesignError(f"target {target.name!r} has no [row_stationary] table; the row-stationary model "
                            f"needs the array, scratchpads, buffer and bandwidths (see targets/eyeriss.toml)")
    return target.row_stationary


class RowStationaryFitter:
    """Calibration of a row-stationary target: GLB and DRAM bandwidth, per-layer overhead, clock.

    The mapping structure is fixed; each layer keeps its Pareto set of candidate mappings so
    that the fit re-chooses the best mapping exactly as the model does for new bandwidths."""

    def __init__(self, target: Target, runs):
        self.target, self.runs = target, runs
        rs = _config(target)
        hw = hw_key(rs)
        cands, owner = [], []
        for j, wl in enumerate(runs.unique):
            for k in fuse(wl, ACCELERATOR_FUSION).layers():
                if k.op in LAYOUT_OPS:
                    continue
                pb = problem_of(k)
                c = with_residual(mappings(pb, hw), residual_words(k)) if pb is not None else np.array([[0.0, traffic_words(k), traffic_words(k), 0, 0]])
                cands.append(c)
                owner.append(j)
        self.cands = cands
        self.owner = np.array(owner, int)
        self.sizes = np.array([len(c) for c in cands])
        self.flat = np.concatenate(cands) if cands else np.zeros((0, 5))
        self.layer_of = np.repeat(np.arange(len(cands)), self.sizes)
        self.names = ["glb_words_per_cycle", "dram_words_per_cycle", "layer_overhead_cycles", "clock_mhz", "per_network_us"]

    def initial(self):
        rs = self.target.row_stationary
        x0 = np.array([rs.glb_words_per_cycle, rs.dram_words_per_cycle, max(rs.layer_overhead_cycles, 1.0),
                       self.target.clock_mhz, max(self.target.overheads.per_network_us, 1.0)])
        lo = np.array([0.01, 0.01, 1e-3, 10.0, 1e-3])
        hi = np.array([1e4, 1e4, 1e7, 5000.0, 1e7])
        return x0, lo, hi

    def predict_ms(self, p):
        t = np.maximum(self.flat[:, 0], np.maximum(self.flat[:, 1] / p["glb_words_per_cycle"],
                                                   self.flat[:, 2] / p["dram_words_per_cycle"]))
        best = np.full(len(self.cands), np.inf)
        np.minimum.at(best, self.layer_of, t)
        per_layer = best + p["layer_overhead_cycles"]
        per_wl = np.bincount(self.owner, weights=per_layer, minlength=len(self.runs.unique)) / (p["clock_mhz"] * 1e6)
        per_wl = per_wl + p["per_network_us"] * 1e-6
        return self.runs.total(per_wl) * 1e3

    def apply(self, p):
        data = self.target.model_dump(exclude_none=True)
        rs = dict(data["row_stationary"])
        for n in ("glb_words_per_cycle", "dram_words_per_cycle", "layer_overhead_cycles"):
            rs[n] = float(p[n])
        data["row_stationary"] = rs
        data["clock_mhz"] = float(p["clock_mhz"])
        data["overheads"] = {**data.get("overheads", {}), "per_network_us": float(p["per_network_us"])}
        return data
