"""Few-shot calibration: fit a target's free parameters to measured latencies.

A sample is one network run end to end (a ``Workload``), or several workloads run one after
the other whose latencies add up (how HW-NAS-Bench measured its FBNet table: block by block).
Which parameters are free follows from the target's cost model:

- ``roofline`` / ``runtime`` (CPUs, phones, GPUs): the efficiency of each MAC op class the
  samples exercise, one shared scale on the vector op classes, one scale per memory level's
  bandwidth, the dispatch cost of a MAC kernel and of a vector kernel, and the per-run cost;
- ``row-stationary`` (Eyeriss): global-buffer and DRAM bandwidth, per-layer overhead, clock;
- ``tiled`` (FPGA): DRAM bandwidth, per-layer overhead, clock.

The structure of the model (what a kernel is, what maps where, what fits in which memory) is
never refitted: it is what has to carry a target from one family of networks to another.  The
fit minimises a robust (soft-L1) loss on log latency with a weak prior toward the target's own
figures, so that a parameter the samples barely constrain stays where it was.  Every model's
per-layer terms are computed once and the fit evaluates a vectorised formula that is exactly
the cost model applied to the calibrated target (tested).
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares

from hwmodels.errors import CodesignError
from hwmodels.targets import Target, target_from_dict
from hwmodels.workload import Workload

PRIOR_WEIGHT = 0.05   # one e-fold away from the prior costs as much as a 5% log-latency error
MAC_CLASSES = ("conv", "pointwise_conv", "depthwise_conv", "grouped_conv", "matmul")
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
        text = path.read_text(encoding="utf-8-sig")          # a UTF-8 byte-order mark is fine
        rows = list(csv.DictReader(text.splitlines()))
        header = next(csv.reader(text.splitlines()), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise CodesignError(f"{path}: not a readable UTF-8 CSV ({e})") from None
    missing = {"model", "latency_ms"} - {h.strip() for h in header}
    if missing:
        raise CodesignError(f"{path}: missing column(s) {', '.join(sorted(missing))}; the header must be 'model,latency_ms'")
    samples = []
    folder = path.parent.resolve()
    seen: dict[Path, int] = {}
    for line_no, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise CodesignError(f"{path}:{line_no}: the row's cells do not match the header's {len(header)} columns")
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        try:
            latency = float(row["latency_ms"])
        except ValueError:
            raise CodesignError(f"{path}:{line_no}: latency_ms {row['latency_ms']!r} is not a number") from None
        if not math.isfinite(latency) or latency <= 0:
            raise CodesignError(f"{path}:{line_no}: latency_ms must be a positive number, got {row['latency_ms']}")
        model = (path.parent / row["model"]).resolve()
        if Path(row["model"]).is_absolute() or not model.is_relative_to(folder):
            raise CodesignError(f"{path}:{line_no}: model {row['model']!r} is outside the CSV's folder; keep the models "
                                f"beside the CSV (or below it) and give relative paths")
        if not model.is_file():
            raise CodesignError(f"{path}:{line_no}: model {row['model']!r} not found (paths are relative to the CSV)")
        if model in seen:
            raise CodesignError(f"{path}:{line_no}: model {row['model']!r} is listed again (first on line {seen[model]}); "
                                f"give one latency per model, e.g. the median of its runs")
        seen[model] = line_no
        samples.append(Sample(model, latency))
    if not samples:
        raise CodesignError(f"{path}: no measurement rows")
    return samples


class Runs:
    """Samples as a (samples x distinct workloads) count matrix: each workload is costed once."""

    def __init__(self, samples: Sequence[Workload | Sequence[Workload]]):
        self.unique: list[Workload] = []
        index: dict[int, int] = {}
        rows, cols = [], []
        for i, s in enumerate(samples):
            for wl in ([s] if isinstance(s, Workload) else list(s)):
                j = index.setdefault(id(wl), len(self.unique))
                if j == len(self.unique):
                    self.unique.append(wl)
                rows.append(i)
                cols.append(j)
        from scipy.sparse import coo_matrix

        self.n = len(samples)
        self.counts = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(self.n, len(self.unique))).tocsr()

    def total(self, per_workload: np.ndarray) -> np.ndarray:
        return self.counts @ per_workload


class Fitter:
    """One cost model's free parameters and a vectorised prediction of every sample."""

    names: list[str]

    def initial(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:       # x0, lo, hi (natural units)
        raise NotImplementedError

    def predict_ms(self, p: dict[str, float]) -> np.ndarray:
        raise NotImplementedError

    def apply(self, p: dict[str, float]) -> dict:                        # target data with p applied
        raise NotImplementedError


def fitter_for(target: Target, runs: Runs, cost_model: str) -> Fitter:
    if cost_model in ("roofline", "runtime"):
        return RooflineFitter(target, runs, cost_model)
    if cost_model == "row-stationary":
        from hwmodels.row_stationary import RowStationaryFitter

        return RowStationaryFitter(target, runs)
    if cost_model == "tiled":
        from hwmodels.tiled import TiledFitter

        return TiledFitter(target, runs)
    raise CodesignError(f"cost model {cost_model!r} has no calibration; calibrate a roofline, runtime, "
                        f"row-stationary or tiled target")


class RooflineFitter(Fitter):
    """Roofline / runtime-kernel terms of every distinct workload, flattened."""

    def __init__(self, target: Target, runs: Runs, cost_model: str):
        from hwmodels.roofline import RooflineModel
        from hwmodels.runtime_model import RuntimeModel, kernel_overhead_s

        self.target, self.runs, self.cost_model = target, runs, cost_model
        model = RuntimeModel() if cost_model == "runtime" else RooflineModel()
        rows = []
        for j, wl in enumerate(runs.unique):
            for t in model.terms(wl, target):
                if not t.free:
                    rows.append((j, t.layer.op_class, t.work, t.peak_macs_s, t.traffic, t.weight_bytes))
        self.wl = np.array([r[0] for r in rows], int)
        self.op_class = np.array([r[1] for r in rows])
        self.work = np.array([r[2] for r in rows], float)
        self.peak = np.array([r[3] for r in rows], float)
        self.traffic = np.array([r[4] for r in rows], float).reshape(len(rows), len(target.memory))
        self.weight_bytes = np.array([r[5] for r in rows], float)
        self.bandwidth = np.array([m.bandwidth_gbs * 1e9 for m in target.memory], float)
        self.weight_gbs = target.runtime.weight_gbs if cost_model == "runtime" and target.runtime is not None else None
        self.base_eff = np.array([target.efficiency.get(c, 1.0) for c in self.op_class], float)
        self.is_mac = np.isin(self.op_class, MAC_CLASSES)
        self.is_vec = ~self.is_mac
        if cost_model == "runtime":
            self.base_ovh = np.array([kernel_overhead_s(target, c) for c in self.op_class])
        else:
            self.base_ovh = np.full(len(rows), target.overheads.per_layer_us * 1e-6)
        self.names = [f"eff_{c}" for c in MAC_CLASSES if (self.work[self.op_class == c] > 0).any()]
        if (self.is_vec & (self.work > 0)).any():
            self.names.append("vector_scale")
        levels = [i for i in range(len(target.memory)) if self.traffic[:, i].any()]
        self.level_names = [f"bw_{_slug(target.memory[i].name)}" for i in range(len(target.memory))]
        self.names += [self.level_names[i] for i in levels]
        if self.weight_gbs and self.weight_bytes.any():
            self.names.append("weight_gbs")
        if cost_model == "runtime":
            self.names += [n for n, m in (("mac_kernel_us", self.is_mac), ("vector_kernel_us", self.is_vec)) if m.any()]
        else:
            self.names.append("per_layer_us")
        self.names.append("per_network_us")

    def initial(self):
        t = self.target
        x0, lo, hi = [], [], []
        for n in self.names:
            if n.startswith("eff_"):
                v, a, b = t.efficiency.get(n[4:], 0.5), 1e-4, 1.0
            elif n == "vector_scale":
                v, a, b = 1.0, 1e-3, 1e3
            elif n.startswith("bw_"):
                v, a, b = 1.0, 1e-3, 1e2
            elif n == "weight_gbs":
                v, a, b = self.weight_gbs, 1e-3, 1e4
            elif n in ("mac_kernel_us", "vector_kernel_us"):
                mask = self.is_mac if n == "mac_kernel_us" else self.is_vec
                v, a, b = max(float(np.median(self.base_ovh[mask])) * 1e6, 0.1), 1e-3, 1e5
            elif n == "per_layer_us":
                v, a, b = max(t.overheads.per_layer_us, 0.1), 1e-3, 1e5
            else:
                v, a, b = max(t.overheads.per_network_us, 1.0), 1e-3, 1e6
            x0.append(min(max(v, a * 1.01), b * 0.99))
            lo.append(a)
            hi.append(b)
        return np.array(x0), np.array(lo), np.array(hi)

    def predict_ms(self, p):
        eff = self.base_eff.copy()
        for c in MAC_CLASSES:
            if f"eff_{c}" in p:
                eff[self.op_class == c] = p[f"eff_{c}"]
        if "vector_scale" in p:
            eff[self.is_vec] = np.minimum(self.base_eff[self.is_vec] * p["vector_scale"], 1.0)
        compute = np.where(self.work > 0, self.work / (self.peak * eff), 0.0)
        scale = np.array([p.get(n, 1.0) for n in self.level_names])
        memory = (self.traffic / (self.bandwidth * scale)).max(axis=1)
        if "weight_gbs" in p:
            memory = np.maximum(memory, self.weight_bytes / (p["weight_gbs"] * 1e9))
        if self.cost_model == "runtime":
            ovh = self.base_ovh.copy()
            if "mac_kernel_us" in p:
                ovh[self.is_mac] = p["mac_kernel_us"] * 1e-6
            if "vector_kernel_us" in p:
                ovh[self.is_vec] = p["vector_kernel_us"] * 1e-6
        else:
            ovh = p["per_layer_us"] * 1e-6
        per_kernel = np.maximum(compute, memory) + ovh
        per_wl = np.bincount(self.wl, weights=per_kernel, minlength=len(self.runs.unique)) + p["per_network_us"] * 1e-6
        return self.runs.total(per_wl) * 1e3

    def apply(self, p):
        t = self.target
        data = t.model_dump(exclude_none=True)
        eff = dict(data.get("efficiency", {}))
        for c in MAC_CLASSES:
            if f"eff_{c}" in p:
                eff[c] = float(p[f"eff_{c}"])
        if "vector_scale" in p:
            for c in VECTOR_CLASSES:
                eff[c] = float(min(t.efficiency.get(c, 1.0) * p["vector_scale"], 1.0))
        data["efficiency"] = eff
        for name, level in zip(self.level_names, data["memory"]):
            level["bandwidth_gbs"] = float(level["bandwidth_gbs"] * p.get(name, 1.0))
        over = dict(data.get("overheads", {}))
        over["per_network_us"] = float(p["per_network_us"])
        if self.cost_model == "runtime":
            rt = dict(data.get("runtime", {}))
            ko = dict(rt.get("kernel_overhead_us", {}))
            for c in MAC_CLASSES:
                if "mac_kernel_us" in p:
                    ko[c] = float(p["mac_kernel_us"])
            for c in VECTOR_CLASSES:
                if "vector_kernel_us" in p:
                    ko[c] = float(p["vector_kernel_us"])
            rt["kernel_overhead_us"] = ko
            if "weight_gbs" in p:
                rt["weight_gbs"] = float(p["weight_gbs"])
            data["runtime"] = rt
        else:
            over["per_layer_us"] = float(p["per_layer_us"])
        data["overheads"] = over
        return data


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name.lower()).strip("_")


