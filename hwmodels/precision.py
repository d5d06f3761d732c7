"""Per-layer weight/activation bit-widths and the compute precision they map to on a target.

A layer with w-bit weights and a-bit activations computes at the narrowest precision the
target offers that holds both operands (w4a8 on a CPU with int8 but no int4 runs as int8).
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from codesign.errors import CodesignError

_BITS_OF = {"int2": 2, "int4": 4, "int8": 8, "int16": 16, "fp16": 16, "bf16": 16, "fp32": 32}
VALID_BITS = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class LayerBits:
    weight: int = 32
    activation: int = 32

    @property
    def widest(self) -> int:
        return max(self.weight, self.activation)


@dataclass
class BitAssignment:
    """Default bits plus per-layer overrides (layer name -> LayerBits)."""

    default: LayerBits = field(default_factory=LayerBits)
    per_layer: dict[str, LayerBits] = field(default_factory=dict)

    def for_layer(self, name: str) -> LayerBits:
        return self.per_layer.get(name, self.default)

    @property
    def label(self) -> str:
        base = f"w{self.default.weight}a{self.default.activation}"
        return base + (f"+{len(self.per_layer)} layer overrides" if self.per_layer else "")


_UNIFORM = re.compile(r"^w(\d+)a(\d+)$", re.IGNORECASE)


def _check(bits: int, where: str) -> int:
    if bits not in VALID_BITS:
        raise CodesignError(f"{where}: bit-width {bits} is not one of {', '.join(map(str, VALID_BITS))}")
    return bits


def parse_uniform(spec: str, where: str = "--bits") -> LayerBits:
    m = _UNIFORM.match(spec.strip())
    if not m:
        raise CodesignError(f"{where}: {spec!r} is not a uniform spec like w8a8 or w4a8 (or a .json/.toml per-layer map)")
    return LayerBits(_check(int(m.group(1)), where), _check(int(m.group(2)), where))


def parse_bits(spec: str | None, layer_names: list[str] | None = None) -> BitAssignment | None:
    """``w8a8`` or a JSON/TOML file: {"default": "w8a8", "layers": {"conv1": "w4a8", ...}}.

    Per-layer entries may also be {"weight": 4, "activation": 8}.  Unknown layer names are
    an error, since a typo would otherwise silently leave that layer at the default.
    """
    if spec is None:
        return None
    path = Path(spec)
    if path.suffix.lower() in (".json", ".toml"):
        if not path.is_file():
            raise CodesignError(f"--bits file not found: {path}")
        try:
            data = json.loads(path.read_text()) if path.suffix.lower() == ".json" else tomllib.loads(path.read_text())
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise CodesignError(f"--bits file {path} cannot be parsed: {e}") from None
        if not isinstance(data, dict):
            raise CodesignError(f"--bits file {path}: expected a table with 'default' and 'layers'")
        unknown = set(data) - {"default", "layers"}
        if unknown:
            raise CodesignError(f"--bits file {path}: unknown key {sorted(unknown)[0]!r}; use 'default' and 'layers'")
        default = parse_uniform(str(data.get("default", "w32a32")), f"{path}: default")
        layers = {}
        for name, entry in (data.get("layers") or {}).items():
            where = f"{path}: layers.{name}"
            if isinstance(entry, str):
                layers[name] = parse_uniform(entry, where)
            elif isinstance(entry, dict) and set(entry) <= {"weight", "activation"}:
                layers[name] = LayerBits(_check(int(entry.get("weight", default.weight)), where),
                                         _check(int(entry.get("activation", default.activation)), where))
            else:
                raise CodesignError(f"{where}: expected 'w4a8' or {{weight = 4, activation = 8}}")
        if layer_names is not None:
            missing = sorted(set(layers) - set(layer_names))
            if missing:
                raise CodesignError(f"--bits file {path}: layer {missing[0]!r} is not in the model (see the layer names in `codesign analyze` output)")
        return BitAssignment(default, layers)
    return BitAssignment(parse_uniform(spec))


def precision_bits(precision: str) -> int:
    return _BITS_OF[precision]


def compute_precision(bits: LayerBits, available: list[str]) -> str:
    """Narrowest precision on the target that holds both operands; integer before float.

    32-bit operands mean float (fp32).  A 16-bit request prefers fp16/bf16 where the target
    has them (what "16/fp" means for deployment), else int16.
    """
    need = bits.widest
    if need >= 32:
        order = ["fp32"]
    elif need == 16:
        order = ["fp16", "bf16", "int16", "fp32"]
    else:
        order = [p for p in ("int2", "int4", "int8", "int16") if _BITS_OF[p] >= need] + ["fp16", "bf16", "fp32"]
    for p in order:
        if p in available:
            return p
    return max(available, key=lambda p: _BITS_OF[p])
