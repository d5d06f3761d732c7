"""SQLite store of measured kernels, keyed by op signature and machine.

One row per (signature hash, backend, machine fingerprint, threads, variant -- onnxruntime's
optimization level, or TVM's codegen target): the kernel's class, its signature (op, shapes,
dtype, attributes) as JSON, its shape features, its time (the fastest quarter of its runs,
the lowest over the times it was measured) with spread and run count, and whether that
time was taken while the machine was quiet (``hwmodels.quiet``).  Each measurement is
committed as it is taken, so an interrupted profile keeps everything measured so far.  A
second table keeps per-run / per-kernel runtime overheads, a third the blocks measured.

Corruption (not a database, failed ``PRAGMA integrity_check``, missing tables, another
schema version) is detected on open: the bad file is moved aside to ``<name>.corrupt`` with a
warning and an empty store is created in its place, so a damaged cache never crashes the
tool and never answers from bad data.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 4     # 4: kernels timed alone by the wall clock (3: profiler times)
_TABLES = {"meta", "kernels", "overheads", "blocks"}


class CorruptStoreWarning(UserWarning):
    """The kernel cache file was unreadable and has been rebuilt (empty)."""


def default_cache_path() -> Path:
    """``$CODESIGN_KERNEL_CACHE`` if set, else ``kernels.sqlite`` in the user cache dir."""
    env = os.environ.get("CODESIGN_KERNEL_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("codesign")) / "kernels.sqlite"


def signature_hash(signature: dict) -> str:
    return hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _isa_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                keep = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16", "neon", "asimd")
                return ",".join(f for f in keep if f in flags)
    except OSError:
        pass
    return ""


def machine_info(backend: str = "onnxruntime") -> dict:
    """What a measurement depends on besides the kernel: CPU, ISA, runtime version."""
    info = {"cpu": _cpu_model(), "arch": platform.machine(), "isa": _isa_flags(), "backend": backend}
    try:
        if backend == "onnxruntime":
            import onnxruntime
            info["runtime"] = f"onnxruntime {onnxruntime.__version__}"
        elif backend == "tvm":
            import tvm
            info["runtime"] = f"tvm {tvm.__version__}"
    except Exception:  # pragma: no cover - version lookup is best effort
        info["runtime"] = backend
    return info


def machine_fingerprint(backend: str = "onnxruntime") -> str:
    info = machine_info(backend)
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class KernelRecord:
    sig_hash: str
    kind: str                 # kernel class the regressor is trained per, e.g. "nchwc.Conv/depthwise"
    op: str                   # runtime op, e.g. "com.microsoft.nchwc:Conv"
    signature: dict
    features: dict
    us: float                 # the kernel's time on this machine
    mad_us: float = 0.0
    n: int = 0
    backend: str = "onnxruntime"
    machine: str = ""
    threads: int = 1
    opt_level: str = "all"    # the backend's variant
    quiet: bool = False       # measured while the machine was quiet


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kernels (
    sig_hash TEXT NOT NULL, backend TEXT NOT NULL, machine TEXT NOT NULL,
    threads INTEGER NOT NULL, opt_level TEXT NOT NULL,
    kind TEXT NOT NULL, op TEXT NOT NULL, signature TEXT NOT NULL, features TEXT NOT NULL,
    us REAL NOT NULL, mad_us REAL NOT NULL, n INTEGER NOT NULL, created REAL NOT NULL,
    quiet INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sig_hash, backend, machine, threads, opt_level));
CREATE INDEX IF NOT EXISTS kernels_kind ON kernels (backend, machine, threads, opt_level, kind);
CREATE TABLE IF NOT EXISTS overheads (
    backend TEXT NOT NULL, machine TEXT NOT NULL, threads INTEGER NOT NULL, opt_level TEXT NOT NULL,
    per_run_us REAL NOT NULL, per_node_us REAL NOT NULL, n INTEGER NOT NULL, created REAL NOT NULL,
    scale REAL NOT NULL DEFAULT 1.0, source TEXT NOT NULL DEFAULT 'chain',
    PRIMARY KEY (backend, machine, threads, opt_level));
CREATE TABLE IF NOT EXISTS blocks (
    block_hash TEXT NOT NULL, backend TEXT NOT NULL, machine TEXT NOT NULL, threads INTEGER NOT NULL,
    opt_level TEXT NOT NULL, created REAL NOT NULL, quiet INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (block_hash, backend, machine, threads, opt_level));
"""


