"""Views of a multi-objective search that stay honest for 2-4 objectives.

- ``pair_panels``: one panel per objective pair, every strategy on the same axes, all feasible
  points faint and front members bold; lines join front members only when there are just two
  objectives (with more, a 2-D projection of a front is no curve, and a line through it zig-zags);
  the chosen design is one star per panel.
- ``parallel_front``: each front member a line across one axis per objective (best at the top),
  so a reader sees what a member gives up for what; drawn as ordinary SVG lines (plotly's
  parcoords needs WebGL, which a headless or GPU-less browser may not have).
- ``convergence``: hypervolume of each strategy's front after each measured evaluation.

Inputs are plain point dicts: ``{"metrics": {...}, "trial": n, "phase": str, "derived": bool}``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

STRATEGY_COLOURS = {"joint": "#d62728", "sequential": "#1f77b4", "random": "#7f7f7f"}
LABELS = {"accuracy": "accuracy (measured)", "latency_ms": "latency (ms)", "energy_mj": "energy (mJ)",
          "area_mm2": "area (mm²)", "size_kb": "model size (KB)", "sram_kb": "SRAM (KB)"}
MAXIMIZE = {"accuracy"}
MAX_CLOUD = 500           # faint points per strategy (an even sample beyond this; fronts are drawn whole)
MAX_LINES = 120           # front members per strategy in the parallel view (an even sample beyond this)


def thin(points: list, n: int) -> list:
    """At most ``n`` of ``points``, evenly spaced in their order (fronts are always drawn whole)."""
    if len(points) <= n:
        return points
    return [points[int(i)] for i in np.linspace(0, len(points) - 1, n)]


def label(objective: str) -> str:
    return LABELS.get(objective, objective)


def _log_axis(values: list[float]) -> bool:
    v = [x for x in values if x is not None and x > 0 and math.isfinite(x)]
    return len(v) == len([x for x in values if x is not None]) and bool(v) and max(v) / min(v) > 20


def _arr(points, objective):
    return np.array([p["metrics"][objective] for p in points], dtype=np.float32)


def pair_panels(points: dict[str, list[dict]], fronts: dict[str, list[dict]], objectives: list[str],
                chosen: dict | None, title: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = list(itertools.combinations(objectives, 2))
    # accuracy on the y axis of its panels, costs on x
    pairs = [(b, a) if a in MAXIMIZE else (a, b) for a, b in pairs]
    cols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / cols)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[f"{label(y)} vs {label(x)}" for x, y in pairs],
                        horizontal_spacing=0.08, vertical_spacing=0.16 if nrows > 1 else 0.1)
    every = [p for ps in points.values() for p in ps]
    for i, (ox, oy) in enumerate(pairs):
        r, c = i // cols + 1, i % cols + 1
        first = i == 0
        for s in points:
            colour = STRATEGY_COLOURS.get(s, "#333")
            cloud = thin(points[s], MAX_CLOUD)
            if cloud:
                fig.add_trace(go.Scatter(x=_arr(cloud, ox), y=_arr(cloud, oy), mode="markers",
                                         marker=dict(color=colour, opacity=0.22, size=5), name=f"{s}: all feasible",
                                         legendgroup=f"{s}-all", showlegend=first, hoverinfo="skip"), row=r, col=c)
            f = fronts.get(s, [])         # one order in every panel, so each array is stored once
            if len(objectives) == 2:      # drawn as a staircase: in x order
                f = sorted(f, key=lambda p: p["metrics"][ox])
            if f:
                fig.add_trace(go.Scatter(x=_arr(f, ox), y=_arr(f, oy),
                                         mode="markers+lines" if len(objectives) == 2 else "markers",
                                         marker=dict(color=colour, size=9, line=dict(color="white", width=1)),
                                         line=dict(color=colour, width=1.5, shape="hv"),
                                         name=f"{s}: Pareto front", legendgroup=f"{s}-front", showlegend=first,
                                         text=[f"trial {p['trial']}" for p in f], hoverinfo="text+x+y"), row=r, col=c)
        if chosen:
            fig.add_trace(go.Scatter(x=[chosen[ox]], y=[chosen[oy]], mode="markers",
                                     marker=dict(symbol="star", size=17, color="gold", line=dict(color="black", width=1)),
                                     name="chosen design", legendgroup="chosen", showlegend=first,
                                     hovertext=", ".join(f"{o} {chosen[o]:.4g}" for o in objectives), hoverinfo="text"),
                          row=r, col=c)
        for axis, o in (("x", ox), ("y", oy)):
            kw = dict(title_text=label(o), row=r, col=c)
            if _log_axis([p["metrics"][o] for p in every]):
                kw["type"] = "log"
            (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**kw)
    thinned = [f"{s} {MAX_CLOUD:,} of {len(ps):,}" for s, ps in points.items() if len(ps) > MAX_CLOUD]
    if thinned:
        title += f" (faint points an even sample: {', '.join(thinned)})"
    fig.update_layout(height=380 * nrows + 80, title=title, legend=dict(orientation="h", y=-0.08))
    return fig


def parallel_front(fronts: dict[str, list[dict]], objectives: list[str], chosen: dict | None):
    """One axis per objective, scaled so the best value of the fronts is at the top (1) and the
    worst at the bottom (0); the axis ends are labelled with the real values."""
    import plotly.graph_objects as go

    every = [p for f in fronts.values() for p in f]
    if not every:
        return None
    span = {}
    for o in objectives:
        v = [p["metrics"][o] for p in every] + ([chosen[o]] if chosen else [])
        log = _log_axis(v)
        t = [math.log10(x) for x in v] if log else v
        span[o] = (min(t), max(t), log)

    def y(o, x):
        lo, hi, log = span[o]
        t = math.log10(x) if log else x
        frac = 0.5 if hi == lo else (t - lo) / (hi - lo)
        return frac if o in MAXIMIZE else 1 - frac

    fig = go.Figure()
    xs = list(range(len(objectives)))
    for s, f in fronts.items():       # one trace per strategy: members joined, separated by gaps
        if not f:
            continue
        shown = thin(f, MAX_LINES)
        label_s = f"{s} front ({len(f)})" if len(shown) == len(f) else f"{s} front ({len(shown)} of {len(f)})"
        f = shown
        gx, gy, text = [], [], []
        for p in f:                      # short hover: the values are on the pair panels
            gx += xs + [None]
            gy += [y(o, p["metrics"][o]) for o in objectives] + [None]
            text += [f"{s} trial {p['trial']}"] * len(xs) + [""]
        fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines+markers", line=dict(color=STRATEGY_COLOURS.get(s, "#333"), width=1.2),
                                 opacity=0.55, marker=dict(size=5), name=label_s, hovertext=text,
                                 hoverinfo="text", connectgaps=False))
    if chosen:
        fig.add_trace(go.Scatter(x=xs, y=[y(o, chosen[o]) for o in objectives], mode="lines+markers",
                                 line=dict(color="goldenrod", width=4), marker=dict(symbol="star", size=14, color="gold",
                                                                                  line=dict(color="black", width=1)),
                                 name="chosen design", hoverinfo="name"))
    for i, o in enumerate(objectives):
        lo, hi, log = span[o]
        best, worst = (hi, lo) if o in MAXIMIZE else (lo, hi)
        real = (lambda t: 10 ** t) if log else (lambda t: t)
        fig.add_annotation(x=i, y=1.07, text=f"best {real(best):.4g}", showarrow=False, font=dict(size=10))
        fig.add_annotation(x=i, y=-0.07, text=f"worst {real(worst):.4g}", showarrow=False, font=dict(size=10))
    fig.update_xaxes(tickvals=xs, ticktext=[label(o) for o in objectives], range=[-0.3, len(objectives) - 0.7],
                     showgrid=True, gridcolor="#999", zeroline=False)
    fig.update_yaxes(range=[-0.15, 1.15], tickvals=[0, 0.5, 1], ticktext=["worst", "", "best"], zeroline=False)
    fig.update_layout(height=420, title="fronts across all objectives (each line one front member; up is better)")
    return fig


def convergence(curves: dict[str, list[tuple[float, float]]]):
    """Hypervolume against measured evaluations spent, per strategy."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for s, pts in curves.items():
        if not pts:
            continue
        fig.add_trace(go.Scatter(x=np.array([p[0] for p in pts], dtype=np.float32),
                                 y=np.array([p[1] for p in pts], dtype=np.float32), mode="lines+markers",
                                 line=dict(color=STRATEGY_COLOURS.get(s, "#333"), shape="hv"), marker=dict(size=4),
                                 name=s))
    fig.update_xaxes(title_text="measured evaluations spent")
    fig.update_yaxes(title_text="hypervolume of the front (shared normalisation)")
    fig.update_layout(height=380, title="convergence: hypervolume vs measured evaluations")
    return fig


