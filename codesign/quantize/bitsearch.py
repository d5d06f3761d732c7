"""The search over bit maps: optuna's constrained TPE, seeded with maps the sensitivity suggests.

Every measured candidate is an optuna trial in ``DIR/study.db`` (SQLite), with its accuracy,
costs and writer as user attributes, so ``--resume`` continues the same study.  The objective
(energy, latency or size from the target's cost model) is minimised subject to
``float accuracy - accuracy <= max drop``.

Guided phase (HAQ-style ordering, but measured): the layers' (w, a) moves are ordered by cost
saved per point of measured single-layer drop (``greedy_steps``); a bisection finds how many of
them the model takes within the allowed drop, and the later ones are tried one by one on top.
The sampler then explores around everything measured, over widths up to the reference (wider
ones only when the reference itself is too lossy: ``search_choices``).
"""
from __future__ import annotations

import time
from typing import Callable

import optuna

from codesign.quantize.costing import Costing, objective_value
from codesign.quantize.measure import Bits, Measurer, key_of, uniform
from hwmodels.errors import CodesignError

STUDY = "quantize"
GUIDED_SHARE = 0.6      # at most this share of --trials goes to the guided phase; the sampler gets the rest


def search_choices(choices: list[int], sens: dict, float_acc: float, max_drop: float) -> list[int]:
    """Widths the sampler may give a layer: those up to the reference, or every choice when the
    uniform reference itself loses more than the allowed drop (only then can a wider layer pay)."""
    ref = sens["reference"]
    if float_acc - sens["reference_accuracy"] > max_drop:
        return list(choices)
    return [b for b in choices if b <= ref]


def greedy_steps(layers: list[str], choices: list[int], sens: dict, costing: Costing, objective: str) -> list[tuple[str, tuple[int, int]]]:
    """The order in which layers give up bits, most cost saved per point of estimated drop first.

    From the uniform reference each layer may take any (w, a) pair at or below the reference; a
    pair's drop is estimated as its weight drop plus its activation drop (each measured alone), its
    saving as the cost it saves alone.  A step moves one layer to a cheaper pair; a layer may move
    several times (w8a8 -> w8a4 -> w4a4 ...).  Applying the first k steps gives maps of falling cost."""
    ref = sens["reference"]
    base = uniform(layers, ref, ref)
    base_cost = objective_value(costing.metrics(base), objective)
    widths = sorted(b for b in choices if b <= ref)

    def drop(layer: str, w: int, a: int) -> float | None:
        s = sens["layers"][layer]
        dw, da = s["weight"].get(str(w), 0.0), s["activation"].get(str(a), 0.0)
        if dw is None or da is None:            # not measured (the deadline came first)
            return None
        return max(dw, 0.0) + max(da, 0.0)

    options: dict[str, list[tuple[float, float, tuple[int, int]]]] = {}
    for layer in layers:
        for w in widths:
            for a in widths:
                if (w, a) == (ref, ref) or drop(layer, w, a) is None:
                    continue
                bits = dict(base)
                bits[layer] = (w, a)
                saving = base_cost - objective_value(costing.metrics(bits), objective)
                if saving > 0:
                    options.setdefault(layer, []).append((saving, drop(layer, w, a), (w, a)))
    state = {n: (0.0, 0.0) for n in layers}            # (saving, drop) of each layer's current pair
    steps = []
    while True:
        best = None
        for layer, opts in options.items():
            s0, d0 = state[layer]
            for saving, d, pair in opts:
                gain = saving - s0
                if gain <= 1e-12 * max(base_cost, 1e-30):
                    continue
                score = gain / (max(d - d0, 0.0) + 1e-3)
                if best is None or score > best[0]:
                    best = (score, layer, pair, saving, d)
        if best is None:
            return steps
        _, layer, pair, saving, d = best
        state[layer] = (saving, d)
        steps.append((layer, pair))


def apply_steps(base: Bits, steps) -> Bits:
    bits = dict(base)
    for layer, pair in steps:
        bits[layer] = pair
    return bits


def open_study(path, seed: int, resume: bool, inputs: dict) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{path}"
    # constrained TPE: each trial states its constraint (drop - allowed drop) with set_constraint
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)
    if resume:
        try:
            study = optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler)
        except KeyError:
            raise CodesignError(f"--resume: {path} holds no quantize study; drop --resume to start one") from None
        stored = study.user_attrs.get("inputs", {})
        diff = sorted(k for k in set(stored) | set(inputs) if stored.get(k) != inputs.get(k))
        if diff:
            raise CodesignError(f"--resume: {path} was made with a different {diff[0]} "
                                f"({stored.get(diff[0])!r}, now {inputs.get(diff[0])!r}); use the same inputs or a new --out")
        return study
    study = optuna.create_study(study_name=STUDY, storage=storage, sampler=sampler, direction="minimize")
    study.set_user_attr("inputs", inputs)
    return study


def to_params(layers: list[str], bits: Bits) -> dict:
    out = {}
    for i, n in enumerate(layers):
        out[f"w{i}"], out[f"a{i}"] = bits[n]
    return out


