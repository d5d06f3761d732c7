"""Search a cheap surrogate widely, measure narrowly (APQ, NASAIC): one round of it.

A round takes the accuracy predictor trained on the measured evaluations so far and runs
pymoo's NSGA-II over an integer genome (architecture, bit groups, accelerator), scoring every
individual with the predictor (optimistic: mean + kappa x ensemble spread, so uncertain regions
get explored) and the exact fast cost path.  From the final population it proposes the ``k``
unmeasured candidates that add the most predicted hypervolume to the measured front, greedily.

Architectures are drawn from a pool rebuilt every round (the measured front's architectures,
one- and two-choice mutations of them, random ones): building and tracing a network costs tens
of milliseconds, bits and hardware cost microseconds, so the evolutionary search varies bits and
hardware freely over a curated set of networks, as APQ's evolution does around its elites.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from codesign.search.config import MAXIMIZE
from codesign.search.constraints import violations
from codesign.search.encoding import Candidate, Encoding
from codesign.search.pareto import as_minimization, front_indices, log_costs


@dataclass
class RoundStats:
    scored: int               # candidates scored through the predictor and the cost models
    seconds: float
    pool: int = 0             # architectures in the round's pool

    @property
    def per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


class Genome:
    """Integer genome of one round: an architecture-pool index (when architectures are searched),
    then the encoding's genes of the other searched parts."""

    def __init__(self, encoding: Encoding, search: tuple[str, ...], fixed: Candidate | None, pool: list[dict]):
        self.encoding, self.fixed, self.pool = encoding, fixed, pool
        self.rest = tuple(p for p in search if p != "arch")
        self.genes = encoding.genes(self.rest)
        self.arch = "arch" in search
        sizes = ([len(pool)] if self.arch else []) + [len(g.options) for g in self.genes]
        self.upper = np.array(sizes) - 1

    def decode(self, x) -> Candidate:
        x = np.rint(x).astype(int)
        if self.arch:
            base = Candidate(self.pool[x[0]], dict(self.fixed.bits) if self.fixed else {},
                             dict(self.fixed.hw) if self.fixed else {})
            return self.encoding.decode(x[1:], base, self.rest) if self.rest else base
        return self.encoding.decode(x, self.fixed, self.rest)

    def encode(self, cand: Candidate, keys: dict[str, int]) -> np.ndarray | None:
        rest = self.encoding.encode(cand, self.rest) if self.rest else np.zeros(0, int)
        if not self.arch:
            return rest
        i = keys.get(self.encoding.space.key(self.encoding.space.validate(cand.arch)))
        return None if i is None else np.concatenate([[i], rest])


def arch_pool(space, measured: list[tuple[Candidate, dict]], objectives: list[str], size: int,
              rng: np.random.Generator) -> list[dict]:
    """Front architectures first, then their one- and two-choice mutations, then random ones."""
    ok = [(c, m) for c, m in measured if not m.get("invalid")]
    front = [ok[i][0].arch for i in front_indices([m for _, m in ok], objectives)] if ok else []
    pool, keys = [], set()

    def add(arch) -> None:
        k = space.key(space.validate(arch))
        if k not in keys and len(pool) < size:
            keys.add(k)
            pool.append(space.validate(arch))

    for a in front + [c.arch for c, _ in ok]:
        add(a)
    params = list(space.params)
    for _ in range(4 * size):
        if len(pool) >= size * 3 // 4 or not front:
            break
        a = dict(front[int(rng.integers(len(front)))])
        for _ in range(int(rng.integers(1, 3))):
            p = params[int(rng.integers(len(params)))]
            opts = space.params[p]
            a[p] = opts[int(rng.integers(len(opts)))]
        add(a)
    for _ in range(4 * size):
        if len(pool) >= size:
            break
        add(space.sample(rng))
    return pool


def _pymoo_problem(genome: Genome, predictor, fastcost, cfg, kappa: float, counter: list):
    from pymoo.core.problem import Problem as PymooProblem

    objectives = cfg.objectives
    n_constr = len(violations({o: 0.0 for o in objectives} | {"accuracy": 1.0, "invalid": 1.0}, cfg.constraints))

    class Surrogate(PymooProblem):
        def __init__(self):
            super().__init__(n_var=len(genome.upper), n_obj=len(objectives), n_ieq_constr=n_constr, xl=0,
                             xu=genome.upper, vtype=int)

        def _evaluate(self, x, out, *args, **kwargs):
            cands = [genome.decode(row) for row in x]
            mu, sd = predictor.predict(cands)
            rows = []
            for c, m, s in zip(cands, mu, sd):
                metrics = {k: v for k, v in fastcost.metrics(c).items() if k != "hw"}
                metrics["accuracy"] = float(m)
                rows.append((metrics, float(m + kappa * s)))
            counter[0] += len(cands)
            out["F"] = np.array([[_objective(metrics, o, optimistic) for o in objectives]
                                 for metrics, optimistic in rows])
            out["G"] = np.array([_padded(violations(metrics, cfg.constraints), n_constr) for metrics, _ in rows])

    return Surrogate()


def _objective(metrics: dict, name: str, optimistic_accuracy: float) -> float:
    if metrics.get("invalid"):
        return 1e9
    return -optimistic_accuracy if name in MAXIMIZE else metrics[name]


def _padded(values: list[float], n: int) -> list[float]:
    """Constraint vectors of fixed length (the 'invalid' entry appears only for invalid hardware)."""
    return (values + [-1.0] * n)[:n]