@dataclass
class CalibrationResult:
    target: Target
    params: dict[str, float]
    fit_error_pct: float                # median |pred - meas| / meas on the samples
    predicted_ms: list[float]


def fit_parameters(fitter: Fitter, measured_ms: np.ndarray, prior_weight: float = PRIOR_WEIGHT) -> dict[str, float]:
    """Robust least squares on log latency with a weak prior toward the starting figures."""
    x0, lo, hi = fitter.initial()
    names = fitter.names
    lx0, llo, lhi = np.log(x0), np.log(lo), np.log(hi)
    meas = np.log(np.asarray(measured_ms, float))

    def residuals(theta):
        pred = fitter.predict_ms(dict(zip(names, np.exp(theta))))
        return np.concatenate([np.log(np.maximum(pred, 1e-12)) - meas, prior_weight * (theta - lx0)])

    best = None
    for start in (lx0, lx0 + 1.0, lx0 - 1.0):   # a few starts: the max() makes the loss piecewise
        sol = least_squares(residuals, np.clip(start, llo + 1e-9, lhi - 1e-9), bounds=(llo, lhi),
                            loss="soft_l1", f_scale=0.1, x_scale=1.0, max_nfev=4000)
        if best is None or sol.cost < best.cost:
            best = sol
    return dict(zip(names, map(float, np.exp(best.x))))


