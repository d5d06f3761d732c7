"""Cost models by name (timm-style registry), imported lazily so that heavy backends
(onnxruntime profiling, TVM) load only when asked for."""
from __future__ import annotations

import importlib

from codesign.errors import CodesignError

# name -> "module:factory"; the factory returns an object with .name and .estimate(...)
_MODELS = {
    "roofline": "hwmodels.roofline:RooflineModel",
    "measured": "hwmodels.measured:MeasuredModel",
    "systolic": "hwmodels.systolic_model:SystolicCostModel",
}


def list_cost_models() -> list[str]:
    return list(_MODELS)


def resolve_name(name: str, target) -> str:
    """``auto`` means the systolic simulation for accelerator templates, else the roofline."""
    if name != "auto":
        return name
    return "systolic" if target.systolic is not None else "roofline"


def get_cost_model(name: str, **options):
    if name not in _MODELS:
        raise CodesignError(f"unknown cost model {name!r}; choose one of {', '.join(_MODELS)}")
    module, attr = _MODELS[name].split(":")
    return getattr(importlib.import_module(module), attr)(**options)