def predicted_vs_measured(pairs: dict[str, list[tuple[float, float, float]]]):
    """(predicted, spread, measured) accuracy of the candidates the surrogate proposed, per strategy;
    returns (figure, per-strategy stats) -- stats computed here, from these very points."""
    import plotly.graph_objects as go
    from scipy.stats import spearmanr

    fig = go.Figure()
    stats = {}
    lo, hi = 1.0, 0.0
    for s, pts in pairs.items():
        if not pts:
            continue
        p = np.array([a for a, _, _ in pts]); sd = np.array([b for _, b, _ in pts]); m = np.array([c for _, _, c in pts])
        lo, hi = min(lo, p.min(), m.min()), max(hi, p.max(), m.max())
        rho = float(spearmanr(p, m).statistic) if len(pts) > 2 and np.ptp(p) > 0 and np.ptp(m) > 0 else float("nan")
        stats[s] = {"n": len(pts), "mae_points": float(np.mean(np.abs(p - m)) * 100), "spearman": rho,
                    "within_2sd": float(np.mean(np.abs(p - m) <= 2 * sd + 1e-12))}
        fig.add_trace(go.Scatter(x=p.astype(np.float32), y=m.astype(np.float32), mode="markers",
                                 error_x=dict(type="data", array=sd.astype(np.float32), thickness=0.7, width=0,
                                              color="rgba(120,120,120,0.35)"),     # the ensemble's spread, faint
                                 marker=dict(color=STRATEGY_COLOURS.get(s, "#333"), size=7, opacity=0.8),
                                 name=f"{s} (n={len(pts)}, MAE {stats[s]['mae_points']:.2f} pts)"))
    if not stats:
        return None, {}
    pad = max(0.01, (hi - lo) * 0.05)
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines",
                             line=dict(color="black", dash="dot", width=1), name="predicted = measured"))
    fig.update_xaxes(title_text="predicted accuracy (surrogate, when proposed)", range=[lo - pad, hi + pad])
    fig.update_yaxes(title_text="measured accuracy", range=[lo - pad, hi + pad])
    fig.update_layout(height=420, title="accuracy predictor: predicted vs measured for the candidates it proposed")
    return fig, stats
