"""Read and write SCALE-Sim's files: topology CSVs, .cfg files, and COMPUTE/DETAILED reports.

Architects already have SCALE-Sim inputs; reading them as scalesim 3.0.0 does lets the
analytical model answer for the same files.  Conventions kept from scalesim 3.0.0:

* topology rows end with a comma (the last field is dropped, as ``row.split(',')[:-1]``);
  conv form: name, ifmap h, ifmap w, filter h, filter w, channels, num filters, stride
  (one stride for both axes); a name containing ``DP`` is depthwise: ``channels`` layers of
  one channel each.  GEMM form: name, M, N, K -> ifmap M x K, filter 1 x K, N filters.
* .cfg: [general] run_name, [architecture_presets] ArrayHeight/Width, *SramSzkB, Dataflow,
  Bandwidth; [run_presets] InterfaceBandwidth CALC|USER.  In USER mode scalesim 3.0.0 feeds
  the ifmap/filter SRAMs at [layout] IfmapSRAMBankBandwidth/FilterSRAMBankBandwidth (default
  10) and drains the ofmap SRAM at the first Bandwidth value; word size is 1 byte.

Every malformed row or field raises a one-line ``CodesignError`` naming file, line and field.
"""
from __future__ import annotations

import configparser
import contextlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hwmodels.errors import CodesignError
from hwmodels.systolic import DATAFLOWS, ArrayConfigs, SystolicLayers

CONV_FIELDS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter", "Strides")
GEMM_FIELDS = ("M", "N", "K")
MAX_DIM = 2**20          # per topology field: refused before any array is sized by it


def _int_field(value: str, where: str, what: str) -> int:
    try:
        v = int(value.strip())
    except ValueError:
        raise CodesignError(f"{where}: {what} must be an integer, got {value.strip()!r}") from None
    if v < 1:
        raise CodesignError(f"{where}: {what} must be >= 1, got {v}")
    if v > MAX_DIM:
        raise CodesignError(f"{where}: {what} = {v} is beyond any layer (at most {MAX_DIM}); check the row")
    return v


def is_gemm_header(header: str) -> bool:
    cols = [c.strip().upper() for c in header.split(",") if c.strip()]
    return len(cols) >= 4 and cols[1:4] == ["M", "N", "K"]


def read_topology(path: str | Path, gemm: bool | None = None) -> SystolicLayers:
    """Parse a SCALE-Sim topology CSV (conv or GEMM form; ``gemm=None`` detects from the header)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CodesignError(f"cannot read topology file {path}: {e}") from None
    if not lines or not lines[0].strip():
        raise CodesignError(f"topology file {path} is empty; the first line must be the header")
    if gemm is None:
        gemm = is_gemm_header(lines[0])
    rows = []
    for no, raw in enumerate(lines[1:], start=2):
        row = raw.strip()
        if not row:
            continue
        where = f"{path}:{no}"
        if not row.endswith(","):
            raise CodesignError(f"{where}: SCALE-Sim rows end with a comma (it drops the last field); add a trailing ','")
        elems = row.split(",")[:-1]
        name = elems[0].strip()
        if not name:
            raise CodesignError(f"{where}: empty layer name")
        if gemm:
            if len(elems) < 4:
                raise CodesignError(f"{where}: GEMM rows need 'name, M, N, K,'; got {len(elems)} fields")
            m, n, k = (_int_field(elems[i], where, GEMM_FIELDS[i - 1]) for i in (1, 2, 3))
            rows.append((name, m, k, 1, k, 1, n, 1, 1))
            continue
        if len(elems) < 8:
            raise CodesignError(f"{where}: conv rows need 'name, {', '.join(CONV_FIELDS)},'; got {len(elems)} fields")
        h, w, r, s, c, k, st = (_int_field(elems[i], where, CONV_FIELDS[i - 1]) for i in range(1, 8))
        if r > h or s > w:
            raise CodesignError(f"{where}: filter {r}x{s} is larger than ifmap {h}x{w} (SCALE-Sim needs the padded ifmap)")
        if "DP" in name:
            rows += [(f"{name}Channel_{i}", h, w, r, s, 1, k, st, st) for i in range(c)]
        else:
            rows.append((name, h, w, r, s, c, k, st, st))
    if not rows:
        raise CodesignError(f"topology file {path} has a header but no layer rows")
    return SystolicLayers.from_rows(rows)


@dataclass
class ScaleSimConfig:
    """The fields of a SCALE-Sim .cfg that decide its reports."""

    run_name: str
    rows: int
    cols: int
    ifmap_kb: int
    filter_kb: int
    ofmap_kb: int
    dataflow: str
    user_bandwidth: bool
    bandwidth: list[int]
    ifmap_bank_bw: int = 10
    filter_bank_bw: int = 10

    def to_configs(self, word_bits: int = 8) -> ArrayConfigs:
        if self.user_bandwidth:
            bw_if, bw_fl, bw_of = self.ifmap_bank_bw, self.filter_bank_bw, self.bandwidth[0]
        else:
            bw_if, bw_fl, bw_of = 10, 10, self.cols
        return ArrayConfigs([self.rows], [self.cols], [self.ifmap_kb], [self.filter_kb], [self.ofmap_kb],
                            [self.dataflow], [bw_if], [bw_fl], [bw_of], [self.user_bandwidth], [word_bits])

    def to_cfg_text(self) -> str:
        """A .cfg scalesim 3.0.0 reads (it needs the [layout] and [sparsity] sections too)."""
        bw = ",".join(str(b) for b in (self.bandwidth or [10]))
        return f"""[general]
