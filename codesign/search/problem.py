"""Everything fixed during one search, put together: config checks, the trained supernet, the
encoding of candidates, their evaluation and the constraints.

``Problem(cfg, out_dir)`` does the expensive set-up once (data, supernet training or reuse,
layer slots); the strategies then use ``problem.encoding`` to turn trials into candidates,
``problem.evaluation`` to measure them and ``problem.violations`` for the hard constraints.
"""
from __future__ import annotations

from pathlib import Path

from codesign.search.checks import check_constraints, check_target, hardware_ranges
from codesign.search.config import SearchConfig
from codesign.search.constraints import violations
from codesign.search.encoding import Candidate, Encoding, default_hw, default_width
from codesign.search.evaluation import Evaluation
from hwmodels.errors import CodesignError
from hwmodels.targets import Target, load_target

__all__ = ["Candidate", "Problem"]


class Problem:
    """Space, data, trained supernet, target and ranges of one search."""

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
        kind = self.target.template_kind
        self.is_template = kind is not None
        cost_model = check_target(cfg, self.target)
        self.hw_ranges = hardware_ranges(cfg, self.target)
        check_constraints(cfg, self.target, self.hw_ranges)
        hw_grid = None
        if self.hw_ranges and cost_model == kind:      # the template's own vectorised model
            from codesign.search.hw_opt import HardwareGrid

            hw_grid = HardwareGrid(self.hw_ranges, cfg.constraints.max_sram_kb, kind=kind)
        nested = hw_grid is not None and cfg.target.hardware == "nested"
        self.checkpoint = None
        self.evaluation = Evaluation(cfg, self.space, self.splits, self.target, cost_model,
                                     self._train_supernet(out_dir), hw_grid if nested else None)
        self.hw_grid = hw_grid
        self.bit_slots = self._bit_slots()
        self.sensitivity = None
        granularity = cfg.quantization.granularity if cfg.quantization.per_layer else "network"
        if granularity == "sensitivity" or cfg.search.method == "surrogate":   # groups and predictor features
            from codesign.search.bitgroups import measure_sensitivity

            self.sensitivity = measure_sensitivity(self.evaluation.module(self.space.largest()), self.splits,
                                                   self.bit_slots)
            self.log(f"layer sensitivity measured ({self.sensitivity.evaluations} accuracy evaluations, shared "
                     f"by every strategy)")
        from codesign.search.bitgroups import group_slots

        self.groups = group_slots(self.bit_slots, granularity, cfg.quantization.groups, self.sensitivity)
        self.encoding = Encoding(cfg, self.space, self.groups, self.hw_ranges, nested,
                                 default_hw(self.target, self.hw_ranges, cfg.constraints.max_sram_kb,
                                            cfg.constraints.max_area_mm2,
                                            default_width(cfg.quantization.bits)))
        from codesign.search.fastcost import FastCost

        self.fastcost = FastCost(self.evaluation, hw_grid)

    def violations(self, metrics: dict[str, float]) -> list[float]:
        return violations(metrics, self.cfg.constraints)

    def predictor(self, seed: int):
        """A fresh accuracy predictor over this problem's features (fitted by the strategies)."""
        from codesign.search.predictor import AccuracyPredictor, Features

        features = Features(self.space, self.groups, self.sensitivity, self.fastcost.features)
        return AccuracyPredictor(features, members=self.cfg.search.ensemble, seed=seed)

    def key(self, cand: Candidate) -> str:
        """What determines a measured accuracy: the network and the bits of the layers it has (not
        the hardware, nor bits of slots the architecture leaves out)."""
        import json

        _, _, present = self.fastcost.features(cand.arch)
        fallback = max(cand.bits.values(), default=(8, 8))
        return json.dumps([self.space.key(self.space.validate(cand.arch)),
                           [list(cand.bits.get(s, fallback)) for s in present]], default=str)

    def _train_supernet(self, out_dir: Path):
        """The supernet's sub-network evaluator (trained once, then reused), or None for spaces without one."""
        from codesign.supernet import SubnetEvaluator, train_or_load
        from codesign.training import TrainConfig

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
        import numpy as np

        from codesign.quant import layer_names_for_bits

        subnets = self.evaluation.subnets
        archs = [self.space.largest(), self.space.smallest()]
        rng = np.random.default_rng(self.cfg.seed)
        archs += [self.space.sample(rng) for _ in range(samples if subnets is not None else 0)]
        names: list[str] = []
        for arch in archs:
            net = subnets.supernet.static(self.space.validate(arch)) if subnets is not None \
                else self.evaluation.module(arch)
            names += [n for n in layer_names_for_bits(net) if n not in names]
        return names
