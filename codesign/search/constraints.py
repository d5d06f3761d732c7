"""Hard constraints as optuna constraint values: <= 0 means satisfied."""
from __future__ import annotations

from codesign.search.config import Constraints

LIMITS = (("latency_ms", "max_latency_ms"), ("energy_mj", "max_energy_mj"), ("area_mm2", "max_area_mm2"),
          ("size_kb", "max_size_kb"), ("sram_kb", "max_sram_kb"))


def violations(metrics: dict[str, float], c: Constraints) -> list[float]:
    """Relative excess over each upper limit, accuracy shortfall, and 1 for hardware that cannot run."""
    out = []
    for key, field in LIMITS:
        limit = getattr(c, field)
        if limit is not None:
            out.append((metrics.get(key, 0.0) - limit) / limit)
    if c.min_accuracy is not None:
        out.append(c.min_accuracy - metrics["accuracy"])
    if metrics.get("invalid"):
        out.append(1.0)
    return out


def feasible(violation_values: list[float]) -> bool:
    return all(v <= 0 for v in violation_values)
