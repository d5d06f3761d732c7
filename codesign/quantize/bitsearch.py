"""The search over bit maps: optuna's constrained TPE, seeded with maps the sensitivity suggests.

Every measured candidate is an optuna trial in ``DIR/study.db`` (SQLite), with its accuracy,
costs and writer as user attributes, so ``--resume`` continues the same study.  The objective
(energy, latency or size from the target's cost model) is minimised subject to
``float accuracy - accuracy <= max drop``.

Guided seeds (HAQ-style, but with measured sensitivities): starting from the uniform reference,
moves "layer L's weights (or input activations) to b bits" are taken greedily by cost saved per
point of measured drop, until the summed drops reach a budget; budgets at several multiples of
the allowed drop give maps from cautious to bold.  The sampler then explores around them.
"""
from __future__ import annotations

import time
from typing import Callable

import optuna

from codesign.quantize.costing import Costing, objective_value
from codesign.quantize.measure import Bits, Measurer, key_of, uniform
from hwmodels.errors import CodesignError

STUDY = "quantize"
BUDGETS = (0.5, 1.0, 1.5, 2.0, 3.0)


def guided_maps(layers: list[str], choices: list[int], sens: dict, costing: Costing, objective: str,
                max_drop: float) -> list[Bits]:
    ref = sens["reference"]
    base = uniform(layers, ref, ref)
    base_cost = objective_value(costing.metrics(base), objective)
    moves = []
    for layer in layers:
        for kind in ("weight", "activation"):
            for b_text, drop in sens["layers"][layer][kind].items():
                b = int(b_text)
                bits = dict(base)
                bits[layer] = (b, ref) if kind == "weight" else (ref, b)
                saving = base_cost - objective_value(costing.metrics(bits), objective)
                if saving > 0:
                    moves.append((saving / (max(drop, 0.0) + 1e-3), layer, kind, b, max(drop, 0.0)))
    moves.sort(key=lambda m: -m[0])
    maps = []
    for k in BUDGETS:
        bits, spent = dict(base), 0.0
        for _, layer, kind, b, drop in moves:
            w, a = bits[layer]
            current = w if kind == "weight" else a
            if b >= current:
                continue
            extra = drop - (sens["layers"][layer][kind].get(str(current), 0.0) if current != ref else 0.0)
            if spent + max(extra, 0.0) > k * max_drop:
                continue
            spent += max(extra, 0.0)
            bits[layer] = (b, a) if kind == "weight" else (w, b)
        if key_of(bits) not in {key_of(m) for m in maps}:
            maps.append(bits)
    return maps


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
               objective: str, float_acc: float, max_drop: float, seeds: list[Bits], trials: int,
               deadline: float, progress: Callable[[int, int], None] | None = None) -> None:
    """Measure trials until ``trials`` are complete in the study or the deadline passes."""
    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    if done == 0 and not any(t.state == optuna.trial.TrialState.WAITING for t in study.trials):
        for s in seeds:
            study.enqueue_trial(to_params(layers, s), skip_if_exists=True)

    def evaluate(trial: optuna.Trial) -> float:
        bits = {n: (trial.suggest_categorical(f"w{i}", choices), trial.suggest_categorical(f"a{i}", choices))
                for i, n in enumerate(layers)}
        m = measurer.measure(bits)
        metrics = costing.metrics(bits)
        drop = float_acc - m.accuracy
        trial.set_user_attr("accuracy", m.accuracy)
        trial.set_user_attr("writer", m.writer)
        for k, v in metrics.items():
            trial.set_user_attr(k, v)
        trial.set_constraint("accuracy_drop", drop - max_drop)
        return objective_value(metrics, objective)

    while done < trials and time.monotonic() < deadline:
        study.optimize(evaluate, n_trials=1, catch=())
        done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
        if progress:
            progress(done, trials)


def measured_rows(study: optuna.Study, layers: list[str], float_acc: float, max_drop: float) -> list[dict]:
    """Every complete trial as a row: its bit map, accuracy, drop, costs, feasibility, writer."""
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
        rows.append({"trial": t.number, "bits": bits, "accuracy": acc, "accuracy_drop": float_acc - acc,
                     "feasible": float_acc - acc <= max_drop + 1e-12, "writer": t.user_attrs.get("writer"),
                     **{k2: t.user_attrs.get(k2) for k2 in ("energy_mj", "latency_ms", "size_kb")}})
    return rows
