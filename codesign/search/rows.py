"""A strategy's measured trials (and derived hardware trade-off points) as rows, and their fronts."""
from __future__ import annotations

from dataclasses import dataclass

from codesign.search.encoding import Candidate
from codesign.search.pareto import front_indices, knee


@dataclass
class Row:
    strategy: str
    phase: str
    number: int
    metrics: dict
    feasible: bool
    candidate: Candidate
    derived: bool = False        # a hardware trade-off point of a measured network (no new accuracy measurement)
    fidelity: str = "full"       # "low": accuracy on a subset of the validation split only (never on a front)
    predicted: dict | None = None   # the surrogate's accuracy prediction when it proposed this trial

    def flat(self) -> dict:
        return {"strategy": self.strategy, "phase": self.phase, "trial": self.number, "feasible": self.feasible,
                **self.metrics}


def front(rows: list[Row], objectives: list[str]) -> list[Row]:
    """Feasible non-dominated rows measured on the whole validation split (none if none is
    feasible: the caller says so)."""
    pool = [r for r in rows if r.feasible and r.fidelity == "full"]
    return [pool[i] for i in front_indices([r.metrics for r in pool], objectives)]


def phase_choice(rows: list[Row], objectives: list[str], rule: str) -> Row:
    """The row a sequential phase hands on: the front's knee, or its most accurate member (the knee
    among equally accurate ones)."""
    if rule == "knee":
        return pick(rows, objectives)
    f = front(rows, objectives) or rows
    best = max(r.metrics["accuracy"] for r in f)
    return pick([r for r in f if r.metrics["accuracy"] == best], objectives)


def pick(rows: list[Row], objectives: list[str], index: int | None = None) -> Row:
    f = front(rows, objectives) or rows
    if index is not None:
        return f[index]
    return f[knee([r.metrics for r in f], objectives)]

