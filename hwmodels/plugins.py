"""Plug-ins installed beside codesign, read from package metadata without loading them.

Three entry-point groups, one mechanism: ``codesign.cost_models`` (a factory returning a cost
model), ``codesign.targets`` (a callable returning the path of a target TOML) and
``codesign.spaces`` (a factory returning a search space).  Listing them must stay cheap:
``codesign --version`` runs this without importing torch or TVM.  Part of hwmodels, which
reads the cost-model and target groups itself; codesign reads the spaces group.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

COST_MODEL_GROUP, TARGET_GROUP, SPACE_GROUP = "codesign.cost_models", "codesign.targets", "codesign.spaces"
GROUPS = {"cost model": COST_MODEL_GROUP, "target": TARGET_GROUP, "space": SPACE_GROUP}


@dataclass(frozen=True)
class Plugin:
    kind: str           # "cost model", "target" or "space"
    name: str
    value: str          # "module:attribute"
    distribution: str   # the installed package that declares it


def installed_plugins() -> list[Plugin]:
    out = []
    for kind, group in GROUPS.items():
        for ep in entry_points(group=group):
            out.append(Plugin(kind, ep.name, ep.value, distribution(ep)))
    return sorted(out, key=lambda p: (p.kind, p.name))


def distribution(ep) -> str:
    """The installed package that declares an entry point."""
    return ep.dist.name if ep.dist else ep.value


def origin(ep) -> str:
    """How listings name where a plug-in came from."""
    return f"plug-in {distribution(ep)}"
