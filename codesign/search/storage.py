"""Where a search's optuna studies live, and what lets several processes share them safely.

Any database URL optuna's RDB storage accepts works (default: SQLite in the --out folder);
PostgreSQL is the one for a study that several processes or machines add to.  The database
does the coordination, never a server of ours:

- a queued (WAITING) trial is popped by optuna atomically (``SELECT ... FOR UPDATE`` and a
  state check), so two processes never measure the same queued trial;
- queuing trials (corners, random trials, a surrogate batch) happens under ``ProposalLock``
  (a PostgreSQL/MySQL advisory lock, a file lock next to a SQLite file), and the budget is
  re-read after taking it, so no candidate is queued twice and no trial counted twice;
- every trial a process runs names its owner (host, pid) with a heartbeat, so a trial left
  RUNNING by a dead process is queued again under its own number, and a live one never is.

Every database failure becomes a one-line ``CodesignError`` that says what to do.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import TrialState

from hwmodels.errors import CodesignError

OWNER = "codesign_owner"            # trial system attr: {"host", "pid", "started", "beat"}
FINGERPRINT = "codesign_config_fingerprint"
CONFIG = "codesign_config"
BEAT_SECONDS = 30.0                 # heartbeat of a process's running trials
STALE_SECONDS = 180.0               # a trial of another host whose heartbeat is older is given up as dead
CONNECT_TIMEOUT = 10
EXAMPLE = "postgresql://USER:PASSWORD@HOST:5432/DBNAME or sqlite:////abs/path/study.db"


def default_url(out: Path) -> str:
    return f"sqlite:///{(out / 'study.db').resolve()}"


def shown(url: str) -> str:
    """The URL as it may be printed: never with its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the --storage URL>"


def _first_line(e: BaseException) -> str:
    cause = getattr(e, "orig", None) or e.__cause__ or e
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text[:200]


def database_errors() -> tuple[type[BaseException], ...]:
    """What a database that went away raises (through SQLAlchemy or optuna's wrapper of it)."""
    import sqlalchemy.exc

    return (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ConnectionError)


def lost_database(url: str, e: BaseException) -> CodesignError:
    return CodesignError(f"--storage {shown(url)}: the database failed mid-search ({_first_line(e)}); every "
                         f"finished trial is kept: once the database is back, rerun the same command with --resume")


