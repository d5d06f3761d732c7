"""Targets as data: the pydantic schema for ``targets/*.toml`` and a name registry.

A target describes a device (or an accelerator template) and nothing else: peak rates
per precision, the memory hierarchy, per-op energies, overheads, area figures and, for
templates, the ranges a search may explore.  Cost models read these numbers; they never
hard-code a device.  A bad file raises ``CodesignError`` naming the file and field.
"""
from __future__ import annotations

import importlib.resources
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hwmodels.bits import PRECISION_BITS
from hwmodels.errors import CodesignError
from hwmodels.plugins import TARGET_GROUP, origin
from hwmodels.workload import OP_CLASSES

PRECISIONS = tuple(PRECISION_BITS)
# kernel classes the device models form beyond the Workload's op classes (hwmodels.fusion): a grouped
# convolution (1 < groups < channels) runs as a kernel of its own, with its own efficiency
KERNEL_CLASSES = ("grouped_conv",)
OP_CLASS_NAMES = OP_CLASSES + KERNEL_CLASSES


# accelerator templates: the table that declares one, which is also the name of its cost model
TEMPLATE_KINDS = ("systolic", "bitfusion")

PLAUSIBLE_MAX = 1e15        # beyond any device's rate, size or energy in this schema's units


class _Strict(BaseModel):
    """Unknown keys, NaN and infinities are refused; so is any number beyond ``PLAUSIBLE_MAX``
    (a 1e308 bandwidth is a typo or an attack, never a device)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _plausible(self):
        for name, value in self.__dict__.items():
            values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
            for x in values:
                if isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) > PLAUSIBLE_MAX:
                    raise ValueError(f"{name} = {x:g} is beyond any real device (at most {PLAUSIBLE_MAX:g} in this "
                                     f"field's units); check the value and its units")
        return self


class MemoryLevel(_Strict):
    """One level of the memory hierarchy, innermost first in ``Target.memory``."""

    name: str
    size_bytes: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0, description="sustained bandwidth into the compute units, GB/s")
    energy_pj_per_byte: float = Field(ge=0, default=0.0)


class Energy(_Strict):
    """Per-operation energies.  ``mac_pj`` is per multiply-accumulate at each precision."""

    mac_pj: dict[str, float]
    process_nm: float | None = Field(default=None, gt=0, description="node the mac_pj figures are quoted at")
    static_power_w: float = Field(default=0.0, ge=0)
    elementwise_op_pj: float = Field(default=0.0, ge=0)

    @field_validator("mac_pj")
    @classmethod
    def _known_precisions(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if k not in PRECISIONS:
                raise ValueError(f"unknown precision {k!r}; use one of {', '.join(PRECISIONS)}")
            if x < 0:
                raise ValueError(f"energy for {k} must be >= 0")
        return v


class Overheads(_Strict):
    per_layer_us: float = Field(default=0.0, ge=0, description="dispatch / launch cost per layer")
    per_network_us: float = Field(default=0.0, ge=0, description="fixed cost per inference")


class Area(_Strict):
    """Area model for accelerator templates (mm^2 at ``process_nm``)."""

    process_nm: float = Field(gt=0)
    pe_mm2_8bit: float = Field(gt=0, description="one PE with an 8x8-bit MAC and its registers")
    sram_mm2_per_kb: float = Field(gt=0)
    fixed_mm2: float = Field(default=0.0, ge=0, description="control, NoC, I/O")


class SystolicConfig(_Strict):
    """One point of the systolic-array template (SCALE-Sim's architecture presets)."""

    rows: int = Field(gt=0)
    cols: int = Field(gt=0)
    ifmap_sram_kb: float = Field(gt=0)
    filter_sram_kb: float = Field(gt=0)
    ofmap_sram_kb: float = Field(gt=0)
    dataflow: Literal["ws", "os", "is"] = "ws"
    dram_bandwidth_words: float = Field(gt=0, description="DRAM<->SRAM words per cycle")
    clock_mhz: float = Field(gt=0)
    word_bits: int = Field(default=8, gt=0)


class SystolicRanges(_Strict):
    """Values a design-space exploration or joint search may pick for each field."""

    rows: list[int]
    cols: list[int]
    ifmap_sram_kb: list[float]
    filter_sram_kb: list[float]
    ofmap_sram_kb: list[float]
    dataflow: list[Literal["ws", "os", "is"]]
    dram_bandwidth_words: list[float]

    @model_validator(mode="after")
    def _non_empty_positive(self):
        for name, values in self:
            if not values:
                raise ValueError(f"range {name} is empty")
            if name != "dataflow" and any(v <= 0 for v in values):
                raise ValueError(f"range {name} must hold positive values")
        return self


class SystolicTemplate(_Strict):
    default: SystolicConfig
    ranges: SystolicRanges


class BitFusionConfig(_Strict):
    """One point of the Bit Fusion template (Sharma et al., ISCA 2018): a rows x cols array of
    fusion units, each of 16 BitBricks; names of the SRAMs as in the systolic template
    (ifmap = IBUF, filter = WBUF, ofmap = OBUF) so that SRAM budgets read the same."""

    rows: int = Field(gt=0, description="fusion units along the reduction (input channels x window)")
    cols: int = Field(gt=0, description="fusion units along the output channels")
    ifmap_sram_kb: float = Field(gt=0, description="IBUF, one bank per row")
    filter_sram_kb: float = Field(gt=0, description="WBUF, one bank per fusion unit")
    ofmap_sram_kb: float = Field(gt=0, description="OBUF, one bank per column")
    dram_bits_per_cycle: float = Field(gt=0, description="off-chip interface width (the authors' if_width)")
    clock_mhz: float = Field(gt=0)
    w_bits: int = Field(default=8, description="weight bits a layer runs at when none are given")
    a_bits: int = Field(default=8, description="activation bits a layer runs at when none are given")

    @field_validator("w_bits", "a_bits")
    @classmethod
    def _runnable(cls, v: int) -> int:
        if v not in (2, 4, 8, 16):
            raise ValueError(f"{v} bits cannot run on BitBricks; use 2, 4, 8 or 16")
        return v


class BitFusionRanges(_Strict):
    """Values a design-space exploration or joint search may pick for each Bit Fusion field."""

    rows: list[int]
    cols: list[int]
    ifmap_sram_kb: list[float]
    filter_sram_kb: list[float]
    ofmap_sram_kb: list[float]
    dram_bits_per_cycle: list[float]

    @model_validator(mode="after")
    def _non_empty_positive(self):
        for name, values in self:
            if not values:
                raise ValueError(f"range {name} is empty")
            if any(v <= 0 for v in values):
                raise ValueError(f"range {name} must hold positive values")
        return self


class FusionUnit(_Strict):
    """One fusion unit: what it does per cycle and what it costs (synthesis figures)."""

    max_bits: int = Field(default=8, gt=0, description="operand width one fused PE spans spatially (pmax)")
    min_bits: int = Field(default=2, gt=0, description="BitBrick width (pmin); narrower operands run at it")
    psum_bits: int = Field(default=32, gt=0, description="partial-sum width in the OBUF")
    dram_psums: bool = Field(default=False, description="outputs leave as psum_bits partial sums, read from "
                             "and written to DRAM once (the authors' simulator); False: requantized on chip "
                             "and written once at the layer's activation bits")
    area_um2: float = Field(gt=0, description="one fusion unit, incl. its shift-add tree and registers")
    dynamic_pj_per_cycle: float = Field(gt=0, description="dynamic energy of one busy fusion unit per cycle")


class SramTable(_Strict):
    """SRAM bank figures (CACTI) by bank size; the model interpolates them log-log."""

    access_bits: int = Field(gt=0, description="bits per access of the banks in the table")
    bank_bytes: list[float] = Field(min_length=2)
    read_nj_per_access: list[float] = Field(min_length=2)
    write_nj_per_access: list[float] = Field(min_length=2)
    bank_area_mm2: list[float] = Field(min_length=2)

    @model_validator(mode="after")
    def _aligned(self):
        n = len(self.bank_bytes)
        for name in ("read_nj_per_access", "write_nj_per_access", "bank_area_mm2"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} bank sizes")
            if any(v <= 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must hold positive values")
        if any(b <= a for a, b in zip(self.bank_bytes, self.bank_bytes[1:])) or self.bank_bytes[0] <= 0:
            raise ValueError("bank_bytes must be positive and strictly increasing")
        return self


class BitFusionTemplate(_Strict):
    default: BitFusionConfig
    ranges: BitFusionRanges
    unit: FusionUnit
    sram: SramTable


class Calibration(_Strict):
    samples: int
    fit_error_pct: float
    date: str
    source: str = ""
    params: dict[str, float] = Field(default_factory=dict)


class Runtime(_Strict):
    """How the device's inference runtime runs a network: which layers it fuses into one kernel,
    what each kernel costs beyond its roofline, and when weights stay in cache across runs."""

    fusion: Literal["tflite", "onnxruntime", "none"] = Field(default="none", description="fusion rules (hwmodels.fusion.RUNTIMES)")
    kernel_overhead_us: dict[str, float] = Field(default_factory=dict, description="dispatch cost per kernel, by op class; "
                                                 "classes not listed use overheads.per_layer_us")
    weights_resident_fraction: float = Field(default=0.5, gt=0, le=1, description="weights stay cached across runs when "
                                             "they fit in this fraction of the last on-chip level")
    weight_gbs: float | None = Field(default=None, gt=0, description="rate at which a kernel consumes its weights on each "
                                     "call (packing into the GEMM's layout), GB/s; None: not a bound")

    @field_validator("kernel_overhead_us")
    @classmethod
    def _classes(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if k not in OP_CLASS_NAMES:
                raise ValueError(f"unknown op class {k!r}; use one of {', '.join(OP_CLASS_NAMES)}")
            if x < 0:
                raise ValueError(f"overhead for {k} must be >= 0")
        return v


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


class Validation(_Strict):
    """On what data the target was checked and with what error: stated beside every estimate."""

    data: str = Field(description="the data set and split it was checked on")
    family: str = Field(default="", description="the networks in a few words, e.g. 'FBNet-space (HW-NAS-Bench)'")
    networks: int = Field(gt=0, description="held-out networks the figures are computed on")
    spearman: float = Field(ge=-1, le=1)
    median_error_pct: float = Field(ge=0)
    p90_error_pct: float = Field(ge=0)
    within_10_pct: float | None = Field(default=None, ge=0, le=100, description="share of networks within +-10%")
    macs_spearman: float | None = Field(default=None, ge=-1, le=1, description="MACs alone on the same networks")
    cost_model: str = ""
    date: str
    command: str = ""
    sources: list[str] = Field(default_factory=list)
    notes: str = ""
    macs_m: list[float] | None = Field(default=None, min_length=2, max_length=2,
                                       description="[smallest, largest] MACs of those networks, millions")
    weight_kb: list[float] | None = Field(default=None, min_length=2, max_length=2,
                                          description="[smallest, largest] weights of those networks, KB")

    def outside(self, macs: float, weight_bytes: float) -> str:
        """A note when a network lies outside the sizes the target was checked on (its fitted
        figures are then extrapolated and the stated error does not apply), else ''."""
        out = []
        for label, value, span, unit in (("MACs", macs / 1e6, self.macs_m, "M"),
                                         ("weights", weight_bytes / 1024, self.weight_kb, " KB")):
            if span is not None and not span[0] <= value <= span[1]:
                out.append(f"{label} {_num(value)}{unit} (checked on {_num(span[0])}-{_num(span[1])}{unit})")
        if not out:
            return ""
        return ("outside the networks this target was validated on: " + ", ".join(out)
                + "; the estimate is extrapolated and the stated error does not apply")

    def stated_error(self, cost_model: str | None = None) -> str:
        """One line for beside an estimate: the error this target showed on held-out data."""
        line = (f"stated error: median {self.median_error_pct:.1f}%, p90 {self.p90_error_pct:.1f}%, "
                f"Spearman {self.spearman:.3f} on {self.networks} held-out {self.family + ' ' if self.family else ''}networks "
                f"({self.date})")
        if cost_model and self.cost_model and cost_model != self.cost_model:
            line += f" -- validated with the {self.cost_model} model, not {cost_model}"
        return line


class RowStationary(_Strict):
    """A row-stationary spatial array (Eyeriss v1): PE grid, per-PE scratchpads, global buffer."""

    rows: int = Field(default=12, gt=0)
    cols: int = Field(default=14, gt=0)
    ifmap_spad_words: int = Field(default=12, gt=0)
    filter_spad_words: int = Field(default=224, gt=0)
    psum_spad_words: int = Field(default=24, gt=0)
    glb_kb: float = Field(default=108.0, gt=0)
    word_bits: int = Field(default=16, gt=0)
    glb_words_per_cycle: float = Field(gt=0, description="global buffer <-> array bandwidth")
    dram_words_per_cycle: float = Field(gt=0, description="off-chip bandwidth")
    layer_overhead_cycles: float = Field(default=0.0, ge=0, description="configuration and pipeline fill per layer")
    groups: Literal["parallel", "sequential"] = Field(default="sequential", description="whether the groups of a grouped/"
                                                      "depthwise layer may share the array in one pass")


class TiledEngine(_Strict):
    """A layer-sequential FPGA engine: a Tm x Tn MAC array for (grouped) convolutions and GEMMs,
    a depthwise unit of ``td`` channels with the whole K x K window unrolled."""

    tm: int = Field(gt=0, description="output channels computed in parallel")
    tn: int = Field(gt=0, description="input channels computed in parallel")
    td: int = Field(gt=0, description="depthwise channels computed in parallel")
    max_window: int = Field(default=7, gt=0, description="largest K the depthwise window unrolls; larger K take more passes")
    dram_bytes_per_cycle: float = Field(gt=0)
    layer_overhead_cycles: float = Field(default=0.0, ge=0)
    word_bits: int = Field(default=16, gt=0)


class Target(_Strict):
    """A device or an accelerator template, loaded from one TOML file."""

    name: str
    kind: Literal["cpu", "gpu", "mcu", "accelerator", "template"]
    description: str
    sources: list[str] = Field(min_length=1, description="where the figures come from")
    clock_mhz: float = Field(gt=0)
    process_nm: float | None = Field(default=None, gt=0, description="the device's node; energies quoted at another node are scaled")
    threads: int = Field(default=1, ge=1, description="cores/threads the figures assume")
    peak_gmacs: dict[str, float] = Field(description="peak multiply-accumulates per second (1e9) per precision")
    efficiency: dict[str, float] = Field(default_factory=dict, description="fraction of peak reached per op class")
    channel_block: int = Field(default=1, ge=1, description="channels the kernels process as one SIMD block; "
                               "channel counts are padded up to it (e.g. 16 for AVX-512 fp32 NCHWc)")
    memory: list[MemoryLevel] = Field(min_length=1, description="innermost first; the last is off-chip/main memory")
    energy: Energy
    overheads: Overheads = Overheads()
    weight_memory_bytes: float | None = Field(default=None, gt=0, description="flash/ROM for weights, MCUs")
    area: Area | None = None
    systolic: SystolicTemplate | None = None
    bitfusion: BitFusionTemplate | None = Field(default=None, description="a Bit Fusion array template (cost model bitfusion)")
    calibration: Calibration | None = None
    cost_model: str | None = Field(default=None, description="the cost model `auto` picks for this target "
                                   "(a registered name); default: systolic for templates, else roofline")
    runtime: Runtime | None = Field(default=None, description="the device runtime's kernels (cost model runtime)")
    row_stationary: RowStationary | None = Field(default=None, description="a row-stationary array (cost model row-stationary)")
    tiled: TiledEngine | None = Field(default=None, description="a loop-tiled FPGA engine (cost model tiled)")
    validation: Validation | None = Field(default=None, description="the data the target was checked on and its error there")

    @field_validator("peak_gmacs")
    @classmethod
    def _peaks(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("needs at least one precision")
        for k, x in v.items():
            if k not in PRECISIONS:
                raise ValueError(f"unknown precision {k!r}; use one of {', '.join(PRECISIONS)}")
            if x <= 0:
                raise ValueError(f"peak for {k} must be > 0")
        return v

    @field_validator("efficiency")
    @classmethod
    def _eff(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if k not in OP_CLASS_NAMES:
                raise ValueError(f"unknown op class {k!r}; use one of {', '.join(OP_CLASS_NAMES)}")
            if not 0 < x <= 1:
                raise ValueError(f"efficiency for {k} must be in (0, 1]")
        return v

    @model_validator(mode="after")
    def _template_has_config(self):
        kinds = [k for k in TEMPLATE_KINDS if getattr(self, k) is not None]
        if self.kind == "template" and len(kinds) != 1:
            raise ValueError("a template target needs exactly one of the tables "
                             + ", ".join(f"[{k}]" for k in TEMPLATE_KINDS) + (f" (it has {', '.join(kinds)})" if kinds else ""))
        names = [m.name for m in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory levels must have distinct names (got {', '.join(names)})")
        return self

    @property
    def template_kind(self) -> str | None:
        """Which accelerator template this target is ("systolic", "bitfusion"), None for a fixed device.
        The name is also the template's table in the TOML and its cost model."""
        return next((k for k in TEMPLATE_KINDS if getattr(self, k) is not None), None)

    @property
    def template(self):
        """The template's table (``default`` and ``ranges``), None for a fixed device."""
        kind = self.template_kind
        return getattr(self, kind) if kind else None

    @property
    def main_memory(self) -> MemoryLevel:
        return self.memory[-1]

    @property
    def on_chip(self) -> list[MemoryLevel]:
        return self.memory[:-1]

    @property
    def precisions(self) -> list[str]:
        return list(self.peak_gmacs)


def _bundled_dir() -> Path:
    return Path(str(importlib.resources.files("hwmodels.bundled_targets")))


def list_targets() -> dict[str, Path]:
    """Targets by name: the bundled files (by stem), then those plug-ins add."""
    return {name: path for name, (path, _) in target_origins().items() if path is not None}


def target_origins() -> dict[str, tuple[Path, str]]:
    """Name -> (TOML path, where it came from: "built-in" or "plug-in <distribution>").

    A plug-in adds targets through the ``codesign.targets`` entry-point group: each entry
    point is a callable returning the path of a target TOML file.  A plug-in cannot replace
    a bundled target.  A broken plug-in is listed with its error (path None) and is an error
    only when its own target is asked for, so it cannot break the others.
    """
    out = {p.stem: (p, "built-in") for p in sorted(_bundled_dir().glob("*.toml"))}
    for ep in entry_points(group=TARGET_GROUP):
        if ep.name in out:
            continue
        try:
            out[ep.name] = (Path(ep.load()()), origin(ep))
        except Exception as e:   # third-party code: said where it is used, naming the plug-in
            out[ep.name] = (None, f"{origin(ep)}: broken ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
    return out


def load_target(name_or_path: str | Path) -> Target:
    """Load a bundled target by name, or any target TOML by path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".toml" or path.exists() or "/" in text:
        if not path.is_file():
            raise CodesignError(f"target file not found: {path} (give a bundled name or an existing .toml path)")
    else:
        known = target_origins()
        if text not in known:
            raise CodesignError(f"unknown target {text!r}; known targets: {', '.join(known)} (or give a path to a .toml)")
        path, where = known[text]
        if path is None:
            raise CodesignError(f"target {text!r} comes from a {where}; fix or uninstall that plug-in")
    return load_target_file(path)


def load_target_file(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise CodesignError(f"cannot read target file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise CodesignError(f"target file {path} is not valid TOML: {e}") from None
    return target_from_dict(data, source=str(path))


def target_from_dict(data: dict, source: str = "<dict>") -> Target:
    try:
        return Target.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check spelling against targets/host.toml)"
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise CodesignError(f"target file {source}: field '{loc}': {msg}{more}") from None
