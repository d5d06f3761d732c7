"""Few-shot calibration: fit a target's free roofline parameters to measured latencies.

Free parameters (only those the samples exercise): efficiency of each MAC op class present
(conv, pointwise_conv, depthwise_conv, matmul), one shared efficiency scale for the vector
op classes (pool, norm, elementwise, softmax, reduce, data_movement, other), one scale on
every memory bandwidth, and the per-layer and per-network overheads.  The fit minimises a
robust (soft-L1) loss on log latency, so one bad measurement cannot drag the rest.

The roofline's per-layer terms (work, peak, traffic per level) do not depend on these
parameters, so they are computed once and the fit evaluates a vectorised numpy formula
that is exactly ``RooflineModel`` applied to the calibrated target.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from hwmodels.errors import CodesignError
from hwmodels.targets import Target, target_from_dict
from hwmodels.workload import Workload
from hwmodels.roofline import RooflineModel

PRIOR_WEIGHT = 0.05   # one e-fold away from the prior costs as much as a 5% log-latency error
MAC_CLASSES = ("conv", "pointwise_conv", "depthwise_conv", "matmul")
VECTOR_CLASSES = ("pool", "norm", "elementwise", "softmax", "reduce", "data_movement", "other")


@dataclass
class Sample:
    model: Path
    latency_ms: float


def read_measurements(csv_path: str | Path) -> list[Sample]:
    """Read ``model,latency_ms`` rows; model paths are relative to the CSV's folder."""
    path = Path(csv_path)
    if not path.is_file():
        raise CodesignError(f"measurements file not found: {path}")
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
        header = next(csv.reader(path.read_text().splitlines()), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise CodesignError(f"{path}: not a readable CSV ({e})") from None
    missing = {"model", "latency_ms"} - {h.strip() for h in header}
    if missing:
        raise CodesignError(f"{path}: missing column(s) {', '.join(sorted(missing))}; the header must be 'model,latency_ms'")
    samples = []
    for line_no, row in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            latency = float(row["latency_ms"])
        except ValueError:
            raise CodesignError(f"{path}:{line_no}: latency_ms {row['latency_ms']!r} is not a number") from None
        if not math.isfinite(latency) or latency <= 0:
            raise CodesignError(f"{path}:{line_no}: latency_ms must be a positive number, got {row['latency_ms']}")
        model = (path.parent / row["model"]).resolve()
        if not model.is_file():
            raise CodesignError(f"{path}:{line_no}: model {row['model']!r} not found (paths are relative to the CSV)")
        samples.append(Sample(model, latency))
    if not samples:
        raise CodesignError(f"{path}: no measurement rows")
    return samples


class _Features:
    """Per-layer roofline terms of every sample, flattened for vectorised evaluation."""

    def __init__(self, workloads: list[Workload], target: Target):
        model = RooflineModel()
        rows = []
        for i, wl in enumerate(workloads):
            for t in model.terms(wl, target):
                if t.free:
                    continue
                rows.append((i, t.layer.op_class, t.work, t.peak_macs_s, t.traffic))
        self.n = len(workloads)
        self.sample = np.array([r[0] for r in rows])
        self.op_class = np.array([r[1] for r in rows])
        self.work = np.array([r[2] for r in rows], float)
        self.peak = np.array([r[3] for r in rows], float)
        self.traffic = np.array([r[4] for r in rows], float)        # [layers, levels]
        self.bandwidth = np.array([m.bandwidth_gbs * 1e9 for m in target.memory], float)
        self.base_eff = np.array([target.efficiency.get(c, 1.0) for c in self.op_class], float)
        self.layers_per_sample = np.bincount(self.sample, minlength=self.n)


def _free_params(f: _Features) -> list[str]:
    names = []
    for c in MAC_CLASSES:
        if (f.work[f.op_class == c] > 0).any():
            names.append(f"eff_{c}")
    if np.isin(f.op_class, VECTOR_CLASSES).any():
        names.append("vector_scale")
    names += ["bandwidth_scale", "per_layer_us", "per_network_us"]
    return names


def _predict_ms(f: _Features, p: dict[str, float], target: Target) -> np.ndarray:
    eff = f.base_eff.copy()
    for c in MAC_CLASSES:
        if f"eff_{c}" in p:
            eff[f.op_class == c] = p[f"eff_{c}"]
    vec = np.isin(f.op_class, VECTOR_CLASSES)
    if "vector_scale" in p:
        eff[vec] = np.minimum(f.base_eff[vec] * p["vector_scale"], 1.0)
    compute = np.where(f.work > 0, f.work / (f.peak * eff), 0.0)
    memory = (f.traffic / (f.bandwidth * p["bandwidth_scale"])).max(axis=1)
    per_layer = np.maximum(compute, memory) + p["per_layer_us"] * 1e-6
    total = np.bincount(f.sample, weights=per_layer, minlength=f.n) + p["per_network_us"] * 1e-6
    return total * 1e3


def _initial(names: list[str], target: Target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x0, lo, hi = [], [], []
    for n in names:
        if n.startswith("eff_"):
            v, a, b = target.efficiency.get(n[4:], 0.5), 1e-4, 1.0
        elif n == "vector_scale":
            v, a, b = 1.0, 1e-3, 1e3
        elif n == "bandwidth_scale":
            v, a, b = 1.0, 1e-2, 1e2
        elif n == "per_layer_us":
            v, a, b = max(target.overheads.per_layer_us, 0.1), 1e-3, 1e5
        else:
            v, a, b = max(target.overheads.per_network_us, 1.0), 1e-3, 1e6
        x0.append(math.log(min(max(v, a * 1.01), b * 0.99)))
        lo.append(math.log(a))
        hi.append(math.log(b))
    return np.array(x0), np.array(lo), np.array(hi)


@dataclass
class CalibrationResult:
    target: Target
    params: dict[str, float]
    fit_error_pct: float                # median |pred - meas| / meas on the samples
    predicted_ms: list[float]


def calibrate(target: Target, workloads: list[Workload], measured_ms: list[float], source: str = "") -> CalibrationResult:
    if target.kind == "template":
        raise CodesignError(f"target {target.name!r} is a template; calibrate a device target (or the accelerator's own file)")
    f = _Features(workloads, target)
    names = _free_params(f)
    if len(workloads) < len(names):
        raise CodesignError(f"{len(workloads)} samples cannot fit {len(names)} free parameters "
                            f"({', '.join(names)}); give at least {len(names)} (about 20 is recommended)")
    meas = np.asarray(measured_ms, float)
    x0, lo, hi = _initial(names, target)

    prior = x0.copy()

    def residuals(theta):
        fit = np.log(_predict_ms(f, dict(zip(names, np.exp(theta))), target)) - np.log(meas)
        # a weak prior toward the target's own figures: parameters the samples barely
        # constrain (a class with few layers) stay near them instead of drifting to a bound
        return np.concatenate([fit, PRIOR_WEIGHT * (theta - prior)])

    best = None
    for start in (x0, x0 + 1.0, x0 - 1.0):   # a few starts: the max() makes the loss piecewise
        sol = least_squares(residuals, np.clip(start, lo + 1e-9, hi - 1e-9), bounds=(lo, hi),
                            loss="soft_l1", f_scale=0.1, x_scale=1.0, max_nfev=4000)
        if best is None or sol.cost < best.cost:
            best = sol
    params = dict(zip(names, np.exp(best.x)))
    pred = _predict_ms(f, params, target)
    err = float(np.median(np.abs(pred - meas) / meas) * 100)
    return CalibrationResult(apply_params(target, params, len(workloads), err, source), params, err, pred.tolist())


def apply_params(target: Target, p: dict[str, float], samples: int, err_pct: float, source: str) -> Target:
    data = target.model_dump(exclude_none=True)
    eff = dict(data.get("efficiency", {}))
    for c in MAC_CLASSES:
        if f"eff_{c}" in p:
            eff[c] = float(p[f"eff_{c}"])
    if "vector_scale" in p:
        for c in VECTOR_CLASSES:
            eff[c] = float(min(target.efficiency.get(c, 1.0) * p["vector_scale"], 1.0))
    data["efficiency"] = eff
    for level in data["memory"]:
        level["bandwidth_gbs"] = float(level["bandwidth_gbs"] * p["bandwidth_scale"])
    data["overheads"] = {"per_layer_us": float(p["per_layer_us"]), "per_network_us": float(p["per_network_us"])}
    data["sources"] = list(data["sources"]) + [f"calibrated on {samples} measurements from {source or 'user data'} "
                                               f"({_dt.date.today().isoformat()}), see [calibration]"]
    data["calibration"] = {"samples": samples, "fit_error_pct": round(err_pct, 3), "date": _dt.date.today().isoformat(),
                           "source": source, "params": {k: float(v) for k, v in p.items()}}
    return target_from_dict(data, source=f"calibrated {target.name}")