def calibrate(target: Target, workloads: Sequence[Workload | Sequence[Workload]], measured_ms: Sequence[float],
              source: str = "", cost_model: str | None = None, prior_weight: float = PRIOR_WEIGHT) -> CalibrationResult:
    """Fit ``target``'s free parameters so that its cost model reproduces ``measured_ms``."""
    if target.kind == "template":
        raise CodesignError(f"target {target.name!r} is a template; calibrate a device target (or the accelerator's own file)")
    if len(workloads) != len(measured_ms):
        raise CodesignError(f"{len(workloads)} networks but {len(measured_ms)} measurements")
    name = cost_model or target.cost_model or "roofline"
    runs = Runs(workloads)
    fitter = fitter_for(target, runs, name)
    if len(workloads) < len(fitter.names):
        raise CodesignError(f"{len(workloads)} samples cannot fit {len(fitter.names)} free parameters "
                            f"({', '.join(fitter.names)}); give at least {len(fitter.names)} (about 20 is recommended)")
    meas = np.asarray(measured_ms, float)
    params = fit_parameters(fitter, meas, prior_weight)
    pred = fitter.predict_ms(params)
    err = float(np.median(np.abs(pred - meas) / meas) * 100)
    data = fitter.apply(params)
    data.pop("validation", None)   # the starting target's held-out figures do not describe the fitted one
    today = _dt.date.today().isoformat()
    data["sources"] = list(data["sources"]) + [f"calibrated on {len(workloads)} measurements from {source or 'user data'} "
                                               f"({today}), see [calibration]"]
    data["calibration"] = {"samples": len(workloads), "fit_error_pct": round(err, 3), "date": today,
                           "source": source, "params": {k: float(v) for k, v in params.items()}}
    return CalibrationResult(target_from_dict(data, source=f"calibrated {target.name}"), params, err, pred.tolist())



