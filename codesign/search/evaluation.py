"""Measuring one candidate: real accuracy, modelled cost.

Accuracy is measured (weight-sharing supernet sub-network, or a network trained on its own for
spaces without a supernet; fake-quantized with calibrated activations; on held-out data).
Latency/energy/area come from the target's cost model (any registered one) on the sub-network's
exported ONNX graph, with the template fixed at the candidate's accelerator.  Evaluation is
deterministic for a given candidate.
"""
from __future__ import annotations

import hashlib
from functools import cached_property

import torch

from codesign.search.config import SearchConfig
from codesign.search.encoding import SRAMS, Candidate
from hwmodels.bits import BitAssignment, LayerBits
from hwmodels.errors import CodesignError
from hwmodels.targets import Target
from hwmodels.workload import Workload

INVALID = {"accuracy": 0.0, "latency_ms": 1e9, "energy_mj": 1e9, "size_kb": 1e9, "area_mm2": 1e9,
           "sram_kb": 1e9, "macs": 0.0, "params": 0.0, "invalid": 1.0}


class Evaluation:
    """What a trial calls: ``evaluate(candidate)`` -> measured accuracy and modelled cost."""

    def __init__(self, cfg: SearchConfig, space, splits, target: Target, cost_model: str,
                 subnets=None, hw_grid=None):
        self.cfg, self.space, self.splits, self.target = cfg, space, splits, target
        self.cost_model = cost_model
        self.subnets = subnets            # SubnetEvaluator of a trained supernet, or None (train each)
        self.hw_grid = hw_grid            # HardwareGrid for nested hardware, or None
        from hwmodels.template_kinds import kind_of

        self.kind = kind_of(target)       # the accelerator template's kind, None for a fixed device
        self.is_template = self.kind is not None
        self._workloads: dict[str, tuple[Workload, dict[str, str]]] = {}
        self._trained: dict[str, torch.nn.Module] = {}

    # ----- networks ------------------------------------------------------------------------------
    def module(self, arch: dict) -> torch.nn.Module:
        """The network of ``arch``: from the supernet, or trained briefly on its own (user spaces)."""
        if self.subnets is not None:
            return self.subnets.module(arch)
        key = self.space.key(self.space.validate(arch))
        if key not in self._trained:
            from codesign.training import TrainConfig, train_module

            s = self.splits
            net = self.space.build(arch, s.num_classes, s.in_channels, s.resolution, seed=self.cfg.seed)
            self._trained[key] = train_module(net, s, TrainConfig(epochs=self.cfg.supernet.epochs,
                                                                  seed=self.cfg.seed)).eval()
        return self._trained[key]

    def workload(self, arch: dict) -> tuple[Workload, dict[str, str]]:
        """ONNX workload of ``arch`` and the map torch layer name -> ONNX layer name."""
        from codesign.frontends.torch_frontend import example_input, load_torch

        key = self.space.key(self.space.validate(arch))
        if key not in self._workloads:
            module = self.module(arch)
            x = example_input(module, self.splits.in_channels, self.splits.resolution)
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]     # key is the arch's JSON
            wl = load_torch(module, x, name=f"{self.space.name}-{digest}")
            self._workloads[key] = (wl, torch_to_onnx_names(module, x, wl))
        return self._workloads[key]

    def bit_map(self, cand: Candidate, module: torch.nn.Module) -> dict[str, tuple[int, int]]:
        """Bits of each conv/linear layer of ``module``; a layer no slot covers gets the widest bits."""
        from codesign.quant import layer_names_for_bits

        fallback = max(cand.bits.values(), default=(8, 8))
        return {n: tuple(cand.bits.get(n, fallback)) for n in layer_names_for_bits(module)}

    def assignment(self, cand: Candidate, bit_map: dict[str, tuple[int, int]]) -> tuple[Workload, BitAssignment]:
        """The candidate's workload and its bits keyed by ONNX layer name (the cost models' view);
        layers without weights run at the widest width in use."""
        wl, names = self.workload(cand.arch)
        per_layer = {names[n]: LayerBits(*b) for n, b in bit_map.items() if n in names}
        widest = max((max(b) for b in bit_map.values()), default=8)
        return wl, BitAssignment(LayerBits(widest, widest), per_layer)

    # ----- hardware ------------------------------------------------------------------------------
    def hw_config(self, hw: dict):
        """The template's default config with ``hw``'s fields (a ``SystolicConfig``, ``BitFusionConfig``...)."""
        return self.target.template.default.model_copy(update={k: v for k, v in hw.items() if k in self.kind.fields})

    def hw_target(self, hw: dict) -> Target:
        """The template fixed at one accelerator config: what a cost model is given."""
        table = self.target.template.model_copy(update={"default": self.hw_config(hw)})
        return self.target.model_copy(update={self.kind.name: table})

    def resolve_hw(self, cand: Candidate) -> None:
        """Nested hardware: replace the trial's trade-off weights by the best config for this network."""
        from codesign.search.hw_opt import best_config

        weights = cand.hw["weights"]
        wl, assignment = self.assignment(cand, self.bit_map(cand, self.module(cand.arch)))
        cfg = best_config(self.hw_grid, wl, assignment, self.target, self.target.template.default.clock_mhz, weights)
        cand.hw = {**cfg, "tradeoff": weights}

    def hw_invalid(self, hw: dict, word_bits: int) -> str | None:
        """Why an accelerator config cannot run at all (e.g. an SRAM half too small for one
        fold of the array), or None.  Such candidates are infeasible, not errors."""
        if not self.is_template or self.cost_model != self.kind.name:
            return None
        try:
            self.kind.point(self.target, hw).check(self.kind.key(LayerBits(word_bits, word_bits)), self.target)
        except CodesignError as e:
            return str(e)
        return None

    # ----- measurement ---------------------------------------------------------------------------
    def evaluate(self, cand: Candidate, part: str = "val", every: int = 1) -> dict[str, float]:
        """Measured accuracy and modelled cost of one candidate.

        ``every > 1`` measures accuracy on every ``every``-th image of the split only (the low
        fidelity of a two-stage evaluation); ``accuracy_images`` says how many were used."""
        if "weights" in cand.hw:
            self.resolve_hw(cand)
        module = self.module(cand.arch)
        bit_map = self.bit_map(cand, module)
        widest = max((max(b) for b in bit_map.values()), default=8)    # of the layers the network has
        if self.hw_invalid(cand.hw, widest) is not None:   # not measured: the hardware cannot run it
            return dict(INVALID)
        acc, n = self.accuracy(cand, part, every)
        wl, assignment = self.assignment(cand, bit_map)
        cost = self._cost(wl, assignment, cand.hw)
        energy_mj = cost.energy_j * 1e3 if cost.energy_j is not None else 0.0   # None only when not asked for
        metrics = {"accuracy": float(acc), "latency_ms": cost.latency_s * 1e3, "energy_mj": energy_mj,
                   "size_kb": sum(l.weight_bytes for l in cost.layers) / 1024,
                   "macs": float(wl.macs), "params": float(wl.params), "accuracy_images": float(n)}
        if self.is_template:
            metrics["area_mm2"] = float(cost.area_mm2 if cost.area_mm2 is not None else 0.0)
            metrics["sram_kb"] = float(sum(cand.hw[k] for k in SRAMS))
        return metrics

    def accuracy(self, cand: Candidate, part: str = "val", every: int = 1, rest: bool = False) -> tuple[float, int]:
        """Measured accuracy of the candidate's network at its bits on ``part`` (every ``every``-th
        image, or with ``rest`` the other images), and the number of images; deterministic for a
        candidate, and per image independent of which others are measured."""
        from codesign.data import Split

        module = self.module(cand.arch)
        bit_map = self.bit_map(cand, module)
        full = {"val": self.splits.val, "test": self.splits.test}[part]
        if every <= 1:
            split = full
        else:
            keep = (torch.arange(len(full)) % every == 0) != rest
            split = Split(full.x[keep], full.y[keep])
        if self.subnets is not None:
            acc = self.subnets.accuracy(cand.arch, bit_map, part=part, split=split)
        else:
            from codesign.quant import evaluate_accuracy

            calib = self.splits.train.x[:256] if part == "val" else self.splits.val.x[:256]
            acc = evaluate_accuracy(module, split, bit_map, calib)
        return float(acc), len(split)

    def cost(self, cand: Candidate):
        """The full per-layer cost of a candidate (for reports)."""
        wl, assignment = self.assignment(cand, self.bit_map(cand, self.module(cand.arch)))
        return wl, self._cost(wl, assignment, cand.hw)

    @cached_property
    def model(self):
        from hwmodels.registry import get_cost_model

        return get_cost_model(self.cost_model)

    def _cost(self, wl: Workload, bits: BitAssignment, hw: dict):
        """The target's cost model on the target fixed at ``hw``."""
        cost = self.model.estimate(wl, self.hw_target(hw) if self.is_template else self.target, bits)
        c = self.cfg.constraints
        for objective, value, limit in (("energy_mj", cost.energy_j, c.max_energy_mj),
                                        ("area_mm2", cost.area_mm2, c.max_area_mm2)):
            if value is None and (objective in self.cfg.objectives or limit is not None):
                raise CodesignError(f"cost model {self.cost_model!r} does not estimate {objective.split('_')[0]}; "
                                    f"drop {objective} from objectives/constraints or set target.cost_model")
        return cost


