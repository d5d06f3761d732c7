"""``codesign report DIR``: rebuild report.html, pareto.csv and pareto.json of a finished search
from what it saved (study.db and report_data.json); nothing is measured, trained or costed."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console


def report(
    out: Annotated[Path, typer.Argument(help="the --out folder of a `codesign search` run")],
    storage: Annotated[Optional[str], typer.Option("--storage", help="the optuna storage URL the search used, if not OUT/study.db (e.g. a shared postgresql://... study)")] = None,
) -> None:
    """Regenerate a search's report.html, pareto.csv and pareto.json without re-running anything."""
    from codesign.cli.search import write_outputs
    from codesign.search.artifacts import write_fronts
    from codesign.search.saved import candidate_key, load, measured_in_storage, measured_in_study
    from hwmodels.errors import CodesignError

    inputs = load(out)
    saved = sum(not r.derived for rs in inputs.rows.values() for r in rs)
    if storage is not None:
        in_study = measured_in_storage(storage, _seed(out))
        where = "the study at --storage"
    else:
        in_study, where = measured_in_study(out), "study.db"
    console = Console(stderr=True)
    if in_study is not None and in_study != saved:
        again = f" --storage {storage}" if storage else ""
        console.print(f"[yellow]note:[/] {where} holds {in_study} measured trials, report_data.json {saved}: the study "
                      f"changed after the search finished; `codesign search CONFIG --out {out}{again} --resume` "
                      f"re-exports it")
    key = candidate_key
    try:
        summary = write_fronts(out, inputs.rows, inputs.objectives, inputs.test_accuracy_by(key), key, inputs.logs,
                               comparison=inputs.comparison, usage=inputs.usage)
    except (KeyError, ValueError) as e:
        raise CodesignError(f"{out}/report_data.json does not describe a complete search ({e}); rerun the search "
                            f"with --resume") from None
    write_outputs(out, inputs, summary)
    console.print(f"rebuilt {out}/report.html, pareto.csv, pareto.json from {saved} measured trials")



def _seed(out: Path) -> int:
    """The seed of the search in OUT (its studies are named by it), from the config.json it saved."""
    import json

    from hwmodels.errors import CodesignError

    try:
        return int(json.loads((out / "config.json").read_text())["seed"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CodesignError(f"{out}/config.json cannot be read ({type(e).__name__}); rerun the search with --resume") from None
