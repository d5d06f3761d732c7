"""A roofline that is a roofline: log-log, compute ceilings per precision, one memory slope per
level, each layer a point coloured by what bounds it, axes spanning the data.

Arithmetic intensity is MACs per byte of main-memory traffic where the cost model reports it
(``LayerCost.dram_bytes``), else per byte of weights + activations the layer touches.  For a
systolic template fixed at a chosen configuration the ceilings are that array's: rows x cols
MACs per cycle, and its DRAM port of ``dram_bandwidth_words`` words per cycle.
"""
from __future__ import annotations

import math

from hwmodels.base import NetworkCost
from hwmodels.targets import Target

BOUND_COLOURS = {"compute": "#2ca02c", "overhead": "#9467bd", "measured": "#8c564b", "off-array": "#7f7f7f"}
MEMORY_COLOURS = ("#1f77b4", "#ff7f0e", "#d62728", "#17becf", "#bcbd22")


def ceilings(target: Target, hw: dict | None = None) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """(peak GMAC/s per precision, [(memory level, GB/s)]) of the target, at ``hw`` for a template."""
    peaks = dict(target.peak_gmacs)
    levels = [(m.name, m.bandwidth_gbs) for m in target.memory]
    s = getattr(target, "systolic", None)
    if s is not None:
        d = s.default.model_copy(update={k: v for k, v in (hw or {}).items() if k in type(s.default).model_fields})
        peak = d.rows * d.cols * d.clock_mhz / 1e3
        peaks = {p: peak for p in peaks}
        dram = d.dram_bandwidth_words * d.word_bits / 8 * d.clock_mhz / 1e3
        levels = levels[:-1] + [(levels[-1][0], dram)]
    return peaks, levels


def layer_points(cost: NetworkCost) -> list[dict]:
    pts = []
    for l in cost.layers:
        if l.macs <= 0 or l.latency_s <= 0:
            continue
        moved = l.dram_bytes if l.dram_bytes > 0 else l.weight_bytes + l.act_bytes
        pts.append({"name": l.name, "op": l.op, "bound": l.bound, "intensity": l.macs / max(moved, 1.0),
                    "gmacs": l.macs / l.latency_s / 1e9, "latency_ms": l.latency_s * 1e3})
    return pts


def above_roof(cost: NetworkCost, target: Target, hw: dict | None = None, slack: float = 1.05) -> list[str]:
    """Layers whose achieved rate is above the roofline at their intensity (a model that counts
    some traffic outside the layer's time -- e.g. SCALE-Sim's prefetch of the first fold)."""
    peaks, levels = ceilings(target, hw)
    top = max(peaks.values())
    main_bw = levels[-1][1]
    return [p["name"] for p in layer_points(cost) if p["gmacs"] > slack * min(top, main_bw * p["intensity"])]


def _colour(bound: str, level_names: list[str]) -> str:
    """A memory-bound layer takes its level's slope colour; other bounds their own."""
    if bound in level_names:
        return MEMORY_COLOURS[level_names.index(bound) % len(MEMORY_COLOURS)]
    return BOUND_COLOURS.get(bound, "#e377c2")


def _span(values: list[float]) -> tuple[float, float]:
    """log10 range covering ``values`` with a margin of a fifth of a decade, at least one decade."""
    lo, hi = math.log10(min(values)), math.log10(max(values))
    if hi - lo < 1.0:
        mid = (lo + hi) / 2
        lo, hi = mid - 0.5, mid + 0.5
    return lo - 0.2, hi + 0.2


def roofline_figure(cost: NetworkCost, target: Target, hw: dict | None = None, title: str | None = None):
    import plotly.graph_objects as go

    peaks, levels = ceilings(target, hw)
    pts = layer_points(cost)
    fig = go.Figure()
    if not pts:
        fig.add_annotation(text="no layer with MACs and a latency to place", showarrow=False)
        return fig
    xs = [p["intensity"] for p in pts]
    top = max(peaks.values())
    knees = [top / bw for _, bw in levels]          # ridge points: where each slope meets the top ceiling
    lo_cap, hi_cap = min(xs) / 1e3, max(xs) * 1e3
    x_lo, x_hi = _span(xs + [min(max(k, lo_cap), hi_cap) for k in knees])
    y_lo, y_hi = _span([p["gmacs"] for p in pts] + list(peaks.values()))
    x0, x1 = 10 ** x_lo, 10 ** x_hi
    for (name, bw), colour in zip(levels, MEMORY_COLOURS):
        xs_line = max(x0, 10 ** y_lo / bw)         # enter at the bottom or left edge, leave at the ridge
        xe = min(top / bw, x1)
        if xe <= xs_line:
            continue
        fig.add_trace(go.Scatter(x=[xs_line, xe], y=[bw * xs_line, bw * xe], mode="lines",
                                 line=dict(color=colour, width=2), name=f"{name}: {bw:.4g} GB/s", hoverinfo="name"))
    by_peak: dict[float, list[str]] = {}
    for prec, peak in peaks.items():              # precisions sharing a ceiling share one line
        by_peak.setdefault(peak, []).append(prec)
    for peak, precs in sorted(by_peak.items(), reverse=True):
        fig.add_trace(go.Scatter(x=[x0, x1], y=[peak, peak], mode="lines", line=dict(color="black", dash="dot", width=1),
                                 name=f"peak {'/'.join(precs)}: {peak:.4g} GMAC/s", hoverinfo="name"))
    for bound in sorted({p["bound"] for p in pts}):
        sel = [p for p in pts if p["bound"] == bound]
        colour = _colour(bound, [n for n, _ in levels])
        fig.add_trace(go.Scatter(
            x=[p["intensity"] for p in sel], y=[p["gmacs"] for p in sel], mode="markers",
            marker=dict(color=colour, size=9, symbol="circle", line=dict(color="white", width=1)),
            name=f"layers bound by {bound}", text=[f"{p['name']} ({p['op']}): {p['latency_ms']:.4g} ms" for p in sel],
            hovertemplate="%{text}<br>%{x:.3g} MACs/B, %{y:.3g} GMAC/s<extra></extra>"))
    fig.update_xaxes(type="log", range=[x_lo, x_hi], title_text="arithmetic intensity (MACs per byte moved)")
    fig.update_yaxes(type="log", range=[y_lo, y_hi], title_text="achieved GMAC/s")
    fig.update_layout(height=480, title=title or f"roofline: {cost.model} on {cost.target} ({cost.cost_model})",
                      legend=dict(font=dict(size=10)))
    return fig
