"""hwmodels: hardware cost models that stand alone (no dependency on the codesign package).

The workload IR (``hwmodels.workload``), target schema and loading (``hwmodels.targets``),
bit-widths (``hwmodels.bits``), the cost-model contract (``hwmodels.base``) and the models
themselves, found by name::

    from hwmodels import get_cost_model
    cost = get_cost_model("roofline").estimate(workload, load_target("host"), bits)
"""
from hwmodels.registry import get_cost_model, list_cost_models, register_cost_model

__all__ = ["get_cost_model", "list_cost_models", "register_cost_model"]
