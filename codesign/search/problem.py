"""One candidate = (architecture, per-layer bits, accelerator config): how a trial picks it
and how it is measured.

Accuracy is measured (weight-sharing supernet sub-network, fake-quantized with calibrated
activations, on held-out data); latency/energy/area come from the target's cost model on the
sub-network's exported ONNX graph.  Evaluation is deterministic for a given candidate.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from codesign.errors import CodesignError
from codesign.search.config import SearchConfig
from codesign.targets import SystolicConfig, Target, load_target
from codesign.workload import Workload
from hwmodels.precision import BitAssignment, LayerBits

HW_FIELDS = ("rows", "cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "dataflow", "dram_bandwidth_words")


@dataclass
class Candidate:
    arch: dict[str, Any]
    bits: dict[str, tuple[int, int]]          # torch layer name -> (w_bits, a_bits)
    hw: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"arch": self.arch, "bits": {k: list(v) for k, v in self.bits.items()}, "hw": self.hw}


class Problem:
    """Everything fixed during a search: space, trained supernet, data, target and ranges."""

    def __init__(self, cfg: SearchConfig, out_dir: Path, log=None):
        from codesign.data import load_splits
        from codesign.spaces import get_space

        self.cfg = cfg
        self.log = log or (lambda msg: None)
        self.target: Target = load_target(cfg.target.name)
        self.space = get_space(cfg.space.name, **cfg.space.options)
        if not self.space.params:
            raise CodesignError(f"space {cfg.space.name!r} declares no choices: nothing to search")
        self.splits = load_splits(cfg.data.source, seed=cfg.data.seed)
        self._check_target()
        self.hw_ranges = self._hw_ranges()
        self._check_constraints()
        self.hw_grid = None
        if self.hw_ranges and cfg.target.hardware == "nested":
            from codesign.search.hw_opt import HardwareGrid

            self.hw_grid = HardwareGrid(self.hw_ranges, cfg.constraints.max_sram_kb)
        self.evaluator = self._accuracy_source(out_dir)
        self.bit_slots = self._bit_slots()
        self._workloads: dict[str, tuple[Workload, dict[str, str]]] = {}

    # ----- set-up checks ----------------------------------------------------------------------
    def _check_target(self) -> None:
        t, cfg = self.target, self.cfg
        self.is_template = t.systolic is not None
        from hwmodels.registry import resolve_name

        self.cost_model = resolve_name(cfg.target.cost_model, t)
        if "area_mm2" in cfg.objectives and not self.is_template:
            raise CodesignError(f"objective area_mm2 needs an accelerator template target; {t.name!r} is a {t.kind}")
        from codesign.quant import supported_bits

        runnable = set(supported_bits(cfg.target.name)) | ({32} if self.is_template else set())
        if self.is_template:
            runnable |= {2, 4, 8, 16}
        bad = [b for b in cfg.quantization.bits if b not in runnable]
        if bad:
            raise CodesignError(f"quantization.bits: target {t.name!r} cannot run {bad[0]}-bit layers "
                                f"(it runs {', '.join(map(str, sorted(runnable)))})")

    def _hw_ranges(self) -> dict[str, list]:
        if not (self.is_template and self.cfg.target.search_hardware):
            if self.cfg.target.ranges:
                raise CodesignError("target.ranges given but the hardware is not searched (needs a template target "
                                    "and target.search_hardware = true)")
            return {}
        ranges = self.target.systolic.ranges.model_dump()
        for k, v in self.cfg.target.ranges.items():
            if k not in ranges:
                raise CodesignError(f"target.ranges.{k}: not a template field; use {', '.join(HW_FIELDS)}")
            ranges[k] = list(v)
        return ranges

    def _check_constraints(self) -> None:
        c = self.cfg.constraints
        if c.max_sram_kb is not None:
            if not self.is_template:
                raise CodesignError("constraints.max_sram_kb needs an accelerator template target")
            r = self.hw_ranges or {k: [getattr(self.target.systolic.default, k)] for k in HW_FIELDS}
            smallest = min(r["ifmap_sram_kb"]) + min(r["filter_sram_kb"]) + min(r["ofmap_sram_kb"])
            if smallest > c.max_sram_kb:
                raise CodesignError(f"constraints.max_sram_kb = {c.max_sram_kb:g} is impossible: the smallest SRAMs "
                                    f"in the ranges already total {smallest:g} KB")
        if c.max_area_mm2 is not None and self.is_template and self.target.area is not None:
            from hwmodels.systolic import config_from_systolic
            from hwmodels.systolic_cost import area_mm2

            r = self.hw_ranges or {k: [getattr(self.target.systolic.default, k)] for k in HW_FIELDS}
            tiny = self.target.systolic.default.model_copy(update={
                "rows": min(r["rows"]), "cols": min(r["cols"]), "ifmap_sram_kb": min(r["ifmap_sram_kb"]),
                "filter_sram_kb": min(r["filter_sram_kb"]), "ofmap_sram_kb": min(r["ofmap_sram_kb"]),
                "word_bits": min(self.cfg.quantization.bits)})
            least = float(area_mm2(config_from_systolic(tiny), self.target)[0])
            if least > c.max_area_mm2:
                raise CodesignError(f"constraints.max_area_mm2 = {c.max_area_mm2:g} is impossible: the smallest "
                                    f"accelerator in the ranges takes {least:.3f} mm^2")

    def _accuracy_source(self, out_dir: Path):
        from codesign.supernet import SubnetEvaluator, TrainConfig, train_or_load

        if not self.space.has_supernet:
            return None
        cache = Path(self.cfg.supernet.checkpoint_dir or (out_dir / "checkpoints"))
        tcfg = TrainConfig(epochs=self.cfg.supernet.epochs, seed=self.cfg.seed)
        net, path, reused = train_or_load(self.space, self.splits, tcfg, cache, log=self.log)
        self.log(f"supernet {'reused' if reused else 'trained'}: {path}")
        self.checkpoint = path
        return SubnetEvaluator(net, self.splits)

    def _bit_slots(self, samples: int = 64) -> list[str]:
        """Every conv/linear layer name any architecture of the space can have (a projection
        shortcut, say, exists only in some), so that each gets its own bits in a trial."""
        from codesign.quant import layer_names_for_bits
        import numpy as np

        archs = [self.space.largest(), self.space.smallest()]
        rng = np.random.default_rng(self.cfg.seed)
        archs += [self.space.sample(rng) for _ in range(samples if self.evaluator is not None else 0)]
        names: list[str] = []
        for arch in archs:
            net = self.evaluator.supernet.static(self.space.validate(arch)) if self.evaluator is not None \
                else self.module(arch)
            names += [n for n in layer_names_for_bits(net) if n not in names]
        return names

    def bit_map(self, cand: "Candidate", module: torch.nn.Module) -> dict[str, tuple[int, int]]:
        """Bits of each conv/linear layer of ``module``; a layer no slot covers gets the widest bits."""
        from codesign.quant import layer_names_for_bits

        fallback = max(cand.bits.values(), default=(8, 8))
        return {n: tuple(cand.bits.get(n, fallback)) for n in layer_names_for_bits(module)}

    # ----- candidates ---------------------------------------------------------------------------
    def module(self, arch: dict) -> torch.nn.Module:
        """The network of ``arch``: from the supernet, or trained briefly on its own (user spaces)."""
        if self.evaluator is not None:
            return self.evaluator.module(arch)
        key = self.space.key(self.space.validate(arch))
        cache = self.__dict__.setdefault("_trained", {})
        if key not in cache:
            from codesign.supernet import TrainConfig, train_module

            s = self.splits
            net = self.space.build(arch, s.num_classes, s.in_channels, s.resolution, seed=self.cfg.seed)
            cache[key] = train_module(net, s, TrainConfig(epochs=self.cfg.supernet.epochs, seed=self.cfg.seed)).eval()
        return cache[key]

    def suggest(self, trial, fixed: Candidate | None = None, search: tuple[str, ...] = ("arch", "bits", "hw")) -> Candidate:
        """Define-by-run choice of a candidate; parts not in ``search`` come from ``fixed``."""
        if "arch" in search:
            arch = {p: trial.suggest_categorical(f"arch.{p}", list(opts)) for p, opts in self.space.params.items()}
        else:
            arch = dict(fixed.arch)
        choices = sorted(self.cfg.quantization.bits)
        if "bits" in search:
            if self.cfg.quantization.per_layer:
                bits = {s: (trial.suggest_categorical(f"wbits.{s}", choices), trial.suggest_categorical(f"abits.{s}", choices))
                        for s in self.bit_slots}
            else:
                w, a = trial.suggest_categorical("wbits", choices), trial.suggest_categorical("abits", choices)
                bits = {s: (w, a) for s in self.bit_slots}
        else:
            bits = dict(fixed.bits)
        if "hw" in search and self.hw_grid is not None:
            # nested: the trial picks a trade-off; evaluate() finds the best config for it
            hw = {"weights": {k: trial.suggest_float(f"hw.w_{k}", 0.0, 1.0)
                              for k in ("latency_ms", "energy_mj", "area_mm2") if k in self.cfg.objectives}}
        elif "hw" in search and self.hw_ranges:
            hw = {k: trial.suggest_categorical(f"hw.{k}", list(v)) for k, v in self.hw_ranges.items()}
        elif fixed is not None:
            hw = dict(fixed.hw)
        else:
            hw = self.default_hw()
        return Candidate(arch, bits, hw)

    def initial_params(self, search: tuple[str, ...] = ("arch", "bits", "hw")) -> dict:
        """optuna parameters of the baseline candidate (largest arch, ~8-bit, the template's
        default hardware snapped into the ranges): both strategies start from it."""
        params = {}
        if "arch" in search:
            params.update({f"arch.{k}": v for k, v in self.space.largest().items()})
        if "bits" in search:
            w, a = next(iter(self.default_bits().values()), (8, 8))
            if self.cfg.quantization.per_layer:
                for slot in self.bit_slots:
                    params[f"wbits.{slot}"], params[f"abits.{slot}"] = w, a
            else:
                params["wbits"], params["abits"] = w, a
        if "hw" in search and self.hw_grid is not None:
            params.update({f"hw.w_{k}": 1.0 for k in ("latency_ms", "energy_mj", "area_mm2") if k in self.cfg.objectives})
        elif "hw" in search:
            params.update({f"hw.{k}": v for k, v in self.default_hw().items() if k in self.hw_ranges})
        return params

    def default_hw(self) -> dict:
        if not self.is_template:
            return {}
        d = self.target.systolic.default
        hw = {k: getattr(d, k) for k in HW_FIELDS}
        for k, values in self.hw_ranges.items():     # snap into the searched ranges
            if hw[k] not in values:
                hw[k] = values[0] if isinstance(hw[k], str) else min(values, key=lambda v: (abs(v - hw[k]), v))
        limit = self.cfg.constraints.max_sram_kb
        srams = ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")
        while limit is not None and sum(hw[k] for k in srams) > limit:
            # shrink the biggest SRAM that can shrink, so the starting point meets the SRAM budget
            options = [(hw[k], k) for k in srams
                       if any(v < hw[k] for v in self.hw_ranges.get(k, [getattr(self.target.systolic.default, k)]))]
            if not options:
                break
            _, k = max(options)
            hw[k] = max(v for v in self.hw_ranges.get(k, []) if v < hw[k])
        return hw

    def default_bits(self) -> dict[str, tuple[int, int]]:
        """The sequential baseline's starting bits: 8-bit where allowed, else the nearest choice."""
        b = min(self.cfg.quantization.bits, key=lambda x: (abs(x - 8), x))
        return {s: (b, b) for s in self.bit_slots}

    # ----- measurement --------------------------------------------------------------------------
    def workload(self, arch: dict) -> tuple[Workload, dict[str, str]]:
        """ONNX workload of ``arch`` and the map torch layer name -> ONNX layer name."""
        from codesign.export import example_input, to_workload

        key = self.space.key(self.space.validate(arch))
        if key not in self._workloads:
            module = self.module(arch)
            x = example_input(module, self.splits.in_channels, self.splits.resolution)
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]     # key is the arch's JSON
            wl = to_workload(module, x, self.space.name, name=f"{self.space.name}-{digest}")
            self._workloads[key] = (wl, torch_to_onnx_names(module, x, wl))
        return self._workloads[key]

    def resolve_hw(self, cand: Candidate) -> None:
        """Nested hardware: replace the trial's trade-off weights by the best config for this network."""
        from codesign.search.hw_opt import best_config

        weights = cand.hw["weights"]
        wl, assignment = self.assignment(cand, self.bit_map(cand, self.module(cand.arch)))
        cfg = best_config(self.hw_grid, wl, assignment, self.target, self.target.systolic.default.clock_mhz, weights)
        cand.hw = {**cfg, "tradeoff": weights}

    def hw_invalid(self, hw: dict, widest_bits: int) -> str | None:
        """Why an accelerator config cannot run at all (e.g. an SRAM half too small for one
        fold of the array), or None.  Such candidates are infeasible, not errors."""
        if not self.is_template or self.cost_model != "systolic":
            return None
        from hwmodels.systolic import config_from_systolic

        cfg = self.hw_config(hw).model_copy(update={"word_bits": min(widest_bits, 16)})
        try:
            config_from_systolic(cfg).check_fold_fits()
        except CodesignError as e:
            return str(e)
        return None

    def evaluate(self, cand: Candidate, part: str = "val") -> dict[str, float]:
        """Measured accuracy and modelled cost of one candidate."""
        widest = max((max(b) for b in cand.bits.values()), default=8)
        if "weights" in cand.hw:
            self.resolve_hw(cand)
        invalid = self.hw_invalid(cand.hw, widest)
        if invalid is not None:   # not measured: the hardware cannot run it
            return {"accuracy": 0.0, "latency_ms": 1e9, "energy_mj": 1e9, "size_kb": 1e9, "area_mm2": 1e9,
                    "sram_kb": 1e9, "macs": 0.0, "params": 0.0, "invalid": 1.0}
        torch.manual_seed(_seed_of(cand))          # fake-quant calibration samples: deterministic
        module = self.module(cand.arch)
        bit_map = self.bit_map(cand, module)
        if self.evaluator is not None:
            acc = self.evaluator.accuracy(cand.arch, bit_map, part=part)
        else:
            from codesign.quant import evaluate_accuracy

            split = {"val": self.splits.val, "test": self.splits.test}[part]
            calib = self.splits.train.x[:256] if part == "val" else self.splits.val.x[:256]
            acc = evaluate_accuracy(module, split, bit_map, calib)
        wl, assignment = self.assignment(cand, bit_map)
        cost = self._cost(wl, assignment, cand.hw)
        size_kb = sum(l.weight_bytes for l in cost.layers) / 1024
        metrics = {"accuracy": float(acc), "latency_ms": cost.latency_s * 1e3, "energy_mj": cost.energy_j * 1e3,
                   "size_kb": size_kb, "macs": float(wl.macs), "params": float(wl.params)}
        if self.is_template:
            metrics["area_mm2"] = float(getattr(cost, "area_mm2", 0.0))
            metrics["sram_kb"] = float(cand.hw["ifmap_sram_kb"] + cand.hw["filter_sram_kb"] + cand.hw["ofmap_sram_kb"])
        return metrics

    def cost(self, cand: Candidate):
        """The full per-layer cost of a candidate (for reports)."""
        wl, assignment = self.assignment(cand, self.bit_map(cand, self.module(cand.arch)))
        return wl, self._cost(wl, assignment, cand.hw)

    def assignment(self, cand: Candidate, bit_map: dict[str, tuple[int, int]]) -> tuple[Workload, BitAssignment]:
        """The candidate's workload and its bits keyed by ONNX layer name (the cost models' view);
        layers without weights run at the widest width in use."""
        wl, names = self.workload(cand.arch)
        per_layer = {names[n]: LayerBits(*b) for n, b in bit_map.items() if n in names}
        widest = max((max(b) for b in bit_map.values()), default=8)
        return wl, BitAssignment(LayerBits(widest, widest), per_layer)

    def _cost(self, wl: Workload, bits: BitAssignment, hw: dict):
        if self.cost_model == "systolic":
            from hwmodels.systolic_model import SystolicCostModel

            cfg = self.hw_config(hw)
            return SystolicCostModel(cfg).estimate(wl, self.target, bits)
        from hwmodels.roofline import RooflineModel

        return RooflineModel().estimate(wl, self.target, bits)

    def hw_config(self, hw: dict) -> SystolicConfig:
        return self.target.systolic.default.model_copy(update={k: v for k, v in hw.items() if k in HW_FIELDS})

    def violations(self, m: dict[str, float]) -> list[float]:
        """optuna-style constraint values: <= 0 means satisfied."""
        c = self.cfg.constraints
        out = []
        for key, limit in (("latency_ms", c.max_latency_ms), ("energy_mj", c.max_energy_mj),
                           ("area_mm2", c.max_area_mm2), ("size_kb", c.max_size_kb), ("sram_kb", c.max_sram_kb)):
            if limit is not None:
                out.append((m.get(key, 0.0) - limit) / limit)
        if c.min_accuracy is not None:
            out.append(c.min_accuracy - m["accuracy"])
        if m.get("invalid"):
            out.append(1.0)
        return out


