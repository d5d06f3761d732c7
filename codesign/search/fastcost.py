"""The cost of a candidate in about a millisecond: what lets a surrogate search score thousands.

Exact for the accelerator templates (systolic, Bit Fusion): the candidate's conv/matmul layers
are traced from the network (``torch_trace``, equal to the ONNX route on every field the template
models read),
their cycles and energy on every accelerator configuration come from the hardware grid's
per-layer-shape cache, and the nested optimiser's choice is one argmin.  Other cost models go
through the exact ONNX workload (cached per architecture): correct, but no faster than an
evaluation.
"""
from __future__ import annotations

from collections import OrderedDict

from codesign.search.encoding import SRAMS, Candidate
from hwmodels.bits import BitAssignment, LayerBits, word_bits
from hwmodels.roofline import weight_bytes


class FastCost:
    """Cost metrics of candidates for the surrogate search, with the search's own rules."""

    def __init__(self, evaluation, grid=None, cache_size: int = 4096):
        self.ev, self.grid = evaluation, grid
        self.on_grid = grid is not None and evaluation.cost_model == grid.kind.name   # the template's own model
        self._layers: OrderedDict[str, tuple] = OrderedDict()
        self._slow: OrderedDict[str, dict] = OrderedDict()
        self.cache_size = cache_size

    def layer_info(self, arch: dict):
        """(traced MAC layers, MACs, params, layer names, their array form) of an architecture, cached."""
        from codesign.frontends.torch_frontend import example_input
        from codesign.frontends.torch_trace import trace_mac_layers

        space = self.ev.space
        key = space.key(space.validate(arch))
        if key not in self._layers:
            s = self.ev.splits
            if self.ev.subnets is not None:
                module = self.ev.subnets.supernet.static(space.validate(arch))
            else:
                module = space.build(arch, s.num_classes, s.in_channels, s.resolution, seed=0)
            from hwmodels.systolic import layers_from_workload

            wl = trace_mac_layers(module, example_input(module, s.in_channels, s.resolution), name=key)
            layers = wl.layers()
            self._layers[key] = (layers, wl.macs, wl.params, [l.name for l in layers],
                                 layers_from_workload(wl) if self.on_grid else wl)
            if len(self._layers) > self.cache_size:
                self._layers.popitem(last=False)
        self._layers.move_to_end(key)
        return self._layers[key]

    def features(self, arch: dict):
        """What the accuracy predictor reads of an architecture: MACs, params, present layers."""
        _, macs, params, names, _ = self.layer_info(arch)
        return macs, params, names

    def metrics(self, cand: Candidate) -> dict:
        """latency_ms, energy_mj, (area_mm2, sram_kb), size_kb, invalid; and the chosen ``hw``."""
        if not self.on_grid:
            return self._exact(cand)
        index = None if "weights" in cand.hw else self.grid.index(cand.hw)
        if "weights" not in cand.hw and index is None:
            return self._off_grid(cand)
        m, size_kb = self._grid_metrics(cand)
        from codesign.search.hw_opt import choose

        return self._point(m, choose(m, cand.hw["weights"]) if index is None else index, size_kb)

    def tradeoffs(self, cand: Candidate, weights: list[dict[str, float]]) -> list[dict]:
        """The candidate's network with the best accelerator for each trade-off weight vector
        (distinct configs only): what measuring it adds to a front that gets hardware trade-offs."""
        if not (self.on_grid and "weights" in cand.hw and weights):
            return [self.metrics(cand)]
        from codesign.search.hw_opt import choose

        m, size_kb = self._grid_metrics(cand)
        picks = dict.fromkeys(choose(m, w) for w in weights)
        return [self._point(m, i, size_kb) for i in picks]

    def _grid_metrics(self, cand: Candidate) -> tuple[dict, float]:
        ev = self.ev
        layers, _, _, names, array_layers = self.layer_info(cand.arch)
        fallback = max(cand.bits.values(), default=(8, 8))
        per_layer = {n: LayerBits(*cand.bits.get(n, fallback)) for n in names}
        keys = [self.grid.kind.key(per_layer[n]) for n in array_layers.names]
        m = self.grid.layers_metrics(array_layers, keys, ev.target, ev.target.template.default.clock_mhz)
        return m, sum(weight_bytes(l, per_layer[l.name]) for l in layers) / 1024

    def _point(self, m: dict, i: int, size_kb: float) -> dict:
        hw = self.grid.config(i)
        if not m["ok"][i]:
            return {"invalid": 1.0, "hw": hw}
        return {"latency_ms": float(m["latency_ms"][i]), "energy_mj": float(m["energy_mj"][i]),
                "area_mm2": float(m["area_mm2"][i]), "size_kb": size_kb,
                "sram_kb": float(sum(hw[k] for k in SRAMS)), "hw": hw}

    def _off_grid(self, cand: Candidate) -> dict:
        """A config outside the grid: the cost model itself on the traced layers."""
        from hwmodels.workload import Workload

        hw = dict(cand.hw)
        layers, _, _, names, _ = self.layer_info(cand.arch)
        fallback = max(cand.bits.values(), default=(8, 8))
        per_layer = {n: LayerBits(*cand.bits.get(n, fallback)) for n in names}
        if self.ev.hw_invalid(hw, max(word_bits(b) for b in per_layer.values())) is not None:
            return {"invalid": 1.0, "hw": hw}
        wl = Workload("traced")
        for i, l in enumerate(layers):
            wl.add_layer(l)
            wl.graph.nodes[l.name]["index"] = i
        cost = self.ev.model.estimate(wl, self.ev.hw_target(hw), BitAssignment(LayerBits(*fallback), per_layer))
        return {"latency_ms": cost.latency_s * 1e3, "energy_mj": cost.energy_j * 1e3, "area_mm2": cost.area_mm2,
                "size_kb": sum(weight_bytes(l, per_layer[l.name]) for l in layers) / 1024,
                "sram_kb": float(sum(hw[k] for k in SRAMS)), "hw": hw}

    def _exact(self, cand: Candidate) -> dict:
        """Any other cost model: the evaluation's own path on the ONNX workload (cached)."""
        import json

        key = json.dumps([self.ev.space.key(self.ev.space.validate(cand.arch)), sorted(cand.bits.items()), cand.hw],
                         default=str)
        if key not in self._slow:
            c = Candidate(cand.arch, cand.bits, dict(cand.hw))
            if "weights" in c.hw:
                self.ev.resolve_hw(c)
            wl, cost = self.ev.cost(c)
            m = {"latency_ms": cost.latency_s * 1e3, "energy_mj": (cost.energy_j or 0.0) * 1e3,
                 "size_kb": sum(l.weight_bytes for l in cost.layers) / 1024, "hw": c.hw}
            if self.ev.is_template:
                m.update(area_mm2=cost.area_mm2 or 0.0, sram_kb=float(sum(c.hw[k] for k in SRAMS)))
            self._slow[key] = m
            if len(self._slow) > self.cache_size:
                self._slow.popitem(last=False)
        return self._slow[key]
