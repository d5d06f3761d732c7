"""`codesign targets`: list the bundled targets."""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from codesign.targets import list_targets, load_target


def targets(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """List bundled targets (use a name, or any .toml path, with --target)."""
    rows = []
    for name, path in list_targets().items():
        t = load_target(path)
        rows.append({"name": name, "kind": t.kind, "description": t.description,
                     "precisions": t.precisions, "path": str(path)})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="codesign targets")
    for col in ("name", "kind", "precisions", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], ",".join(r["precisions"]), r["description"])
    Console().print(table)
