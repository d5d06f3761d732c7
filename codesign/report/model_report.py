"""Pages for one analysed model (``analyze --html``) and for a template sweep (``dse --html``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from codesign.report import design_views
from codesign.report.page import Page, fmt, table
from codesign.report.roofline import above_roof, roofline_figure
from hwmodels.base import NetworkCost
from hwmodels.bits import BitAssignment

MAX_CLOUD = 3000         # swept configs drawn faintly (an even sample beyond this)
MAX_TABLE_ROWS = 60


def write_model_report(path: Path, cost: NetworkCost, target, bits: BitAssignment | None, validation: dict | None) -> Path:
    page = Page(f"codesign analyze: {cost.model} on {cost.target}")
    page.note(f"Cost model {cost.cost_model}; bits {bits.label if bits else 'the target default'}. "
              + " ".join(cost.notes))
    if validation:
        page.note(f"Target validation: median error {fmt(validation.get('median_error_pct'))}%, Spearman "
                  f"{fmt(validation.get('spearman'))} on {validation.get('networks')} networks ({validation.get('data')})."
                  + (f" {validation['range_note']}" if validation.get("range_note") else ""))
    page.add(design_views.totals_table(cost))
    layer_bits = {l.name: [bits.for_layer(l.name).weight, bits.for_layer(l.name).activation] for l in cost.layers} \
        if bits is not None else None
    page.figure(design_views.per_layer_bars(cost, f"{cost.model} on {cost.target} ({cost.cost_model})"))
    hw = target.systolic.default.model_dump() if getattr(target, "systolic", None) is not None else None
    page.figure(roofline_figure(cost, target, hw))
    roof_note(page, cost, target, hw)
    page.add(design_views.layer_table(cost, layer_bits))
    return page.write(path, "--html")


def roof_note(page: Page, cost, target, hw) -> None:
    above = above_roof(cost, target, hw)
    if above:
        why = ("its first fold is prefetched before the layer's cycles are counted, as SCALE-Sim does"
               if cost.cost_model == "systolic" else
               "the model's own (fitted or overlapped) memory terms move that traffic faster than the memory list's "
               "bandwidth drawn here")
        page.note(f"{len(above)} layer(s) sit above the main-memory slope drawn from the target's memory list "
                  f"({why}): {', '.join(above[:8])}{'...' if len(above) > 8 else ''}")


def write_dse_report(path: Path, summary: dict, obj: np.ndarray, mask: np.ndarray, title: str) -> Path:
    """Latency/energy/area of every swept config (faint) and the front (bold), plus its table."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = ["latency (ms)", "energy (mJ)", "area (mm²)"]
    pairs = [(0, 1), (0, 2), (1, 2)]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[f"{names[b]} vs {names[a]}" for a, b in pairs])
    cloud = _thin(np.nonzero(~mask)[0], MAX_CLOUD)
    for i, (a, b) in enumerate(pairs, start=1):
        fig.add_trace(go.Scatter(x=obj[cloud, a].astype(np.float32), y=obj[cloud, b].astype(np.float32), mode="markers",
                                 marker=dict(color="#7f7f7f", size=4, opacity=0.25), name="swept configs",
                                 legendgroup="all", showlegend=i == 1, hoverinfo="skip"), row=1, col=i)
        fig.add_trace(go.Scatter(x=obj[mask, a].astype(np.float32), y=obj[mask, b].astype(np.float32), mode="markers",
                                 marker=dict(color="#d62728", size=8, line=dict(color="white", width=1)),
                                 name="Pareto front (3 objectives)", legendgroup="front", showlegend=i == 1), row=1, col=i)
        fig.update_xaxes(title_text=names[a], type="log", row=1, col=i)
        fig.update_yaxes(title_text=names[b], type="log", row=1, col=i)
    fig.update_layout(height=460, title=title, legend=dict(orientation="h", y=-0.2))
    page = Page(f"codesign dse: {Path(summary['model']).name} on {summary['template']}")
    page.note(f"{summary['configs']:,} configurations of the {summary['template']} template swept "
              f"({summary['skipped_sram_too_small']:,} skipped: an SRAM cannot hold one fold), {summary['layers']} layers, "
              f"in {summary['seconds']:.2f} s. {' '.join(summary.get('notes', []))} Faint points: {len(cloud):,} of the swept configs"
              f"{' (an even sample)' if len(cloud) < int((~mask).sum()) else ''}; bold: the front.")
    page.figure(fig)
    front = summary["pareto"]
    cols = list(front[0]) if front else []      # the template kind's fields, its bits, cycles, objectives
    shown = [front[i] for i in _thin(np.arange(len(front)), MAX_TABLE_ROWS)]
    page.add(table(cols, [[r[c] for c in cols] for r in shown], left=0, table_id="pareto",
                   caption="the Pareto front, fastest first" + ("" if len(shown) == len(front) else
                           f" ({len(shown)} of its {len(front)} members, evenly spaced; all in pareto.csv)")))
    return page.write(path, "--html")


def _thin(index: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``index``, evenly spaced (a page of 100,000 points opens slowly)."""
    if len(index) <= n:
        return index
    return index[np.linspace(0, len(index) - 1, n).astype(int)]
