"""report.html of ``codesign quantize``: what was measured and what was chosen, on one page.

Per-layer sensitivity (measured drop in onnxruntime top-1 when one layer goes narrower), the
chosen bits, per-layer latency and energy for the float model, uniform 8-bit and the chosen map,
and accuracy against cost for every measured bit map.  Takes plain data: the quantize package
computes, this module only draws.
"""
from __future__ import annotations

from pathlib import Path

from codesign.report.page import Page, table
from hwmodels.base import NetworkCost

_KEYS = {"energy": ("energy_mj", "energy (mJ)"), "latency": ("latency_ms", "latency (ms)"), "size": ("size_kb", "size (KB)")}


def write_quantize_report(path: Path, summary: dict, sens: dict, rows: list[dict],
                          costs: dict[str, NetworkCost], designs: dict[str, dict]) -> Path:
    page = Page(f"codesign quantize: {Path(summary['model']).name} on {summary['target']}")
    page.note(f"objective: {summary['objective']} (minimised) subject to a top-1 drop of at most "
              f"{summary['max_accuracy_drop']:.2%} against the float model ({summary['float_accuracy']:.2%}) on "
              f"{summary['selection_samples']} selection samples; {summary['calibration_samples']} samples calibrated "
              f"the activation ranges; cost model {summary['cost_model']}; {summary['measured_bit_maps']} bit maps measured.")
    for n in summary.get("notes", []):
        page.note(n)
    _totals(page, summary)
    _sensitivity(page, sens)
    _layers(page, costs, designs)
    _front(page, rows, summary)
    return page.write(path, "--out")


def _totals(page: Page, s: dict) -> None:
    page.heading("Chosen design against float and uniform 8-bit")
    b, c, f = s["baseline"], s["chosen"], s["float"]
    rows = [["float", s["float_accuracy"], f.get("energy_mj"), f.get("latency_ms"), f.get("size_kb"), "-"],
            [f"uniform {b['bits']}", b["accuracy"], b.get("energy_mj"), b.get("latency_ms"), b.get("size_kb"), "codesign-qdq"],
            [f"chosen ({c['label']})", c["accuracy_onnxruntime"], c.get("energy_mj"), c.get("latency_ms"), c.get("size_kb"),
             c["writer"]]]
    if "baseline_own_accelerator" in s:
        o = s["baseline_own_accelerator"]
        rows.append([f"uniform {o['bits']} on its own accelerator", b["accuracy"], o.get("energy_mj"), o.get("latency_ms"),
                     o.get("size_kb"), "-"])
    page.add(table(["design", "top-1 (onnxruntime)", "energy (mJ)", "latency (ms)", "size (KB)", "writer"], rows,
                   caption="whole network", table_id="totals"))
    for key, what in (("vs_baseline", "uniform 8-bit / chosen"),
                      ("vs_baseline_own_accelerator", "uniform 8-bit on its own accelerator / chosen")):
        if key in s:
            page.note(f"{what}: " + ", ".join(f"{k.removesuffix('_ratio')} {v:.2f}x" for k, v in s[key].items() if v))


def _sensitivity(page: Page, sens: dict) -> None:
    import plotly.graph_objects as go

    page.heading("Per-layer sensitivity")
    ref = sens["reference"]
    layers = list(sens["layers"])
    widths = sorted({int(b) for l in sens["layers"].values() for b in l["weight"]})
    page.note(f"drop in top-1 from uniform w{ref}a{ref} ({sens['reference_accuracy']:.2%}) when only that layer's "
              "weights (w) or input activations (a) go to the width shown; measured in onnxruntime")
    cols = [f"{k}{b}" for b in widths for k in ("w", "a")]
    raw = [[sens["layers"][n]["weight" if c[0] == "w" else "activation"][c[1:]] for c in cols] for n in layers]
    data = [[None if v is None else v * 100 for v in row] for row in raw]      # None: not measured (--minutes)
    if layers and cols:
        fig = go.Figure(go.Heatmap(z=data, x=cols, y=[f"{i}: {n}" for i, n in enumerate(layers)], colorscale="Reds",
                                   colorbar=dict(title="drop (points)")))
        fig.update_layout(title="sensitivity (top-1 drop, points)", height=max(300, 22 * len(layers) + 120))
        page.figure(fig)
    page.add(table(["layer", *[f"{c} drop (pts)" for c in cols]], [[n, *d] for n, d in zip(layers, data)],
                   caption="sensitivity", table_id="sensitivity"))


def _layers(page: Page, costs: dict[str, NetworkCost], designs: dict[str, dict]) -> None:
    page.heading("Chosen bits and per-layer cost before / after")
    names = list(costs)
    by = {k: {l.name: l for l in c.layers} for k, c in costs.items()}
    chosen = designs["chosen"]
    rows = []
    for l in costs["float"].layers:
        if l.macs == 0 and l.name not in chosen:
            continue
        w, a = chosen.get(l.name, (32, 32))
        row = [l.name, l.op, int(l.macs), "fp" if w >= 32 else w, "fp" if a >= 32 else a]
        for k in names:
            lc = by[k].get(l.name)
            row += [None if lc is None else lc.latency_s * 1e6, None if lc is None or lc.energy_j is None else lc.energy_j * 1e6]
        rows.append(row)
    heads = ["layer", "op", "MACs", "weight bits", "activation bits"]
    for k in names:
        heads += [f"{k} latency (µs)", f"{k} energy (µJ)"]
    page.add(table(heads, rows, caption="layers with MACs or bits (others unchanged)", left=2, table_id="layers"))


def _front(page: Page, rows: list[dict], s: dict) -> None:
    import plotly.graph_objects as go

    key, title = _KEYS[s["objective"]]
    page.heading("Accuracy against cost of every measured bit map")
    fig = go.Figure()
    for feasible, colour, name in ((True, "#1f77b4", "within the allowed drop"), (False, "#bbbbbb", "beyond it")):
        pts = [r for r in rows if r["feasible"] == feasible and r.get(key) is not None]
        if pts:
            fig.add_trace(go.Scatter(x=[r[key] for r in pts], y=[r["accuracy"] * 100 for r in pts], mode="markers",
                                     name=name, marker=dict(color=colour, size=8),
                                     hovertext=[f"{r['phase']} {'' if r['trial'] is None else r['trial']}" for r in pts]))
    c = s["chosen"]
    if c.get(key) is not None:
        fig.add_trace(go.Scatter(x=[c["search_costs"][key]],
                                 y=[c["accuracy_search"] * 100],
                                 mode="markers", name="chosen", marker=dict(color="#d62728", size=14, symbol="star")))
    fig.add_hline(y=(s["float_accuracy"] - s["max_accuracy_drop"]) * 100, line_dash="dot", annotation_text="allowed drop")
    fig.update_layout(title=f"top-1 vs {title}", xaxis_title=title + " (template default config)", yaxis_title="top-1 (%)")
    page.figure(fig)
