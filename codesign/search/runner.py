"""The strategies, each on optuna studies persisted in SQLite, on one budget of measured trials.

- joint: architecture x bit groups x accelerator together;
- sequential (the baseline): architecture first (bits and hardware at their defaults), then
  bits for the chosen architecture, then hardware for both; each phase keeps its knee point;
- random: the floor, random candidates of the joint space.

With ``search.method = "surrogate"`` (default) the joint strategy and every sequential phase
spend their measured trials the same way (APQ-style active learning): a few random trials,
then rounds of fitting the accuracy predictor on the study's own trials, searching predictor
x cost models widely (``surrogate.propose``) and measuring the proposed batch.  The only
difference between joint and sequential is what each searches at a time.  With ``direct`` the
optuna sampler (``algorithm``) proposes every trial itself.

Hardware costs no accuracy measurement, so every strategy that searches the accelerator also
gets, for each network it measured, the best configuration for a lattice of latency/energy/area
trade-offs (exact cost-model figures, the network's measured accuracy): joint and random for
every measured network, sequential for its final one only.

Every measured trial is stored with its candidate and metrics, so an interrupted search
resumes without losing any; the predictor is rebuilt from the stored trials, a trial that was
running when the process died is re-run under its own number, proposals already queued are
measured first, and a start or a batch of proposals that a kill cut short is queued in full, so
a resumed study holds the same trials, numbered alike, as an uninterrupted one.

The studies live in any optuna RDB storage (codesign.search.storage; default SQLite in the --out
folder), and several processes may share one: each pops queued trials (atomically, optuna's
doing), queues new ones only under the storage's proposal lock after re-reading the budget, and
proposes only when nothing is queued or running, so the study a shared search builds is the one
a single process builds.  Evaluations run where the evaluator says (codesign.search.workers: in
process, a local pool, Ray tasks); the queued trials of one step are measured in parallel, the
surrogate step stays here.
"""
from __future__ import annotations

import time
import warnings
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
from optuna.trial import TrialState

from codesign.search.config import MAXIMIZE, SearchConfig
from codesign.search.constraints import feasible
from codesign.search.encoding import ALL, Candidate
from codesign.search.pareto import front_indices
from codesign.search.problem import Problem
from codesign.search.rows import Row, front, phase_choice
from codesign.search import storage as st
from codesign.search.tradeoffs import hardware_tradeoffs
from codesign.search.workers import InProcess, WorkerLost
from hwmodels.errors import CodesignError

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class StrategyLog:
    """What a strategy's surrogate did: per round, the predictor's out-of-fold quality and throughput."""

    rounds: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        if not self.rounds:
            return {}
        scored = sum(r["scored"] for r in self.rounds)
        seconds = sum(r["seconds"] for r in self.rounds)
        last = self.rounds[-1]
        return {"rounds": len(self.rounds), "candidates_scored": scored,
                "surrogate_seconds": seconds, "candidates_per_second": scored / seconds if seconds else 0.0,
                "predictor": {k: last[k] for k in ("samples", "oof_mae_points", "oof_spearman")},
                "predictor_by_round": [{k: r[k] for k in ("samples", "oof_mae_points", "oof_spearman")}
                                       for r in self.rounds]}


def storage_url(out: Path) -> str:
    return st.default_url(out)


POLL_SECONDS = 0.5      # how often a process waiting for another's trials looks again
LOST_TRIES = 3          # a candidate whose worker died this many times is an error, not a retry