def _parse(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise CodesignError(f"--storage {url!r} is not a database URL ({_first_line(e)}); expected e.g. {EXAMPLE}") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise CodesignError(f"--storage {shown(url)}: unknown database kind {parsed.drivername!r}; use e.g. "
                            f"{EXAMPLE}") from None
    except ImportError as e:
        raise CodesignError(f"--storage {shown(url)}: the database driver is not installed ({_first_line(e)}); "
                            f"pip install -e \".[cluster]\"") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise CodesignError(f"--storage {shown(url)}: an in-memory SQLite database cannot be shared or resumed; "
                            f"give a file, e.g. sqlite:////abs/path/study.db")
    return parsed


def _connect_args(parsed) -> dict:
    backend = parsed.get_backend_name()
    if backend == "postgresql":     # keepalives: a server that vanished from the network is noticed in ~1 min
        return {"connect_timeout": CONNECT_TIMEOUT, "keepalives": 1, "keepalives_idle": 30,
                "keepalives_interval": 10, "keepalives_count": 3}
    if backend == "mysql":
        return {"connect_timeout": CONNECT_TIMEOUT}
    if backend == "sqlite":
        return {"timeout": 60}
    return {}


def open_storage(url: str, shared: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on ``url``, checked first: a malformed URL, a missing driver or a
    database that cannot be reached is a one-line error before anything is trained or written.
    ``shared``: other processes may open it at the same time (optuna's tables are created under
    the proposal lock then)."""
    import sqlalchemy

    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise CodesignError(f"--storage {shown(url)}: folder {folder} does not exist; create it or give another path")
    kwargs = {"connect_args": _connect_args(parsed), "pool_pre_ping": True}
    try:
        engine = sqlalchemy.create_engine(parsed, poolclass=sqlalchemy.pool.NullPool, **kwargs)
        with engine.connect() as c:
            c.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
    except ImportError as e:
        raise CodesignError(f"--storage {shown(url)}: the database driver is not installed ({_first_line(e)}); "
                            f"pip install -e \".[cluster]\"") from None
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise CodesignError(f"--storage {shown(url)}: cannot connect to the database ({_first_line(e)}); check that "
                            f"the server runs and the URL (host, port, user, database name) is right") from None
    try:
        with ProposalLock(url, "codesign-schema") if shared else no_lock():   # two creating the tables can collide
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except database_errors() as e:
        raise CodesignError(f"--storage {shown(url)}: cannot open optuna's tables there ({_first_line(e)})") from None


# ----- one process proposes at a time ---------------------------------------------------------------
class ProposalLock:
    """Held while a process queues trials, so two never queue the same proposal.  The database's
    own lock: ``pg_advisory_lock`` (PostgreSQL), ``GET_LOCK`` (MySQL), a file lock beside the
    SQLite file.  A process that dies releases it (its connection or file handle closes)."""

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name
        self.parsed = _parse(url)
        self.backend = self.parsed.get_backend_name()
        if self.backend not in ("postgresql", "mysql", "sqlite"):
            raise CodesignError(f"--storage {shown(url)}: {self.backend} has no lock codesign can use for a shared "
                                f"study; use PostgreSQL, MySQL or SQLite")
        self._local = threading.Lock()
        self._conn = None
        self._file = None

    def _key(self) -> int:
        return int.from_bytes(hashlib.sha256(self.name.encode()).digest()[:8], "big", signed=True)

    def __enter__(self):
        self._local.acquire()
        try:
            if self.backend == "sqlite":
                from filelock import FileLock

                self._file = FileLock(str(Path(self.parsed.database).expanduser().resolve()) + ".propose.lock")
                self._file.acquire()
            else:
                import sqlalchemy

                engine = sqlalchemy.create_engine(self.parsed, poolclass=sqlalchemy.pool.NullPool,
                                                  connect_args=_connect_args(self.parsed))
                self._conn = engine.connect()
                if self.backend == "postgresql":
                    self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key()})
                else:
                    self._conn.execute(sqlalchemy.text("SELECT GET_LOCK(:k, -1)"), {"k": f"codesign-{self._key()}"})
                self._conn.commit()
        except BaseException:
            self._release()
            raise
        return self

    def _release(self) -> None:
        try:
            if self._file is not None:
                self._file.release()
            if self._conn is not None:
                import sqlalchemy

                try:
                    fn = "pg_advisory_unlock(:k)" if self.backend == "postgresql" else "RELEASE_LOCK(:k)"
                    arg = self._key() if self.backend == "postgresql" else f"codesign-{self._key()}"
                    self._conn.execute(sqlalchemy.text(f"SELECT {fn}"), {"k": arg})
                    self._conn.commit()
                finally:
                    self._conn.close()     # closing the session releases the lock in any case
        finally:
            self._conn = self._file = None
            self._local.release()

    def __exit__(self, *exc):
        try:
            self._release()
        except database_errors():
            if exc[0] is None:
                raise
        return False


# ----- the config a study was made by ---------------------------------------------------------------
def config_record(cfg) -> tuple[str, dict]:
    """(fingerprint, config) of a search config; the supernet's checkpoint folder is a local path
    (each machine may keep its own), so it is left out."""
    data = json.loads(json.dumps(cfg.model_dump(), default=str))
    data.get("supernet", {}).pop("checkpoint_dir", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16], data


def check_config(study_name: str, attrs: dict, cfg, url: str) -> None:
    """A study made by another config must not be continued with this one (its trials would mix two problems)."""
    theirs = attrs.get(FINGERPRINT)
    ours, data = config_record(cfg)
    if theirs is None or theirs == ours:
        return
    before = attrs.get(CONFIG) or {}
    changed = sorted(k for k in set(data) | set(before) if before.get(k) != data.get(k)) or ["?"]
    raise CodesignError(f"--storage {shown(url)}: study {study_name!r} was made by a different config (changed: "
                        f"{', '.join(changed)}); use that config, or another database or seed for this one")


def check_studies(storage, cfg, url: str, resume: bool) -> int:
    """Before anything is trained: the studies this search would use (its seed's) were made by this
    config; without --resume there must be none.  Returns how many exist."""
    try:
        studies = [s for s in storage.get_all_studies() if s.study_name.endswith(f"-s{cfg.seed}")
                   and s.study_name.split("-", 1)[0] in ("joint", "sequential", "random")]
    except database_errors() as e:
        raise lost_database(url, e) from None
    for s in studies:
        check_config(s.study_name, s.user_attrs, cfg, url)
    if studies and not resume:
        raise CodesignError(f"--storage {shown(url)} already holds this search's study {studies[0].study_name!r}; pass "
                            f"--resume to continue (or join) it, or use another database or seed")
    return len(studies)


# ----- who runs a trial --------------------------------------------------------------------------------
def _me() -> dict:
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": round(psutil.Process().create_time(), 2)}


def claim(study: optuna.Study, trial_id: int) -> None:
    study._storage.set_trial_system_attr(trial_id, OWNER, {**_me(), "beat": time.time()})


def _alive(owner: dict) -> bool:
    import psutil

    if owner.get("host") != socket.gethostname():
        return time.time() - float(owner.get("beat", 0)) < STALE_SECONDS
    try:
        return abs(psutil.Process(int(owner["pid"])).create_time() - float(owner["started"])) < 1.0
    except (psutil.Error, KeyError, ValueError, TypeError):
        return False


def requeue_dead(study: optuna.Study, exclusive: bool) -> list[int]:
    """RUNNING trials whose process is gone go back to WAITING, to be re-run under their own number
    with their queued parameters.  ``exclusive`` (the --out folder's own SQLite file, which one
    process holds): every RUNNING trial is a dead one.  A trial without an owner yet was popped a
    moment ago by a live process, unless it has been so for longer than a heartbeat allows."""
    back = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.system_attrs.get(OWNER)
        if exclusive:
            dead = True
        elif owner:
            dead = not _alive(owner)
        else:
            started = t.datetime_start.timestamp() if t.datetime_start else now
            dead = now - started > STALE_SECONDS
        if dead:
            try:
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.WAITING)
            except optuna.exceptions.UpdateFinishedTrialError:     # finished after all, a moment ago
                continue
            back.append(t.number)
    return back


class Heartbeat:
    """Refreshes the owner record of this process's running trials, so that other hosts can tell a
    slow trial from one whose process died (same-host processes are checked by pid)."""

    def __init__(self, study: optuna.Study):
        self.study, self.ids = study, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(BEAT_SECONDS):
            for tid in list(self.ids):
                try:
                    self.study._storage.set_trial_system_attr(tid, OWNER, {**_me(), "beat": time.time()})
                except Exception:     # finished meanwhile, or the database is away: the driver reports that
                    self.ids.discard(tid)

    def close(self) -> None:
        self._stop.set()


@contextmanager
def no_lock():
    yield
