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
        t = load_target(path)
        rows.append({"name": name, "kind": t.kind, "description": t.description, "precisions": t.precisions,
                     "path": str(path), "origin": origin})
    if as_json:
        emit_json(rows, "-")
        return
    table = Table(title="codesign targets")
    for col in ("name", "kind", "precisions", "origin", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], ",".join(r["precisions"]), r["origin"], r["description"])
    Console().print(table)
