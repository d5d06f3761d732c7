"""What a finished search hands its report, kept in DIR/report_data.json so that
``codesign report DIR`` rebuilds report.html, pareto.csv and pareto.json without measuring,
training or costing anything again.

The measured trials also live in study.db; the file adds what the study does not hold: the
hardware trade-off points (computed from the cost model after the trials), the test accuracy
of front members, the surrogate's logs, the comparison findings, the chosen design and its
per-layer cost.  ``load`` checks the two agree (same measured trials) and says so when not.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from codesign.files import write_text
from codesign.search.encoding import Candidate
from codesign.search.rows import Row
from hwmodels.base import LayerCost, NetworkCost
from hwmodels.errors import CodesignError
from hwmodels.targets import Target

FILE = "report_data.json"
VERSION = 1


@dataclasses.dataclass
class ReportInputs:
    objectives: list[str]
    rows: dict[str, list[Row]]
    test_accuracy: list[tuple[dict, float]]     # (candidate json, test accuracy) of front members
    logs: dict
    comparison: dict | None
    usage: dict
    design: dict
    cost: NetworkCost
    target: Target
    files: dict[str, int]                       # artifact -> bytes, as written by the search

    def test_accuracy_by(self, key) -> dict:
        return {key(Candidate.from_json(c)): a for c, a in self.test_accuracy}


def candidate_key(c: Candidate) -> str:
    """A network and its bits, exactly (what a test accuracy belongs to; the hardware is not in it)."""
    return json.dumps([c.arch, sorted([k, list(v)] for k, v in c.bits.items())], sort_keys=True, default=str)


def _row_json(r: Row) -> dict:
    return {"strategy": r.strategy, "phase": r.phase, "number": r.number, "metrics": r.metrics,
            "feasible": r.feasible, "candidate": r.candidate.to_json(), "derived": r.derived,
            "fidelity": r.fidelity, "predicted": r.predicted}


def _row(d: dict) -> Row:
    return Row(d["strategy"], d["phase"], d["number"], d["metrics"], d["feasible"], Candidate.from_json(d["candidate"]),
               d["derived"], d["fidelity"], d.get("predicted"))


def save(out: Path, inputs: ReportInputs) -> Path:
    data = {"version": VERSION, "objectives": inputs.objectives,
            "rows": {s: [_row_json(r) for r in rs] for s, rs in inputs.rows.items()},
            "test_accuracy": [[c, a] for c, a in inputs.test_accuracy], "logs": inputs.logs,
            "comparison": inputs.comparison, "usage": inputs.usage, "design": inputs.design,
            "cost": dataclasses.asdict(inputs.cost), "target": inputs.target.model_dump(mode="json"),
            "files": inputs.files}
    return write_text(out / FILE, json.dumps(data, default=float), "--out")


def load(out: Path) -> ReportInputs:
    path = out / FILE
    if not out.is_dir():
        raise CodesignError(f"{out} is not a folder; give the --out folder of a `codesign search` run")
    if not path.exists():
        hint = ("the search there has not finished; finish it with `codesign search CONFIG --out "
                f"{out} --resume`") if (out / "study.db").exists() else "it holds no codesign search"
        raise CodesignError(f"{path} not found: {hint}")
    try:
        data = json.loads(path.read_text())
        if data.get("version") != VERSION:
            raise CodesignError(f"{path}: written by another codesign version (format {data.get('version')!r}, "
                                f"this one reads {VERSION}); rerun the search with --resume to rewrite it")
        cost = dict(data["cost"])
        cost["layers"] = [LayerCost(**l) for l in cost["layers"]]
        return ReportInputs(
            objectives=list(data["objectives"]),
            rows={s: [_row(r) for r in rs] for s, rs in data["rows"].items()},
            test_accuracy=[(c, float(a)) for c, a in data["test_accuracy"]], logs=data["logs"],
            comparison=data["comparison"], usage=data["usage"], design=data["design"], cost=NetworkCost(**cost),
            target=Target.model_validate(data["target"]), files=data.get("files", {}))
    except CodesignError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CodesignError(f"{path} is damaged ({type(e).__name__}: {str(e)[:120]}); rerun the search with "
                            f"--resume to rewrite it") from None


def measured_in_storage(url: str, seed: int) -> int:
    """Completed trials that hold a measurement (carried ones not counted) in the search studies of
    ``seed`` at an optuna storage URL (a shared study: the database, not the folder, holds it)."""
    import optuna
    from optuna.trial import TrialState

    from codesign.search import storage as st

    storage = st.open_storage(url)
    try:
        n = 0
        for s in storage.get_all_studies():
            if s.study_name.endswith(f"-s{seed}") and s.study_name.split("-", 1)[0] in ("joint", "sequential", "random"):
                study = optuna.load_study(study_name=s.study_name, storage=storage)
                n += sum("metrics" in t.user_attrs and not t.user_attrs.get("carried")
                         for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        return n
    except st.database_errors() as e:
        raise CodesignError(f"--storage {st.shown(url)}: cannot read the study ({str(e).splitlines()[0][:160]})") from None


def measured_in_study(out: Path) -> int | None:
    """Completed trials in DIR/study.db that hold a measurement (None: no study there)."""
    db = out / "study.db"
    if not db.exists():
        return None
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT COUNT(*) FROM trials t WHERE t.state = 'COMPLETE' AND EXISTS (SELECT 1 FROM trial_user_attributes a "
            "WHERE a.trial_id = t.trial_id AND a.key = 'metrics') AND NOT EXISTS (SELECT 1 FROM trial_user_attributes a "
            "WHERE a.trial_id = t.trial_id AND a.key = 'carried')").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        con.close()