def torch_to_onnx_names(module: torch.nn.Module, x: torch.Tensor, wl: Workload) -> dict[str, str]:
    """Match Conv2d/Linear modules to the ONNX layers with weights, in execution order.

    torch's exporter keeps execution order, so the k-th weighted conv/linear call is the k-th
    Conv/Gemm/MatMul-with-weights layer in the workload's topological order.  Shapes are
    checked so that a mismatch is an error, never a silent mis-assignment.
    """
    calls: list[tuple[str, torch.nn.Module]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: calls.append((n, mod)))
             for n, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and n]
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    onnx_layers = [l for l in wl.layers() if l.op in ("Conv", "Gemm", "MatMul") and l.params > 0]
    if len(calls) != len(onnx_layers):
        raise CodesignError(f"cannot match {len(calls)} torch conv/linear calls to {len(onnx_layers)} ONNX layers")
    out = {}
    for (name, mod), layer in zip(calls, onnx_layers):
        out_ch = mod.out_channels if isinstance(mod, torch.nn.Conv2d) else mod.out_features
        got = layer.conv.k if layer.conv is not None else (layer.gemm.n if layer.gemm is not None else None)
        if got != out_ch:
            raise CodesignError(f"layer {name}: {out_ch} outputs in torch but {got} in ONNX layer {layer.name}")
        out[name] = layer.name
    return out


def _seed_of(cand: Candidate) -> int:
    return int(hashlib.sha256(json.dumps(cand.to_json(), sort_keys=True, default=str).encode()).hexdigest()[:8], 16)