run_name = {self.run_name}

[architecture_presets]
ArrayHeight : {self.rows}
ArrayWidth : {self.cols}
IfmapSramSzkB : {self.ifmap_kb}
FilterSramSzkB : {self.filter_kb}
OfmapSramSzkB : {self.ofmap_kb}
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Bandwidth : {bw}
Dataflow : {self.dataflow}
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : {self.ifmap_bank_bw}
IfmapSRAMBankNum : 1
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : {self.filter_bank_bw}
FilterSRAMBankNum : 1
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : {"USER" if self.user_bandwidth else "CALC"}
UseRamulatorTrace : False
"""


def read_cfg(path: str | Path) -> ScaleSimConfig:
    """Parse a SCALE-Sim .cfg as scalesim 3.0.0's ``scale_config.read_conf_file`` does."""
    path = Path(path)
    cp = configparser.ConfigParser()
    try:
        text = path.read_text()
        cp.read_string(text)
    except (OSError, UnicodeDecodeError) as e:
        raise CodesignError(f"cannot read config file {path}: {e}") from None
    except configparser.Error as e:
        first = str(e).splitlines()[0]
        raise CodesignError(f"config file {path} is not a valid .cfg: {first}") from None

    def get(section, key, default=None):
        if not cp.has_section(section):
            if default is not None:
                return default
            raise CodesignError(f"config file {path}: missing section [{section}]")
        if not cp.has_option(section, key):
            if default is not None:
                return default
            raise CodesignError(f"config file {path}: [{section}] is missing '{key}'")
        return cp.get(section, key).strip()

    def integer(section, key, default=None, minimum=1):
        raw = get(section, key, None if default is None else str(default))
        try:
            v = int(raw)
        except ValueError:
            raise CodesignError(f"config file {path}: [{section}] {key} must be an integer, got {raw!r}") from None
        if v < minimum:
            raise CodesignError(f"config file {path}: [{section}] {key} must be >= {minimum}, got {v}")
        return v

    mode = get("run_presets", "InterfaceBandwidth").upper()
    if mode not in ("USER", "CALC"):
        raise CodesignError(f"config file {path}: [run_presets] InterfaceBandwidth must be USER or CALC, got {mode!r}")
    df = get("architecture_presets", "Dataflow").lower()
    if df not in DATAFLOWS:
        raise CodesignError(f"config file {path}: unknown Dataflow {df!r}; use ws, os or is")
    bandwidth: list[int] = []
    if mode == "USER":
        raw = get("architecture_presets", "Bandwidth")
        try:
            bandwidth = [int(x.strip()) for x in raw.split(",") if x.strip()]
        except ValueError:
            raise CodesignError(f"config file {path}: [architecture_presets] Bandwidth must be integers, got {raw!r}") from None
        if not bandwidth or min(bandwidth) < 1:
            raise CodesignError(f"config file {path}: [architecture_presets] Bandwidth must be >= 1 words/cycle, got {raw!r}")
    return ScaleSimConfig(
        run_name=get("general", "run_name", "scale_run"),
        rows=integer("architecture_presets", "ArrayHeight"),
        cols=integer("architecture_presets", "ArrayWidth"),
        ifmap_kb=integer("architecture_presets", "IfmapSramSzkB"),
        filter_kb=integer("architecture_presets", "FilterSramSzkB"),
        ofmap_kb=integer("architecture_presets", "OfmapSramSzkB"),
        dataflow=df, user_bandwidth=mode == "USER", bandwidth=bandwidth,
        ifmap_bank_bw=integer("layout", "IfmapSRAMBankBandwidth", 10),
        filter_bank_bw=integer("layout", "FilterSRAMBankBandwidth", 10),
    )


