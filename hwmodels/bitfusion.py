"""Analytical, vectorised model of a Bit Fusion array (Sharma et al., ISCA 2018).

A rows x cols array of fusion units; each unit's 16 BitBricks fuse into (pmax/w) x (pmax/a)
multiply-adds per cycle (w, a clipped below at pmin = 2: 1 MAC at 8x8, 2 at 8x4, 4 at 4x4, 16 at
2x2) and run operands wider than pmax by temporal fusion (16x16: a quarter of a MAC per cycle).
The conventions are those of the authors' simulator (github.com/hsharma35/bitfusion):

* mapping (``accelerator.get_compute_cycles``): input channels are reduced down the rows, each
  unit taking ``perf_factor`` operand pairs per cycle, the r x s window is walked in time; output
  channels go across the columns; output pixels (and batch) stream one per cycle:
  compute = pixels x ceil(N / cols) x r x s x ceil(C / (rows x spatial)) x temporal.
  A layer with fewer input channels than rows (a network's first layer: the authors unfold it
  with im2col on the host) reduces the whole r*s*c window down the rows instead:
  ceil(r*s*c / (rows x spatial)).  Matrix products reduce their K the same way.
* memory (``optimizer.get_stats_fast``): double-buffered IBUF/WBUF/OBUF (half of each holds a
  tile).  DRAM traffic in bits follows the operand widths: weights K x N x w, the input words the
  windows touch x a, outputs x a (requantized on chip; with ``unit.dram_psums`` 32-bit partial sums
  are read from and written to DRAM once, as the authors' simulator does).  Each layer takes the
  cheapest of three tilings (the authors search loop orders exhaustively; these are its corners):
  weight tiles outer (inputs re-read per tile), input tiles outer (weights re-read per tile), or
  reduction tiles outer (both read once; the 32-bit partial sums spill to DRAM between reduction
  tiles unless the OBUF's half holds them).
  Stalls = max(0, memory cycles - compute cycles) + first-tile load and last-tile drain, so a
  memory-bound layer is as fast as its traffic, whatever its compute bits.
* SRAM accesses (for energy): every MAC reads its weight bits from the unit's WBUF bank; inputs
  are read once per column fold; 32-bit partial sums are read and written in the OBUF once per
  row fold; DRAM fills are SRAM writes and output drains SRAM reads.

Arrays are ``[n_configs, n_layers]``, so a DSE scores thousands of configurations at once.  The
layers are the systolic model's ``SystolicLayers`` (the same conv/GEMM view of a Workload); each
layer carries its own weight and activation bits.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from hwmodels.errors import CodesignError
from hwmodels.systolic import SystolicLayers
from hwmodels.systolic_geometry import cdiv

RUNNABLE_BITS = (2, 4, 8, 16)
CONFIG_FIELDS = ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "dram_bits_per_cycle")


@dataclass
class FusionConfigs:
    """Bit Fusion configurations, one numpy entry per config (field names as ``BitFusionConfig``)."""

    rows: np.ndarray
    cols: np.ndarray
    ifmap_sram_kb: np.ndarray
    filter_sram_kb: np.ndarray
    ofmap_sram_kb: np.ndarray
    dram_bits_per_cycle: np.ndarray

    def __post_init__(self):
        arrays = {f.name: np.atleast_1d(np.asarray(getattr(self, f.name), dtype=float)) for f in fields(self)}
        n = max(a.size for a in arrays.values())
        for k, a in arrays.items():
            if a.size not in (1, n):
                raise CodesignError(f"config field {k} has {a.size} entries for {n} configs")
            a = np.broadcast_to(a, (n,)).copy()
            bad = np.nonzero(~(a > 0))[0]
            if bad.size:
                raise CodesignError(f"config {int(bad[0])}: {k} must be > 0, got {a[bad[0]]:g}")
            setattr(self, k, a.astype(np.int64) if k in ("rows", "cols") else a)

    def __len__(self) -> int:
        return int(self.rows.size)

    @classmethod
    def from_values(cls, values: dict) -> "FusionConfigs":
        return cls(**{k: values[k] for k in CONFIG_FIELDS})

    @classmethod
    def from_config(cls, cfg) -> "FusionConfigs":
        """One ``hwmodels.targets.BitFusionConfig`` (or a dict of its fields) -> configs of size 1."""
        get = cfg.get if isinstance(cfg, dict) else lambda k: getattr(cfg, k)
        return cls(**{k: [get(k)] for k in CONFIG_FIELDS})

    def half_bits(self, kb) -> np.ndarray:
        """Bits one half of a double-buffered SRAM holds."""
        return kb * 1024 * 8 / 2

    def fold_needs(self, unit) -> dict[str, np.ndarray]:
        """Bits each SRAM's active half must hold for the array to run at all: one WBUF word
        (pmax^2/pmin bits) per fusion unit, one IBUF word per row, one partial sum per column."""
        word = unit.max_bits * unit.max_bits // unit.min_bits
        return {"filter_sram_kb": self.rows * self.cols * word, "ifmap_sram_kb": self.rows * word,
                "ofmap_sram_kb": self.cols * unit.psum_bits}

    def fold_fits(self, unit) -> np.ndarray:
        ok = np.ones(len(self), dtype=bool)
        for k, need in self.fold_needs(unit).items():
            ok &= self.half_bits(getattr(self, k)) >= need
        return ok

    def check_fold_fits(self, unit) -> None:
        """Raise a one-line CodesignError for the first config whose SRAM cannot hold one word per bank."""
        for k, need in self.fold_needs(unit).items():
            bad = np.nonzero(self.half_bits(getattr(self, k)) < need)[0]
            if bad.size:
                i = int(bad[0])
                raise CodesignError(
                    f"config {i}: {k.replace('_kb', '')} SRAM of {getattr(self, k)[i]:g} KB cannot feed a "
                    f"{self.rows[i]}x{self.cols[i]} fusion-unit array ({int(need[i])} bits in its active half); "
                    f"use at least {2 * need[i] / 8 / 1024:g} KB or a smaller array")

    def describe(self, i: int) -> dict:
        return {"rows": int(self.rows[i]), "cols": int(self.cols[i]), "ifmap_sram_kb": float(self.ifmap_sram_kb[i]),
                "filter_sram_kb": float(self.filter_sram_kb[i]), "ofmap_sram_kb": float(self.ofmap_sram_kb[i]),
                "dram_bits_per_cycle": float(self.dram_bits_per_cycle[i])}

    def take(self, index) -> "FusionConfigs":
        return FusionConfigs(**{k: getattr(self, k)[index] for k in CONFIG_FIELDS})


def check_bits(bits, names, what: str) -> np.ndarray:
    """Per-layer bit-widths as an int array; a width BitBricks cannot run is a one-line error."""
    b = np.asarray(bits, dtype=np.int64).reshape(-1)
    bad = [i for i, x in enumerate(b.tolist()) if x not in RUNNABLE_BITS]
    if bad:
        i = bad[0]
        kind = " (floating point)" if b[i] >= 32 else ""
        raise CodesignError(f"layer {names[i]!r}: {what} bits {b[i]}{kind} cannot run on Bit Fusion's BitBricks; "
                            f"give 2, 4, 8 or 16 bits for every conv/matmul layer (e.g. --bits w8a8)")
    return b


def fusion_factors(w_bits, a_bits, unit) -> tuple[np.ndarray, np.ndarray]:
    """(spatial, temporal) of each layer: a fusion unit does ``spatial`` MACs per cycle, or one MAC
    every ``temporal`` cycles; spatial / temporal = (pmax/w') x (pmax/a'), w' = max(w, pmin)."""
    w = np.maximum(np.asarray(w_bits), unit.min_bits)
    a = np.maximum(np.asarray(a_bits), unit.min_bits)
    f = (unit.max_bits / w) * (unit.max_bits / a)
    spatial = np.maximum(np.floor(f + 1e-9), 1).astype(np.int64)
    temporal = np.maximum(np.ceil(1 / f - 1e-9), 1).astype(np.int64)
    return spatial, temporal


