"""Roofline plot: each layer as a point (arithmetic intensity vs achieved MAC rate)."""
from __future__ import annotations

import io
from pathlib import Path

from codesign.files import write_bytes
from hwmodels.base import NetworkCost
from hwmodels.targets import Target


def plot_roofline(cost: NetworkCost, target: Target, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pts = [(l.macs / max(l.weight_bytes + l.act_bytes, 1), l.macs / l.latency_s / 1e9, l.op_class)
           for l in cost.layers if l.macs > 0 and l.latency_s > 0]
    fig, ax = plt.subplots(figsize=(7, 5))
    xs = np.logspace(-2, 4, 200)
    for prec, peak in target.peak_gmacs.items():
        ax.axhline(peak, ls=":", lw=0.8, color="grey")
        ax.text(xs[0], peak * 1.05, f"peak {prec}", fontsize=7, color="grey")
    for level in target.memory:
        ax.plot(xs, np.minimum(xs * level.bandwidth_gbs, max(target.peak_gmacs.values())), lw=1,
                label=f"{level.name} {level.bandwidth_gbs:g} GB/s")
    classes = sorted({c for _, _, c in pts})
    for c in classes:
        sel = [(x, y) for x, y, cc in pts if cc == c]
        ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=12, label=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs / byte moved)")
    ax.set_ylabel("achieved GMAC/s")
    ax.set_title(f"{cost.model} on {cost.target} ({cost.cost_model})")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return write_bytes(path, buf.getvalue(), "--plot")