def write_topology(path: str | Path, layers: SystolicLayers) -> None:
    """Conv-form topology CSV (batch and repeat must be 1: SCALE-Sim has neither)."""
    with open(path, "w") as f:
        f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n")
        for i, name in enumerate(layers.names):
            if layers.stride_h[i] != layers.stride_w[i]:
                raise CodesignError(f"layer {name!r}: SCALE-Sim topologies take one stride for both axes")
            f.write(f"{name}, {layers.ifmap_h[i]}, {layers.ifmap_w[i]}, {layers.filt_h[i]}, {layers.filt_w[i]}, "
                    f"{layers.channels[i]}, {layers.num_filters[i]}, {layers.stride_h[i]},\n")


REPORT_KEYS = ("total_cycles_incl_prefetch", "total_cycles", "stall_cycles", "overall_util_pct",
               "mapping_efficiency_pct", "compute_util_pct", "ifmap_sram_reads", "filter_sram_reads",
               "ofmap_sram_writes", "ifmap_dram_reads", "filter_dram_reads", "ofmap_dram_writes")


def read_reports(run_dir: str | Path) -> list[dict]:
    """COMPUTE_REPORT.csv + DETAILED_ACCESS_REPORT.csv of one SCALE-Sim run, per layer."""
    run_dir = Path(run_dir)
    comp = [l.split(",") for l in (run_dir / "COMPUTE_REPORT.csv").read_text().splitlines()[1:] if l.strip()]
    det = [l.split(",") for l in (run_dir / "DETAILED_ACCESS_REPORT.csv").read_text().splitlines()[1:] if l.strip()]
    out = []
    for c, d in zip(comp, det):
        vals = [float(x) for x in c[1:7]] + [float(d[i]) for i in (3, 6, 9, 12, 15, 18)]
        out.append(dict(zip(REPORT_KEYS, vals)))
    return out


def run_scalesim(layers: SystolicLayers, cfg: ScaleSimConfig, workdir: str | Path | None = None) -> list[dict]:
    """Run the real SCALE-Sim (scalesim 3.0.0, save_disk_space=True) in a temp dir; per-layer reports.

    The reference for tests and benchmarks; needs ``scalesim`` (and numpy < 2.4) installed.
    """
    from scalesim.scale_sim import scalesim  # imported lazily: only the oracle needs it

    tmp = Path(tempfile.mkdtemp(prefix="scalesim_", dir=workdir))
    cwd = os.getcwd()
    try:
        (tmp / "run.cfg").write_text(cfg.to_cfg_text())
        write_topology(tmp / "topo.csv", layers)
        os.chdir(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(tmp / "run.cfg"),
                           topology=str(tmp / "topo.csv"), layout=str(tmp / "topo.csv"))
            sim.run_scale(top_path=str(tmp / "out"))
        return read_reports(tmp / "out" / cfg.run_name)
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)