def torch_to_onnx_names(module: torch.nn.Module, x: torch.Tensor, wl: Workload) -> dict[str, str]:
    """Match Conv2d/Linear modules to the ONNX layers with weights, in execution order.

    torch's exporter keeps execution order, so the k-th weighted conv/linear call (as traced by
    ``torch_trace``) is the k-th Conv/Gemm/MatMul-with-weights layer in the workload's
    topological order.  Output widths are checked so that a mismatch is an error, never a
    silent mis-assignment.
    """
    from codesign.frontends.torch_trace import trace_mac_layers

    traced = trace_mac_layers(module, x).layers()
    onnx_layers = [l for l in wl.layers() if l.op in ("Conv", "Gemm", "MatMul") and l.params > 0]
    if len(traced) != len(onnx_layers):
        raise CodesignError(f"cannot match {len(traced)} torch conv/linear calls to {len(onnx_layers)} ONNX layers")
    width = lambda l: l.conv.k if l.conv is not None else (l.gemm.n if l.gemm is not None else None)
    out = {}
    for t, layer in zip(traced, onnx_layers):
        if width(t) != width(layer):
            raise CodesignError(f"layer {t.name}: {width(t)} outputs in torch but {width(layer)} in ONNX layer {layer.name}")
        out[t.name] = layer.name
    return out
