"""The files a search hands back: fronts, the chosen design as deployable files, a report."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import tomli_w
import torch

from codesign.files import write_text
from codesign.search.config import MAXIMIZE
from codesign.search.pareto import REFERENCE, dominates_all, hypervolume, normalizer
from codesign.search.problem import Problem
from codesign.search.rows import Row, front


def write_fronts(out: Path, rows_by_strategy: dict[str, list[Row]], objectives: list[str],
                 test_accuracy: dict[str, float], key, logs: dict[str, dict] | None = None,
                 comparison: dict | None = None, usage: dict[str, dict] | None = None) -> dict:
    """pareto.csv / pareto.json: every front member with its candidate and measured metrics;
    hypervolume of each strategy's front on one shared normalisation (reference point and
    normalisation stated in the summary); the surrogate's predictor quality and throughput.

    ``test_accuracy`` is keyed by ``key(candidate)`` (the network and its bits)."""
    fronts = {s: front(rows, objectives) for s, rows in rows_by_strategy.items()}
    every = [r.metrics for rows in rows_by_strategy.values() for r in rows if r.feasible and r.fidelity == "full"]
    norm = normalizer(every, objectives) if every else None
    summary = {"objectives": objectives, "strategies": {},
               "hypervolume_normalisation": {"reference_point": REFERENCE, "per_objective": {
                   o: {"min": _unscale(o, lo), "max": _unscale(o, hi)} for o, lo, hi in zip(objectives, *norm[:2])}
                   if norm else {},
                   "note": "objectives minimised (accuracy as 1 - accuracy, linear; costs as logarithms), each "
                           "scaled to [0, 1] between min and max over every feasible point of the strategies compared"}}
    for s, f in fronts.items():
        measured = [r for r in rows_by_strategy[s] if not r.derived]
        summary["strategies"][s] = {
            "trials": len(measured),
            "feasible": sum(r.feasible for r in measured),
            "hardware_tradeoff_points": sum(r.derived for r in rows_by_strategy[s]),
            "front_size": len(f),
            "hypervolume": hypervolume([r.metrics for r in f], objectives, norm) if norm is not None else 0.0,
            **({"budget": usage[s]} if usage and s in usage else {}),
            **({"surrogate": logs[s]} if logs and logs.get(s) else {}),
        }
    if "joint" in fronts and "sequential" in fronts:
        summary["joint_dominates_sequential"] = dominates_all([r.metrics for r in fronts["joint"]],
                                                              [r.metrics for r in fronts["sequential"]], objectives)
    if comparison:
        summary["joint_vs_sequential"] = comparison
    members = []
    for s, f in fronts.items():
        for r in f:
            members.append({"strategy": s, "phase": r.phase, "trial": r.number, "hardware_tradeoff": r.derived,
                            "accuracy_kind": "measured", "test_accuracy": test_accuracy.get(key(r.candidate)),
                            **r.metrics, **r.candidate.to_json()})
    write_text(out / "pareto.json", json.dumps({"summary": summary, "front": members}, indent=2, default=float), "--out")
    keys = ["strategy", "phase", "trial", *objectives, "test_accuracy",
            *[k for k in ("latency_ms", "energy_mj", "area_mm2", "size_kb", "sram_kb", "macs", "params") if k not in objectives],
            "arch", "bits", "hw"]
    table = io.StringIO()
    w = csv.DictWriter(table, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for m in members:
        w.writerow({k: json.dumps(m[k], sort_keys=True) if isinstance(m.get(k), (dict, list)) else m.get(k)
                    for k in keys})
    write_text(out / "pareto.csv", table.getvalue(), "--out")
    return summary


def surrogate_logs(summary: dict) -> list[tuple[str, dict]]:
    """(label, log) of every strategy's surrogate in a pareto.json summary; the sequential
    strategy logs per phase ("sequential: arch", ...)."""
    out = []
    for s, v in summary["strategies"].items():
        logs = v.get("surrogate") or {}
        out += [(s, logs)] if "rounds" in logs else [(f"{s}: {p}", log) for p, log in logs.items()]
    return out


def _unscale(objective: str, v: float) -> float:
    """A normalisation bound back in the objective's own units (error -> accuracy, log -> value)."""
    import math

    return float(1.0 - v) if objective in MAXIMIZE else float(math.exp(v))


