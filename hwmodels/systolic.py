"""Analytical, vectorized model of an R x C systolic array with SCALE-Sim's conventions.

SCALE-Sim (scalesim 3.0.0) builds cycle-by-cycle demand matrices and replays them through
double-buffered SRAMs.  Everything it reports for a layer without memory stalls follows from
the fold structure alone, so this module computes the same numbers in closed form, with
numpy broadcasting over ``[n_configs, n_layers]``:

* operand view (``topology_utils``): M = ofmap pixels, N = filters, K = window (r*s*c);
  ws: Sr=K, Sc=N, T=M;  os: Sr=M, Sc=N, T=K;  is: Sr=K, Sc=M, T=N.
* folds = ceil(Sr/R) * ceil(Sc/C); demand rows per fold (fill + stream + drain, the prefix,
  suffix and skew of ``systolic_compute_*``): ws/is 2R + C + T - 2, os R + C + T - 2.
* total cycles = folds * rows_per_fold - 1 (``max(ofmap_serviced_cycles)``) + stalls.
* mapping efficiency and compute utilisation are SCALE-Sim's per-fold averages; SRAM read /
  write counts are its request counters (including its +R+C per fold ofmap count in os).
* the memory system (CALC and USER DRAM bandwidth, SRAM refills, stalls, ofmap drains) is
  SCALE-Sim's replicated in ``hwmodels.systolic_memory``; the demand-matrix geometry both share
  is in ``hwmodels.systolic_geometry``.  Exact when operands fit their SRAMs; spilling ifmaps
  (``DRAM_NOTE``) and USER-mode stalls (``STALL_NOTE``) are approximations, measured in
  benchmarks/RESULTS.md.

Word size: SCALE-Sim hard-codes 1 byte per word; here an SRAM of KB kilobytes holds
KB*1024*8/word_bits words, which equals SCALE-Sim's count at 8 bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from itertools import product

import numpy as np

from hwmodels.errors import CodesignError
from hwmodels.systolic_geometry import cdiv, ofmap_write_row
from hwmodels.systolic_memory import memory_traffic

DATAFLOWS = ("ws", "os", "is")
DRAM_NOTE = (
    "CALC-mode DRAM reads are exact when an operand's distinct words fit in half its SRAM; "
    "a spilling ifmap is estimated with reuse inside one fold only (ws close, os/is high)."
)
STALL_NOTE = (
    "USER-bandwidth stalls and DRAM reads come from an analytical model of SCALE-Sim's refill "
    "walk: exact when operands fit their SRAMs, within a few % for regularly streaming "
    "bandwidth-bound layers, tens of % off where refill windows resonate with fold edges."
)


@dataclass
class SystolicLayers:
    """Layers in SCALE-Sim's topology terms, one numpy entry per layer.

    ``repeat`` runs the layer that many times independently (groups of a grouped conv,
    batch of a batched GEMM); ``batch`` multiplies the ofmap pixels (SCALE-Sim's Sr).
    """

    names: list[str]
    ifmap_h: np.ndarray
    ifmap_w: np.ndarray
    filt_h: np.ndarray
    filt_w: np.ndarray
    channels: np.ndarray
    num_filters: np.ndarray
    stride_h: np.ndarray
    stride_w: np.ndarray
    batch: np.ndarray = None
    repeat: np.ndarray = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        n = len(self.names)
        for f in fields(self):
            if f.name in ("names", "notes"):
                continue
            v = getattr(self, f.name)
            v = np.ones(n, dtype=np.int64) if v is None else np.asarray(v, dtype=np.int64).reshape(-1)
            if v.shape != (n,):
                raise CodesignError(f"layer field {f.name} has {v.size} entries for {n} layers")
            setattr(self, f.name, v)
        for f in ("ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filters",
                  "stride_h", "stride_w", "batch", "repeat"):
            bad = np.nonzero(getattr(self, f) < 1)[0]
            if bad.size:
                i = int(bad[0])
                raise CodesignError(f"layer {self.names[i]!r}: {f} must be >= 1, got {getattr(self, f)[i]}")
        for a, b, what in (("filt_h", "ifmap_h", "height"), ("filt_w", "ifmap_w", "width")):
            bad = np.nonzero(getattr(self, a) > getattr(self, b))[0]
            if bad.size:
                i = int(bad[0])
                raise CodesignError(f"layer {self.names[i]!r}: filter {what} {getattr(self, a)[i]} exceeds "
                                    f"ifmap {what} {getattr(self, b)[i]} (pad the ifmap first)")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> "SystolicLayers":
        """rows: (name, ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters, stride_h, stride_w
        [, batch [, repeat]])."""
        padded = [tuple(r) + (1,) * (11 - len(r)) for r in rows]
        names = [r[0] for r in padded]
        cols = [np.asarray([r[i] for r in padded], dtype=np.int64) for i in range(1, 11)]
        return cls(names, *cols)

    @classmethod
    def gemm(cls, names, m, n, k, batch=None) -> "SystolicLayers":
        """SCALE-Sim's GEMM form: ifmap M x K, filter 1 x K, 1 channel, N filters, stride 1."""
        m, n, k = (np.asarray(x, dtype=np.int64) for x in (m, n, k))
        one = np.ones_like(m)
        return cls(list(names), m, k, one, k, one, n, one, one, one,
                   one if batch is None else np.asarray(batch, dtype=np.int64))

    # derived shapes -------------------------------------------------------------------------
    @property
    def ofmap_h(self):
        return -(-(self.ifmap_h - self.filt_h + self.stride_h) // self.stride_h)

    @property
    def ofmap_w(self):
        return -(-(self.ifmap_w - self.filt_w + self.stride_w) // self.stride_w)

    @property
    def m(self):
        """ofmap pixels per filter (incl. batch): SCALE-Sim's rows of the im2col ifmap matrix."""
        return self.ofmap_h * self.ofmap_w * self.batch

    @property
    def k(self):
        return self.filt_h * self.filt_w * self.channels

    @property
    def n(self):
        return self.num_filters

    @property
    def macs(self):
        return self.m * self.n * self.k * self.repeat

    def _touched(self, size, filt, stride, out):
        """Input rows (cols) any window touches, and valid (window, offset) pairs."""
        last = size - (out - 1) * stride
        touched = (out - 1) * np.minimum(stride, filt) + np.minimum(filt, last)
        # sum over windows of min(filt, size - o*stride)
        full = np.minimum(out, np.maximum(0, (size - filt) // stride + 1))
        o = np.arange(int(out.max()) + 1 if out.size else 1)[None, :]
        part = np.where((o >= full[:, None]) & (o < out[:, None]),
                        np.clip(size[:, None] - o * stride[:, None], 0, None), 0).sum(1)
        valid = full * filt + part
        return touched, valid

    @property
    def ifmap_words(self):
        """Distinct ifmap words the array reads (SCALE-Sim does not read untouched pixels)."""
        th, _ = self._touched(self.ifmap_h, self.filt_h, self.stride_h, self.ofmap_h)
        tw, _ = self._touched(self.ifmap_w, self.filt_w, self.stride_w, self.ofmap_w)
        return th * tw * self.channels * self.batch

    @property
    def ifmap_valid(self):
        """Valid (non -1) entries of the im2col ifmap matrix: partial windows at the far edge
        (when (H - R) % stride != 0) hold -1 in SCALE-Sim and are never fetched."""
        _, vh = self._touched(self.ifmap_h, self.filt_h, self.stride_h, self.ofmap_h)
        _, vw = self._touched(self.ifmap_w, self.filt_w, self.stride_w, self.ofmap_w)
        return vh * vw * self.channels * self.batch


@dataclass
class ArrayConfigs:
    """Accelerator configurations, one numpy entry per config (SCALE-Sim architecture presets).

    ``user_bw`` False is SCALE-Sim's InterfaceBandwidth=CALC (no stalls, DRAM traffic estimated
    with 10 words/cycle read ports); True is USER with ``ifmap_bw``/``filter_bw`` words per
    cycle into the read SRAMs and ``ofmap_bw`` out of the ofmap SRAM.
    """

    rows: np.ndarray
    cols: np.ndarray
    ifmap_kb: np.ndarray
    filter_kb: np.ndarray
    ofmap_kb: np.ndarray
    dataflow: np.ndarray                # 0 ws, 1 os, 2 is
    ifmap_bw: np.ndarray
    filter_bw: np.ndarray
    ofmap_bw: np.ndarray
    user_bw: np.ndarray
    word_bits: np.ndarray

    def __post_init__(self):
        arrays = {f.name: np.atleast_1d(np.asarray(getattr(self, f.name))) for f in fields(self)}
        df = arrays["dataflow"]
        if df.dtype.kind in "US":
            bad = [d for d in df.tolist() if d not in DATAFLOWS]
            if bad:
                raise CodesignError(f"unknown dataflow {bad[0]!r}; use one of ws, os, is")
            arrays["dataflow"] = np.array([DATAFLOWS.index(d) for d in df.tolist()])
        n = max(a.size for a in arrays.values())
        for k, a in arrays.items():
            a = np.broadcast_to(a, (n,)).copy() if a.size in (1, n) else None
            if a is None:
                raise CodesignError(f"config field {k} has the wrong number of entries")
            kind = bool if k == "user_bw" else float if k.endswith("_kb") else np.int64
            setattr(self, k, a.astype(kind))
        for k in ("rows", "cols", "ifmap_kb", "filter_kb", "ofmap_kb", "ifmap_bw", "filter_bw", "ofmap_bw", "word_bits"):
            bad = np.nonzero(getattr(self, k) <= 0)[0]
            if bad.size:
                raise CodesignError(f"config {int(bad[0])}: {k} must be > 0, got {getattr(self, k)[bad[0]]}")
        if np.any((self.dataflow < 0) | (self.dataflow > 2)):
            raise CodesignError("dataflow code must be 0 (ws), 1 (os) or 2 (is)")
        for k in ("ifmap_kb", "filter_kb", "ofmap_kb"):
            small = np.nonzero(self.sram_words(getattr(self, k)) < 100)[0]
            if small.size:
                i = int(small[0])
                raise CodesignError(f"config {i}: {k}={getattr(self, k)[i]} holds fewer than 100 words "
                                    f"(SCALE-Sim splits each SRAM into 100 sets); raise the SRAM size")

    def __len__(self) -> int:
        return int(self.rows.size)

    def fold_needs(self) -> dict[str, np.ndarray]:
        """Words each SRAM's active half must hold for one fold: the stationary operand's
        R x C tile (ws filter, is ifmap, os outputs), one row/column of the streamed ones."""
        R, C, df = self.rows, self.cols, self.dataflow
        return {"ifmap_kb": np.where(df == 2, R * C, R), "filter_kb": np.where(df == 0, R * C, np.where(df == 1, C, R)),
                "ofmap_kb": np.where(df == 1, R * C, C)}

    def fold_fits(self) -> np.ndarray:
        """Mask of configs whose SRAMs can hold one fold (see ``fold_needs``)."""
        ok = np.ones(len(self), dtype=bool)
        for k, need in self.fold_needs().items():
            ok &= self.sram_words(getattr(self, k)) // 2 >= need
        return ok

    def check_fold_fits(self) -> None:
        """Raise a one-line CodesignError for the first config whose SRAM cannot hold a fold."""
        for k, need in self.fold_needs().items():
            bad = np.nonzero(self.sram_words(getattr(self, k)) // 2 < need)[0]
            if bad.size:
                i = int(bad[0])
                kb_needed = 2 * need[i] * self.word_bits[i] / 8 / 1024
                raise CodesignError(
                    f"config {i}: {k.replace('_kb', '')} SRAM of {getattr(self, k)[i]:g} KB cannot hold one fold of a "
                    f"{self.rows[i]}x{self.cols[i]} {DATAFLOWS[int(self.dataflow[i])]} array ({need[i]} words in its "
                    f"active half); use at least {kb_needed:g} KB or a smaller array")

    def sram_words(self, kb):
        return np.floor(kb * 1024 * 8 / self.word_bits).astype(np.int64)

    def describe(self, i: int) -> dict:
        return {"rows": int(self.rows[i]), "cols": int(self.cols[i]), "ifmap_sram_kb": float(self.ifmap_kb[i]),
                "filter_sram_kb": float(self.filter_kb[i]), "ofmap_sram_kb": float(self.ofmap_kb[i]),
                "dataflow": DATAFLOWS[int(self.dataflow[i])], "dram_bandwidth_words": int(self.ofmap_bw[i]),
                "word_bits": int(self.word_bits[i])}


def configs_from_grid(rows, cols, ifmap_kb, filter_kb, ofmap_kb, dataflow, bandwidth,
                      word_bits=(8,), user_bw=True) -> ArrayConfigs:
    """Cartesian product of per-field value lists -> ArrayConfigs (one bandwidth for all ports)."""
    grid = list(product(rows, cols, ifmap_kb, filter_kb, ofmap_kb, dataflow, bandwidth, word_bits))
    if not grid:
        raise CodesignError("empty configuration grid: every range needs at least one value")
    r, c, i, f, o, d, b, w = (list(x) for x in zip(*grid))
    return ArrayConfigs(r, c, i, f, o, d, b, b, b, user_bw, w)


def config_from_systolic(cfg, user_bw: bool = True) -> ArrayConfigs:
    """One ``codesign.targets.SystolicConfig`` -> ArrayConfigs of size 1."""
    bw = int(round(cfg.dram_bandwidth_words))
    return ArrayConfigs([cfg.rows], [cfg.cols], [cfg.ifmap_sram_kb], [cfg.filter_sram_kb], [cfg.ofmap_sram_kb],
                        [cfg.dataflow], [bw], [bw], [bw], [user_bw], [cfg.word_bits])


@dataclass
class SystolicResult:
    """Per (config, layer) results, arrays of shape [n_configs, n_layers]; SCALE-Sim names."""

    layer_names: list[str]
    configs: ArrayConfigs
    total_cycles: np.ndarray
    total_cycles_incl_prefetch: np.ndarray
    stall_cycles: np.ndarray
    compute_cycles: np.ndarray
    overall_util_pct: np.ndarray
    mapping_efficiency_pct: np.ndarray
    compute_util_pct: np.ndarray
    folds: np.ndarray
    macs: np.ndarray
    ifmap_sram_reads: np.ndarray
    filter_sram_reads: np.ndarray
    ofmap_sram_writes: np.ndarray
    ifmap_dram_reads: np.ndarray
    filter_dram_reads: np.ndarray
    ofmap_dram_writes: np.ndarray

    @property
    def sram_reads(self):
        return self.ifmap_sram_reads + self.filter_sram_reads

    @property
    def sram_writes(self):
        return self.ofmap_sram_writes

    @property
    def dram_reads(self):
        return self.ifmap_dram_reads + self.filter_dram_reads

    @property
    def dram_writes(self):
        return self.ofmap_dram_writes

    def layer_dicts(self, config: int = 0) -> list[dict]:
        """One config's per-layer report in the ``--json`` shape."""
        out = []
        for j, name in enumerate(self.layer_names):
            out.append({
                "name": name,
                "total_cycles": int(self.total_cycles[config, j]),
                "total_cycles_incl_prefetch": int(self.total_cycles_incl_prefetch[config, j]),
                "stall_cycles": int(self.stall_cycles[config, j]),
                "overall_util_pct": float(self.overall_util_pct[config, j]),
                "mapping_efficiency_pct": float(self.mapping_efficiency_pct[config, j]),
                "compute_util_pct": float(self.compute_util_pct[config, j]),
                "sram_reads": int(self.sram_reads[config, j]),
                "sram_writes": int(self.sram_writes[config, j]),
                "dram_reads": int(self.dram_reads[config, j]),
                "dram_writes": int(self.dram_writes[config, j]),
            })
        return out


def _operand_view(df, m, n, k):
    """(Sr, Sc, T) per SCALE-Sim's compute classes, broadcast over configs x layers."""
    sr = np.where(df == 1, m, k)
    sc = np.where(df == 2, m, n)
    t = np.select([df == 0, df == 1], [m, k], n)
    return sr, sc, t


@dataclass
class Folds:
    """How every layer folds onto every array: SCALE-Sim's compute side, arrays [n_configs, n_layers].

    Operand view (``topology_utils``): M ofmap pixels, N filters, K window; Sr x Sc is the
    matrix mapped onto the R x C array and T the dimension streamed through it.
    """

    R: np.ndarray
    C: np.ndarray
    df: np.ndarray                # 0 ws, 1 os, 2 is
    M: np.ndarray
    N: np.ndarray
    K: np.ndarray
    sr: np.ndarray
    sc: np.ndarray
    t: np.ndarray
    rf: np.ndarray                # row folds ceil(Sr / R)
    cf: np.ndarray                # column folds ceil(Sc / C)
    folds: np.ndarray
    rows_per_fold: np.ndarray     # demand rows per fold: fill + stream + drain
    demand_rows: np.ndarray
    compute_cycles: np.ndarray
    mapping_eff: np.ndarray       # SCALE-Sim's per-fold averages
    compute_util: np.ndarray
    if_sram: np.ndarray           # SRAM request counters (systolic_compute_*.get_*_requests)
    fl_sram: np.ndarray
    of_demand: np.ndarray         # valid ofmap writes in the demand matrix
    of_sram: np.ndarray

    def write_row(self, n):
        """Demand row of the n-th (1-based) valid ofmap write."""
        return ofmap_write_row(n, self.df, self.R, self.C, self.sr, self.sc, self.t, self.rf, self.cf,
                               self.rows_per_fold)


def fold_layers(layers: SystolicLayers, configs: ArrayConfigs) -> Folds:
    """The fold structure of every layer on every config (no memory system yet)."""
    R, C, df = configs.rows[:, None], configs.cols[:, None], configs.dataflow[:, None]
    M, N, K = layers.m[None, :], layers.n[None, :], layers.k[None, :]
    sr, sc, t = _operand_view(df, M, N, K)
    rf, cf = cdiv(sr, R), cdiv(sc, C)
    folds = rf * cf
    os_ = df == 1
    rows_per_fold = np.where(os_, R + C + t - 2, 2 * R + C + t - 2)
    demand_rows = folds * rows_per_fold
    util_cycles = np.where(os_, rows_per_fold, rows_per_fold + C - 1)
    of_demand = np.where(os_, M * N, rf * M * N)
    return Folds(
        R=R, C=C, df=df, M=M, N=N, K=K, sr=sr, sc=sc, t=t, rf=rf, cf=cf, folds=folds,
        rows_per_fold=rows_per_fold, demand_rows=demand_rows, compute_cycles=demand_rows - 1,
        mapping_eff=sr * sc / (R * C * folds), compute_util=sr * sc * t / (R * C * util_cycles * folds),
        if_sram=np.select([df == 0, df == 1], [cf * M * K, cf * K * M], K * M),
        fl_sram=np.select([df == 0, df == 1], [K * N, rf * K * N], cf * N * K),
        of_demand=of_demand, of_sram=np.where(os_, M * N + folds * (R + C), of_demand),
    )


def simulate(layers: SystolicLayers, configs: ArrayConfigs) -> SystolicResult:
    """Score every config on every layer; returns arrays of shape [n_configs, n_layers]."""
    if len(layers) == 0:
        raise CodesignError("no layers to simulate (the model has no conv or matmul layers)")
    f = fold_layers(layers, configs)
    mem = memory_traffic(layers, configs, f)
    rep = layers.repeat[None, :]
    total = f.compute_cycles + mem.stalls
    overall_util = 100.0 * f.M * f.N * f.K / (total * f.R * f.C)
    return SystolicResult(
        layer_names=list(layers.names), configs=configs,
        total_cycles=total * rep, total_cycles_incl_prefetch=mem.incl_prefetch * rep, stall_cycles=mem.stalls * rep,
        compute_cycles=f.compute_cycles * rep, overall_util_pct=overall_util,
        mapping_efficiency_pct=100.0 * f.mapping_eff, compute_util_pct=100.0 * f.compute_util, folds=f.folds * rep,
        macs=np.broadcast_to(f.M * f.N * f.K * rep, total.shape),
        ifmap_sram_reads=f.if_sram * rep, filter_sram_reads=f.fl_sram * rep, ofmap_sram_writes=f.of_sram * rep,
        ifmap_dram_reads=mem.dram_if * rep, filter_dram_reads=mem.dram_fl * rep, ofmap_dram_writes=mem.dram_of * rep,
    )


def layers_from_workload(workload) -> SystolicLayers:
    """Conv and matmul layers of a ``hwmodels.workload.Workload`` in SCALE-Sim's terms.

    conv: ifmap = padded input (SCALE-Sim does not pad), channels c/groups, filters k/groups,
    the ``groups`` convs run one after another (``repeat``), batch n multiplies the ofmap
    pixels.  Dilated kernels use the effective extent (r-1)*d+1, which overstates MACs (the
    array streams the holes as zeros).  GEMM: SCALE-Sim's M, N, K form, ``batch`` repeats.
    Layers with neither (pool, elementwise, ...) do not run on the array and are skipped.
    """
    rows, notes = [], []
    for layer in workload.layers():
        if layer.conv is not None:
            cv = layer.conv
            rh = (cv.r - 1) * cv.dilation_h + 1
            rw = (cv.s - 1) * cv.dilation_w + 1
            if cv.dilation_h > 1 or cv.dilation_w > 1:
                notes.append(f"{layer.name}: dilated kernel mapped as a dense {rh}x{rw} window "
                             f"({rh * rw / (cv.r * cv.s):.2f}x the real MACs)")
            rows.append((layer.name, cv.h + cv.pad_top + cv.pad_bottom, cv.w + cv.pad_left + cv.pad_right,
                         rh, rw, max(1, cv.c // cv.groups), max(1, cv.k // cv.groups),
                         cv.stride_h, cv.stride_w, cv.n, cv.groups))
        elif layer.gemm is not None:
            g = layer.gemm
            rows.append((layer.name, g.m, g.k, 1, g.k, 1, g.n, 1, 1, 1, g.batch))
    if not rows:
        raise CodesignError(f"workload {workload.name!r} has no conv or matmul layers to run on the array")
    out = SystolicLayers.from_rows(rows)
    out.notes = notes
    return out