def _sampler(cfg: SearchConfig, n_trials: int, seed: int, algorithm: str):
    """Constraints reach NSGA-II and TPE through ``Trial.set_constraint`` (optuna >= 5)."""
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, n_trials // 4)))
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=max(2, min(10, n_trials // 3)))
    return optuna.samplers.RandomSampler(seed=seed)


def _enqueue_batch(study: optuna.Study, key: str, batch: list[tuple[dict, dict]]) -> None:
    """Queue (params, user_attrs) pairs, recorded first (with the trial count before them) in the
    study's ``key`` attribute so that ``_finish_batch`` completes a batch a kill cut short."""
    study.set_user_attr(key, {"start": len(study.get_trials(deepcopy=False)),
                              "trials": [{"params": p, "user_attrs": a} for p, a in batch]})
    for params, attrs in batch:
        study.enqueue_trial(params, skip_if_exists=False, user_attrs=attrs)


def _finish_batch(study: optuna.Study) -> None:
    """After a resume: queue what the last recorded batch had not queued yet (only the last can be
    short: nothing else adds trials until its trials are measured)."""
    keys = sorted(k for k in study.user_attrs if k.startswith("batch_"))
    if keys:
        batch = study.user_attrs[keys[-1]]
        for item in batch["trials"][len(study.get_trials(deepcopy=False)) - batch["start"]:]:
            study.enqueue_trial(item["params"], skip_if_exists=False, user_attrs=item["user_attrs"])


def _done(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _spent(study: optuna.Study) -> float:
    """Measured evaluations spent, in full-validation-split units (a low-fidelity trial costs less)."""
    return sum(t.user_attrs.get("cost", 1.0) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _left(study: optuna.Study, budget: int) -> int:
    """Whole trials the budget still pays for (at least one while any budget is left)."""
    left = budget - _spent(study)
    return max(1, int(left + 1e-9)) if left > 1e-9 else 0


def _waiting(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def _running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def _pop(study: optuna.Study) -> optuna.Trial | None:
    """The next queued trial, taken atomically (another process never gets the same one), or None."""
    study._thread_local.cached_all_trials = None
    trial_id = study._pop_waiting_trial_id()
    return None if trial_id is None else optuna.Trial(study, trial_id)


class Runner:
    def __init__(self, problem: Problem, cfg: SearchConfig, out: Path,
                 progress: Callable[[str, int, int, int], None] | None = None,
                 url: str | None = None, evaluator=None):
        """``url``: the optuna storage (default: study.db in ``out``, which this process holds alone
        through the --out folder's lock); ``evaluator``: where evaluations run (default: here)."""
        self.problem, self.cfg, self.out = problem, cfg, out
        self.progress = progress or (lambda *a: None)
        self.deadline = 0.0
        self.logs: dict[str, StrategyLog] = {}
        self.usage: dict[str, dict] = {}      # strategy -> measured budget spent, and whether the clock stopped it
        self.url = url or storage_url(out)
        self.exclusive = url is None or url == storage_url(out)
        self.storage = st.open_storage(self.url, shared=not self.exclusive)
        self.evaluator = evaluator or InProcess(problem)
        self._locks: dict[str, st.ProposalLock] = {}
        self.relaunched: list[tuple[str, int]] = []   # (study, trial) re-submitted after its worker died

    def _lock(self, study: optuna.Study):
        """The proposal lock of a shared study (a study in the --out folder's own file has one process)."""
        if self.exclusive:
            return st.no_lock()
        name = study.study_name
        if name not in self._locks:
            self._locks[name] = st.ProposalLock(self.url, f"codesign-propose:{name}")
        return self._locks[name]

    def _open_study(self, name: str, sampler) -> optuna.Study:
        """Create, resume or join a study; ``sampler(n)`` is seeded by the trials it already holds, so
        a resumed sampler does not replay the random stream of the first run.  A study made by
        another config is refused; one made here records its config for the next process."""
        directions = ["maximize" if o in MAXIMIZE else "minimize" for o in self.cfg.objectives]
        with st.ProposalLock(self.url, f"codesign-propose:{name}") if not self.exclusive else st.no_lock():
            study = optuna.create_study(study_name=name, storage=self.storage, directions=directions,
                                        sampler=sampler(0), load_if_exists=True)
            st.check_config(name, study.user_attrs, self.cfg, self.url)
            if st.FINGERPRINT not in study.user_attrs:
                fingerprint, data = st.config_record(self.cfg)
                with warnings.catch_warnings():                          # "experimental" since optuna 3.2
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(list(self.cfg.objectives))     # what optuna-dashboard labels the axes
                study.set_user_attr(st.CONFIG, data)
                study.set_user_attr(st.FINGERPRINT, fingerprint)
            st.requeue_dead(study, self.exclusive)
        if study.get_trials(deepcopy=False):
            study.sampler = sampler(len(study.get_trials(deepcopy=False)))
        return study

    def _start_clock(self) -> None:
        """Each strategy gets the same wall-clock cap (budget.minutes) besides its trial budget."""
        self.deadline = time.monotonic() + self.cfg.budget.minutes * 60

    def _record(self, study: optuna.Study, trial: optuna.Trial, cand: Candidate, m: dict, cost: float) -> None:
        """A measured trial: its candidate, metrics and constraints as user attributes (what a person
        reads in optuna-dashboard and what a resume rebuilds from), then its values."""
        trial.set_user_attr("cost", cost)
        trial.set_user_attr("candidate", cand.to_json())
        trial.set_user_attr("metrics", m)
        violations = self.problem.violations(m)
        trial.set_user_attr("constraints", violations)
        for i, v in enumerate(violations):
            trial.set_constraint(f"c{i}", v)
        study.tell(trial, [m[o] for o in self.cfg.objectives])

    def _measure(self, study: optuna.Study, budget: int, fixed, search, label: str, sample: bool = False) -> None:
        """Measure queued trials (with ``sample``, trials the sampler proposes when none is queued),
        up to the evaluator's capacity at once, until the queue or the budget is exhausted.  A
        trial whose worker died is re-submitted with the same candidate under the same number; one
        that fails is marked failed and the error raised."""
        inflight: dict = {}                  # future -> (trial, candidate, tries)
        beat = st.Heartbeat(study) if not self.exclusive else None
        cap = self.evaluator.capacity
        try:
            while True:
                while len(inflight) < cap and time.monotonic() < self.deadline:
                    trial = self._take(study, budget, sample)
                    if trial is None:
                        break
                    if beat is not None:
                        beat.ids.add(trial._trial_id)
                    cand = self.problem.encoding.suggest(trial, fixed, search)
                    inflight[self._submit(study, cand)] = (trial, cand, 1)
                if not inflight:
                    return
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for f in done:
                    trial, cand, tries = inflight.pop(f)
                    try:
                        m, measured, cost = f.result()
                    except WorkerLost as e:
                        if tries >= LOST_TRIES:
                            raise CodesignError(f"trial {trial.number}: its worker died {tries} times while measuring "
                                                f"it ({e}); too little memory per worker? try fewer --workers") from None
                        self.relaunched.append((study.study_name, trial.number))
                        inflight[self._submit(study, cand)] = (trial, cand, tries + 1)
                        continue
                    except Exception:
                        study.tell(trial, state=TrialState.FAIL)
                        raise
                    self._record(study, trial, measured, m, cost)
                    if beat is not None:
                        beat.ids.discard(trial._trial_id)
                    self._report(label, study, budget)
        finally:
            if beat is not None:
                beat.close()

    def _take(self, study: optuna.Study, budget: int, sample: bool) -> optuna.Trial | None:
        """The next trial to measure, claimed by this process, while the budget (counting every
        process's running trials) pays for it: a queued one, or with ``sample`` one the sampler
        proposes (under the proposal lock, so two processes never overdraw the budget)."""
        with self._lock(study) if sample else st.no_lock():
            if _left(study, budget) - _running(study) <= 0:
                return None
            trial = study.ask() if sample else _pop(study)
            if trial is not None:
                st.claim(study, trial._trial_id)
            return trial

    def _submit(self, study: optuna.Study, cand: Candidate):
        front_rows = front(_rows(study, "", "", carried=True), self.cfg.objectives) \
            if self.cfg.search.fidelity == "two-stage" else []
        return self.evaluator.submit(cand, front_rows)

    def _others_running(self, study: optuna.Study) -> bool:
        """Trials other processes are measuring (dead ones' put back in the queue first)."""
        if not self.exclusive:
            st.requeue_dead(study, exclusive=False)
        return _running(study) > 0

    def _report(self, label: str, study: optuna.Study, total: int) -> None:
        self.progress(label, min(total, round(_spent(study))), total, len(self._front(study)))

    def _front(self, study: optuna.Study) -> list[int]:
        rows = [t.user_attrs["metrics"] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "metrics" in t.user_attrs]
        return front_indices(rows, self.cfg.objectives)

    # ----- how a budget of measured trials is spent ----------------------------------------------
    def _direct(self, study: optuna.Study, budget: int, fixed, search, label: str) -> None:
        """The optuna sampler proposes every trial (queued ones first)."""
        while _left(study, budget) and time.monotonic() < self.deadline:
            self._measure(study, budget, fixed, search, label, sample=True)
            if _left(study, budget) and self._others_running(study):
                time.sleep(POLL_SECONDS)

    def _random_trial(self, study: optuna.Study, fixed, search, seed: int, queued: tuple = ()) -> Candidate:
        """Queue one random candidate not measured (nor in ``queued``) yet.  Drawn from (seed,
        completed + queued trials), so a resumed study continues exactly as an uninterrupted one
        would, and k queued at once are the k a one-at-a-time search would draw."""
        enc = self.problem.encoding
        seen = {self.problem.key(r.candidate) for r in _rows(study, "", "", carried=True)} | set(queued)
        rng = np.random.default_rng([seed, _done(study) + len(queued)])
        genes = enc.genes(search)
        for _ in range(64):
            cand = enc.decode(np.array([rng.integers(len(g.options)) for g in genes]), fixed, search)
            if self.problem.key(cand) not in seen:
                break
        study.enqueue_trial(enc.to_params(cand, search), skip_if_exists=False)
        return cand

    def _active(self, study: optuna.Study, budget: int, fixed, search, label: str, seed: int,
                n_init: int | None = None, known: list[Row] = ()) -> None:
        """Random initial trials, then rounds: fit the predictor (on this study's trials and ``known``
        ones the strategy measured earlier), search the surrogate, measure its batch."""
        s = self.cfg.search
        n_init = min(budget, n_init if n_init is not None else (s.initial or max(4, budget // 4)))
        log = self.logs.setdefault(label, StrategyLog())
        with self._lock(study):
            _finish_batch(study)
        while _left(study, budget) and time.monotonic() < self.deadline:
            if _waiting(study):                            # queued proposals (and corners) first
                self._measure(study, budget, fixed, search, label)
                continue
            if self._others_running(study):                # their results shape the next proposal: wait
                time.sleep(POLL_SECONDS)
                continue
            with self._lock(study):                        # one proposer at a time, on what is stored now
                if _waiting(study) or _running(study) or not _left(study, budget):
                    continue
                self._propose(study, budget, fixed, search, seed, n_init, known)
        log.rounds = [v for k, v in sorted(study.user_attrs.items()) if k.startswith("round_")]

    def _propose(self, study: optuna.Study, budget: int, fixed, search, seed: int, n_init: int,
                 known: list[Row]) -> None:
        """Queue the next trials (called under the proposal lock, with nothing queued or running):
        random ones while the initial design is short (as many at once as can be measured at once),
        else a batch from the surrogate."""
        from codesign.search.surrogate import propose

        s = self.cfg.search
        if _spent(study) < n_init:                         # the random initial design
            queued: list[str] = []
            while len(queued) < max(1, min(self.evaluator.capacity, _left(study, budget))) \
                    and _spent(study) + len(queued) < n_init:
                queued.append(self.problem.key(self._random_trial(study, fixed, search, seed, tuple(queued))))
            return
        own = [(r.candidate, r.metrics) for r in _rows(study, "", "", carried=True)]
        usable = [(c, m) for c, m in own + [(r.candidate, r.metrics) for r in known] if not m.get("invalid")]
        predictor = self.problem.predictor(seed)
        cands, acc = [c for c, _ in usable], [m["accuracy"] for _, m in usable]
        predictor.fit(cands, acc)
        quality = predictor.quality(cands, acc)
        k = min(s.batch, _left(study, budget))
        done = _done(study)
        picks, stats = propose(self.problem.encoding, search, fixed, predictor, self.problem.fastcost, self.cfg,
                               own, k, seed + done, s.population, s.generations, s.exploration,
                               {self.problem.key(c) for c, _ in own}, self.problem.key, s.arch_pool)
        round_log = {**quality.to_json(), "scored": stats.scored, "seconds": stats.seconds,
                     "architectures": stats.pool, "proposed": len(picks)}
        study.set_user_attr(f"round_{done:04d}", round_log)
        if not picks:      # the predictor's front holds nothing new: measure a random candidate instead
            self._random_trial(study, fixed, search, seed)
        mean, spread = predictor.predict(picks) if picks else ([], [])
        _enqueue_batch(study, f"batch_{done:04d}",        # predictions kept to show predicted vs measured
                       [(self.problem.encoding.to_params(c, search),
                         {"predicted": {"accuracy": float(mu), "spread": float(sd)}})
                        for c, mu, sd in zip(picks, mean, spread)])

    def _phase(self, name: str, budget: int, fixed, search, label: str, seed: int, algorithm: str,
               carried: Row | None = None, known: list[Row] = ()) -> optuna.Study:
        """One study: corners first (minus the carried row, already measured by an earlier phase),
        then the budget spent by the surrogate, the sampler, or at random."""
        surrogate = self.cfg.search.method == "surrogate" or algorithm == "random"
        study = self._open_study(name, lambda n: _sampler(self.cfg, budget, seed * 7919 + n, algorithm))
        # every strategy and phase starts from the same corners; the study's first trials are exactly
        # these, so fewer trials than that means a kill cut the start short: queue the rest, in order
        have = {self.problem.key(carried.candidate)} if carried is not None else set()
        start = [None] * (carried is not None) + [
            p for p in self.problem.encoding.corner_params(search)[:budget]
            if self.problem.key(self.problem.encoding.from_params(p, fixed, search)) not in have]
        with self._lock(study):       # another process may be starting this study too
            for params in start[len(study.get_trials(deepcopy=False)):]:
                if params is None:
                    _carry(study, carried, self.problem.encoding.to_params(carried.candidate, search),
                           self.problem.encoding.distributions(search), self.cfg.objectives)
                else:
                    study.enqueue_trial(params)
        self._report(label, study, budget)
        if surrogate:
            self._active(study, budget, fixed, search, label, seed, n_init=budget if algorithm == "random" else None,
                         known=known)
        else:
            self._direct(study, budget, fixed, search, label)
        return study

    # ----- strategies ----------------------------------------------------------------------------
    def joint(self) -> list[Row]:
        self._start_clock()
        tag = self.cfg.search.method if self.cfg.search.method == "surrogate" else self.cfg.algorithm
        study = self._phase(f"joint-{tag}-s{self.cfg.seed}", self.cfg.budget.trials, None, ALL, "joint",
                            self.cfg.seed, self.cfg.algorithm)
        self._use("joint", [(study, self.cfg.budget.trials)])
        rows = _rows(study, "joint", "joint")
        return rows + self.hardware_tradeoffs(rows, "joint")

    def random(self) -> list[Row]:
        self._start_clock()
        study = self._phase(f"random-s{self.cfg.seed}", self.cfg.budget.trials, None, ALL, "random",
                            self.cfg.seed + 200, "random")
        self._use("random", [(study, self.cfg.budget.trials)])
        rows = _rows(study, "random", "random")
        return rows + self.hardware_tradeoffs(rows, "random")

    def sequential(self) -> list[Row]:
        """Architecture, then bits, then hardware.  Hardware costs no measurement where the exact
        trade-off points exist (a systolic grid); otherwise it is a measured phase of its own."""
        self._start_clock()
        surrogate = self.cfg.search.method == "surrogate"
        hw_free = self.problem.hw_grid is not None
        phases = ["arch", "bits"] + (["hw"] if self.problem.hw_ranges and not hw_free else [])
        per = [self.cfg.budget.trials // len(phases)] * len(phases)
        per[0] += self.cfg.budget.trials - sum(per)
        fixed, chosen = self.problem.encoding.baseline(), None
        rows: list[Row] = []
        tag = "surrogate" if surrogate else self.cfg.algorithm
        studies = []
        for i, (phase, n) in enumerate(zip(phases, per)):
            study = self._phase(f"sequential-{phase}-{tag}-s{self.cfg.seed}", n, fixed, (phase,),
                                f"sequential: {phase}", self.cfg.seed + 100 + i, self.cfg.algorithm,
                                carried=chosen, known=rows)
            studies.append((study, n))
            self._use("sequential", studies)
            phase_rows = _rows(study, "sequential", phase)
            rows += phase_rows
            if not phase_rows:
                return rows
            chosen = phase_choice(_rows(study, "sequential", phase, carried=True), self.cfg.objectives,
                             self.cfg.search.carry)
            fixed = chosen.candidate
        if self.problem.hw_ranges and hw_free:        # hardware last: every trade-off for the chosen network
            rows += self.hardware_tradeoffs([chosen], "sequential", phase="hw")
        return rows

    def hardware_tradeoffs(self, rows: list[Row], strategy: str, phase: str | None = None) -> list[Row]:
        return hardware_tradeoffs(self.problem, rows, strategy, phase, self.cfg.search.hw_tradeoffs)

    def _use(self, strategy: str, studies: list[tuple[optuna.Study, int]]) -> None:
        """What the strategy spent of its budget, and whether budget.minutes cut it short."""
        self.usage[strategy] = {"budget": self.cfg.budget.trials,
                                "spent": round(sum(_spent(s) for s, _ in studies), 4),
                                "stopped_by_wall_clock": any(_left(s, n) > 0 for s, n in studies)}


def _carry(study: optuna.Study, row: Row, params: dict, dists: dict, objectives: list[str]) -> None:
    """Put an earlier phase's measured row into this phase's study (costing nothing: no new measurement)."""
    attrs = {"candidate": row.candidate.to_json(), "metrics": row.metrics, "cost": 0.0, "carried": True,
             "constraints": [] if row.feasible else [1.0]}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, user_attrs=attrs,
                                              values=[row.metrics[o] for o in objectives], state=TrialState.COMPLETE))


def _rows(study: optuna.Study, strategy: str, phase: str, carried: bool = False) -> list[Row]:
    """The study's measured trials (those carried over from an earlier phase only with ``carried``)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "metrics" not in t.user_attrs or (t.user_attrs.get("carried") and not carried):
            continue
        cand = Candidate.from_json(t.user_attrs["candidate"])
        m = t.user_attrs["metrics"]
        out.append(Row(strategy, phase, t.number, m, feasible(t.user_attrs.get("constraints", [])), cand,
                       fidelity=m.get("fidelity", "full"), predicted=t.user_attrs.get("predicted")))
    return out