class KernelStore:
    """The measurement cache.  ``KernelStore(path)``; ``path=None`` uses the user cache dir."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rebuilt_from: Path | None = None
        self._conn = self._open()

    # -- opening, validation, rebuild -------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        problem = self._check(self.path) if self.path.exists() and self.path.stat().st_size > 0 else None
        if problem:
            bad = self.path.with_name(self.path.name + ".corrupt")
            try:
                os.replace(self.path, bad)
                for suffix in ("-journal", "-wal", "-shm"):
                    side = self.path.with_name(self.path.name + suffix)
                    if side.exists():
                        side.unlink()
            except OSError:
                self.path.unlink(missing_ok=True)
            self.rebuilt_from = bad
            warnings.warn(f"kernel cache {self.path} was unusable ({problem}); moved it to {bad.name} and "
                          f"started an empty cache -- re-run `codesign profile` to re-measure",
                          CorruptStoreWarning, stacklevel=3)
        conn = sqlite3.connect(str(self.path), timeout=30)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
        conn.commit()
        return conn

    @staticmethod
    def _check(path: Path) -> str | None:
        """None when ``path`` is a healthy store of this schema version, else what is wrong."""
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as e:
            return f"cannot open: {e}"
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            if not rows or rows[0][0] != "ok":
                return f"integrity check failed: {rows[0][0] if rows else 'no answer'}"
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not _TABLES <= tables:
                return f"missing tables {sorted(_TABLES - tables)}"
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or row[0] != str(SCHEMA_VERSION):
                return f"schema version {row[0] if row else 'missing'}, expected {SCHEMA_VERSION}"
            # every stored row must decode: a store never answers from garbled data
            for sig, feats, med in conn.execute("SELECT signature, features, us FROM kernels"):
                json.loads(sig), json.loads(feats)
                if not (isinstance(med, float) and med > 0):
                    return "a kernel row has a non-positive latency"
        except (sqlite3.Error, ValueError, TypeError) as e:
            return f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        return None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- kernels ---------------------------------------------------------------------
    def put(self, rec: KernelRecord, commit: bool = True, keep_faster: bool = False) -> None:
        """Insert or replace one measurement; committed at once unless ``commit=False``
        (then the next commit -- e.g. ``mark_block`` -- makes the block's rows durable together).
        ``keep_faster``: when the kernel is already stored with a lower time, keep that one (the
        same kernel met again in another block or pass; interruptions only ever add time); the
        row is quiet if any of its measurements was."""
        quiet = bool(rec.quiet)
        if keep_faster:
            old = self.get(rec.sig_hash, rec.backend, rec.machine, rec.threads, rec.opt_level)
            if old is not None:
                quiet = quiet or old.quiet
                if old.us <= rec.us:
                    if quiet != old.quiet:
                        self._conn.execute("UPDATE kernels SET quiet=1 WHERE sig_hash=? AND backend=? AND machine=? "
                                           "AND threads=? AND opt_level=?", (rec.sig_hash, rec.backend, rec.machine,
                                                                            int(rec.threads), rec.opt_level))
                    return
        self._conn.execute(
            "INSERT OR REPLACE INTO kernels VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.sig_hash, rec.backend, rec.machine, int(rec.threads), rec.opt_level, rec.kind, rec.op,
             json.dumps(rec.signature, sort_keys=True, default=str), json.dumps(rec.features, sort_keys=True),
             float(rec.us), float(rec.mad_us), int(rec.n), time.time(), int(quiet)))
        if commit:
            self._conn.commit()

    def mark_block(self, block_hash: str, backend: str, machine: str, threads: int, opt_level: str,
                   quiet: bool = False) -> None:
        """Record that a profiling block was measured (quietly or not) and commit its kernels with it."""
        quiet = quiet or self.has_block(block_hash, backend, machine, threads, opt_level, quiet_only=True)
        self._conn.execute("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?,?,?,?)",
                           (block_hash, backend, machine, int(threads), opt_level, time.time(), int(quiet)))
        self._conn.commit()

    def has_block(self, block_hash: str, backend: str, machine: str, threads: int, opt_level: str,
                  quiet_only: bool = False) -> bool:
        """Was this block measured before (``quiet_only``: while the machine was quiet)?"""
        q = ("SELECT 1 FROM blocks WHERE block_hash=? AND backend=? AND machine=? AND threads=? AND opt_level=?"
             + (" AND quiet=1" if quiet_only else ""))
        return self._conn.execute(q, (block_hash, backend, machine, int(threads), opt_level)).fetchone() is not None

    def get(self, sig_hash: str, backend: str, machine: str, threads: int, opt_level: str) -> KernelRecord | None:
        row = self._conn.execute(
            "SELECT * FROM kernels WHERE sig_hash=? AND backend=? AND machine=? AND threads=? AND opt_level=?",
            (sig_hash, backend, machine, int(threads), opt_level)).fetchone()
        return _record(row) if row else None

    def records(self, backend: str, machine: str, threads: int, opt_level: str, kind: str | None = None) -> list[KernelRecord]:
        q = "SELECT * FROM kernels WHERE backend=? AND machine=? AND threads=? AND opt_level=?"
        args: list = [backend, machine, int(threads), opt_level]
        if kind is not None:
            q += " AND kind=?"
            args.append(kind)
        return [_record(r) for r in self._conn.execute(q + " ORDER BY kind, sig_hash", args)]

    def quiet_hashes(self, backend: str, machine: str, threads: int, opt_level: str) -> set[str]:
        """Signature hashes of the kernels measured while the machine was quiet."""
        return {r[0] for r in self._conn.execute(
            "SELECT sig_hash FROM kernels WHERE backend=? AND machine=? AND threads=? AND opt_level=? AND quiet=1",
            (backend, machine, int(threads), opt_level))}

    def count(self, backend: str | None = None, machine: str | None = None, threads: int | None = None,
              opt_level: str | None = None, quiet_only: bool = False) -> int:
        q, args = "SELECT COUNT(*) FROM kernels WHERE 1=1" + (" AND quiet=1" if quiet_only else ""), []
        for col, val in (("backend", backend), ("machine", machine), ("threads", threads), ("opt_level", opt_level)):
            if val is not None:
                q += f" AND {col}=?"
                args.append(val)
        return int(self._conn.execute(q, args).fetchone()[0])

    def content_hash(self, backend: str, machine: str, threads: int, opt_level: str) -> str:
        """Changes whenever the rows a model would be trained on change."""
        h = hashlib.sha256()
        for r in self._conn.execute(
                "SELECT sig_hash, us FROM kernels WHERE backend=? AND machine=? AND threads=? AND opt_level=? "
                "ORDER BY sig_hash", (backend, machine, int(threads), opt_level)):
            h.update(f"{r[0]}:{r[1]!r};".encode())
        return h.hexdigest()[:16]

    # -- what profiling costs (for deciding whether to measure a network directly) --------
    def set_profile_cost_s(self, backend: str, machine: str, threads: int, opt_level: str, seconds: float) -> None:
        """Seconds it took here to profile one block (one kernel with its context: what making an unseen
        kernel an exact hit costs), the last profile run's average."""
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           (f"profile_s_per_kernel:{backend}:{machine}:{int(threads)}:{opt_level}", repr(float(seconds))))
        self._conn.commit()

    def profile_cost_s(self, backend: str, machine: str, threads: int, opt_level: str) -> float | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?",
                                 (f"profile_s_per_kernel:{backend}:{machine}:{int(threads)}:{opt_level}",)).fetchone()
        return float(row[0]) if row else None

    # -- overheads -------------------------------------------------------------------
    def put_overhead(self, backend: str, machine: str, threads: int, opt_level: str,
                     per_run_us: float, per_node_us: float, n: int, scale: float = 1.0, source: str = "chain") -> None:
        """Network latency = per_run_us + scale * sum(kernel times) + per_node_us * kernels."""
        self._conn.execute("INSERT OR REPLACE INTO overheads VALUES (?,?,?,?,?,?,?,?,?,?)",
                           (backend, machine, int(threads), opt_level, float(per_run_us), float(per_node_us), int(n),
                            time.time(), float(scale), source))
        self._conn.commit()

    def get_overhead(self, backend: str, machine: str, threads: int, opt_level: str) -> tuple[float, float] | None:
        o = self.overhead(backend, machine, threads, opt_level)
        return (o["per_run_us"], o["per_node_us"]) if o else None

    def overhead(self, backend: str, machine: str, threads: int, opt_level: str) -> dict | None:
        row = self._conn.execute("SELECT per_run_us, per_node_us, n, scale, source FROM overheads WHERE backend=? AND "
                                 "machine=? AND threads=? AND opt_level=?", (backend, machine, int(threads), opt_level)).fetchone()
        if not row:
            return None
        return {"per_run_us": float(row[0]), "per_node_us": float(row[1]), "n": int(row[2]), "scale": float(row[3]),
                "source": row[4]}


def _record(row) -> KernelRecord:
    (sig_hash, backend, machine, threads, opt_level, kind, op, sig, feats, us, mad, n, _created, quiet) = row
    return KernelRecord(sig_hash=sig_hash, kind=kind, op=op, signature=json.loads(sig), features=json.loads(feats),
                        us=us, mad_us=mad, n=n, backend=backend, machine=machine, threads=threads,
                        opt_level=opt_level, quiet=bool(quiet))