def run_search(study: optuna.Study, layers: list[str], choices: list[int], measurer: Measurer, costing: Costing,
               objective: str, float_acc: float, max_drop: float, base: Bits, steps, trials: int,
               deadline: float, progress: Callable[[int, int], None] | None = None) -> None:
    """Measure trials until ``trials`` are complete in the study or the deadline passes.

    Guided phase (once per study): the uniform reference, then a bisection over how many of the
    greedy steps to take (the longest measured prefix within the allowed drop), then each later
    step tried on top of the best map so far and kept when it stays within the drop.  Then
    optuna's constrained TPE over per-layer widths, which starts from everything measured."""

    phase = ["guided"]

    def evaluate(trial: optuna.Trial) -> float:
        bits = {n: (trial.suggest_categorical(f"w{i}", choices), trial.suggest_categorical(f"a{i}", choices))
                for i, n in enumerate(layers)}
        m = measurer.measure(bits)
        metrics = costing.metrics(bits)
        drop = float_acc - m.accuracy
        trial.set_user_attr("accuracy", m.accuracy)
        trial.set_user_attr("writer", m.writer)
        trial.set_user_attr("phase", phase[0])
        for k, v in metrics.items():
            trial.set_user_attr(k, v)
        trial.set_constraint("accuracy_drop", drop - max_drop)
        return objective_value(metrics, objective)

    def complete() -> int:
        return len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])

    def within_budget() -> bool:
        return complete() < trials and time.monotonic() < deadline

    def measure(bits: Bits) -> bool:
        """One trial of ``bits``; whether it stays within the allowed drop."""
        study.enqueue_trial(to_params(layers, bits))
        study.optimize(evaluate, n_trials=1, catch=())
        if progress:
            progress(complete(), trials)
        return float_acc - measurer.measure(bits).accuracy <= max_drop + 1e-12

    if not study.user_attrs.get("guided_done"):
        guided = max(1, int(trials * GUIDED_SHARE))
        measure(base)
        lo, hi = 0, len(steps) + 1                     # prefix lo is within the drop, hi is not (or past the end)
        while hi - lo > 1 and within_budget() and complete() < guided:
            mid = (lo + hi) // 2
            if measure(apply_steps(base, steps[:mid])):
                lo = mid
            else:
                hi = mid
        best = apply_steps(base, steps[:lo])
        for layer, pair in steps[lo + 1:]:
            if not (within_budget() and complete() < guided):
                break
            if best[layer] == pair or costing_value(costing, {**best, layer: pair}, objective) >= \
                    costing_value(costing, best, objective):
                continue
            trial_bits = {**best, layer: pair}
            if measure(trial_bits):
                best = trial_bits
        if time.monotonic() < deadline:            # cut short by --minutes: a --resume runs it again
            study.set_user_attr("guided_done", True)
    phase[0] = "sampler"
    while within_budget():
        study.optimize(evaluate, n_trials=1, catch=())
        if progress:
            progress(complete(), trials)


def costing_value(costing: Costing, bits: Bits, objective: str) -> float:
    return objective_value(costing.metrics(bits), objective)


def measured_rows(study: optuna.Study, layers: list[str], float_acc: float, max_drop: float) -> list[dict]:
    """Every complete trial as a row: its bit map, phase (guided or sampler), accuracy, drop, costs,
    feasibility, writer.  (The sensitivity pass's maps are added by ``sensitivity_rows``.)"""
    rows, seen = [], set()
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        bits = {n: (int(t.params[f"w{i}"]), int(t.params[f"a{i}"])) for i, n in enumerate(layers)}
        k = key_of(bits)
        if k in seen:
            continue
        seen.add(k)
        acc = t.user_attrs["accuracy"]
        rows.append({"trial": t.number, "phase": t.user_attrs.get("phase", "sampler"), "bits": bits,
                     "accuracy": acc, "accuracy_drop": float_acc - acc,
                     "feasible": float_acc - acc <= max_drop + 1e-12, "writer": t.user_attrs.get("writer"),
                     **{k2: t.user_attrs.get(k2) for k2 in ("energy_mj", "latency_ms", "size_kb")}})
    return rows


def sensitivity_rows(sens: dict, layers: list[str], costing: Costing, float_acc: float, max_drop: float,
                     writers: dict[tuple, str]) -> list[dict]:
    """The single-layer maps the sensitivity pass measured, as rows like ``measured_rows``' (no trial number)."""
    ref = sens["reference"]
    base = uniform(layers, ref, ref)
    rows = []
    for layer, kinds in sens["layers"].items():
        for kind, drops in kinds.items():
            for b, d in drops.items():
                if d is None:
                    continue
                bits = {**base, layer: (int(b), ref) if kind == "weight" else (ref, int(b))}
                acc = sens["reference_accuracy"] - d
                rows.append({"trial": None, "phase": "sensitivity", "bits": bits, "accuracy": acc,
                             "accuracy_drop": float_acc - acc, "feasible": float_acc - acc <= max_drop + 1e-12,
                             "writer": writers.get(key_of(bits)), **costing.metrics(bits)})
    return rows
