"""A real, throw-away PostgreSQL server for the cluster tests, started by .ci/postgres.sh (the
script .ci/run uses): initdb in a temporary folder, a loopback port, stopped at the end."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "postgres.sh"


class PostgresServer:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="codesign-pg-"))    # not under pytest's 0700 root folder
        self.url: str | None = None
        self.port: str | None = None

    def start(self) -> str:
        proc = subprocess.run(["bash", str(SCRIPT), "start", str(self.dir), *([self.port] if self.port else [])],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.dir / "server.log"
            raise RuntimeError((proc.stderr.strip() or proc.stdout.strip() or "postgres.sh failed")
                               + (f"; {log.read_text()[-500:]}" if log.exists() else ""))
        self.url = proc.stdout.strip().splitlines()[-1]
        self.port = self.url.rsplit(":", 1)[1].split("/")[0]
        return self.url

    def stop(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.dir)], capture_output=True, timeout=120)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def available_reason() -> str | None:
    """Why no server can be started here (None: it can)."""
    if not any(Path(p).exists() for p in ["/usr/lib/postgresql"]) and shutil.which("pg_ctl") is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (postgres refuses to run as root)"
    return None
