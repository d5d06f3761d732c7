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
* CALC mode (no stalls): DRAM traffic replays ``ReadBufferEstimateBw``: an operand whose
  distinct words fit in half the SRAM (50 sets of floor(words/100)) is read once per word;
  the ofmap ``write_buffer`` drains (and its one-word-line quirk) are modelled exactly, which
  gives ``total_cycles_incl_prefetch``.  Spilling ifmaps are estimated (``DRAM_NOTE``).
* USER mode: ``read_buffer`` walks a window of half the SRAM over the prefetch stream and
  refills it back to back at the given bandwidth; refill counts and stalls come from a walk
  model per operand (``_user_read``).  Exact when operands fit, an approximation otherwise
  (``STALL_NOTE``; measured figures in benchmarks/RESULTS.md).

Word size: SCALE-Sim hard-codes 1 byte per word; here an SRAM of KB kilobytes holds
KB*1024*8/word_bits words, which equals SCALE-Sim's count at 8 bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from itertools import product

import numpy as np

from codesign.errors import CodesignError

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


def _cdiv(a, b):
    return -(-a // b)


def _operand_view(df, m, n, k):
    """(Sr, Sc, T) per SCALE-Sim's compute classes, broadcast over configs x layers."""
    sr = np.where(df == 1, m, k)
    sc = np.where(df == 2, m, n)
    t = np.select([df == 0, df == 1], [m, k], n)
    return sr, sc, t


def simulate(layers: SystolicLayers, configs: ArrayConfigs) -> SystolicResult:
    """Score every config on every layer; returns arrays of shape [n_configs, n_layers]."""
    if len(layers) == 0:
        raise CodesignError("no layers to simulate (the model has no conv or matmul layers)")
    R = configs.rows[:, None]
    C = configs.cols[:, None]
    df = configs.dataflow[:, None]
    M, N, K = layers.m[None, :], layers.n[None, :], layers.k[None, :]
    rep = layers.repeat[None, :]

    sr, sc, t = _operand_view(df, M, N, K)
    rf, cf = _cdiv(sr, R), _cdiv(sc, C)
    folds = rf * cf
    os_ = df == 1
    rows_per_fold = np.where(os_, R + C + t - 2, 2 * R + C + t - 2)
    demand_rows = folds * rows_per_fold
    compute_cycles = demand_rows - 1

    # per-fold averages, exactly as SCALE-Sim accumulates them
    mapping_eff = sr * sc / (R * C * folds)
    util_cycles = np.where(os_, rows_per_fold, rows_per_fold + C - 1)
    compute_util = sr * sc * t / (R * C * util_cycles * folds)

    # SRAM request counters (systolic_compute_*.get_*_requests)
    if_sram = np.select([df == 0, df == 1], [cf * M * K, cf * K * M], K * M)
    fl_sram = np.select([df == 0, df == 1], [K * N, rf * K * N], cf * N * K)
    of_demand = np.where(os_, M * N, rf * M * N)          # valid ofmap writes in the demand matrix
    of_sram = np.where(os_, M * N + folds * (R + C), of_demand)

    # ---- memory system ----
    words_if = configs.sram_words(configs.ifmap_kb)[:, None]
    words_fl = configs.sram_words(configs.filter_kb)[:, None]
    words_of = configs.sram_words(configs.ofmap_kb)[:, None]
    user = configs.user_bw[:, None]
    d_if = layers.ifmap_words[None, :]
    v_if = layers.ifmap_valid[None, :]
    d_fl = K * N
    pass_fl = np.select([df == 0, df == 1], [1, rf], cf)

    # CALC: ReadBufferEstimateBw; epoch capacity = 50 sets of floor(words/100)
    e_if, e_fl = words_if // 100, words_fl // 100
    b_if, b_fl = 50 * e_if, 50 * e_fl
    calc_if = np.where(d_if < b_if, d_if, _spilled_ifmap_reads(layers, df, R, C, cf, rf, v_if, d_if))
    calc_fl = np.where(d_fl < b_fl, d_fl, pass_fl * d_fl)
    first_if = np.select([df == 0, df == 1], [R, 0], R - np.minimum(R, sr))
    first_fl = np.select([df == 0, df == 1], [R - np.minimum(R, sr), 0], R)
    start_if = np.where(calc_if < b_if, -_cdiv(_cdiv(calc_if, e_if) * e_if, 10), first_if - _cdiv(b_if, 10))
    start_fl = np.where(calc_fl < b_fl, -_cdiv(_cdiv(calc_fl, e_fl) * e_fl, 10), first_fl - _cdiv(b_fl, 10))

    # USER: read_buffer with a prefetch (fetch) stream; sets of ceil(words/100)
    bw_if, bw_fl, bw_of = (x[:, None] for x in (configs.ifmap_bw, configs.filter_bw, configs.ofmap_bw))
    pre_len_if = np.select([df == 0, df == 1], [rf * M * R, rf * K * R], cf * K * C)   # incl. -1 padding
    pre_len_fl = np.select([df == 0, df == 1], [cf * K * C, cf * K * C], rf * N * R)
    # walk pattern of each operand over its fetch stream (see _user_read)
    F = rows_per_fold
    ru = np.minimum(R, sr)
    cu = np.minimum(C, sc)
    stream_if = dict(kind=np.where(df == 2, 1, 0), passes=cf, nb=rf, T=t, ru=ru, cu=cu, F=F,
                     o=np.where(df == 1, 0, R), chunk=R * C, blk=K * C, R=R, C=C, K=K)
    stream_fl = dict(kind=np.select([df == 0, df == 1], [1, 2], 0), passes=cf, nb=rf, T=t, ru=ru, cu=cu, F=F,
                     o=np.where(df == 1, 0, R), chunk=R * C, blk=K * C, R=R, C=C, K=K)
    user_if, miss_if, late_if = _user_read(words_if, bw_if, np.broadcast_to(v_if, t.shape), pre_len_if, stream_if)
    user_fl, miss_fl, late_fl = _user_read(words_fl, bw_fl, np.broadcast_to(d_fl, t.shape), pre_len_fl, stream_fl)
    # ofmap SRAM stalls only when it fills while draining: after the first drain (write d+1)
    # the rest beyond what the SRAM holds must leave at bw_of words per cycle.
    d_of = words_of - _cdiv(words_of, 2)
    first_drain = _ofmap_write_row(np.minimum(d_of + 1, of_demand), df, R, C, sr, sc, t, rf, cf, rows_per_fold)
    late_of = np.where(of_demand > words_of,
                       np.maximum(0, _cdiv(np.maximum(of_demand - words_of, 0), bw_of) - (demand_rows - first_drain)), 0)
    stalls = np.where(user, np.maximum(np.maximum(late_if, late_fl), late_of), 0)

    dram_if = np.where(user, user_if, calc_if)
    dram_fl = np.where(user, user_fl, calc_fl)
    total = compute_cycles + stalls

    # ofmap SRAM (write_buffer): drains of ceil(d/b) lines when more than d = words - ceil(words/2)
    # are held, then empty_all_buffers from the last demand cycle, one line per cycle.
    of_b = np.where(user, bw_of, C)
    of_stop, dram_of = _ofmap_drains(words_of, of_b, of_demand, total,
                                     lambda n: _ofmap_write_row(n, df, R, C, sr, sc, t, rf, cf, rows_per_fold))
    u_start_if = -np.minimum(_cdiv(_cdiv(words_if, 2), bw_if), _cdiv(pre_len_if, bw_if))
    u_start_fl = -np.minimum(_cdiv(_cdiv(words_fl, 2), bw_fl), _cdiv(pre_len_fl, bw_fl))
    start = np.where(user, np.minimum(u_start_if, u_start_fl), np.minimum(start_if, start_fl))
    incl = of_stop - start

    overall_util = 100.0 * M * N * K / (total * R * C)
    return SystolicResult(
        layer_names=list(layers.names), configs=configs,
        total_cycles=total * rep, total_cycles_incl_prefetch=incl * rep, stall_cycles=stalls * rep,
        compute_cycles=compute_cycles * rep, overall_util_pct=overall_util, mapping_efficiency_pct=100.0 * mapping_eff,
        compute_util_pct=100.0 * compute_util, folds=folds * rep, macs=np.broadcast_to(M * N * K * rep, total.shape),
        ifmap_sram_reads=if_sram * rep, filter_sram_reads=fl_sram * rep, ofmap_sram_writes=of_sram * rep,
        ifmap_dram_reads=dram_if * rep, filter_dram_reads=dram_fl * rep, ofmap_dram_writes=dram_of * rep,
    )


def _spilled_ifmap_reads(layers, df, R, Ccols, cf, rf, v_if, d_if):
    """CALC-mode ifmap DRAM reads when the ifmap does not fit in half its SRAM.

    SCALE-Sim's estimate buffer forgets everything every half-buffer of distinct words, so
    reuse survives within a fold's slab but not across folds: reads = passes x sum over folds
    of the slab's distinct words.  ws slab: R consecutive im2col columns (n offsets of the same
    channel overlap as shifted output grids); os slab: R consecutive output pixels and their
    receptive field (halo); is: the halo of the C pixels of a column fold.
    """
    C_in = layers.channels[None, :]
    fh, fw = layers.filt_h[None, :], layers.filt_w[None, :]
    sh, sw = layers.stride_h[None, :], layers.stride_w[None, :]
    P, Q = layers.ofmap_h[None, :], layers.ofmap_w[None, :]
    H, W = layers.ifmap_h[None, :], layers.ifmap_w[None, :]
    # ws: offsets per channel inside one fold, first along a kernel row, then across rows
    n_off = np.maximum(R / C_in, 1.0)
    n_w = np.minimum(n_off, fw)
    n_h = np.maximum(n_off / fw, 1.0)
    rho = (np.minimum(Q * n_w, (Q - 1) * np.minimum(sw, n_w) + n_w) / (Q * n_w)
           * np.minimum(P * n_h, (P - 1) * np.minimum(sh, n_h) + n_h) / (P * n_h))
    ws = cf * v_if * rho
    # os: R output pixels in raster order and the input rows x cols they touch; is: C pixels
    def halo(px):
        px = np.minimum(px, layers.m[None, :])
        n_rows = _cdiv(px, Q)
        rows = np.where(px <= Q, fh, np.minimum(H, (n_rows - 1) * sh + fh))
        cols = np.where(px <= Q, np.minimum(W, (px - 1) * sw + fw), W)
        return rows * cols * C_in

    out = np.select([df == 0, df == 1], [ws, cf * rf * halo(R)], cf * halo(Ccols))
    return np.clip(np.rint(out).astype(np.int64), d_if, np.where(df == 2, v_if, cf * v_if))


def _ofmap_drains(words, b, w, total, write_row):
    """(last DRAM write cycle, DRAM words written) of SCALE-Sim's write_buffer.

    A drain fires at the write that makes the held count exceed d and moves L = ceil(d/b)
    lines, one per cycle from that write's cycle.  If b divides d the first drain leaves a
    one-word line that later drains count as b words (SCALE-Sim's -1 correction only looks at
    the last line): drains every d writes, b - 1 extra words.  Otherwise each drain empties
    exactly d + 1 words.  What is left drains from the last demand cycle on.
    """
    d = words - _cdiv(words, 2)
    L = _cdiv(d, b)
    exact = (d % b) == 0
    n_d = np.where(exact, np.where(w > d, (w - 1) // d, 0), w // (d + 1))
    rem = np.where(exact, w - 1 - n_d * d, w - n_d * (d + 1))
    left = np.where(exact & (n_d > 0), 1 + _cdiv(rem, b), _cdiv(rem, b))
    stop = total + np.maximum(left, 1) - 1
    last_write = np.where(exact, 1 + n_d * d, n_d * (d + 1))
    mid_end = write_row(np.maximum(last_write, 1)) + L - 1
    stop = np.where(n_d > 0, np.maximum(stop, mid_end), stop)
    written = np.where(exact & (n_d > 0), w + b - 1, w)
    return stop, written


def _skew_row(q, h, w):
    """Row (0-based) of the q-th (1-based) element written when an h x w block is skewed
    (element (i, c) at row i + c) and read row by row."""
    a, b = np.minimum(h, w), np.maximum(h, w)
    ramp = a * (a + 1) // 2
    full = h * w
    # ramp up: (i+1)(i+2)/2 >= q
    i_up = np.ceil((-3 + np.sqrt(1 + 8 * q)) / 2).astype(np.int64)
    # plateau: ramp + (i - a + 1) * a >= q
    i_mid = a - 1 + _cdiv(np.maximum(q - ramp, 0), a)
    # ramp down: full - (a+b-2-i)(a+b-1-i)/2 >= q  <=>  m(m+1)/2 <= full - q with m = a+b-2-i
    m = np.floor((-1 + np.sqrt(1 + 8 * np.maximum(full - q, 0))) / 2).astype(np.int64)
    i_down = a + b - 2 - m
    return np.where(q <= ramp, i_up, np.where(q <= ramp + (b - a) * a, i_mid, i_down))


def _ofmap_write_row(n, df, R, C, sr, sc, t, rf, cf, F):
    """Demand row of the n-th (1-based) valid ofmap write, folds in SCALE-Sim's order."""
    n0 = n - 1
    os_ = df == 1
    # ws / is: fold (fc, fr) writes a T x cu block (cu = cols of Sc in col fold fc)
    per_fc = np.where(os_, sr * C, rf * t * C)
    fc = np.minimum(n0 // per_fc, cf - 1)
    cu = np.where(fc == cf - 1, sc - (cf - 1) * C, C)
    q = n0 - fc * per_fc
    blk_ws = t * cu
    fr_ws = np.minimum(q // blk_ws, rf - 1)
    q_ws = q - fr_ws * blk_ws
    row_ws = (fc * rf + fr_ws) * F + 2 * R - 1 + _skew_row(q_ws + 1, t, cu)
    # os: fold (fc, fr) writes an ru x cu block, flipped below row_delta idle rows
    fr_os = np.minimum(q // (R * cu), rf - 1)
    ru = np.where(fr_os == rf - 1, sr - (rf - 1) * R, R)
    q_os = q - fr_os * R * cu
    row_os = (fc * rf + fr_os) * F + t - 1 + (R - ru) + _skew_row(q_os + 1, ru, cu)
    return np.where(os_, row_os, row_ws)


def _edges_in_zones(x0, step, count, period, lo, hi):
    """How many of the window edges x0 + k*step (k < count) fall within [lo, hi] of a
    multiple of ``period`` (a slab boundary).

    SCALE-Sim's window (50 sets of ceil(words/100)) is often just over a multiple of a
    power-of-two slab, so the edges drift slowly across slab boundaries: counted exactly while
    they drift less than two periods, by the equidistributed fraction beyond that.
    """
    x0, step, count, period = (np.asarray(v, dtype=np.int64) for v in (x0, step, count, period))
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    width = np.maximum(hi - lo + 1, 0)
    period = np.maximum(period, 1)
    delta = (step + period // 2) % period - period // 2          # signed drift per edge
    r0 = x0 % period
    avg = count * np.minimum(width, period) / period
    still = (delta == 0)
    in_zone0 = ((r0 >= lo) & (r0 <= hi)) | ((r0 - period >= lo) & (r0 - period <= hi))
    exact = np.zeros(np.broadcast(x0, step, count, period).shape, dtype=float)
    d = np.where(still, 1, delta)
    for m in range(-2, 4):
        a = m * period + lo - r0
        b = m * period + hi - r0
        k_lo = np.where(d > 0, -(-a // d), -(-b // d))
        k_hi = np.where(d > 0, b // d, a // d)
        k_lo, k_hi = np.maximum(k_lo, 0), np.minimum(k_hi, count - 1)
        exact += np.maximum(k_hi - k_lo + 1, 0)
    slow = np.abs(delta) * count < 2 * period
    out = np.where(still, np.where(in_zone0, count, 0), np.where(slow, exact, avg))
    return np.where(width > 0, out, 0)


def _user_read(words, bw, valid, pre_len, st):
    """USER-bandwidth read buffer (scalesim ``read_buffer``): (DRAM words, refills, stall cycles).

    The fetch stream (the prefetch matrix: ``valid`` words, ``pre_len`` slots incl. -1) is cut
    into sets of E = ceil(words/100); a window of A sets (half the SRAM) is filled before
    cycle 0.  A demanded word outside the window moves it forward by Pn sets, circularly, and
    costs one refill of ceil(half/bw) lines, chained back to back on the DRAM timeline from
    cycle -1 (refill k is ready at -1 + k (lines + 1)).  How the demand walks the stream:

    * kind 0, stream (ws/os ifmap, is filter): the fold slabs in order, once per column fold.
      Where a window edge lands in the R(R-1) words where the diagonal prefetch order
      interleaves two slabs, the next slab's head is evicted early and the window goes round.
    * kind 1, stationary loads (ws filter, is ifmap): each fold loads an R x C chunk in reverse
      order, so a window edge inside a chunk sends the window once round the stream.
    * kind 2, os filter: each column-fold block is re-walked by every row fold; a window edge
      inside a block sends the window once round the stream.
    (A conv ifmap word evicted early may still hit a repeat of its address in another set;
    that rescue is not modelled, so refills are an upper estimate there.)

    Stalls: with y_k = ready(k) - row(k) - 1 SCALE-Sim's row replay (positive stalls counted
    twice) gives S = max(S, 2 y_k - S) per refill; S is taken as max(2 y_1, y_last, 0).
    """
    e = _cdiv(words, 100)
    active = _cdiv(words, 2)
    prefetch = words - active
    n_sets = valid // e + 1
    A = np.minimum(n_sets, _cdiv(active, e))
    Pn = np.maximum(np.minimum(n_sets - A, _cdiv(prefetch, e)), 1)
    fits = n_sets <= A
    lines_pf = _cdiv(prefetch, bw)
    c = lines_pf + 1
    init_lines = np.minimum(_cdiv(active, bw), _cdiv(pre_len, bw))
    circle = n_sets / Pn                       # refills to bring the window once round
    kind, passes, F, o = st["kind"], st["passes"], st["F"], st["o"]
    ru, cu, T = st["ru"], st["cu"], st["T"]

    fwd0 = np.maximum(_cdiv(np.maximum(passes * n_sets - A, 0), Pn), 0)     # kind 0
    fwd1 = np.maximum(_cdiv(np.maximum(n_sets - A, 0), Pn), 0)              # kinds 1, 2
    margin = (A - Pn) * e                      # words kept behind the demand after a refill
    zone = ru * (ru - 1)
    lo, hi = margin - zone // 2 + 1, zone // 2
    # slab boundaries inside a pass; pass ends (multiples of nb slabs) wrap to the start anyway
    wraps0 = (_edges_in_zones(A * e, Pn * e, fwd0, T * ru, lo, hi)
              - _edges_in_zones(A * e, Pn * e, fwd0, st["nb"] * T * ru, lo, hi))
    wraps0 = np.where(st["nb"] > 1, np.maximum(wraps0, 0), 0)
    wraps1 = np.where(st["chunk"] > margin, fwd1, 0)
    p_blk = np.clip((st["blk"] - margin) / (Pn * e), 0.0, 1.0)
    wraps2 = passes * p_blk * (st["nb"] > 1)
    misses = np.select([kind == 0, kind == 1], [fwd0 + wraps0 * circle, fwd1 + wraps1 * circle], fwd1 + wraps2 * circle)
    misses = np.where(fits, 0, np.rint(misses).astype(np.int64))
    reads = init_lines * bw + misses * lines_pf * bw

    # demand rows of the first and the last forward refill
    def row_at(u):
        """Demand row where the walk reaches word u of its path."""
        v = np.maximum(valid, 1)
        slab = np.maximum(T * ru, 1)
        j, q = u // v, u % v
        b = np.minimum(q // slab, st["nb"] - 1)
        r0 = (j * st["nb"] + b) * F + o + _skew_row(np.clip(q - b * slab, 0, slab - 1) + 1, T, ru)
        r1 = (u // np.maximum(st["R"] * cu, 1)) * F
        fc = u // np.maximum(st["blk"], 1)
        qc = np.clip(u - fc * st["blk"], 0, np.maximum(st["K"] * cu - 1, 0))
        r2 = fc * st["nb"] * F + _skew_row(qc + 1, st["K"], cu)
        return np.select([kind == 0, kind == 1], [r0, r1], r2)

    fwd = np.select([kind == 0], [fwd0], fwd1)
    u1 = A * e
    un = (A + np.maximum(fwd - 1, 0) * Pn) * e
    y1 = c - 2 - row_at(u1)
    yn = -1 + misses * c - row_at(un) - 1
    late = np.maximum(np.maximum(2 * y1, yn), 0)
    late = np.where(misses > 0, late, 0)
    return reads, misses, late


def layers_from_workload(workload) -> SystolicLayers:
    """Conv and matmul layers of a ``codesign.workload.Workload`` in SCALE-Sim's terms.

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
