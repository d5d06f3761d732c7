"""`codesign targets`: the bundled targets and those plug-ins added."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def targets(as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False) -> None:
    """List targets (use a name, or any .toml path, with --target); plug-in targets are marked."""
    from codesign.cli.common import emit_json
    from hwmodels.targets import load_target, target_origins

    rows = []
    for name, (path, origin) in target_origins().items():
        if path is None:           # a broken plug-in: listed with its error, not loaded
            rows.append({"name": name, "kind": "-", "description": origin, "precisions": [], "path": None,
                         "origin": origin, "cost_model": "-", "validation": None})
            continue
        t = load_target(path)
        v = t.validation
        rows.append({"name": name, "kind": t.kind, "description": t.description, "precisions": t.precisions,
                     "path": str(path), "origin": origin, "cost_model": t.cost_model or "auto",
                     "validation": v.model_dump() if v is not None else None})
    if as_json:
        emit_json(rows, "-")
        return
    table = Table(title="codesign targets")
    for col in ("name", "kind", "model", "validated on", "Spearman", "median / p90 err", "origin", "description"):
        table.add_column(col)
    for r in rows:
        v = r["validation"]
        checked = (f"{v['networks']} held-out nets ({v['date']})", f"{v['spearman']:.3f}",
                   f"{v['median_error_pct']:.1f}% / {v['p90_error_pct']:.1f}%") if v else ("not validated", "-", "-")
        table.add_row(r["name"], r["kind"], r["cost_model"], *checked, r["origin"], r["description"])
    Console().print(table)