@dataclass
class FusionResult:
    """Per (config, layer) results, arrays of shape [n_configs, n_layers]; traffic in bits."""

    layer_names: list[str]
    configs: FusionConfigs
    w_bits: np.ndarray
    a_bits: np.ndarray
    compute_cycles: np.ndarray
    stall_cycles: np.ndarray
    total_cycles: np.ndarray
    macs: np.ndarray
    utilization: np.ndarray
    dram_read_bits: np.ndarray
    dram_write_bits: np.ndarray
    wbuf_read_bits: np.ndarray
    wbuf_write_bits: np.ndarray
    ibuf_read_bits: np.ndarray
    ibuf_write_bits: np.ndarray
    obuf_read_bits: np.ndarray
    obuf_write_bits: np.ndarray

    @property
    def dram_bits(self) -> np.ndarray:
        return self.dram_read_bits + self.dram_write_bits


def simulate(layers: SystolicLayers, configs: FusionConfigs, w_bits, a_bits, unit) -> FusionResult:
    """Score every config on every layer, each layer at its own (w, a) bits."""
    if len(layers) == 0:
        raise CodesignError("no layers to simulate (the model has no conv or matmul layers)")
    wb = check_bits(w_bits, layers.names, "weight")[None, :]
    ab = check_bits(a_bits, layers.names, "activation")[None, :]
    if wb.shape[1] != len(layers) or ab.shape[1] != len(layers):
        raise CodesignError(f"{wb.shape[1]} weight / {ab.shape[1]} activation widths for {len(layers)} layers")
    spatial, temporal = fusion_factors(wb, ab, unit)
    R, C = configs.rows[:, None], configs.cols[:, None]
    P, N, K = layers.m[None, :], layers.n[None, :], layers.k[None, :]
    rep = layers.repeat[None, :]
    col_folds = cdiv(N, C)
    chans, window = layers.channels[None, :], (layers.filt_h * layers.filt_w)[None, :]
    row_folds = np.where(chans < R, cdiv(K, R * spatial), window * cdiv(chans, R * spatial))
    compute = P * col_folds * row_folds * temporal                      # per repeat

    # DRAM traffic (bits, per repeat): the cheapest of three tilings
    weights = (K * N * wb).astype(float)
    inputs = (layers.ifmap_words[None, :] * ab).astype(float)
    psums = (P * N * unit.psum_bits).astype(float)
    outputs = psums if unit.dram_psums else (P * N * ab).astype(float)
    wh = configs.half_bits(configs.filter_sram_kb)[:, None]
    ih = configs.half_bits(configs.ifmap_sram_kb)[:, None]
    oh = configs.half_bits(configs.ofmap_sram_kb)[:, None]
    w_tiles, i_tiles = np.ceil(weights / wh), np.ceil(inputs / ih)
    spill = np.where(psums <= oh, 0.0, 2 * (i_tiles - 1) * psums)     # partial sums out and back in
    order = np.argmin(np.stack(np.broadcast_arrays(weights + inputs * w_tiles, inputs + weights * i_tiles,
                                                   weights + inputs + spill)), axis=0)
    w_dram = np.where(order == 1, weights * i_tiles, weights)
    i_dram = np.where(order == 0, inputs * w_tiles, inputs)
    spill = np.where(order == 2, spill, 0.0)
    reads = w_dram + i_dram + spill / 2 + (outputs if unit.dram_psums else 0.0)
    writes = outputs + spill / 2
    first = np.minimum(weights, wh) + np.minimum(inputs, ih) + (np.minimum(outputs, oh) if unit.dram_psums else 0.0)
    last = np.minimum(outputs, oh)
    bw = configs.dram_bits_per_cycle[:, None]
    middle = np.maximum(reads + writes - first - last, 0.0)
    stall = np.maximum(np.ceil(middle / bw) - compute, 0) + np.ceil((first + last) / bw)
    total = compute + stall

    macs = (P * N * K * rep).astype(float)
    peak = compute * R * C * spatial / temporal
    shape = total.shape
    full = lambda x: np.broadcast_to(x, shape).astype(float)
    return FusionResult(
        layer_names=list(layers.names), configs=configs, w_bits=wb[0], a_bits=ab[0],
        compute_cycles=full(compute * rep), stall_cycles=full(stall * rep), total_cycles=full(total * rep),
        macs=full(macs), utilization=full(P * N * K / np.maximum(peak, 1)),
        dram_read_bits=full(reads * rep), dram_write_bits=full(writes * rep),
        wbuf_read_bits=full(macs * wb), wbuf_write_bits=full(w_dram * rep),
        ibuf_read_bits=full(P * K * ab * col_folds * rep), ibuf_write_bits=full(i_dram * rep),
        obuf_read_bits=full((psums * (row_folds - 1) + writes) * rep),
        obuf_write_bits=full((psums * row_folds + reads - w_dram - i_dram) * rep),
    )
