"""Joint and sequential search strategies on optuna studies persisted in SQLite.

Joint: one study over (architecture, per-layer bits, accelerator) together.
Sequential baseline (same trial budget): architecture first (bits and hardware at their
defaults), then bits for the chosen architecture, then hardware for both; each phase keeps
its knee point.  Every evaluated trial of either strategy is stored with its candidate and
measured metrics, so an interrupted search resumes without losing any; a trial that was
running when the process died is re-run with the same parameters.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from codesign.search.config import MAXIMIZE, SearchConfig
from codesign.search.pareto import front_indices, knee
from codesign.search.constraints import feasible
from codesign.search.encoding import Candidate
from codesign.search.problem import Problem

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class Row:
    strategy: str
    phase: str
    number: int
    metrics: dict
    feasible: bool
    candidate: Candidate

    def flat(self) -> dict:
        return {"strategy": self.strategy, "phase": self.phase, "trial": self.number, "feasible": self.feasible,
                **self.metrics}


def storage_url(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"


def _sampler(cfg: SearchConfig, n_trials: int, seed_offset: int = 0):
    """Constraints reach NSGA-II and TPE through ``Trial.set_constraint`` (optuna >= 5)."""
    seed = cfg.seed + seed_offset
    if cfg.algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, n_trials // 4)))
    if cfg.algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                          n_startup_trials=max(2, min(10, n_trials // 3)))
    return optuna.samplers.RandomSampler(seed=seed)


def _open_study(name: str, cfg: SearchConfig, out: Path, n_trials: int, seed_offset: int):
    directions = ["maximize" if o in MAXIMIZE else "minimize" for o in cfg.objectives]
    study = optuna.create_study(study_name=name, storage=storage_url(out), directions=directions,
                                sampler=_sampler(cfg, n_trials, seed_offset), load_if_exists=True)
    _requeue_interrupted(study)
    return study


def _requeue_interrupted(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed process: mark them failed and queue their parameters again."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, skip_if_exists=False)


def _done(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


class Runner:
    def __init__(self, problem: Problem, cfg: SearchConfig, out: Path, progress: Callable[[str, int, int, int], None] | None = None):
        self.problem, self.cfg, self.out = problem, cfg, out
        self.progress = progress or (lambda *a: None)
        self.deadline = 0.0

    def _start_clock(self) -> None:
        """Each strategy gets the same wall-clock cap (budget.minutes) besides its trial budget."""
        self.deadline = time.monotonic() + self.cfg.budget.minutes * 60

    def _objective(self, fixed: Candidate | None, search: tuple[str, ...]):
        def objective(trial: optuna.Trial):
            cand = self.problem.encoding.suggest(trial, fixed, search)
            m = self.problem.evaluation.evaluate(cand)
            trial.set_user_attr("candidate", cand.to_json())
            trial.set_user_attr("metrics", m)
            violations = self.problem.violations(m)
            trial.set_user_attr("constraints", violations)
            for i, v in enumerate(violations):
                trial.set_constraint(f"c{i}", v)
            return [m[o] for o in self.cfg.objectives]
        return objective

    def _run(self, name: str, n_trials: int, fixed: Candidate | None, search: tuple[str, ...], seed_offset: int,
             label: str) -> optuna.Study:
        study = _open_study(name, self.cfg, self.out, n_trials, seed_offset)
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial(self.problem.encoding.initial_params(search))
        remaining = n_trials - _done(study)
        done0 = _done(study)
        self.progress(label, done0, n_trials, len(self._front(study)))
        objective = self._objective(fixed, search)
        while remaining > 0 and time.monotonic() < self.deadline:
            study.optimize(objective, n_trials=1, catch=())
            remaining = n_trials - _done(study)
            self.progress(label, _done(study), n_trials, len(self._front(study)))
        return study

    def _front(self, study: optuna.Study) -> list[int]:
        rows = [t.user_attrs["metrics"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "metrics" in t.user_attrs]
        return front_indices(rows, self.cfg.objectives)

    # ----- strategies ---------------------------------------------------------------------------
    def joint(self) -> list[Row]:
        self._start_clock()
        name = f"joint-{self.cfg.algorithm}-s{self.cfg.seed}"
        study = self._run(name, self.cfg.budget.trials, None, ("arch", "bits", "hw"), 0, "joint")
        return _rows(study, "joint", "joint")

    def sequential(self) -> list[Row]:
        self._start_clock()
        phases = ["arch", "bits"] + (["hw"] if self.problem.hw_ranges else [])
        per = [self.cfg.budget.trials // len(phases)] * len(phases)
        per[0] += self.cfg.budget.trials - sum(per)
        fixed = self.problem.encoding.baseline()
        rows: list[Row] = []
        for i, (phase, n) in enumerate(zip(phases, per)):
            name = f"sequential-{phase}-{self.cfg.algorithm}-s{self.cfg.seed}"
            study = self._run(name, n, fixed, (phase,), 100 + i, f"sequential: {phase}")
            phase_rows = _rows(study, "sequential", phase)
            rows += phase_rows
            if not phase_rows:
                break
            fixed = pick(phase_rows, self.cfg.objectives).candidate
        return rows


def _rows(study: optuna.Study, strategy: str, phase: str) -> list[Row]:
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "metrics" not in t.user_attrs:
            continue
        c = t.user_attrs["candidate"]
        cand = Candidate(c["arch"], {k: tuple(v) for k, v in c["bits"].items()}, c["hw"])
        out.append(Row(strategy, phase, t.number, t.user_attrs["metrics"],
                       feasible(t.user_attrs.get("constraints", [])), cand))
    return out


def front(rows: list[Row], objectives: list[str]) -> list[Row]:
    """Feasible non-dominated rows (all rows if none is feasible: the report says so)."""
    pool = [r for r in rows if r.feasible] or []
    return [pool[i] for i in front_indices([r.metrics for r in pool], objectives)]


def pick(rows: list[Row], objectives: list[str], index: int | None = None) -> Row:
    f = front(rows, objectives) or rows
    if index is not None:
        return f[index]
    return f[knee([r.metrics for r in f], objectives)]