def held_out_validation(result_target: Target, workloads, measured_ms, source: str, samples_fitted: int) -> dict:
    """A ``[validation]`` table for a calibrated target from networks the fit did not see."""
    from scipy.stats import spearmanr

    model = _model(result_target.cost_model or "roofline")
    pred = np.array([sum(model.estimate(w, result_target).latency_s for w in ([s] if isinstance(s, Workload) else s))
                     for s in workloads]) * 1e3
    meas = np.asarray(measured_ms, float)
    err = np.abs(pred - meas) / meas
    return {"data": f"{len(meas)} measurements of {source} held out of the calibration (fitted on the other {samples_fitted})",
            "networks": len(meas), "spearman": float(spearmanr(pred, meas).statistic) if len(meas) > 2 else 0.0,
            "median_error_pct": float(np.median(err) * 100), "p90_error_pct": float(np.percentile(err, 90) * 100),
            "within_10_pct": float((err <= 0.1).mean() * 100), "cost_model": result_target.cost_model or "roofline",
            "date": _dt.date.today().isoformat(), "command": "codesign calibrate --held-out"}


def _model(name: str):
    """The cost models calibration knows, by name (the registry sits above this module)."""
    if name == "roofline":
        from hwmodels.roofline import RooflineModel

        return RooflineModel()
    if name == "runtime":
        from hwmodels.runtime_model import RuntimeModel

        return RuntimeModel()
    if name == "row-stationary":
        from hwmodels.row_stationary import RowStationaryModel

        return RowStationaryModel()
    if name == "tiled":
        from hwmodels.tiled import TiledModel

        return TiledModel()
    raise CodesignError(f"cost model {name!r} has no calibration")
