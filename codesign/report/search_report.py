"""report.html of a search: the trade-offs at a glance, then the chosen design in detail.

Built only from ``codesign.search.saved.ReportInputs`` (what the search measured and computed),
so ``codesign report DIR`` rebuilds the same page without running anything.
"""
from __future__ import annotations

import os
from pathlib import Path

from codesign.report import design_views, pareto_views
from codesign.report.page import Page, esc, fmt, table
from codesign.report.model_report import roof_note
from codesign.report.roofline import roofline_figure
from codesign.search.pareto import hypervolume, normalizer
from codesign.search.rows import Row, front

MAX_CURVE_POINTS = 120


def _point(r: Row) -> dict:
    return {"metrics": r.metrics, "trial": r.number, "phase": r.phase, "derived": r.derived}


def _usable(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.feasible and r.fidelity == "full" and not r.metrics.get("invalid")]


def convergence_curves(rows: dict[str, list[Row]], objectives: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Hypervolume of each strategy's front after its k-th measured trial (hardware trade-off points
    count from the trial of the network they belong to), on the summary's shared normalisation."""
    every = [r.metrics for rs in rows.values() for r in _usable(rs)]
    if not every:
        return {}
    norm = normalizer(every, objectives)
    curves = {}
    for s, rs in rows.items():
        measured = [r for r in rs if not r.derived]
        derived: dict[tuple, list[Row]] = {}
        for r in rs:
            if r.derived:
                derived.setdefault((r.phase, r.number), []).append(r)
        if not measured:
            continue
        step = max(1, len(measured) // MAX_CURVE_POINTS)
        seen: list[Row] = []
        pts = []
        for k, r in enumerate(measured, start=1):
            seen.append(r)
            seen += derived.pop((r.phase, r.number), [])
            if k % step == 0 or k == len(measured):
                pool = _usable(seen)
                pts.append((k, hypervolume([p.metrics for p in front(pool, objectives)], objectives, norm) if pool else 0.0))
        if derived:                 # the sequential hardware phase: trade-offs of its final network
            pool = _usable(seen + [r for v in derived.values() for r in v])
            pts.append((len(measured), hypervolume([p.metrics for p in front(pool, objectives)], objectives, norm)))
        curves[s] = pts
    return curves


def predictor_pairs(rows: dict[str, list[Row]]) -> dict[str, list[tuple[float, float, float]]]:
    return {s: [(r.predicted["accuracy"], r.predicted.get("spread", 0.0), r.metrics["accuracy"]) for r in rs
                if r.predicted and not r.derived and r.fidelity == "full" and not r.metrics.get("invalid")]
            for s, rs in rows.items()}


def write_search_report(path: Path, inputs, summary: dict) -> Path:
    objectives, rows, design, cost = inputs.objectives, inputs.rows, inputs.design, inputs.cost
    fronts = {s: front(rs, objectives) for s, rs in rows.items()}
    page = Page("codesign search report")
    page.note(f"Objectives: {', '.join(objectives)}. Accuracies are measured (fake-quantized sub-networks on the "
              f"validation split); latency, energy and area come from the {cost.cost_model} cost model of target "
              f"{inputs.target.name}. Every point on the plots is a measured trial or a hardware trade-off point of a "
              f"measured network (the accelerator re-chosen, accuracy unchanged).")
    _strategies(page, summary)
    page.heading("Pareto fronts: " + " vs ".join(rows))
    chosen = design["metrics"]
    points = {s: [_point(r) for r in _usable(rs)] for s, rs in rows.items()}
    fpoints = {s: [_point(r) for r in f] for s, f in fronts.items()}
    page.figure(pareto_views.pair_panels(points, fpoints, objectives, chosen,
                                         "every objective pair: faint = all feasible points, bold = front, star = chosen"))
    par = pareto_views.parallel_front(fpoints, objectives, chosen)
    if par is not None:
        page.figure(par)
    curves = convergence_curves(rows, objectives)
    if curves:
        page.heading("Convergence")
        page.note("Hypervolume of each strategy's front as its measured budget is spent, on the same normalisation "
                  "as the table above (the last point of each curve is the strategy's hypervolume there).")
        page.figure(pareto_views.convergence(curves))
    _surrogate(page, summary, rows)
    _design(page, inputs)
    return page.write(path, "report")


def _strategies(page: Page, summary: dict) -> None:
    page.heading("Strategies on equal budgets")
    rows = [[s, v["trials"], v["feasible"], v.get("hardware_tradeoff_points", 0), v["front_size"], v["hypervolume"]]
            for s, v in summary["strategies"].items()]
    page.add(table(["strategy", "measured trials", "feasible", "hardware trade-off points", "front size", "hypervolume"],
                   rows, table_id="strategies"))
    norm = summary.get("hypervolume_normalisation", {})
    if norm.get("per_objective"):
        page.note("Hypervolume: objectives minimised (accuracy as 1 - accuracy; latency, energy, area on a log scale), "
                  "each scaled to [0, 1] over all feasible points compared ("
                  + "; ".join(f"{o} {min(v['min'], v['max']):.4g}..{max(v['min'], v['max']):.4g}"
                              for o, v in norm["per_objective"].items())
                  + f"), reference point {norm.get('reference_point', 1.1)} in every objective.")
    dom = summary.get("joint_dominates_sequential")
    if dom is not None:
        page.note("The joint front weakly dominates every sequential front member." if dom else
                  "The joint front does not dominate every sequential front member.")
    comp = summary.get("joint_vs_sequential")
    if comp:
        page.add(f"<h3>What the joint search found that the sequential one could not</h3><p>{comp['joint_beyond_sequential']} "
                 f"of the {comp['joint_front']} joint front members are weakly dominated by no sequential front member.</p>"
                 + ("<ul>" + "".join(f"<li>{esc(f)}</li>" for f in comp["findings"]) + "</ul>" if comp.get("findings") else ""))


def _surrogate(page: Page, summary: dict, rows: dict[str, list[Row]]) -> None:
    from codesign.search.artifacts import surrogate_logs

    logs = surrogate_logs(summary)
    fig, stats = pareto_views.predicted_vs_measured(predictor_pairs(rows))
    if not logs and fig is None:
        return
    page.heading("Accuracy predictor (an estimate, used only to choose what to measure)")
    if logs:
        page.add(table(["strategy", "rounds", "candidates scored", "per second", "measured samples", "OOF Spearman",
                        "OOF MAE (points)"],
                       [[label, log["rounds"], log["candidates_scored"], log["candidates_per_second"],
                         log["predictor"]["samples"], log["predictor"]["oof_spearman"], log["predictor"]["oof_mae_points"]]
                        for label, log in logs], caption="predictor quality, out-of-fold on the strategy's own trials",
                       table_id="surrogate"))
    if fig is not None:
        page.add(table(["strategy", "proposed and measured", "MAE (points)", "Spearman", "within 2 spreads"],
                       [[s, v["n"], v["mae_points"], v["spearman"], v["within_2sd"]] for s, v in stats.items()],
                       caption="the prediction made when each candidate was proposed, against its measurement",
                       table_id="predicted"))
        page.figure(fig)
    page.note("Latency, energy and area on the fronts are the cost model's exact figures for each candidate "
              "(no estimate of an estimate); every accuracy on the fronts is measured.")


def _design(page: Page, inputs) -> None:
    design, cost = inputs.design, inputs.cost
    page.heading("Chosen design")
    m = design["metrics"]
    page.note(f"From the {design.get('strategy', 'joint')} front (trial {design.get('trial')}): "
              + ", ".join(f"{k} {fmt(v)}" for k, v in m.items() if k in inputs.objectives))
    page.add(table(["accuracy", "value"], [
        ["validation, fake-quant (what the search measured)", m.get("accuracy")],
        ["test, fake-quant (torch)", design.get("accuracy_test_fake_quant")],
        ["test, model.qdq.onnx in onnxruntime", design.get("accuracy_test_qdq_onnxruntime")],
        ["test, fp32 model.onnx in onnxruntime", design.get("accuracy_test_fp32_onnxruntime")]],
        caption="accuracy", table_id="accuracy"))
    page.add(table(["choice", "value"], [[design_views.arch_label(k), v] for k, v in design.get("arch", {}).items()],
                   caption="architecture", table_id="architecture"))
    hw = {k: v for k, v in (design.get("hw") or {}).items() if k != "tradeoff"}
    if hw:
        page.add(table(["accelerator", "value"], [[k, v] for k, v in hw.items()], caption="accelerator configuration",
                       table_id="accelerator"))
    page.add(table(["metric", "value"], [[k, v] for k, v in m.items() if isinstance(v, (int, float))],
                   caption="metrics of the chosen design", table_id="metrics"))
    page.add(design_views.totals_table(cost))
    page.add(design_views.layer_table(cost, design.get("onnx_layer_bits")))
    page.figure(design_views.per_layer_bars(cost, f"chosen design on {cost.target} ({cost.cost_model})"))
    page.figure(roofline_figure(cost, inputs.target, design.get("hw"), f"roofline of the chosen design on {cost.target}"))
    roof_note(page, cost, inputs.target, design.get("hw"))
    files = sorted(inputs.files.items())
    if files:
        page.add(table(["file", "bytes"], [[f, n] for f, n in files], caption="files written", table_id="files"))


def file_sizes(out: Path, names: list[str]) -> dict[str, int]:
    return {n: os.path.getsize(out / n) for n in names if (out / n).is_file()}
