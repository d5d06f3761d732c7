"""Bit-widths, defined once: what a bit-width means, how it is written, and what it runs at.

A bit-width is one of ``VALID_BITS``: 2, 4, 8 and 16 are integers (what fake-quantization and
the QDQ export produce), 32 means floating point (the model as trained).  A layer has a
weight and an activation width (``LayerBits``); a network has a default plus per-layer
overrides (``BitAssignment``).  Three rules follow from the widths and nothing else:

- ``precision_bits``: storage bits of each target precision (fp16 and bf16 are 16 bits).
- ``compute_precision``: the narrowest precision a target offers that holds both operands.
- ``word_bits``: the datapath word an accelerator needs for a layer: its widest operand.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from hwmodels.errors import CodesignError

VALID_BITS = (2, 4, 8, 16, 32)
FLOAT_BITS = 32
PRECISION_BITS = {"int2": 2, "int4": 4, "int8": 8, "int16": 16, "fp16": 16, "bf16": 16, "fp32": 32}


@dataclass(frozen=True)
class LayerBits:
    weight: int = FLOAT_BITS
    activation: int = FLOAT_BITS

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

    @property
    def all_float(self) -> bool:
        return all(b.widest >= FLOAT_BITS for b in (self.default, *self.per_layer.values()))


def precision_bits(precision: str) -> int:
    return PRECISION_BITS[precision]


def precision_name(bits: int) -> str:
    """The precision an operand of ``bits`` is stored in: int2..int16, or fp32 for 32."""
    if bits not in VALID_BITS:
        raise CodesignError(f"bit-width {bits} is not one of {', '.join(map(str, VALID_BITS))}")
    return "fp32" if bits >= FLOAT_BITS else f"int{bits}"


def word_bits(bits: LayerBits) -> int:
    """Datapath word of an accelerator running a layer with these operands: the widest one.

    SRAM capacity in words, DRAM traffic, MAC energy and PE area all follow it.  This is the
    one rule the systolic cost model, the nested hardware optimiser and the exported
    accelerator config share.
    """
    return bits.widest


def native_bits(precisions: Iterable[str]) -> list[int]:
    """Bit-widths a target with these precisions runs natively (fp16 runs 16-bit layers)."""
    return sorted({PRECISION_BITS[p] for p in precisions if p in PRECISION_BITS})


def compute_precision(bits: LayerBits, available: list[str]) -> str:
    """Narrowest precision on the target that holds both operands; integer before float.

    32-bit operands mean float (fp32).  A 16-bit request prefers fp16/bf16 where the target
    has them (what "16/fp" means for deployment), else int16.
    """
    need = bits.widest
    if need >= FLOAT_BITS:
        order = ["fp32"]
    elif need == 16:
        order = ["fp16", "bf16", "int16", "fp32"]
    else:
        order = [p for p in ("int2", "int4", "int8", "int16") if PRECISION_BITS[p] >= need] + ["fp16", "bf16", "fp32"]
    for p in order:
        if p in available:
            return p
    return max(available, key=lambda p: PRECISION_BITS[p])


# ----- writing bit-widths ----------------------------------------------------------------------

_PAIR = re.compile(r"^w(\d+)a(\d+)$")
_FLOAT_WORDS = ("fp", "fp32", "float")


def check_bits(bits: int, where: str) -> int:
    if bits not in VALID_BITS:
        raise CodesignError(f"{where}: bit-width {bits} is not one of {', '.join(map(str, VALID_BITS))} "
                            f"(32 = floating point)")
    return bits


def parse_bit_pair(value: object, where: str) -> LayerBits:
    """One layer's bits from ``"w8a8"``, ``"fp"``, ``[8, 8]`` or ``{weight = 8, activation = 8}``."""
    if isinstance(value, str):
        s = value.strip().lower()
        if s in _FLOAT_WORDS:
            return LayerBits()
        m = _PAIR.match(s)
        if not m:
            raise CodesignError(f"{where}: bit-width spec {value!r} not understood (use fp, w8a8, w4a8, ... "
                                "or a .json/.toml per-layer map)")
        return LayerBits(check_bits(int(m.group(1)), where), check_bits(int(m.group(2)), where))
    is_int = lambda b: isinstance(b, int) and not isinstance(b, bool)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(b) for b in value):
        return LayerBits(check_bits(int(value[0]), where), check_bits(int(value[1]), where))
    if isinstance(value, Mapping) and value and set(value) <= {"weight", "activation"}:
        w, a = value.get("weight", FLOAT_BITS), value.get("activation", FLOAT_BITS)
        if not (is_int(w) and is_int(a)):
            raise CodesignError(f"{where}: weight and activation must be whole bit-widths, got {dict(value)!r}")
        return LayerBits(check_bits(w, where), check_bits(a, where))
    raise CodesignError(f"{where}: expected 'w4a8', [4, 8] or {{weight = 4, activation = 8}}, got {value!r}")


def parse_bits(spec: str | Path | Mapping | None, layer_names: list[str] | None = None,
               where: str = "--bits") -> BitAssignment | None:
    """The one parser for ``--bits``: ``w8a8`` / ``fp`` for every layer, or a map.

    A map (a dict, or a .json/.toml file) is ``{"default": "w8a8", "layers": {"conv1": "w4a8"}}``;
    the flat form ``{"default": "w8a8", "conv1": [4, 8]}`` is read the same way.  Layers the map
    does not name get the default (fp when none is given).  Unknown layer names are an error,
    since a typo would otherwise silently leave that layer at the default.
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return _from_map(dict(spec), layer_names, where)
    text = str(spec).strip()
    path = Path(text)
    if path.suffix.lower() in (".json", ".toml"):
        if not path.is_file():
            raise CodesignError(f"{where} file not found: {path}")
        try:
            raw = path.read_text()
            data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw)
        except OSError as e:
            raise CodesignError(f"{where} file {path}: cannot read ({e.strerror or e})") from None
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise CodesignError(f"{where} file {path} cannot be parsed: {e}") from None
        if not isinstance(data, dict):
            raise CodesignError(f"{where} file {path}: expected a table with 'default' and 'layers'")
        return _from_map(data, layer_names, f"{where} file {path}")
    return BitAssignment(parse_bit_pair(text, where))


def _from_map(data: dict, layer_names: list[str] | None, where: str) -> BitAssignment:
    data = dict(data)
    default = parse_bit_pair(data.pop("default"), f"{where}: default") if "default" in data else LayerBits()
    layers = data.pop("layers", None)
    if layers is None:
        layers = data                       # the flat form: every other key is a layer
    elif data:
        raise CodesignError(f"{where}: unknown key {sorted(data)[0]!r}; use 'default' and 'layers'")
    if not isinstance(layers, Mapping):
        raise CodesignError(f"{where}: 'layers' must be a table of layer name -> bits")
    per_layer = {name: parse_bit_pair(v, f"{where}: layers.{name}") for name, v in layers.items()}
    if layer_names is not None:
        missing = sorted(set(per_layer) - set(layer_names))
        if missing:
            shown = ", ".join(layer_names[:8]) + (", ..." if len(layer_names) > 8 else "")
            raise CodesignError(f"{where}: layer {missing[0]!r} is not in the model (layers: {shown})")
    return BitAssignment(default, per_layer)
