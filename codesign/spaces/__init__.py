"""Search spaces, found by name (timm style): ``get_space("small-cnn")``, ``list_spaces()``.

Built in: ``mobilenetv3`` (OFA-style elastic supernet) and ``small-cnn`` (ResNet-style, for
8x8 inputs).  A path to a ``.toml`` file loads a user space; third parties may register
factories with ``register_space`` or the ``codesign.spaces`` entry-point group.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hwmodels.errors import CodesignError
from codesign.spaces.base import Arch, ElasticNet, SearchSpace
from codesign.spaces.mobilenetv3 import MobileNetV3Space
from codesign.spaces.registry import REGISTRY, list_spaces, load_entry_points, register_space, space_origins
from codesign.spaces.small_cnn import SmallCNNSpace
from codesign.spaces.user import Trial, UserSpace, define_space, load_toml_space

__all__ = ["Arch", "ElasticNet", "SearchSpace", "MobileNetV3Space", "SmallCNNSpace", "Trial", "UserSpace",
           "define_space", "load_toml_space", "get_space", "list_spaces", "register_space", "space_origins"]

register_space("mobilenetv3", origin="built-in")(MobileNetV3Space)
register_space("small-cnn", origin="built-in")(SmallCNNSpace)


def get_space(name: str, **config: Any) -> SearchSpace:
    """A space by registered name (``config`` overrides its choices) or from a ``.toml`` file."""
    if str(name).endswith(".toml"):
        if not Path(name).exists():
            raise CodesignError(f"space file {name} not found")
        return load_toml_space(name)
    if name not in REGISTRY:
        load_entry_points()
    if name not in REGISTRY:
        raise CodesignError(f"unknown space '{name}' (known: {', '.join(list_spaces())}; or a path to a .toml file)")
    try:
        return REGISTRY[name](**config)
    except TypeError as exc:
        raise CodesignError(f"space {name}: bad configuration {config} ({exc})") from None
