"""Set-up checks of a search config against its target: fail before any training, in one line."""
from __future__ import annotations

from hwmodels.errors import CodesignError
from hwmodels.targets import Target

from codesign.search.config import SearchConfig
from hwmodels.template_kinds import kind_of


def check_target(cfg: SearchConfig, target: Target) -> str:
    """The cost model the search uses (a registered name); the bits and objectives the target can serve."""
    from codesign.quant import supported_bits
    from hwmodels.registry import list_cost_models, resolve_name

    kind = kind_of(target)
    is_template = kind is not None
    cost_model = resolve_name(cfg.target.cost_model, target)
    if cost_model not in list_cost_models():
        raise CodesignError(f"target.cost_model {cost_model!r} is not a registered cost model; "
                            f"use auto or one of {', '.join(list_cost_models())}")
    if "area_mm2" in cfg.objectives and not is_template:
        raise CodesignError(f"objective area_mm2 needs an accelerator template target; {target.name!r} is a {target.kind}")
    runnable = set(supported_bits(cfg.target.name)) | (set(kind.runnable_bits) if is_template else set())
    bad = [b for b in cfg.quantization.bits if b not in runnable]
    if bad:
        raise CodesignError(f"quantization.bits: target {target.name!r} cannot run {bad[0]}-bit layers "
                            f"(it runs {', '.join(map(str, sorted(runnable)))})")
    return cost_model


def hardware_ranges(cfg: SearchConfig, target: Target) -> dict[str, list]:
    """The accelerator fields the search may set and their values ({} when the hardware is fixed)."""
    kind = kind_of(target)
    if not (kind is not None and cfg.target.search_hardware):
        if cfg.target.ranges:
            raise CodesignError("target.ranges given but the hardware is not searched (needs a template target "
                                "and target.search_hardware = true)")
        return {}
    from pydantic import ValidationError

    ranges = kind.template(target).ranges.model_dump()
    for k, v in cfg.target.ranges.items():
        if k not in ranges:
            raise CodesignError(f"target.ranges.{k}: not a {kind.name} template field; use {', '.join(kind.fields)}")
        ranges[k] = list(v)
    try:       # the same checks as a target file's [<template>.ranges], before any training
        return kind.ranges_model.model_validate(ranges).model_dump()
    except ValidationError as e:
        err = e.errors()[0]
        loc = "".join(f".{p}" for p in err["loc"][:1])
        raise CodesignError(f"target.ranges{loc}: {err['msg'].removeprefix('Value error, ')}") from None


def check_constraints(cfg: SearchConfig, target: Target, hw_ranges: dict[str, list]) -> None:
    """Constraints no candidate could meet are config errors, not a search that finds nothing."""
    c = cfg.constraints
    kind = kind_of(target)
    is_template = kind is not None
    r = hw_ranges or ({k: [getattr(kind.template(target).default, k)] for k in kind.fields} if is_template else {})
    if c.max_sram_kb is not None:
        if not is_template:
            raise CodesignError("constraints.max_sram_kb needs an accelerator template target")
        smallest = min(r["ifmap_sram_kb"]) + min(r["filter_sram_kb"]) + min(r["ofmap_sram_kb"])
        if smallest > c.max_sram_kb:
            raise CodesignError(f"constraints.max_sram_kb = {c.max_sram_kb:g} is impossible: the smallest SRAMs "
                                f"in the ranges already total {smallest:g} KB")
    if c.max_area_mm2 is not None and is_template and kind.has_area(target):
        from hwmodels.bits import LayerBits

        tiny = {k: min(r[k]) for k in ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")}
        narrow = min(cfg.quantization.bits)
        least = float(kind.point(target, tiny).area(kind.key(LayerBits(narrow, narrow)), target)[0])
        if least > c.max_area_mm2:
            raise CodesignError(f"constraints.max_area_mm2 = {c.max_area_mm2:g} is impossible: the smallest "
                                f"accelerator in the ranges takes {least:.3f} mm^2")


def check_references(cfg: SearchConfig) -> None:
    """What the config names exists and fits, checked before anything is written or trained:
    the target (its file validated), the space, the data source, the hardware ranges and the
    constraints against them."""
    from pathlib import Path

    from codesign.spaces import get_space
    from hwmodels.targets import load_target

    target = load_target(cfg.target.name)
    get_space(cfg.space.name, **cfg.space.options)
    source = cfg.data.source
    if source != "digits" and not Path(source).exists():
        raise CodesignError(f"data.source {source!r} not found: give 'digits', an .npz file with x and y, or an image folder")
    check_target(cfg, target)
    check_constraints(cfg, target, hardware_ranges(cfg, target))
