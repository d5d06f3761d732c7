"""User-declared search spaces over the user's own torch model builder.

Two forms, one mechanism:

* define-by-run (like optuna): ``def build(trial) -> nn.Module`` calls
  ``trial.choice("width", [16, 32])``; choices are discovered as the builder runs, so they may
  be conditional on earlier ones.  Wrap it with ``UserSpace(build)`` or ``@define_space("name")``.
* TOML: a file naming a ``module:function`` (or ``path/to/file.py:function``) builder and its
  choices; the builder then calls ``trial.choice("width")`` without options.

User spaces have no supernet: each candidate is trained on its own.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from codesign.spaces.base import Arch, SearchSpace, _ordered, _py, as_rng
from codesign.spaces.registry import register_space
from hwmodels.errors import CodesignError

Builder = Callable[["Trial"], nn.Module]


class Trial:
    """Handed to a builder: ``choice`` returns the fixed, sampled or default value and records it."""

    def __init__(self, space_name: str, fixed: Mapping[str, Any] | None = None,
                 rng: np.random.Generator | None = None, declared: Mapping[str, tuple] | None = None,
                 num_classes: int = 10, in_channels: int = 1, resolution: int = 8):
        self.space_name, self.fixed, self.rng = space_name, dict(fixed or {}), rng
        self.declared = dict(declared or {})
        self.num_classes, self.in_channels, self.resolution = num_classes, in_channels, resolution
        self.params: dict[str, tuple] = {}
        self.values: Arch = {}

    def choice(self, name: str, options: Sequence[Any] | None = None) -> Any:
        """One decision; default (no fixed value, no rng) is the first option."""
        if options is None:
            if name not in self.declared:
                raise CodesignError(f"space {self.space_name}: choice '{name}' has no options "
                                    "(declare them in the builder or in the TOML [choices] table)")
            options = self.declared[name]
        options = tuple(options)
        if not options:
            raise CodesignError(f"space {self.space_name}: choice '{name}' has an empty list of options")
        if name in self.fixed:
            value = self.fixed[name]
            if value not in options:
                raise CodesignError(f"space {self.space_name}: {name}={value!r} is not one of {list(options)}")
        elif self.rng is not None:
            value = options[int(self.rng.integers(len(options)))]
        else:
            value = options[0]
        self.params[name], self.values[name] = options, _py(value)
        return value


class UserSpace(SearchSpace):
    """A space defined by running the user's builder; see the module docstring."""

    has_supernet = False

    def __init__(self, builder: Builder, name: str = "user", declared: Mapping[str, Sequence[Any]] | None = None,
                 probes: int = 8, seed: int = 0):
        self.builder, self.name = builder, name
        self.declared = {k: tuple(v) for k, v in (declared or {}).items()}
        super().__init__(dict(self.declared), {"name": name, "builder": _qualname(builder),
                                               "declared": {k: list(v) for k, v in self.declared.items()}})
        rng = np.random.default_rng(seed)
        self._run(Trial(name, declared=self.declared))           # default path
        for _ in range(probes):                                   # discover conditional choices
            self._run(Trial(name, rng=rng, declared=self.declared))

    def _run(self, trial: Trial) -> nn.Module:
        try:
            model = self.builder(trial)
        except CodesignError:
            raise
        except Exception as exc:
            raise CodesignError(f"space {self.name}: builder {_qualname(self.builder)} failed for "
                                f"{trial.values}: {type(exc).__name__}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise CodesignError(f"space {self.name}: builder {_qualname(self.builder)} returned "
                                f"{type(model).__name__}, expected a torch.nn.Module")
        for k, opts in trial.params.items():
            self.params.setdefault(k, opts)
        return model

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        trial = Trial(self.name, rng=as_rng(rng), declared=self.declared)
        self._run(trial)
        return trial.values

    def _extreme(self, last: bool) -> Arch:
        fixed = {k: _ordered(v)[-1 if last else 0] for k, v in self.params.items()}
        trial = Trial(self.name, fixed=fixed, declared=self.declared)
        self._run(trial)
        return trial.values

    def largest(self) -> Arch:
        return self._extreme(True)

    def smallest(self) -> Arch:
        return self._extreme(False)

    def active_params(self, arch: Arch) -> set[str]:
        return set(arch) & set(self.params)

    def validate(self, arch: Mapping[str, Any]) -> Arch:
        unknown = sorted(set(arch) - set(self.params))
        if unknown:
            raise CodesignError(f"space {self.name}: unknown choice(s) {', '.join(unknown)} "
                                f"(known: {', '.join(self.params)})")
        for k, v in arch.items():
            if v not in self.params[k]:
                raise CodesignError(f"space {self.name}: {k}={v!r} is not one of {list(self.params[k])}")
        return {k: _py(v) for k, v in arch.items()}

    def build(self, arch: Arch, num_classes: int, in_channels: int, data_resolution: int,
              seed: int = 0) -> nn.Module:
        arch = self.validate(arch)
        torch.manual_seed(seed)
        trial = Trial(self.name, fixed=arch, declared=self.declared, num_classes=num_classes,
                      in_channels=in_channels, resolution=self.resolution(arch) or data_resolution)
        model = self._run(trial)
        if not hasattr(model, "input_resolution"):
            model.input_resolution = trial.resolution
        return model


def define_space(name: str, declared: Mapping[str, Sequence[Any]] | None = None) -> Callable[[Builder], Builder]:
    """Decorator: register a define-by-run builder under ``name`` so ``get_space(name)`` finds it."""
    def wrap(builder: Builder) -> Builder:
        register_space(name)(lambda **kw: UserSpace(builder, name=name, declared=declared, **kw))
        return builder

    return wrap


def load_toml_space(path: str | Path) -> UserSpace:
    """``[space] name, builder = "module:function"`` plus a ``[choices]`` table of option lists."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise CodesignError(f"{path}: cannot read space file ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CodesignError(f"{path}: invalid TOML ({exc})") from None
    space = doc.get("space")
    if not isinstance(space, dict) or not isinstance(space.get("builder"), str):
        raise CodesignError(f'{path}: needs a [space] table with builder = "module:function"')
    choices = doc.get("choices", {})
    if not isinstance(choices, dict) or any(not isinstance(v, list) or not v for v in choices.values()):
        raise CodesignError(f"{path}: [choices] must map each name to a non-empty list of options")
    builder = _import_builder(space["builder"], path.parent, str(path))
    return UserSpace(builder, name=str(space.get("name", path.stem)), declared=choices)


def _import_builder(ref: str, base: Path, where: str) -> Builder:
    mod_name, _, func = ref.rpartition(":")
    if not mod_name or not func:
        raise CodesignError(f'{where}: builder must look like "module:function" or "file.py:function", got {ref!r}')
    try:
        if mod_name.endswith(".py") or "/" in mod_name:
            file = (base / mod_name).resolve()
            spec = importlib.util.spec_from_file_location(f"codesign_user_space_{file.stem}", file)
            if spec is None or spec.loader is None or not file.exists():
                raise FileNotFoundError(str(file))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(base.resolve()))
            try:
                module = importlib.import_module(mod_name)
            finally:
                sys.path.remove(str(base.resolve()))
        fn = getattr(module, func)
    except Exception as exc:
        raise CodesignError(f"{where}: cannot load builder {ref!r} ({type(exc).__name__}: {exc})") from None
    if not callable(fn):
        raise CodesignError(f"{where}: builder {ref!r} is not callable")
    return fn


def _qualname(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
