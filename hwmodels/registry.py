"""Cost models by name (timm-style registry) and the plug-ins that add more.

Built-in models are imported lazily, so that heavy backends (onnxruntime profiling, TVM)
load only when asked for.  Third parties add a model in either of two ways, and it then
works everywhere a built-in one does (``codesign analyze/check --cost-model NAME``, the
search's ``target.cost_model``):

- ``register_cost_model("name", factory)`` at import time of their code;
- an entry point in the ``codesign.cost_models`` group of their package metadata::

      [project.entry-points."codesign.cost_models"]
      my-model = "my_pkg.model:MyModel"

A factory takes keyword options and returns an object with ``name`` and
``estimate(workload, target, bits)`` (see ``hwmodels.base``).
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

from hwmodels.errors import CodesignError
from hwmodels.plugins import COST_MODEL_GROUP, origin

# name -> "module:factory" (built in) or a factory (registered)
_MODELS: dict[str, str | Callable[..., Any]] = {
    "roofline": "hwmodels.roofline:RooflineModel",
    "measured": "hwmodels.measured:MeasuredModel",
    "systolic": "hwmodels.systolic_model:SystolicCostModel",
    "bitfusion": "hwmodels.bitfusion_model:BitFusionCostModel",
    "runtime": "hwmodels.runtime_model:RuntimeModel",
    "row-stationary": "hwmodels.row_stationary:RowStationaryModel",
    "tiled": "hwmodels.tiled:TiledModel",
}
_ORIGIN: dict[str, str] = {name: "built-in" for name in _MODELS}
_entry_points_loaded = False


def register_cost_model(name: str, factory: Callable[..., Any], origin: str = "registered") -> None:
    """Make ``factory`` available as cost model ``name`` (replacing a plug-in of that name)."""
    if not name or name == "auto":
        raise CodesignError(f"cost model name {name!r} is reserved; choose another")
    if _ORIGIN.get(name) == "built-in":
        raise CodesignError(f"cost model {name!r} is built in; register yours under another name")
    _MODELS[name] = factory
    _ORIGIN[name] = origin


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=COST_MODEL_GROUP):
        if ep.name not in _MODELS:
            _MODELS[ep.name] = ep.value
            _ORIGIN[ep.name] = origin(ep)


def list_cost_models() -> list[str]:
    """Names accepted by ``get_cost_model``: built-in, registered and entry-point models."""
    _load_entry_points()
    return list(_MODELS)


def cost_model_origins() -> dict[str, str]:
    """Name -> where it came from ("built-in", "registered", "plug-in <distribution>")."""
    _load_entry_points()
    return dict(_ORIGIN)


def resolve_name(name: str, target) -> str:
    """``auto``: the model the target file names (``cost_model``), else the template's own simulation
    for accelerator templates (a template kind names its cost model), else the roofline."""
    if name != "auto":
        return name
    if getattr(target, "cost_model", None):
        return target.cost_model
    return getattr(target, "template_kind", None) or "roofline"


def get_cost_model(name: str, **options):
    """A cost model instance by registered name."""
    _load_entry_points()
    if name not in _MODELS:
        raise CodesignError(f"unknown cost model {name!r}; choose one of {', '.join(_MODELS)} "
                            f"(or install a plug-in that registers it)")
    factory = _MODELS[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise CodesignError(f"cost model {name!r} ({_ORIGIN[name]}) cannot be loaded from {module}:{attr}: {e}") from None
    model = factory(**options)
    if not callable(getattr(model, "estimate", None)):
        raise CodesignError(f"cost model {name!r} ({_ORIGIN[name]}) has no estimate(workload, target, bits) method")
    return model
