"""Roofline plot as a PNG (``analyze --plot``): the same ceilings and layer points as the HTML
roofline (``codesign.report.roofline``), drawn with matplotlib."""
from __future__ import annotations

import io
from pathlib import Path

from codesign.files import write_bytes
from codesign.report.roofline import ceilings, layer_points
from hwmodels.base import NetworkCost
from hwmodels.targets import Target


def plot_roofline(cost: NetworkCost, target: Target, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    hw = target.systolic.default.model_dump() if getattr(target, "systolic", None) is not None else None
    peaks, levels = ceilings(target, hw)
    pts = layer_points(cost)
    top = max(peaks.values())
    fig, ax = plt.subplots(figsize=(7, 5))
    xs = np.logspace(-2, 4, 200)
    for prec, peak in peaks.items():
        ax.axhline(peak, ls=":", lw=0.8, color="grey")
        ax.text(xs[0], peak * 1.05, f"peak {prec}", fontsize=7, color="grey")
    for name, bw in levels:
        ax.plot(xs, np.minimum(xs * bw, top), lw=1, label=f"{name} {bw:g} GB/s")
    for bound in sorted({p["bound"] for p in pts}):
        sel = [p for p in pts if p["bound"] == bound]
        ax.scatter([p["intensity"] for p in sel], [p["gmacs"] for p in sel], s=12, label=f"bound by {bound}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte moved)")
    ax.set_ylabel("achieved GMAC/s")
    ax.set_title(f"{cost.model} on {cost.target} ({cost.cost_model})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return write_bytes(path, buf.getvalue(), "--plot")
