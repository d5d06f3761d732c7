"""Pareto fronts, hypervolume (pymoo) and the knee point, on objective dicts.

Hypervolume is computed on a scale where every objective is minimised and improvements count
relatively: accuracy as error (1 - accuracy), linear; latency, energy, area and size as logs,
because they span decades across a front (a design at 0.003 ms and one at 1.3 ms sit on one
front) and on a linear scale every fast design would crowd into the first percent of the axis.
Each is then scaled to [0, 1] over every point compared, reference point 1.1.  ``linear=True``
gives the plain linear scale as well (benchmarks report both).
"""
from __future__ import annotations

import numpy as np

from codesign.search.config import MAXIMIZE

REFERENCE = 1.1


def as_minimization(rows: list[dict], objectives: list[str]) -> np.ndarray:
    """Objective matrix with every column to be minimised (accuracy -> error)."""
    return np.array([[(1.0 - r[o]) if o in MAXIMIZE else r[o] for o in objectives] for r in rows], float)


def front_indices(rows: list[dict], objectives: list[str]) -> list[int]:
    """Indices of the non-dominated rows (duplicates keep their first occurrence)."""
    if not rows:
        return []
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    f = as_minimization(rows, objectives)
    first = NonDominatedSorting().do(f, only_non_dominated_front=True)
    seen, out = set(), []
    for i in sorted(int(i) for i in first):
        key = tuple(np.round(f[i], 12))
        if key not in seen:
            seen.add(key)
            out.append(i)
    return out


def hv_scale(rows: list[dict], objectives: list[str], linear: bool = False) -> np.ndarray:
    """Objectives on the hypervolume's scale: error linear, costs as logs (or all linear)."""
    f = as_minimization(rows, objectives)
    return f if linear else log_costs(f, objectives)


def log_costs(f: np.ndarray, objectives: list[str]) -> np.ndarray:
    """A minimisation matrix with its cost columns (all but accuracy) as logarithms."""
    f = np.array(f, dtype=float, copy=True)
    for j, o in enumerate(objectives):
        if o not in MAXIMIZE:
            f[:, j] = np.log(np.maximum(f[:, j], 1e-12))
    return f


def normalizer(all_rows: list[dict], objectives: list[str], linear: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-objective (low, high) over everything compared, so fronts share one scale."""
    f = hv_scale(all_rows, objectives, linear)
    lo, hi = f.min(axis=0), f.max(axis=0)
    return lo, np.where(hi > lo, hi, lo + 1.0), linear


def hypervolume(rows: list[dict], objectives: list[str], norm: tuple) -> float:
    """Hypervolume of ``rows`` in the normalised space, reference point 1.1 in every objective."""
    if not rows:
        return 0.0
    from pymoo.indicators.hv import HV

    lo, hi, linear = norm
    f = (hv_scale(rows, objectives, linear) - lo) / (hi - lo)
    return float(HV(ref_point=np.full(len(objectives), REFERENCE))(f))


def knee(rows: list[dict], objectives: list[str]) -> int:
    """The front member closest to the ideal point after normalising each objective to [0, 1]."""
    f = as_minimization(rows, objectives)
    lo, hi = f.min(axis=0), f.max(axis=0)
    z = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
    return int(np.argmin(np.linalg.norm(z, axis=1)))


def dominates_all(a: list[dict], b: list[dict], objectives: list[str]) -> bool:
    """Whether every member of front ``b`` is weakly dominated by some member of ``a``."""
    fa, fb = as_minimization(a, objectives), as_minimization(b, objectives)
    return all(any(np.all(x <= y) for x in fa) for y in fb)