def propose(encoding: Encoding, search: tuple[str, ...], fixed: Candidate | None, predictor, fastcost, cfg,
            measured: list[tuple[Candidate, dict]], k: int, seed: int, population: int, generations: int,
            kappa: float, seen: set[str], key, pool_size: int = 96) -> tuple[list[Candidate], RoundStats]:
    """Up to ``k`` new candidates to measure, and what the round cost."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    space = encoding.space
    pool = arch_pool(space, measured, cfg.objectives, pool_size, rng) if "arch" in search else []
    genome = Genome(encoding, search, fixed, pool)
    counter = [0]
    problem = _pymoo_problem(genome, predictor, fastcost, cfg, kappa, counter)
    keys = {space.key(a): i for i, a in enumerate(pool)}
    start = [g for g in (genome.encode(c, keys) for c, m in measured if not m.get("invalid")) if g is not None]
    start = np.unique(np.array(start), axis=0)[:population // 2] if start else np.zeros((0, problem.n_var), int)
    rand = rng.integers(0, genome.upper + 1, size=(population - len(start), problem.n_var))
    algorithm = NSGA2(pop_size=population, sampling=np.vstack([start, rand]).astype(float),
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    res = minimize(problem, algorithm, ("n_gen", generations), seed=seed, verbose=False)
    X, F, G = res.pop.get("X"), res.pop.get("F"), res.pop.get("G")
    feasible = np.all(G <= 0, axis=1) if G is not None and G.size else np.ones(len(X), bool)
    acc_col = [j for j, o in enumerate(cfg.objectives) if o in MAXIMIZE]
    lattice = _lattice(encoding, search, cfg)
    pool_c, pool_keys, pool_sets = [], set(), []
    for x, f, ok in zip(X, F, feasible):
        c = genome.decode(x)
        if ok and key(c) not in seen and key(c) not in pool_keys:
            pool_keys.add(key(c))
            pool_c.append(c)
            optimistic = -float(f[acc_col[0]]) if acc_col else 0.0
            pool_sets.append(_points(fastcost, c, lattice, optimistic, cfg.objectives))
    base = [_points(fastcost, c, lattice, m["accuracy"], cfg.objectives) for c, m in measured
            if not m.get("invalid") and m.get("fidelity", "full") == "full"]
    base = np.vstack(base) if base else np.zeros((0, len(cfg.objectives)))
    # on the scale the fronts are scored on (pareto.hv_scale: costs as logarithms)
    picks = [pool_c[i] for i in _greedy_hypervolume([log_costs(p, cfg.objectives) for p in pool_sets],
                                                    log_costs(base, cfg.objectives), k)]
    names = {key(c) for c in picks}
    for x in rng.permutation(X):          # too few new predicted-front points: explore the population
        if len(picks) >= k:
            break
        c = genome.decode(x)
        if key(c) not in seen and key(c) not in names:
            picks.append(c)
            names.add(key(c))
    return picks, RoundStats(counter[0], time.perf_counter() - t0, len(pool))


def _lattice(encoding: Encoding, search: tuple[str, ...], cfg) -> list[dict]:
    """Trade-off weights a measured network's front points will get (when hardware is searched nested)."""
    if "hw" not in search or not encoding.nested_hw:
        return []
    from codesign.search.tradeoffs import tradeoff_lattice

    return tradeoff_lattice(encoding.tradeoff, cfg.search.hw_tradeoffs)


def _points(fastcost, cand: Candidate, lattice: list[dict], accuracy: float, objectives: list[str]) -> np.ndarray:
    """The front points measuring ``cand`` would give (its hardware trade-offs), minimisation form."""
    if lattice:
        cand = Candidate(cand.arch, cand.bits, {"weights": {}})
    rows = [m for m in fastcost.tradeoffs(cand, lattice) if not m.get("invalid")] if lattice else \
        [m for m in [fastcost.metrics(cand)] if not m.get("invalid")]
    if not rows:
        return np.zeros((0, len(objectives)))
    return as_minimization([{**m, "accuracy": accuracy} for m in rows], objectives)


def _greedy_hypervolume(pool: list[np.ndarray], base: np.ndarray, k: int) -> list[int]:
    """Indices of up to ``k`` pool items (each a set of points) adding the most hypervolume to
    ``base``, one at a time; all in minimisation form, normalised together."""
    from pymoo.indicators.hv import HV

    if not pool or not any(len(p) for p in pool):
        return []
    every = np.vstack([base, *[p for p in pool if len(p)]])
    lo, hi = every.min(axis=0), every.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = lambda a: (a - lo) / span
    stacked = np.vstack([p for p in pool if len(p)])
    owner = np.concatenate([[i] * len(p) for i, p in enumerate(pool) if len(p)])
    candidates = sorted({int(owner[j]) for j in _non_dominated(stacked)})   # only items on the predicted front
    hv = HV(ref_point=np.full(every.shape[1], 1.1))
    current = norm(base)
    value = hv(current) if len(current) else 0.0
    chosen: list[int] = []
    for _ in range(min(k, len(candidates))):
        gains = [(hv(np.vstack([current, norm(pool[i])])) - value, -i) for i in candidates if i not in chosen]
        if not gains:
            break
        gain, neg_i = max(gains)
        if gain <= 0 and chosen:
            break
        chosen.append(-neg_i)
        current = np.vstack([current, norm(pool[-neg_i])])
        value = hv(current)
    return chosen


def _non_dominated(f: np.ndarray) -> list[int]:
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    return [int(i) for i in NonDominatedSorting().do(f, only_non_dominated_front=True)]
