"""Two-stage (multi-fidelity) measurement: a subset of the validation split first, the rest only
when the candidate could still reach the front.

A low-fidelity trial measures every ``every``-th validation image and costs that fraction of
the budget.  With its accuracy raised by two standard errors of that subset it is tested
against the measured front (and the constraints, using the same optimistic accuracy); if it
could be feasible and non-dominated, the remaining images are measured and the two parts
combined, which equals the whole split's accuracy (per-image results do not depend on which
other images are measured).  Low-fidelity trials feed the predictor but never a front.
"""
from __future__ import annotations

from codesign.search.constraints import feasible
from codesign.search.encoding import Candidate
from codesign.search.pareto import as_minimization


def two_stage(problem, cand: Candidate, front_rows: list, every: int) -> tuple[dict, float]:
    """(metrics, budget cost in whole-split evaluations) of one trial."""
    ev = problem.evaluation
    m = ev.evaluate(cand, every=every)
    if m.get("invalid"):
        return m, 1.0 / every
    n_low = m["accuracy_images"]
    if not promising(problem, m, front_rows):
        return {**m, "fidelity": "low"}, n_low / len(problem.splits.val)
    acc_rest, n_rest = ev.accuracy(cand, every=every, rest=True)
    acc = (m["accuracy"] * n_low + acc_rest * n_rest) / (n_low + n_rest)
    return {**m, "accuracy": acc, "accuracy_images": float(n_low + n_rest), "fidelity": "full"}, 1.0


def promising(problem, low: dict, front_rows: list) -> bool:
    """Could the candidate be feasible and non-dominated, with its accuracy two standard errors up?"""
    n, acc = low["accuracy_images"], low["accuracy"]
    optimistic = {**low, "accuracy": min(1.0, acc + 2.0 * (max(acc * (1 - acc), 0.25 / n) / n) ** 0.5)}
    if not feasible(problem.violations(optimistic)):
        return False
    if not front_rows:
        return True
    objectives = problem.cfg.objectives
    f = as_minimization([r.metrics for r in front_rows], objectives)
    c = as_minimization([optimistic], objectives)[0]
    return not bool(((f <= c).all(axis=1) & (f < c).any(axis=1)).any())
