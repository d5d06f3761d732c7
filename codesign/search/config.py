"""The search config (TOML): what to search, on what data, for which hardware, under what limits."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hwmodels.bits import VALID_BITS
from hwmodels.errors import CodesignError

OBJECTIVES = ("accuracy", "latency_ms", "energy_mj", "area_mm2", "size_kb")
# direction of each objective: accuracy up, everything else down
MAXIMIZE = {"accuracy"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SpaceSection(_Strict):
    name: str = "small-cnn"
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the space")


class DataSection(_Strict):
    source: str = "digits"          # "digits", an .npz file, or an image folder
    seed: int = 0


class SupernetSection(_Strict):
    epochs: int = Field(default=20, ge=1)
    checkpoint_dir: str = ""        # default: <out>/checkpoints


class TargetSection(_Strict):
    name: str = "systolic"          # a bundled name or a .toml path
    cost_model: str = "auto"        # auto, or any registered cost model (built-in or plug-in)
    search_hardware: bool = True    # only for templates: search the accelerator config
    # nested: each trial's network gets the best config of the ranges for a sampled latency/energy/area
    # trade-off (exhaustive, the systolic model is fast); sampled: the sampler picks each field
    hardware: Literal["nested", "sampled"] = "nested"
    ranges: dict[str, list] = Field(default_factory=dict, description="override template ranges")


class QuantSection(_Strict):
    bits: list[int] = Field(default_factory=lambda: [4, 8, 16])
    per_layer: bool = True          # bits may differ between layers (false: one width for the network)
    # how layers share bit choices when per_layer: "sensitivity" groups layers by measured 2-bit
    # sensitivity (HAWQ-style), "stage" per stage, "layer" every layer its own
    granularity: Literal["stage", "sensitivity", "layer"] = "sensitivity"
    groups: int = Field(default=4, ge=1, description="bit groups for granularity = 'sensitivity'")


class SearchSection(_Strict):
    """How the strategies use their measured-evaluation budget (``budget.trials``)."""

    # surrogate: fit an accuracy predictor on the measured trials, search predictor x cost models
    # widely (pymoo NSGA-II), measure the predicted front, repeat; direct: the optuna sampler
    # (``algorithm``) proposes every measured trial itself
    method: Literal["surrogate", "direct"] = "surrogate"
    initial: int = Field(default=0, ge=0, description="random measured trials before the first round (0: auto)")
    batch: int = Field(default=4, ge=1, description="candidates measured per round")
    population: int = Field(default=64, ge=8)
    generations: int = Field(default=30, ge=1)
    exploration: float = Field(default=1.0, ge=0, description="UCB weight on the predictor's ensemble spread")
    ensemble: int = Field(default=5, ge=1)
    # two-stage: measure each trial on every 3rd validation image first and on the rest only when
    # the candidate could still reach the measured front (a low-fidelity trial costs a third)
    fidelity: Literal["full", "two-stage"] = "full"
    low_fidelity_every: int = Field(default=3, ge=2)
    arch_pool: int = Field(default=96, ge=2, description="architectures the surrogate varies bits and hardware over "
                           "in one round (the measured front's, their mutations, random ones)")
    hw_tradeoffs: int = Field(default=3, ge=1, description="divisions of the latency/energy/area simplex: the "
                              "hardware trade-off points added to the front for each measured network")
    # what the sequential strategy carries from one phase to the next: the knee of the phase's front
    # (closest to the ideal point, each objective scaled over the front) or its most accurate member
    carry: Literal["knee", "accuracy"] = "knee"


class Constraints(_Strict):
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_energy_mj: float | None = Field(default=None, gt=0)
    max_area_mm2: float | None = Field(default=None, gt=0)
    max_size_kb: float | None = Field(default=None, gt=0)
    max_sram_kb: float | None = Field(default=None, gt=0)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)


class Budget(_Strict):
    trials: int = Field(default=40, ge=2, le=100_000, description="measured accuracy evaluations per strategy")
    minutes: float = Field(default=10.0, gt=0)


class ModelSection(_Strict):
    """A trained model to quantize instead of a space to search (``codesign quantize``'s flow):
    its per-layer bits are searched on ``data``, costed on ``target``, within the allowed drop."""

    onnx: str = Field(min_length=1, description="path to the trained ONNX classifier (relative paths: to where the command runs)")
    max_accuracy_drop: float = Field(default=0.01, ge=0, lt=1, description="allowed top-1 drop, a fraction")
    # what to minimise; default: the first of the config's objectives that quantize offers
    objective: Literal["energy", "latency", "size"] | None = None
    layers: list[str] | None = Field(default=None, description="only these layers (default every quantizable one)")


QUANTIZE_OBJECTIVES = {"energy_mj": "energy", "latency_ms": "latency", "size_kb": "size"}


class SearchConfig(_Strict):
    seed: int = 0
    algorithm: Literal["nsga2", "tpe", "random"] = "nsga2"
    space: SpaceSection = SpaceSection()
    data: DataSection = DataSection()
    supernet: SupernetSection = SupernetSection()
    target: TargetSection = TargetSection()
    quantization: QuantSection = QuantSection()
    objectives: list[Literal["accuracy", "latency_ms", "energy_mj", "area_mm2", "size_kb"]] = \
        Field(default_factory=lambda: ["accuracy", "latency_ms", "energy_mj"])
    constraints: Constraints = Constraints()
    budget: Budget = Budget()
    search: SearchSection = SearchSection()
    model: ModelSection | None = None

    @model_validator(mode="after")
    def _checks(self):
        if self.model is not None:
            if not self.model.onnx.lower().endswith(".onnx"):
                raise ValueError(f"model.onnx: {self.model.onnx!r} is not an .onnx file")
            if self.model.objective is None and not any(o in QUANTIZE_OBJECTIVES for o in self.objectives):
                raise ValueError("model: set model.objective (energy, latency or size) or list one of "
                                 "energy_mj, latency_ms, size_kb in objectives")
            bad = [b for b in self.quantization.bits if b not in (2, 4, 8, 16)]
            if bad:
                raise ValueError(f"quantization.bits: {bad[0]} cannot be chosen for a trained model's layers (use 2, 4, 8, 16)")
        if len(set(self.objectives)) < 2:
            raise ValueError("objectives: give at least two distinct objectives")
        if "accuracy" not in self.objectives:
            raise ValueError("objectives: include 'accuracy' (a co-design search trades it against cost)")
        if not self.quantization.bits:
            raise ValueError("quantization.bits: the bit-width choices are empty")
        bad = [b for b in self.quantization.bits if b not in VALID_BITS]
        if bad:
            raise ValueError(f"quantization.bits: {bad[0]} is not one of {', '.join(map(str, VALID_BITS))}")
        for k, v in self.target.ranges.items():
            if not v:
                raise ValueError(f"target.ranges.{k}: the range is empty")
        return self

    def digest(self) -> dict:
        d = self.model_dump()
        if d.get("model") is None:       # configs without [model] digest as before it existed
            d.pop("model", None)
        return d


def load_config(path: str | Path) -> SearchConfig:
    path = Path(path)
    if not path.is_file():
        raise CodesignError(f"search config not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise CodesignError(f"search config {path} is not valid TOML: {e}") from None
    if not data:
        raise CodesignError(f"search config {path} is empty; see examples/digits_systolic.toml for what it holds")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (see examples/digits_systolic.toml for the keys)"
        raise CodesignError(f"search config {path}: '{loc}': {msg}") from None
