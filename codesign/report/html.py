"""report.html: one self-contained page (plotly inlined, opens offline)."""
from __future__ import annotations

import html
import json
from pathlib import Path

from codesign.files import write_text
from hwmodels.base import NetworkCost


def write_report(path: Path, objectives: list[str], rows_by_strategy: dict, fronts: dict, summary: dict,
                 design: dict, cost: NetworkCost, target) -> Path:
    import plotly.graph_objects as go
    from plotly.io import to_html
    from plotly.subplots import make_subplots

    colours = {"joint": "#d62728", "sequential": "#1f77b4", "random": "#7f7f7f"}
    others = [o for o in objectives if o != "accuracy"]
    fig = make_subplots(rows=1, cols=len(others), subplot_titles=[f"accuracy vs {o}" for o in others])
    for c, o in enumerate(others, start=1):
        for s, rows in rows_by_strategy.items():
            rows = [r for r in rows if not r.metrics.get("invalid")]   # configs the hardware cannot run
            fig.add_trace(go.Scatter(x=[r.metrics[o] for r in rows], y=[r.metrics["accuracy"] for r in rows],
                                     mode="markers", marker=dict(color=colours.get(s, "grey"), opacity=0.25, size=6),
                                     name=f"{s}: all trials", legendgroup=f"{s}-all", showlegend=c == 1))
            f = sorted(fronts[s], key=lambda r: r.metrics[o])
            fig.add_trace(go.Scatter(x=[r.metrics[o] for r in f], y=[r.metrics["accuracy"] for r in f],
                                     mode="markers+lines", marker=dict(color=colours.get(s, "black"), size=9),
                                     name=f"{s}: Pareto front", legendgroup=f"{s}-front", showlegend=c == 1,
                                     text=[f"trial {r.number}" for r in f]))
        fig.add_trace(go.Scatter(x=[design["metrics"][o]], y=[design["metrics"]["accuracy"]], mode="markers",
                                 marker=dict(symbol="star", size=16, color="gold", line=dict(color="black", width=1)),
                                 name="chosen design", showlegend=c == 1))
        fig.update_xaxes(title_text=o, row=1, col=c)
    fig.update_yaxes(title_text="accuracy (measured, val)")
    fig.update_layout(height=450, title="Pareto fronts: joint vs sequential")

    layers = [l for l in cost.layers if l.latency_s > 0 or (l.energy_j or 0) > 0]
    breakdown = make_subplots(rows=1, cols=2, subplot_titles=["latency per layer (ms)", "energy per layer (mJ)"])
    breakdown.add_trace(go.Bar(x=[l.name for l in layers], y=[l.latency_s * 1e3 for l in layers],
                               text=[l.bound for l in layers], name="latency"), row=1, col=1)
    breakdown.add_trace(go.Bar(x=[l.name for l in layers], y=[(l.energy_j or 0.0) * 1e3 for l in layers], name="energy"), row=1, col=2)
    breakdown.update_layout(height=420, showlegend=False, title=f"chosen design on {cost.target} ({cost.cost_model})")

    roof = go.Figure()
    pts = [l for l in cost.layers if l.macs and l.latency_s > 0]
    roof.add_trace(go.Scatter(x=[l.macs / max(l.weight_bytes + l.act_bytes, 1) for l in pts],
                              y=[l.macs / l.latency_s / 1e9 for l in pts], mode="markers", text=[l.name for l in pts],
                              name="layers"))
    peak = max(target.peak_gmacs.values())
    if getattr(target, "systolic", None) is not None and design.get("hw"):
        hw = design["hw"]
        peak = hw["rows"] * hw["cols"] * target.systolic.default.clock_mhz / 1e3
    roof.add_hline(y=peak, line_dash="dot", annotation_text=f"peak {peak:g} GMAC/s")
    roof.update_layout(xaxis_type="log", yaxis_type="log", height=420, title="roofline of the chosen design",
                       xaxis_title="MACs per byte", yaxis_title="achieved GMAC/s")

    parts = [to_html(fig, include_plotlyjs=True, full_html=False),
             to_html(breakdown, include_plotlyjs=False, full_html=False),
             to_html(roof, include_plotlyjs=False, full_html=False)]
    hv_rows = "".join(f"<tr><td>{html.escape(s)}</td><td>{v['trials']}</td><td>{v['feasible']}</td>"
                      f"<td>{v.get('hardware_tradeoff_points', 0)}</td>"
                      f"<td>{v['front_size']}</td><td>{v['hypervolume']:.4f}</td></tr>"
                      for s, v in summary["strategies"].items())
    dom = summary.get("joint_dominates_sequential")
    norm = summary.get("hypervolume_normalisation", {})
    norm_text = ("Hypervolume: objectives minimised (accuracy as 1 - accuracy; latency, energy, area on a log scale), "
                 "each scaled to [0, 1] over the range of all feasible points compared: "
                 + "; ".join(f"{html.escape(o)} {min(v['min'], v['max']):.4g}..{max(v['min'], v['max']):.4g}"
                             for o, v in norm.get("per_objective", {}).items())
                 + f", reference point {norm.get('reference_point', 1.1)} in every objective.") if norm else ""
    surrogate = _surrogate_html(summary)
    comparison = _comparison_html(summary.get("joint_vs_sequential"))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>codesign search report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} pre{{background:#f6f6f6;padding:8px}}</style></head><body>
<h1>codesign search report</h1>
<p>Objectives: {", ".join(objectives)}. Accuracies are measured (fake-quantized sub-networks on held-out data);
latency, energy and area come from the {html.escape(cost.cost_model)} cost model of target {html.escape(cost.target)}.</p>
<h2>Joint vs sequential</h2>
<table><tr><th>strategy</th><th>measured trials</th><th>feasible</th><th>hardware trade-off points</th><th>front size</th>
<th>hypervolume</th></tr>{hv_rows}</table>
<p>{norm_text}</p>
<p>{'' if dom is None else ('The joint front weakly dominates every sequential front member.' if dom else 'The joint front does not dominate every sequential front member.')}</p>
{comparison}
{parts[0]}
{surrogate}
<h2>Chosen design</h2>
<p>Accuracy on the test split: fake-quant {design['accuracy_test_fake_quant']:.4f};
<code>model.qdq.onnx</code> in onnxruntime {design['accuracy_test_qdq_onnxruntime']:.4f};
fp32 <code>model.onnx</code> {design['accuracy_test_fp32_onnxruntime']:.4f}.</p>
<pre>{html.escape(json.dumps({k: design[k] for k in ('arch', 'hw', 'metrics') if k in design}, indent=2, default=float))}</pre>
{parts[1]}{parts[2]}
</body></html>"""
    write_text(path, page, "report")
    return path


def _surrogate_html(summary: dict) -> str:
    """The accuracy predictor's quality (an estimate, so labelled) and the surrogate's throughput."""
    from codesign.search.artifacts import surrogate_logs

    rows = []
    for label, log in surrogate_logs(summary):
        p = log["predictor"]
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{log['rounds']}</td><td>{log['candidates_scored']:,}</td>"
                    f"<td>{log['candidates_per_second']:,.0f}</td><td>{p['samples']}</td>"
                    f"<td>{p['oof_spearman']:.3f}</td><td>{p['oof_mae_points']:.2f}</td></tr>")
    if not rows:
        return ""
    return ("<h2>Surrogate search</h2><p>Accuracy predictions are estimates used only to choose what to measure; "
            "every accuracy on the fronts is measured. Predictor quality is out-of-fold (5-fold) on the strategy's "
            "own measured trials, at its last round.</p><table><tr><th>strategy</th><th>rounds</th>"
            "<th>candidates scored</th><th>per second</th><th>measured samples</th><th>OOF Spearman</th>"
            "<th>OOF MAE (points)</th></tr>" + "".join(rows) + "</table>")


def _comparison_html(comparison: dict | None) -> str:
    if not comparison:
        return ""
    head = (f"<p>{comparison['joint_beyond_sequential']} of the {comparison['joint_front']} joint front members are "
            f"weakly dominated by no sequential front member.</p>")
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in comparison.get("findings", []))
    return "<h3>What the joint search found that the sequential one could not</h3>" + head + (
        f"<ul>{findings}</ul>" if findings else "")
