"""Hardware trade-off points of measured networks: accuracy measured once, accelerator re-chosen.

The accelerator changes no accuracy, so for a network whose accuracy was measured, the exact
best configuration of the ranges for each weight vector of a Das-Dennis lattice over the
hardware objectives (latency, energy, area) costs only the cost model's time.  Strategies that
search the hardware get these points for the networks they measured.
"""
from __future__ import annotations

from codesign.search.constraints import feasible
from codesign.search.encoding import SRAMS, Candidate
from codesign.search.rows import Row


def tradeoff_lattice(objectives: list[str], divisions: int) -> list[dict[str, float]]:
    """Weight vectors on the simplex of the hardware objectives (Das-Dennis lattice)."""
    if not objectives:
        return []
    if len(objectives) == 1:
        return [{objectives[0]: 1.0}]
    from pymoo.util.ref_dirs import get_reference_directions

    dirs = get_reference_directions("das-dennis", len(objectives), n_partitions=divisions)
    return [{k: float(v) for k, v in zip(objectives, d)} for d in dirs]


def hardware_tradeoffs(problem, rows: list[Row], strategy: str, phase: str | None, divisions: int) -> list[Row]:
    """For each measured network, the exact best accelerator for each lattice weight vector."""
    grid, ev = problem.hw_grid, problem.evaluation
    if grid is None:
        return []
    from codesign.search.hw_opt import choose

    weights = tradeoff_lattice(problem.encoding.tradeoff, divisions)
    out, seen = [], set()
    for r in rows:
        if r.metrics.get("invalid") or r.derived or r.fidelity != "full":
            continue
        cand = r.candidate
        wl, bits = ev.assignment(cand, ev.bit_map(cand, ev.module(cand.arch)))
        m = grid.network_metrics(wl, bits, ev.target, ev.target.template.default.clock_mhz)
        for w in weights:
            i = choose(m, w)
            if (problem.key(cand), i) in seen:
                continue
            seen.add((problem.key(cand), i))
            hw = {**grid.config(i), "tradeoff": w}
            metrics = {**r.metrics, "latency_ms": float(m["latency_ms"][i]), "energy_mj": float(m["energy_mj"][i]),
                       "area_mm2": float(m["area_mm2"][i]), "sram_kb": float(sum(hw[k] for k in SRAMS))}
            out.append(Row(strategy, phase or r.phase, r.number, metrics, feasible(problem.violations(metrics)),
                           Candidate(cand.arch, cand.bits, hw), derived=True))
    return out
