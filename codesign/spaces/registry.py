"""The table of search spaces by name, and the plug-ins that add more.

Kept apart from ``codesign.spaces`` so that space modules (``user``) can register
themselves without importing the package that imports them.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable

from hwmodels.plugins import SPACE_GROUP, origin

REGISTRY: dict[str, Callable] = {}
ORIGIN: dict[str, str] = {}


def register_space(name: str, origin: str = "registered") -> Callable[[Callable], Callable]:
    """Decorator registering a space factory under ``name``."""

    def wrap(factory: Callable) -> Callable:
        REGISTRY[name] = factory
        ORIGIN[name] = origin
        return factory

    return wrap


def load_entry_points() -> None:
    for ep in entry_points(group=SPACE_GROUP):
        if ep.name not in REGISTRY:
            REGISTRY[ep.name] = ep.load()
            ORIGIN[ep.name] = origin(ep)


def list_spaces() -> list[str]:
    """Names accepted by ``get_space`` (built-in, registered and entry points)."""
    load_entry_points()
    return sorted(REGISTRY)


def space_origins() -> dict[str, str]:
    load_entry_points()
    return dict(ORIGIN)
