"""Search spaces, found by name (timm style): ``get_space("small-cnn")``, ``list_spaces()``.

Built in: ``mobilenetv3`` (OFA-style elastic supernet) and ``small-cnn`` (ResNet-style, for
8x8 inputs).  A path to a ``.toml`` file loads a user space; third parties may register
factories with ``register_space`` or the ``codesign.spaces`` entry-point group.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from codesign.errors import CodesignError
from codesign.spaces.base import Arch, ElasticNet, SearchSpace
from codesign.spaces.mobilenetv3 import MobileNetV3Space
from codesign.spaces.small_cnn import SmallCNNSpace
from codesign.spaces.user import Trial, UserSpace, define_space, load_toml_space

__all__ = ["Arch", "ElasticNet", "SearchSpace", "MobileNetV3Space", "SmallCNNSpace", "Trial", "UserSpace",
           "define_space", "load_toml_space", "get_space", "list_spaces", "register_space"]

_REGISTRY: dict[str, Callable[..., SearchSpace]] = {}


def register_space(name: str) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    """Decorator registering a space factory under ``name``."""

    def wrap(factory: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        _REGISTRY[name] = factory
        return factory

    return wrap


register_space("mobilenetv3")(MobileNetV3Space)
register_space("small-cnn")(SmallCNNSpace)


def _load_entry_points() -> None:
    for ep in entry_points(group="codesign.spaces"):
        _REGISTRY.setdefault(ep.name, ep.load())


def list_spaces() -> list[str]:
    """Names accepted by ``get_space`` (built-in, registered and entry points)."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_space(name: str, **config: Any) -> SearchSpace:
    """A space by registered name (``config`` overrides its choices) or from a ``.toml`` file."""
    if str(name).endswith(".toml"):
        if not Path(name).exists():
            raise CodesignError(f"space file {name} not found")
        return load_toml_space(name)
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise CodesignError(f"unknown space '{name}' (known: {', '.join(list_spaces())}; or a path to a .toml file)")
    try:
        return _REGISTRY[name](**config)
    except TypeError as exc:
        raise CodesignError(f"space {name}: bad configuration {config} ({exc})") from None
