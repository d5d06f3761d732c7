"""The chosen design (or one analysed model) as a person reads it: tables and per-layer bars."""
from __future__ import annotations

import re

from codesign.report.page import table
from hwmodels.base import NetworkCost

_ARCH_LABELS = ((r"^d(\d+)$", "stage {0}: blocks"), (r"^w(\d+)$", "stage {0}: width multiplier"),
                (r"^k(\d+)_(\d+)$", "stage {0}, block {1}: kernel"), (r"^e(\d+)_(\d+)$", "stage {0}, block {1}: expansion"),
                (r"^r$|^resolution$", "input resolution"))


def arch_label(key: str) -> str:
    for pattern, text in _ARCH_LABELS:
        m = re.match(pattern, key)
        if m:
            return text.format(*m.groups())
    return key


def layer_rows(cost: NetworkCost, bits: dict[str, list] | None = None) -> list[list]:
    """layer, op, MACs, w/a bits, latency (us), energy (uJ), utilisation (%), stall cycles, bound."""
    rows = []
    for l in cost.layers:
        b = (bits or {}).get(l.name)
        stalls = l.extra.get("stall_cycles")
        rows.append([l.name, l.op, int(l.macs), b[0] if b else (l.precision or "-"), b[1] if b else (l.precision or "-"),
                     l.latency_s * 1e6, None if l.energy_j is None else l.energy_j * 1e6,
                     l.utilization * 100 if l.utilization else None, None if stalls is None else int(stalls), l.bound])
    return rows


def layer_table(cost: NetworkCost, bits: dict[str, list] | None = None) -> str:
    return table(["layer", "op", "MACs", "weight bits", "activation bits", "latency (µs)", "energy (µJ)",
                  "utilisation (%)", "stall cycles", "bound"], layer_rows(cost, bits),
                 caption=f"per layer on {cost.target} ({cost.cost_model} cost model)", left=2, table_id="layers")


def totals_table(cost: NetworkCost) -> str:
    rows = [["latency (ms)", cost.latency_s * 1e3], ["energy (mJ)", None if cost.energy_j is None else cost.energy_j * 1e3],
            ["area (mm²)", cost.area_mm2], ["MACs", int(cost.macs)], ["parameters", int(cost.params)],
            ["peak memory (KB)", cost.peak_memory_bytes / 1024]]
    return table(["quantity", "value"], [r for r in rows if r[1] is not None], caption="whole network", table_id="totals")


def per_layer_bars(cost: NetworkCost, title: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    layers = [l for l in cost.layers if l.latency_s > 0 or (l.energy_j or 0) > 0]
    has_energy = any((l.energy_j or 0) > 0 for l in layers)
    titles = ["latency per layer (µs)"] + (["energy per layer (µJ)"] if has_energy else [])
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles)
    # numbered short names: the x axis is categorical, and two layers must never share a bar
    names = [f"{i}: {l.name.rsplit('/', 2)[-2] if l.name.count('/') >= 2 else l.name}" for i, l in enumerate(layers)]
    fig.add_trace(go.Bar(x=names, y=[l.latency_s * 1e6 for l in layers], hovertext=[f"{l.name}: {l.bound}" for l in layers],
                         marker_color="#1f77b4", name="latency"), row=1, col=1)
    if has_energy:
        fig.add_trace(go.Bar(x=names, y=[(l.energy_j or 0.0) * 1e6 for l in layers], hovertext=[l.name for l in layers],
                             marker_color="#ff7f0e", name="energy"), row=1, col=2)
    fig.update_layout(height=420, showlegend=False, title=title)
    return fig