def write_design(out: Path, problem: Problem, chosen: Row) -> dict:
    """model.onnx, model.qdq.onnx (accuracy re-measured with onnxruntime), accelerator.toml,
    the TVM-compiled module, design.json."""
    from codesign.frontends.torch_frontend import example_input, export_onnx
    from codesign.quant import quant_params, quantize_model
    from codesign.search.qdq import onnx_accuracy, write_qdq
    from codesign.training import accuracy

    cand = chosen.candidate
    module = problem.evaluation.module(cand.arch)
    splits = problem.splits
    x = example_input(module, splits.in_channels, splits.resolution)
    fp32 = export_onnx(module, x, out / "model.onnx", dynamic_batch=True, check=True,
                       what=f"model from space {problem.space.name}")
    wl, names = problem.evaluation.workload(cand.arch)
    bit_map = problem.evaluation.bit_map(cand, module)
    torch.manual_seed(0)
    qmodel = quantize_model(module, bit_map, splits.val.x[:256])
    res = getattr(module, "input_resolution", None)
    fake_quant_test = accuracy(qmodel, splits.test)
    qdq = write_qdq(fp32, out / "model.qdq.onnx", quant_params(qmodel), names)
    qdq_test = onnx_accuracy(qdq, splits.test.x, splits.test.y, res)
    fp32_test = onnx_accuracy(fp32, splits.test.x, splits.test.y, res)
    design = {"strategy": chosen.strategy, "trial": chosen.number, **cand.to_json(), "metrics": chosen.metrics,
              "accuracy_test_fake_quant": fake_quant_test, "accuracy_test_qdq_onnxruntime": qdq_test,
              "accuracy_test_fp32_onnxruntime": fp32_test,
              "onnx_layer_bits": {names[n]: list(b) for n, b in bit_map.items() if n in names}}
    if problem.is_template:
        write_accelerator(out / "accelerator.toml", problem, cand.hw, bit_map)
        design["accelerator"] = str(out / "accelerator.toml")
    design["tvm_module"] = compile_tvm(fp32, out / "model_tvm.so", tuple(x.shape))
    write_text(out / "design.json", json.dumps(design, indent=2, default=float), "--out")
    return design


def write_accelerator(path: Path, problem: Problem, hw: dict, bit_map: dict) -> Path:
    """A target file for the chosen accelerator: the template fixed at the chosen point, built for
    the widest bits the design runs (``codesign analyze/check --target`` it to reproduce the cost)."""
    from hwmodels.bits import LayerBits
    from hwmodels.template_kinds import kind_of

    kind = kind_of(problem.target)
    hw = {k: v for k, v in hw.items() if k in kind.fields}
    data = problem.target.model_dump(exclude_none=True)
    widest = LayerBits(max((b[0] for b in bit_map.values()), default=8), max((b[1] for b in bit_map.values()), default=8))
    default = {**data[kind.name]["default"], **hw, **kind.bits_fields(widest)}
    data["name"] = "accelerator"
    data["description"] = f"{kind.describe(hw)} chosen by codesign search from {problem.target.name}"
    data[kind.name] = {**data[kind.name], "default": default, "ranges": {k: [v] for k, v in hw.items()}}
    data["peak_gmacs"] = kind.peak_gmacs(problem.target, default)
    write_text(path, "# written by `codesign search`; use it with --target\n" + tomli_w.dumps(data), "--out")
    return path


def compile_tvm(onnx_path: Path, out_path: Path, input_shape: tuple[int, ...]) -> str:
    """TVM-compiled (llvm) shared library of the fp32 model, or why it could not be built."""
    try:
        import tvm
        from tvm import relax

        from codesign.frontends.tvm_frontend import relax_from_onnx

        mod = relax_from_onnx(onnx_path, {"input": input_shape})
        mod = relax.transform.DecomposeOpsForInference()(mod)
        mod = relax.transform.LegalizeOps()(mod)
        ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
        ex.export_library(str(out_path))
        return str(out_path)
    except Exception as e:   # TVM is optional for the rest of the artifacts
        return f"not built: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
